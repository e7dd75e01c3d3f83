"""`make demo`: start the default cluster, show what it has, run what exists, stop it.

Each step is a real `numa-emu` command, printed before it runs, so the demo doubles as a tour
of the CLI. The cluster is stopped whatever happens.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile

from numa_emu import processes

NAME = "demo"


def sh(*args: str, check: bool = True) -> int:
    print(f"\n$ numa-emu {shlex.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "numa_emu.cli.main", *args])
    processes.reap_children()
    if check and code != 0:
        raise SystemExit(f"demo step failed with exit status {code}")
    return code


# the numa-emu command of this environment, for the commands that numactl executes
NUMA_EMU = os.path.join(os.path.dirname(sys.executable), "numa-emu")

MEMTOY_SCRIPT = """anon buf 16p
map buf
mbind buf interleaved 0-3
touch buf write
where buf 0 8p
mbind buf 0 4p bind+move 1
where buf 0 8p
migrate 2
where buf 0 8p
show
time
"""

STEPS: list[tuple[str, ...]] = [
    ("status", "--name", NAME),
    ("hardware", "--name", NAME),
    ("hardware", "--name", NAME, "--fallback"),
    # first touch by policy, counted as the kernel counts it
    ("numactl", "--interleave=all", "--", NUMA_EMU, "memhog", "16m"),
    ("numactl", "--membind=2", "--", NUMA_EMU, "memhog", "8m"),
    ("numastat", "--name", NAME),
    ("latency", "--name", NAME, "show"),
    # remote reads of a shared file page make replicas; a write collapses them
    ("workload", "kbuild", "--cluster", NAME),
    ("vmstat", "--name", NAME),
    # the same pointer chase with the direct path (shared memory) and without it: wall_s differs,
    # virtual_ns is the same
    ("workload", "chase", "--cluster", NAME, "--cpu", "0", "--hops", "20000"),
    ("sysctl", "--name", NAME, "vm.direct_access=0"),
    ("workload", "chase", "--cluster", NAME, "--cpu", "0", "--hops", "20000"),
    ("sysctl", "--name", NAME, "vm.direct_access=1"),
]


def main() -> None:
    processes.become_subreaper()
    os.environ["NUMA_EMU_CLUSTER"] = NAME  # numactl, memhog and workloads find the demo cluster
    subprocess.call([sys.executable, "-m", "numa_emu.cli.main", "down", "--name", NAME],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sh("up", "--name", NAME)
    try:
        for step in STEPS:
            sh(*step)
        print("\n$ numa-emu memtoy --name demo --cpu 1 -v   (a script on stdin)", flush=True)
        subprocess.run([sys.executable, "-m", "numa_emu.cli.main", "memtoy", "--name", NAME, "--cpu", "1", "-v"],
                       input=MEMTOY_SCRIPT, text=True, check=True)
    finally:
        sh("down", "--name", NAME, check=False)
        processes.reap_children()
    # an experiment starts its own clusters: latency sensitivity, reduced grid
    sh("experiment", "run", "latency-sensitivity", "--quick", "--out", os.path.join(tempfile.gettempdir(),
                                                                                    "numa-emu-demo-results"))
    processes.reap_children()


if __name__ == "__main__":
    main()
