"""The fixes of a node's death that the simulator's --crash found (docs/simulator.md#what-it-found),
on the pure cores, driven by hand: a new home serves a dead directory's pages once every survivor
announced, a shootdown from a dead directory is ignored, a move whose target died leaves the page
in its frame, and a master's bytes ride on its allocation."""
from __future__ import annotations

import pytest

from numa_emu.catalog import resolve_topology
from numa_emu.nodes.core import NodeCore, directory_home
from numa_emu.nodes.directory import Directory
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.pcache import CachedPage, PageCacheView
from numa_emu.nodes.replication import Replication, ReplicationTunables
from numa_emu.protocol.effects import Call, Future
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import pagecache as pc

PAGE = 4096
TOPOLOGY = resolve_topology("default-4n").to_dict()
OBJ = "shm:s"


def directory(node_id: int) -> Replication:
    return Replication(NodeCore(node_id, TOPOLOGY, FramePool(16, PAGE)), Directory(), FileTable(),
                       ReplicationTunables())


def dies(repl: Replication, node: int) -> None:
    """What Node.node_down does on the directory side when `node`'s death is heard."""
    held_shard = repl.core.node_died(node, "crashed")
    repl.expect_rebuild(node, held_shard)


def inherited(dead: int, heir: int) -> int:
    """A page index homed on `dead` whose new home is `heir`."""
    return next(i for i in range(1000)
                if directory_home(OBJ, i, 4) == dead and directory_home(OBJ, i, 4, {dead}) == heir)


def read(idx: int) -> pc.DirRead:
    return pc.DirRead(obj=OBJ, idx=idx, mapper=3, task_node=3, policy={}, allowed=[0, 1, 2, 3],
                      interleave_index=0, replicate=False)


def announce(repl: Replication, sender: int, dead: int, records=()) -> None:
    gen = repl.rebuild(pc.DirRebuild(sender=sender, records=list(records), dead=dead))
    with pytest.raises(StopIteration):
        next(gen)


def test_a_dead_directorys_page_is_served_once_every_survivor_announced():
    repl, idx = directory(3), inherited(2, 3)
    announce(repl, 1, dead=2)  # before node 3 heard of the death: remembered
    dies(repl, 2)
    assert repl.rebuilding == {2: {0, 3}}
    access = repl.read(read(idx))
    wait = next(access)
    assert isinstance(wait, Future) and not wait.done
    announce(repl, 3, dead=2, records=[dict(obj=OBJ, idx=idx, node=0, frame=5, gen=2, replica=False,
                                            mapped=False, writable=False)])
    assert wait.done and repl.rebuilding == {2: {0}}
    assert access.send(None) is repl._changed  # node 0 has not announced: still waiting
    announce(repl, 0, dead=2)
    assert repl.rebuilding == {}
    with pytest.raises(StopIteration) as answer:
        access.send(None)  # the page's lock is free: taken at once, and the rebuilt master answers
    assert (answer.value.value.node, answer.value.value.frame) == (0, 5)


def test_a_survivor_that_dies_before_announcing_is_not_waited_for():
    repl = directory(3)
    dies(repl, 2)
    wait = repl._changed
    dies(repl, 0)
    assert wait.done and repl.rebuilding == {2: {1, 3}, 0: {1, 3}}
    repl.core.shardless.add(3)  # a restarted node inherits nothing: it waits for nobody
    dies(repl, 1)
    assert 1 not in repl.rebuilding and repl.rebuilding[2] == {3}


def test_a_page_of_a_death_this_node_has_not_heard_of_waits_until_it_has():
    repl = directory(3)
    idx = inherited(2, 3)
    access = repl.read(read(idx))  # from a node that heard of node 2's death first
    wait = next(access)
    assert isinstance(wait, Future) and not wait.done
    dies(repl, 2)
    assert wait.done
    for sender in (0, 1, 3):
        assert access.send(None) is repl._changed
        announce(repl, sender, dead=2)
    with pytest.raises(StopIteration) as answer:
        access.send(None)  # served: the master allocated on this node, the reader's
    assert (answer.value.value.node, answer.value.value.replica) == (3, False)


def test_a_shootdown_sent_by_a_directory_known_dead_is_ignored():
    core = NodeCore(1, TOPOLOGY, FramePool(16, PAGE))
    view = PageCacheView(core, {})
    frame = core.supply(1, preferred=1, task_node=1, interleave=False, fill=None, replica_of=(OBJ, 0))[0]
    view.pages[(OBJ, 0)] = CachedPage(1, frame, core.pool.generation[frame], False, True)
    core.node_died(2, "crashed")
    late = pc.PteShootdown(obj=OBJ, idx=0, node=1, frame=frame, free=True, cause="write", epoch=9, directory=2)
    assert view.shootdown(late).unmapped == 0
    assert (OBJ, 0) in view.pages and core.replica_frames == {frame: (OBJ, 0)} and (OBJ, 0) not in view.seen_epoch
    live = pc.PteShootdown(obj=OBJ, idx=0, node=1, frame=frame, free=True, cause="write", epoch=1, directory=0)
    view.shootdown(live)
    assert (OBJ, 0) not in view.pages and core.replica_frames == {} and view.seen_epoch[(OBJ, 0)] == 1


def test_a_move_whose_target_died_leaves_the_page_in_its_frame():
    core = NodeCore(1, TOPOLOGY, FramePool(16, PAGE))
    frame = core.supply(1, preferred=1, task_node=1, interleave=False, fill=None, master_of=(OBJ, 0))[0]
    gen = core.pool.generation[frame]
    core.pool.write(frame, 0, b"M" * PAGE)
    copy = core.copy_frame(frame, gen, 2, 7, 3, free=True, dst_master_of=(OBJ, 0))
    call = next(copy)
    assert isinstance(call, Call) and call.dest == "node:2" and call.request.master_of == [OBJ, 0]
    with pytest.raises(NumaEmuError) as stale:  # an access in flight meanwhile: ESTALE, it faults again
        core.check_generation(frame, gen)
    assert stale.value.code == ErrorCode.ESTALE
    with pytest.raises(NumaEmuError):
        copy.throw(NumaEmuError(ErrorCode.EIO, "node 2 is dead (crashed)"))
    core.check_generation(frame, gen)  # serves again, bytes and master intact
    assert core.pool.read(frame, 0, 4) == b"MMMM" and core.master_frames == {frame: (OBJ, 0)}
    copy = core.copy_frame(frame, gen, 2, 7, 3, free=True)
    next(copy)
    with pytest.raises(StopIteration):
        copy.send(None)  # landed: the source is freed
    assert core.pool.generation[frame] != gen and core.master_frames == {}


def test_a_move_whose_directory_died_keeps_the_source_and_the_target_refuses_it():
    src = NodeCore(1, TOPOLOGY, FramePool(16, PAGE))
    frame = src.supply(1, preferred=1, task_node=1, interleave=False, fill=None, master_of=(OBJ, 0))[0]
    gen = src.pool.generation[frame]
    copy = src.copy_frame(frame, gen, 2, 7, 3, free=True, dst_master_of=(OBJ, 0), directory=0)
    assert next(copy).request.directory == 0
    src.node_died(0, "crashed")  # heard while the copy travelled: this frame is announced as the master
    with pytest.raises(StopIteration):
        copy.send(None)
    assert src.pool.generation[frame] == gen and src.master_frames == {frame: (OBJ, 0)}
    dst = NodeCore(2, TOPOLOGY, FramePool(16, PAGE))
    target = dst.supply(1, preferred=2, task_node=1, interleave=False, fill=None, shm_of=(OBJ, 0))[0]
    dst.node_died(0, "crashed")
    with pytest.raises(NumaEmuError) as refused:
        dst.become_master(target, dst.pool.generation[target], (OBJ, 0), 0)
    assert refused.value.code == ErrorCode.ESTALE and dst.pool.used == 0 and dst.master_frames == {}


def test_a_masters_bytes_ride_on_its_allocation():
    core = NodeCore(0, TOPOLOGY, FramePool(16, PAGE))
    alloc = core.alloc_on(2, 1, preferred=2, task_node=0, master_of=("file:f", 0), data=b"D" * PAGE)
    call = next(alloc)
    assert isinstance(call.request, mm.FrameAlloc) and call.request.data == b"D" * PAGE
    supplier = NodeCore(2, TOPOLOGY, FramePool(16, PAGE))
    frame = supplier.supply(1, preferred=2, task_node=0, interleave=False, fill=None, master_of=("file:f", 0),
                            data=b"D" * PAGE)[0]
    assert supplier.pool.read(frame, 0, 2) == b"DD" and supplier.master_frames == {frame: ("file:f", 0)}
