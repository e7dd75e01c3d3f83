"""Liveness on real clusters: a paused coordinator or node loses nothing, a stopped node comes
back, and a cluster with a dead node is never reported plainly `up`."""
from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from tests.helpers import PuppetError, poll_until

pytestmark = pytest.mark.cluster

PAUSE_S = 5.0  # the pause that once cost the cluster its nodes (coordinator) or one node
DATA = bytes(range(256)) * 16  # one page of known bytes


def _states(c) -> list[str]:
    return [n["state"] for n in c.status().nodes]


def _all_up(c) -> bool:
    st = c.status()
    return st.state == "up" and all(n["state"] == "up" for n in st.nodes)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def _pause(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)  # the deliberate pause under test, not a wait for a condition
    finally:
        os.kill(pid, signal.SIGCONT)


def _task_with_data(c, puppets, cpu: int):
    task = puppets(c, cpu)
    task.do("mmap", **{"as": "a", "length": 4 * len(DATA)})
    task.do("write", **{"as": "a", "offset": len(DATA), "data": DATA.hex()})
    return task


def test_coordinator_stopped_for_5s_loses_no_node_and_no_data(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    task = _task_with_data(c, puppets, 1)
    node_pids = [n["pid"] for n in c.status().nodes]
    _pause(c.info.coordinator_pid)
    poll_until(lambda: _all_up(c), timeout_s=10.0, what="the cluster up again after the coordinator's pause")
    assert [n["pid"] for n in c.status().nodes] == node_pids
    assert all(_alive(pid) for pid in node_pids)
    assert bytes.fromhex(task.do("read", **{"as": "a", "offset": len(DATA), "length": len(DATA)})) == DATA


def test_node_stopped_for_5s_is_suspect_then_rejoins_with_its_memory(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    task = _task_with_data(c, puppets, 2)
    assert task.node == 2
    victim = c.status().nodes[2]["pid"]
    os.kill(victim, signal.SIGSTOP)
    try:
        poll_until(lambda: _states(c)[2] == "suspect", timeout_s=10.0, what="the stopped node 2 to be suspect")
        assert c.status().state == "up"  # suspect is not gone
        time.sleep(PAUSE_S)  # the deliberate pause under test, not a wait for a condition
    finally:
        os.kill(victim, signal.SIGCONT)
    poll_until(lambda: _all_up(c), timeout_s=10.0, what="node 2 up again after its pause")
    assert c.status().nodes[2]["pid"] == victim and _alive(victim)
    assert bytes.fromhex(task.do("read", **{"as": "a", "offset": len(DATA), "length": len(DATA)})) == DATA
    task.do("write", **{"as": "a", "offset": 0, "data": DATA[::-1].hex()})
    assert bytes.fromhex(task.do("read", **{"as": "a", "offset": 0, "length": len(DATA)})) == DATA[::-1]


def test_status_after_a_node_is_killed_says_degraded_not_up(cluster_factory, cli):
    c = cluster_factory("default-4n")
    os.kill(c.status().nodes[3]["pid"], signal.SIGKILL)
    poll_until(lambda: _states(c)[3] == "dead", timeout_s=10.0, what="node 3 reported dead")
    st = json.loads(cli("status", "--name", c.name, "--json", check=True).stdout)
    assert st["state"] == "degraded"
    assert [n["state"] for n in st["nodes"]] == ["up", "up", "up", "dead"]
    first = cli("status", "--name", c.name, check=True).stdout.splitlines()[0]
    assert first.startswith(f"cluster {c.name}: degraded (dead: node 3), 4 nodes")


def test_a_256gib_reservation_costs_its_touched_pages_only(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    task = puppets(c, 1)
    node = psutil.Process(c.status().nodes[1]["pid"])
    rss_before = node.memory_info().rss
    length = 256 << 30
    task.do("mmap", **{"as": "big", "length": length})
    offsets = [0, 12345 * 4096 + 100, length // 2, length - len(DATA)]
    for i, offset in enumerate(offsets):
        task.do("write", **{"as": "big", "offset": offset, "data": DATA[i:].hex()})
    assert [bytes.fromhex(task.do("read", **{"as": "big", "offset": o, "length": len(DATA) - i}))
            for i, o in enumerate(offsets)] == [DATA[i:] for i in range(len(offsets))]
    growth = node.memory_info().rss - rss_before
    assert growth < 64 << 20, f"the node grew by {growth >> 20} MiB for 4 touched pages of a 256 GiB mapping"
    task.do("munmap", **{"as": "big"})
    assert _all_up(c)
    task.do("mmap", **{"as": "a", "length": len(DATA)})  # the node still serves its task
    task.do("write", **{"as": "a", "offset": 0, "data": DATA.hex()})
    assert bytes.fromhex(task.do("read", **{"as": "a", "offset": 0, "length": len(DATA)})) == DATA


def test_once_a_node_is_known_dead_its_pages_fail_with_eio_naming_it_and_fsync_passes_it_by(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    task = puppets(c, 0)
    task.do("mmap", **{"as": "far", "length": len(DATA)})
    task.do("mbind", mode="bind", nodes=[2], **{"as": "far"})
    task.do("write", **{"as": "far", "offset": 0, "data": DATA.hex()})
    assert task.do("where", **{"as": "far"}) == [2]
    task.do("open", name="f", create=True, size=len(DATA))
    os.kill(c.status().nodes[2]["pid"], signal.SIGKILL)
    poll_until(lambda: _states(c)[2] == "dead", timeout_s=10.0, what="node 2 reported dead")
    for op in ({"op": "read", "length": 16}, {"op": "write", "data": "00"}):
        with pytest.raises(PuppetError) as err:
            task.do(op.pop("op"), **{"as": "far", "offset": 0}, **op)
        assert err.value.errno_name == "EIO" and "node 2 is dead (exited with status -9)" in str(err.value)
    task.do("pwrite", name="f", offset=0, data=DATA.hex())
    task.do("fsync", name="f")  # every surviving node's writeback, none waiting on the dead one
    assert bytes.fromhex(task.do("pread", name="f", offset=0, length=len(DATA))) == DATA


def test_a_node_gone_without_a_report_is_found_dead_by_its_pid(cluster_factory):
    c = cluster_factory("default-4n")
    zygote = c.info.data["zygote"]["pid"]
    os.kill(zygote, signal.SIGKILL)  # nobody is left to report the node's exit
    poll_until(lambda: not _alive(zygote), what="the fork server gone")
    os.kill(c.status().nodes[0]["pid"], signal.SIGKILL)
    poll_until(lambda: _states(c)[0] == "dead", timeout_s=10.0, what="node 0 found dead by its pid")
    assert c.status().state == "degraded" and _states(c)[1:] == ["up", "up", "up"]
