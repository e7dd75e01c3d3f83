"""A node's death on the pure cores (docs/protocol.md#a-nodes-death): the directory-home rule,
frames remembered by task and freed by purge, a dirty master lost with its node reported once,
and an entry rebuilt from a survivor's announcement, driven by hand."""
from __future__ import annotations

import pytest

from numa_emu.coordinator.state import ClusterState
from numa_emu.nodes.core import NodeCore, directory_home
from numa_emu.nodes.directory import Directory
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.replication import Replication, ReplicationTunables
from numa_emu.catalog import resolve_topology
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.version import PROTOCOL_VERSION
from tests.helpers import run_effects

PAGE = 4096
TOPOLOGY = resolve_topology("default-4n").to_dict()


def run(gen, answer=lambda call: None):
    """Drive a handler coroutine to its end, answering every Call (or list of Calls) with `answer`."""
    value = None
    try:
        while True:
            effect = gen.send(value)
            value = [answer(c) for c in effect] if isinstance(effect, list) else answer(effect)
    except StopIteration as stop:
        return stop.value


def test_only_a_dead_nodes_pages_change_directory_home_and_never_to_a_dead_node():
    keys = [("file:f", i) for i in range(2000)]
    for dead in ({2}, {2, 0}, {0, 1, 3}):
        for obj, idx in keys:
            before = directory_home(obj, idx, 4)
            after = directory_home(obj, idx, 4, dead)
            assert after not in dead
            assert after == before or before in dead
    moved = [directory_home(o, i, 4, {2}) for o, i in keys if directory_home(o, i, 4) == 2]
    assert sorted(set(moved)) == [0, 1, 3]  # spread over the survivors, not piled on one
    assert directory_home("file:f", 7, 4, {0, 1, 2, 3}) == directory_home("file:f", 7, 4)  # nobody left


def test_a_tasks_frames_are_remembered_until_freed_and_purge_frees_the_rest():
    core = NodeCore(1, TOPOLOGY, FramePool(16, PAGE))
    mine = core.supply(5, preferred=1, task_node=0, interleave=False, fill=None, owner=42)
    other = core.supply(2, preferred=1, task_node=0, interleave=False, fill=None, owner=43)
    cache = core.supply(1, preferred=1, task_node=0, interleave=False, fill=None)  # a page-cache master
    core.release(mine[:2])  # freed the ordinary way (munmap): no longer the task's
    assert core.pool.free == 16 - 6
    assert core.purge_task(42) == 3
    assert core.purge_task(42) == 0
    assert core.pool.free == 16 - 3
    assert core.task_frames == {43: set(other)} and cache[0] not in core.frame_task


def _directory(node_id: int, dead: dict[int, str]) -> Replication:
    core = NodeCore(node_id, TOPOLOGY, FramePool(16, PAGE))
    core.dead.update(dead)
    core.shardless.update(dead)
    return Replication(core, Directory(), FileTable(), ReplicationTunables())


def test_a_dirty_master_lost_with_its_node_is_reported_once_then_absent():
    repl = _directory(0, {2: "exited with status -9"})
    entry = repl.dir.entry("file:f", 3)
    entry.node, entry.frame, entry.dirty = 2, 5, True
    entry.mappers = {0: 2, 1: 2, 2: 2}
    entry.writers = {1, 2}
    shootdowns = []
    with pytest.raises(NumaEmuError) as err:
        run(repl._survive("file:f", 3, entry), lambda call: shootdowns.append(call))
    assert err.value.code == ErrorCode.EIO
    assert err.value.message == ("page 3 of file 'f' was written and not synced when node 2 died (exited with status "
                                 "-9); it is lost, and reads now give the stored bytes")
    # node 0's own mapping too: a Call to itself, answered from its handler table by the runner
    assert [(c.dest, c.request.node, c.request.frame) for c in shootdowns] == [("node:0", 2, 5), ("node:1", 2, 5)]
    assert (entry.node, entry.dirty, entry.mappers, entry.writers) == (-1, False, {}, set())
    run(repl._survive("file:f", 3, entry))  # once: the next access goes on (and reads the store)
    assert repl.core.events["pglost_dirty"] == 1


def test_an_entry_is_rebuilt_from_a_survivors_announcement():
    repl = _directory(3, {2: "exited with status -9"})
    records = [dict(obj="file:f", idx=9, node=1, frame=4, gen=7, replica=False, mapped=True, writable=True),
               dict(obj="file:f", idx=9, node=0, frame=2, gen=1, replica=True, mapped=False, writable=False),
               dict(obj="file:f", idx=10, node=2, frame=6, gen=1, replica=False, mapped=True, writable=True)]
    run(repl.rebuild(pc.DirRebuild(sender=0, records=records)))
    e9, e10 = repl.dir.entries[("file:f", 9)], repl.dir.entries[("file:f", 10)]
    assert (e9.node, e9.frame, e9.gen, e9.replicas, e9.mappers, e9.writers, e9.dirty) == (1, 4, 7, {0: (2, 1)},
                                                                                       {0: 1}, {0}, True)
    assert (e10.node, e10.lost_with) == (-1, 2)  # written on the dead node since its last writeback: lost
    with pytest.raises(NumaEmuError) as err:
        run(repl.rebuild(pc.DirRebuild(sender=0, records=[{"obj": "file:f", "idx": -1}])))
    assert err.value.code == ErrorCode.EINVAL and err.value.message.startswith("dir.rebuild: a record needs")


def test_the_nodes_that_died_since_start_are_shardless_even_restarted():
    state = ClusterState("c", TOPOLOGY, 0.0, 0.4)
    for n in range(4):
        state.register(node_id=n, pid=100 + n, endpoint=f"e{n}", frames_total=16, page_size=PAGE,
                       protocol_version=PROTOCOL_VERSION, now=0.0)
    state.node_exited(2, -9, 1.0)
    assert state.shardless() == [2] and state.summary() == "degraded"
    state.register(node_id=2, pid=200, endpoint="e2", frames_total=16, page_size=PAGE,
                   protocol_version=PROTOCOL_VERSION, now=2.0)
    assert state.shardless() == [2] and state.summary() == "up"


def test_no_call_goes_to_a_dead_node_for_its_counters():
    core = NodeCore(0, TOPOLOGY, FramePool(16, PAGE))
    core.dead[2] = "exited with status -9"
    calls = []
    run(core.add_foreign({2: 3, 1: 1}), lambda call: calls.append(call))
    assert [c.dest for c in calls] == ["node:1"] and all(isinstance(c, Call) for c in calls)


def test_a_free_with_generations_frees_each_frame_once_whatever_arrives_twice():
    from numa_emu.nodes.frames import FrameService
    from numa_emu.protocol.messages import memory as mm

    core = NodeCore(1, TOPOLOGY, FramePool(8, PAGE))
    frames = core.supply(3, preferred=1, task_node=0, interleave=False, fill=None, owner=7)
    gens = [core.pool.generation[f] for f in frames]
    service = FrameService(core)
    service.free(mm.FrameFree(frames=frames, generations=gens))
    assert core.pool.free == 8
    again = core.supply(1, preferred=1, task_node=0, interleave=False, fill=None)  # a frame given out again
    service.free(mm.FrameFree(frames=frames, generations=gens))  # the same free, late: frees nothing more
    assert core.pool.free == 7 and core.pool.state[again[0]] == 1
    with pytest.raises(NumaEmuError) as err:
        service.free(mm.FrameFree(frames=frames, generations=gens[:1]))
    assert err.value.code == ErrorCode.EINVAL and err.value.message == "frame.free: one generation per frame, or none"


def test_a_free_that_failed_is_sent_again_until_answered_and_dropped_for_a_dead_node():
    core = NodeCore(0, TOPOLOGY, FramePool(8, PAGE))

    def partitioned(call):
        raise NumaEmuError(ErrorCode.ETIMEDOUT, f"{call.dest} did not answer")

    def fail(gen):
        return run_effects(gen, partitioned)

    fail(core.free_frames({1: [3, 4], 2: [5]}, generations={1: [0, 2], 2: [1]}))
    assert core.unfreed == {1: {3: 0, 4: 2}, 2: {5: 1}}
    assert fail(core.retry_frees()) == 3  # still cut off: kept
    core.dead[2] = "killed"
    sent = []
    assert run(core.retry_frees(), lambda call: sent.append((call.dest, call.request.frames,
                                                             call.request.generations))) == 0
    assert sent == [("node:1", [3, 4], [0, 2])] and core.unfreed == {}
