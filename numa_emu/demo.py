"""`make demo`: start the default cluster, show what it has, run what exists, stop it.

Each step is a real `numa-emu` command, printed before it runs, so the demo doubles as a tour
of the CLI. The cluster is stopped whatever happens.
"""
from __future__ import annotations

import shlex
import subprocess
import sys

from numa_emu import processes

NAME = "demo"


def sh(*args: str, check: bool = True) -> int:
    print(f"\n$ numa-emu {shlex.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "numa_emu.cli.main", *args])
    processes.reap_children()
    if check and code != 0:
        raise SystemExit(f"demo step failed with exit status {code}")
    return code


STEPS: list[tuple[str, ...]] = [
    ("status", "--name", NAME),
    ("hardware", "--name", NAME),
    ("hardware", "--name", NAME, "--fallback"),
]


def main() -> None:
    processes.become_subreaper()
    subprocess.call([sys.executable, "-m", "numa_emu.cli.main", "down", "--name", NAME],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sh("up", "--name", NAME)
    try:
        for step in STEPS:
            sh(*step)
    finally:
        sh("down", "--name", NAME, check=False)
        processes.reap_children()


if __name__ == "__main__":
    main()
