"""Readers on every node against a writer on one node, in `real` injection mode with jitter: with
the default protocol no read is ever stale (the history checker) and no stale access happens;
with the unsafe 2007 ordering, stale accesses happen and every one is counted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numa_emu.protocol.messages import tasks as tm
from tests.helpers import poll_until
from tests.history import violations

pytestmark = pytest.mark.cluster
WORKER = str(Path(__file__).resolve().parents[1] / "race_worker.py")
PAGES = 3


def vm_total(c, name):
    with c.client() as client:
        return sum(d["vmstat"].get(name, 0) for d in client.call(tm.ClusterStats()).nodes.values())


def run_race(c, cli, seconds: float, rounds: int):
    cli("sysctl", "--name", c.name, "vm.pagecache_replication_backoff=0", check=True)
    cli("latency", "--name", c.name, "inject", "real", "--dilation", "2000", check=True)
    cli("latency", "--name", c.name, "jitter", "uniform", "0.3", check=True)
    env = dict(os.environ, NUMA_EMU_CLUSTER=c.name)
    setup = subprocess.run([sys.executable, "-c", "import numa_emu\nwith numa_emu.attach(cpu=0) as t:\n"
                            f"    t.open('h', create=True, size={PAGES * 4096})"], env=env, timeout=30)
    assert setup.returncode == 0
    readers = [subprocess.Popen([sys.executable, WORKER, "reader", str(cpu), "h", str(PAGES), str(seconds)],
                                stdout=subprocess.PIPE, text=True, env=env) for cpu in (1, 2, 3)]
    writer = subprocess.run([sys.executable, WORKER, "writer", "0", "h", str(PAGES), str(rounds)],
                            capture_output=True, text=True, env=env, timeout=120)
    outs = [json.loads(r.communicate(timeout=120)[0]) for r in readers]
    assert writer.returncode == 0, writer.stderr
    return json.loads(writer.stdout)["log"], [entry for o in outs for entry in o["log"]]


def test_no_stale_read_with_the_default_protocol(cluster_factory, cli):
    c = cluster_factory("default-4n")
    writes, reads = run_race(c, cli, seconds=3.0, rounds=25)
    assert len(reads) > 100
    assert violations(writes, reads) == []
    assert vm_total(c, "repl_stale_access") == 0
    assert vm_total(c, "repl_copy_failed") == 0 and vm_total(c, "repl_fill_refused") == 0  # no copy went astray
    assert vm_total(c, "pgreplicated") > 0 and vm_total(c, "pgreplicazap_write") > 0  # the race was exercised


def test_unsafe_unreplicate_allows_stale_accesses_and_counts_them(cluster_factory, cli, puppets):
    """The 2007 ordering, step by step: the replica is freed at once and its unmap comes 2 s later,
    so the reader's next access goes through a freed frame: caught by the generation, counted."""
    c = cluster_factory("default-4n")
    writer = puppets(c, 0)
    writer.do("open", name="h", create=True, size=4096)
    writer.do("pwrite", name="h", offset=0, data="41" * 8)
    writer.do("fsync", name="h")
    reader = puppets(c, 3)
    reader.do("open", name="h")
    reader.do("map", name="h", **{"as": "m"}, writable=False)
    assert reader.do("read", **{"as": "m"}, offset=0, length=1) == "41"
    assert vm_total(c, "nr_repl_pages") == 1
    cli("sysctl", "--name", c.name, "vm.unsafe_unreplicate=1", "vm.unsafe_unmap_delay_ms=2000", check=True)
    writer.do("pwrite", name="h", offset=0, data="42")
    assert reader.do("where", **{"as": "m"}) == [3]  # still mapped: the unmap has not come yet
    reader.do("read", **{"as": "m"}, offset=0, length=1)  # through the freed replica frame
    assert vm_total(c, "repl_stale_access") == 1
    assert vm_total(c, "pgreplicazap_write") == 1 and vm_total(c, "nr_repl_pages") == 0
    poll_until(lambda: reader.do("where", **{"as": "m"}) == [None], timeout_s=10, what="the late unmap")
    assert reader.do("read", **{"as": "m"}, offset=0, length=1) == "42"
    assert vm_total(c, "repl_stale_access") == 1
