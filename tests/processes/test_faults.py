"""Faults on purpose on real clusters (`numa-emu fault`, docs/protocol.md#faults): under each kind
of fault a writer and readers of a shared file keep a correct history (tests/history.py), private
pages on other nodes read back what was written, nothing is applied twice (exact frame counts),
and the cluster serves as before after `fault clear`. Also `fault kill`, `fault stop` and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import numa_emu
from numa_emu.protocol.counters import NUMASTAT_TO_VMSTAT
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import tasks as tm
from tests.helpers import poll_until
from tests.history import violations

pytestmark = pytest.mark.cluster
WORKER = str(Path(__file__).resolve().parents[1] / "race_worker.py")
PAGES, ROUNDS, PRIVATE = 3, 12, 6


def _stats(c) -> dict:
    with c.client() as client:
        return {int(n): d for n, d in client.call(tm.ClusterStats()).nodes.items()}


def _frames_used(c, node: int) -> int:
    d = _stats(c)[node]
    return d["frames_total"] - d["frames_free"]


VMSTAT_KEYS = ("nr_free_pages", "numa_hit", "numa_miss", "numa_foreign", "numa_local", "numa_other",
               "pgfault", "pgfree")


def _vmstat(c) -> dict:
    """`numa-emu vmstat`'s counters: the sums over the nodes."""
    totals: dict = {}
    for d in _stats(c).values():
        for k, v in d["vmstat"].items():
            totals[k] = totals.get(k, 0) + v
        for k, v in d["numastat"].items():  # under their /proc/vmstat names, as the command prints them
            totals[NUMASTAT_TO_VMSTAT[k]] = totals.get(NUMASTAT_TO_VMSTAT[k], 0) + v
    return totals


def _proc_counters(c) -> dict:
    """The nodes' own counters (proc.stats), summed: faults applied, calls re-sent, duplicates."""
    totals: dict = {}
    for n in range(4):
        with c.client(endpoint=c.status().nodes[n]["endpoint"]) as client:
            for k, v in client.call(lc.ProcStats()).stats.items():
                totals[k] = totals.get(k, 0) + v
    return totals


def check_counters(c) -> None:
    """docs/protocol.md#invariants (4): what one node counts agrees with what the others count,
    which a request applied twice (a stat.add, a frame.free) would break."""
    nodes = _stats(c).values()
    assert sum(d["numastat"]["numa_miss"] for d in nodes) == sum(d["numastat"]["numa_foreign"] for d in nodes)
    for d in nodes:
        s = d["numastat"]
        assert s["numa_hit"] + s["numa_miss"] == s["local_node"] + s["other_node"]
    v = _vmstat(c)
    assert v.get("nr_repl_pages", 0) == v.get("pgreplicated", 0) - v.get("pgreplicazap", 0)


def shared_history(c) -> None:
    """A writer on node 0 and readers on nodes 1-3 of one file: no bad read, the last write kept."""
    env = dict(os.environ, NUMA_EMU_CLUSTER=c.name)
    with numa_emu.attach(cpu=0, cluster=c.name) as t:
        t.open("h", create=True, size=PAGES * 4096)
    readers = [subprocess.Popen([sys.executable, WORKER, "reader", str(cpu), "h", str(PAGES), "2.0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for cpu in (1, 2, 3)]
    writer = subprocess.run([sys.executable, WORKER, "writer", "0", "h", str(PAGES), str(ROUNDS)],
                            capture_output=True, text=True, env=env, timeout=120)
    outs = [r.communicate(timeout=120) for r in readers]
    assert writer.returncode == 0, writer.stderr
    assert all(r.returncode == 0 for r in readers), [err for _, err in outs]
    writes, reads = json.loads(writer.stdout)["log"], [e for out, _ in outs for e in json.loads(out)["log"]]
    assert len(writes) == PAGES * ROUNDS and len(reads) > PAGES
    assert violations(writes, reads) == []
    with numa_emu.attach(cpu=3, cluster=c.name) as t:  # no lost write: every page holds the last one
        f = t.open("h")
        assert [int.from_bytes(f.pread(p * 4096, 8), "little") for p in range(PAGES)] == [ROUNDS] * PAGES


def private_pages(c) -> None:
    """A task on node 0 writes and reads pages bound to node 2: bytes intact, each page allocated once."""
    before, counters = _frames_used(c, 2), _vmstat(c)
    with numa_emu.attach(cpu=0, cluster=c.name) as t:
        r = t.mmap(PRIVATE * 4096)
        r.mbind("bind", [2])
        for p in range(PRIVATE):
            r.write(p * 4096, bytes([p + 1]) * 64)
        for rounds in range(3):
            for p in range(PRIVATE):
                r.write(p * 4096 + 64, bytes([rounds]) * 8)
                assert r.read(p * 4096, 72) == bytes([p + 1]) * 64 + bytes([rounds]) * 8
        assert r.where(0, PRIVATE * 4096) == [2] * PRIVATE
        assert _frames_used(c, 2) - before == PRIVATE  # a duplicated allocation would take more
        after = _vmstat(c)
        # each page allocated and faulted once, on node 2, for a task of node 0 (numa_other)
        assert {k: after.get(k, 0) - counters.get(k, 0) for k in VMSTAT_KEYS} == {
            "nr_free_pages": -PRIVATE, "numa_hit": PRIVATE, "numa_miss": 0, "numa_foreign": 0, "numa_local": 0,
            "numa_other": PRIVATE, "pgfault": PRIVATE, "pgfree": 0}
    poll_until(lambda: _frames_used(c, 2) == before, what="node 2's frames freed at detach")


@pytest.mark.parametrize("fault", [
    ["drop", "0.2"], ["dup", "0.5"], ["delay", "0.5", "--ms", "5"], ["reorder", "0.5", "--ms", "20"],
])
def test_the_protocol_survives_each_fault_kind(cluster_factory, cli, fault):
    c = cluster_factory("default-4n")
    out = cli("fault", "--name", c.name, *fault, "--seed", "7", "--json", check=True)
    table = json.loads(out.stdout)
    assert table["seed"] == 7 and [r["kind"] for r in table["rules"]] == [fault[0]]
    shared_history(c)
    private_pages(c)
    applied = _proc_counters(c)
    key = {"drop": "fault_dropped", "dup": "fault_duplicated", "delay": "fault_delayed", "reorder": "fault_reordered"}
    assert applied.get(key[fault[0]], 0) > 0, applied  # the fault did happen
    if fault[0] == "drop":
        assert applied.get("calls_retried", 0) > 0 and applied.get("duplicates_answered", 0) > 0, applied
    if fault[0] == "dup":
        assert applied.get("duplicates_ignored", 0) + applied.get("duplicates_answered", 0) > 0, applied
    assert applied.get("calls_timed_out", 0) == 0 and applied.get("duplicates_refused", 0) == 0, applied
    check_counters(c)
    cli("fault", "--name", c.name, "clear", check=True)
    assert "none" in cli("fault", "--name", c.name, "show", check=True).stdout
    private_pages(c)  # still serves after the clear


def test_a_partition_fails_calls_across_it_naming_the_node_until_cleared(cluster_factory, cli):
    c = cluster_factory("default-4n")
    with numa_emu.attach(cpu=0, cluster=c.name) as t:
        r = t.mmap(4096)
        r.mbind("bind", [1])
        r.write(0, b"before")
        cli("fault", "--name", c.name, "partition", "0", "1-3", check=True)
        with pytest.raises(numa_emu.NumaEmuError) as err:
            r.read(0, 6)
        # the home node's call to node 1 fails before the task's own deadline, and says so
        assert err.value.code == numa_emu.ErrorCode.ETIMEDOUT
        assert err.value.message.startswith("node 1 did not answer frame.read (request "), err.value.message
        cli("fault", "--name", c.name, "clear", check=True)
        assert r.read(0, 6) == b"before"
        r.write(0, b"after!")
        assert r.read(0, 6) == b"after!"


def test_frames_freed_across_a_partition_are_freed_once_it_heals(cluster_factory, cli):
    """A detach while the pages' node is cut off: its home node's frame.free times out; the
    free is kept and sent again (with the frames' generations) until node 1 answers, so every
    node is back to its free frames of before, none freed twice."""
    c = cluster_factory("default-4n")
    baseline = {n: d["frames_free"] for n, d in _stats(c).items()}
    t = numa_emu.attach(cpu=0, cluster=c.name)
    far = t.mmap(16 * 4096)
    far.mbind("bind", [1])
    far.touch(fill=3)
    near = t.mmap(4 * 4096)
    near.touch(fill=4)
    assert {n: baseline[n] - d["frames_free"] for n, d in _stats(c).items()} == {0: 4, 1: 16, 2: 0, 3: 0}
    cli("fault", "--name", c.name, "partition", "0", "1-3", check=True)
    t.detach()
    assert {n: d["frames_free"] for n, d in _stats(c).items()}[1] == baseline[1] - 16  # cut off: not freed yet
    cli("fault", "--name", c.name, "clear", check=True)
    poll_until(lambda: {n: d["frames_free"] for n, d in _stats(c).items()} == baseline, timeout_s=20,
               what="every node's free frames back to the baseline")
    assert sum(d["vmstat"]["pgfree"] for d in _stats(c).values()) == 20


def test_fault_kill_makes_the_node_dead_and_stop_returns_it(cluster_factory, cli):
    c = cluster_factory("default-4n")

    def status() -> dict:
        return json.loads(cli("status", "--name", c.name, "--json", check=True).stdout)

    cli("fault", "--name", c.name, "stop", "2", "--for", "2", check=True)
    assert "node 2 stopped for" in cli("fault", "--name", c.name, "show", check=True).stdout
    poll_until(lambda: status()["nodes"][2]["state"] == "suspect", timeout_s=10, what="node 2 suspect")
    poll_until(lambda: status()["nodes"][2]["state"] == "up" and status()["state"] == "up", timeout_s=15,
               what="node 2 up again")
    cli("fault", "--name", c.name, "kill", "3", check=True)
    poll_until(lambda: status()["state"] == "degraded" and status()["nodes"][3]["state"] == "dead", timeout_s=10,
               what="node 3 dead")
    bad = cli("fault", "--name", c.name, "kill", "3")
    assert bad.returncode == 3 and bad.stderr.strip().endswith("node 3 is not running (see `numa-emu status`)")


@pytest.mark.parametrize("args, text", [
    (["drop", "1.5"], "1.5 is out of range: expected a number in 0..1"),
    (["dup", "x"], "'x' is not a number"),
    (["delay", "0.5", "--ms", "inf"], "inf is out of range"),
    (["reorder", "0.5", "--link", "0"], "expected 2 arguments"),
    (["partition", "0", "1-"], "'1-' is not N or A-B"),
    (["stop", "1"], "the following arguments are required: --for"),
    (["stop", "1", "--for", "-1"], "-1 is out of range"),
    (["kill", "-3"], "is out of range"),
    (["drop", "0.1", "--seed", "-1"], "-1 is out of range"),
])
def test_bad_fault_input_is_one_line_exit_2(cli, args, text):
    out = cli("fault", *args)
    assert out.returncode == 2 and text in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_bad_nodes_are_refused_by_the_coordinator(cluster_factory, cli):
    c = cluster_factory("default-4n")
    for args, text in ((["drop", "0.1", "--node", "7"], "node 7 is not a node of this cluster (0..3)"),
                       (["partition", "0,1", "1"], "on both sides"),
                       (["dup", "0.1", "--link", "2", "2"], "not between two nodes")):
        out = cli("fault", "--name", c.name, *args)
        assert out.returncode == 3 and text in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "none" in cli("fault", "--name", c.name, "show", check=True).stdout
