"""The trace of migrations: exactly the expected events of one shared page's direct migration
(replica torn down, every mapping shot down and acknowledged, the old frame freed, then the
move), and of auto-migration after a task moved node; `trace show --page` tells both stories."""
from __future__ import annotations

import io
import json
import os

import pytest

import numa_emu
from numa_emu.trace_recorder import Recorder
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.policy import MPOL_MF_MOVE_ALL
from numa_emu.protocol.topology import from_cli
from tests.helpers import poll_until, vm_total

pytestmark = pytest.mark.cluster
PAGE = 4096


def _recorded(c, action) -> list[dict]:
    out = io.StringIO()
    recorder = Recorder(c.info, out)
    recorder.configure(True)
    try:
        action()
        recorder.drain(final=True)
    finally:
        recorder.configure(False)
        recorder.close()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_shared_page_migration_is_traced_in_order(cluster_factory, puppets, cli, tmp_path):
    c = cluster_factory("default-4n")
    writer = puppets(c, 0)
    writer.do("open", name="g", create=True, size=PAGE)
    writer.do("pwrite", name="g", offset=0, data="61" * 8)
    writer.do("fsync", name="g")
    reader = puppets(c, 3)
    reader.do("open", name="g")
    reader.do("map", name="g", **{"as": "m"}, writable=False)
    assert reader.do("read", **{"as": "m"}, offset=0, length=1) == "61"  # a replica on node 3
    with numa_emu.attach(1, cluster=c.name) as task:
        f = task.open("g")
        region = f.mmap(writable=False)
        assert region.read(0, 1) == b"a"  # a replica on node 1 too
        # the task has its replica as soon as the bytes land; the directory counts and traces it
        # when their acknowledgement is back: before the trace starts, not inside it
        poll_until(lambda: vm_total(c, "repl_fetch_bytes") == 2 * PAGE, what="both replicas acknowledged")

        def move():
            assert task.move_pages([region.addr(0)], [2], MPOL_MF_MOVE_ALL) == [2]

        events = _recorded(c, move)
        assert region.read(0, 8) == b"a" * 8 and region.where() == [2]
    page = [e for e in events if e.get("obj") == "file:g" and e.get("idx") == 0]
    story = [(e["ev"], e.get("phase"), e.get("cause")) for e in page]
    assert all(cause == "migration" for ev, _, cause in story[:-1] if ev != "migrate"), story
    # the replicas first: both replica mappings shot down (sends and unmaps of the two nodes may
    # interleave in wall time), one acknowledgement of all, then both replicas torn down
    assert sorted(story[:4]) == [("shootdown", "done", "migration")] * 2 + [("shootdown", "sent", "migration")] * 2
    assert story[4:] == [
        ("shootdown", "acked", "migration"),
        ("unreplicate", None, "migration"), ("unreplicate", None, "migration"),
        # then the master's own mappings (the writer's node), acknowledged before the copy
        ("shootdown", "sent", "migration"), ("shootdown", "done", "migration"), ("shootdown", "acked", "migration"),
        ("migrate", None, "syscall"),
    ], story
    move = page[-1]
    assert (move["mode"], move["from"], move["to"], move["result"]) == ("direct", 0, 2, "ok")
    assert {e["replica_node"] for e in page if e["ev"] == "unreplicate"} == {1, 3}
    trace = tmp_path / "move.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    shown = cli("trace", "show", str(trace), "--page", "file:g:0", check=True).stdout.splitlines()
    assert "migrated file:g:0 from node 0" in shown[-1] and "to node 2" in shown[-1]
    assert sum("torn down (migration)" in line for line in shown) == 2


def test_auto_migration_after_a_task_moves_is_traced(cluster_factory, cli, tmp_path):
    c = cluster_factory(from_cli(2, 2, "16MiB"))
    with c.client() as client:
        client.call(cm.CpusetCreate(name="far", cpus=[2, 3], mems=[0, 1]))
    with numa_emu.attach(1, cluster=c.name) as task:
        region = task.mmap(PAGE)
        region.write(0, b"z")

        def move_and_touch():
            with c.client() as client:
                client.call(cm.CpusetAttach(name="far", pid=os.getpid()))
            assert region.read(0, 1) == b"z"

        events = _recorded(c, move_and_touch)
    mine = [(e["ev"], e.get("what"), e.get("mode"), e.get("node")) for e in events
            if e["ev"] in ("task", "migcache", "migrate") and e.get("task") == task.task_id]
    assert mine == [("task", "move", None, 0), ("task", "adopt", None, 1), ("migcache", "in", None, 1),
                    ("migcache", "out", None, 1), ("migrate", None, "auto", 1)], mine
    move = next(e for e in events if e["ev"] == "migrate")
    assert (move["from"], move["to"], move["cause"], move["addr"]) == (0, 1, "fault", region.addr(0))
    trace = tmp_path / "auto.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    shown = cli("trace", "show", str(trace), "--page", f"{region.addr(0):#x}", check=True).stdout
    assert "migrated" in shown and "from node 0" in shown and "to node 1" in shown
    shown = cli("trace", "show", str(trace), "--event", "task", check=True).stdout
    assert "moving to cpu 2 of node 1: page table handed over" in shown
    assert "adopted on cpu 2: this node is the task's home now" in shown
