"""Real-mode holds for a task of a host that runs no node (docs/design.md#hosts, "Clocks"): the
coordinator measured only its agents' clocks, so such a task estimates its own offset to the
coordinator at attach (the fastest of 8 pings) and converts every host's offset to its clock;
replies from the nodes of other hosts are then held from their send instant, not their arrival.
Fake hosts as in test_hosts.py (nodes 0-1 on a, 2-3 on b) and a host "c" without nodes: all share
one clock, so every true offset is 0."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from numa_emu.protocol.hosts import hosts_in_file
from tests.processes.test_hosts import HOSTS, two_host_topology

pytestmark = pytest.mark.cluster

ON_HOST_C = """
import json, sys, numa_emu
task = numa_emu.attach()
far = task.mmap(4096)
far.mbind("bind", [2])  # host b
far.write(0, b"\\x05")
print("ready", flush=True)
sys.stdin.readline()  # real mode is on
reads = [far.read(0, 1) for _ in range(10)]
print(json.dumps({"node": task.node, "reads": [r.hex() for r in reads], "offsets": task._home.clock_offsets,
                  "within": task._home.clock_within_ns, "holds": list(task._home.holds)}), flush=True)
task.detach()
"""


@pytest.fixture
def two_hosts(cluster_factory, home):
    path = two_host_topology(home)
    return cluster_factory(str(path), hosts=hosts_in_file(str(path), 4), launcher="local")


def test_a_task_of_a_host_without_nodes_holds_replies_from_their_send_instant(two_hosts, home, cli):
    log = (two_hosts.info.dir / "coordinator.log").read_text()
    within = {h: int(re.search(rf"host {h}: clock offset [+-]\d+ ns, within (\d+) ns", log)[1]) for h in HOSTS}
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, NUMA_EMU_HOME=str(elsewhere), NUMA_EMU_HOST="c",
               NUMA_EMU_CONNECTION=str(two_hosts.info.dir / "connection.json"))
    env.pop("NUMA_EMU_CLUSTER", None)
    with subprocess.Popen([sys.executable, "-c", ON_HOST_C], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env) as proc:
        try:
            assert proc.stdout.readline() == "ready\n"
            cli("latency", "--name", two_hosts.name, "inject", "real", "--dilation", "2000", check=True)
            try:
                proc.stdin.write("go\n")
                proc.stdin.flush()
                out = json.loads(proc.stdout.readline())
            finally:
                cli("latency", "--name", two_hosts.name, "inject", "virtual", check=True)
        finally:
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
    assert out["reads"] == ["05"] * 10
    # the coordinator's host, a and b, against host c's clock: each true offset is 0
    assert len(out["offsets"]) == 3 and 0 < out["within"]
    bound = out["within"] + max(within.values())
    assert all(abs(off) <= bound for off in out["offsets"].values()), (out["offsets"], bound)
    assert len(out["holds"]) >= 10  # recorded only when held from the send instant
    assert all(delay >= hold - bound - 1000 for hold, delay in out["holds"])
