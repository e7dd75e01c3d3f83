"""The forwarded copy of a new replica (repl.copy -> repl.fill), driven by hand on the pure cores:
the home node maps the replica from the fill, ignores the directory's later answer, refuses a
fill it is not waiting for, and survives a shootdown that overtakes the copy; the directory sends
the bytes on its answer when it owns the master, pulls them when it is the reader's node, and
falls back to the master when a copy fails."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from numa_emu.nodes.core import NodeCore, directory_home
from numa_emu.nodes.directory import Directory
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.replication import Replication, ReplicationTunables
from numa_emu.catalog import resolve_topology
from numa_emu.protocol.effects import Call, Future, Spawn
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import pagecache as pc
from tests.helpers import run_effects

PAGE = 4096
OBJ = "file:f"
TOPOLOGY = resolve_topology("default-4n").to_dict()


def core(node_id: int) -> NodeCore:
    return NodeCore(node_id, TOPOLOGY, FramePool(16, PAGE))


def an_index_homed_on(node: int) -> int:
    return next(i for i in range(1000) if directory_home(OBJ, i, 4) == node)


class HomeNode:
    """Node 3 asking directory node 1 (a message away) to read page `idx` with a replica offered."""

    def __init__(self):
        self.core = core(3)
        self.view = PageCacheView(self.core, {})
        self.idx = an_index_homed_on(1)
        task = SimpleNamespace(node=3, mems={0, 1, 2, 3})
        self.lookup = self.view.lookup(OBJ, self.idx, write=False, task=task, policy={}, interleave_index=0,
                                       replicate=True)
        spawn = next(self.lookup)
        assert isinstance(spawn, Spawn)
        self.ask = spawn.gen
        call = next(self.ask)
        assert isinstance(call, Call) and call.dest == "node:1" and isinstance(call.request, pc.DirRead)
        self.read = call.request
        self.answer = self.lookup.send(None)
        assert isinstance(self.answer, Future) and not self.answer.done
        self.free_before = self.core.pool.free

    def fill(self, epoch: int, data: bytes = b"\x41" * PAGE, frame: int | None = None):
        return self.view.fill(pc.ReplicaFill(obj=OBJ, idx=self.idx, frame=self.read.frame if frame is None else frame,
                                             generation=self.read.generation, epoch=epoch, cost_ns=5, data=data))

    def directory_answers(self, reply: pc.DirPageReply) -> None:
        with pytest.raises(StopIteration):
            self.ask.send(reply)

    def resume(self):
        assert self.answer.done
        with pytest.raises(StopIteration) as stop:
            self.lookup.send(self.answer.result)
        return stop.value.value


def test_the_fill_maps_the_replica_and_the_directorys_later_answer_changes_nothing():
    h = HomeNode()
    assert h.fill(epoch=1) == Ok()
    page, cost = h.resume()
    assert (page.node, page.frame, page.replica, cost) == (3, h.read.frame, True, 5)
    assert h.core.pool.read(page.frame, 0, 4) == b"AAAA"
    h.directory_answers(pc.DirPageReply(node=3, frame=h.read.frame, generation=h.read.generation, replica=True,
                                        epoch=1))
    v = h.core.vmstat()
    assert v["nr_repl_pages"] == 1 and v["pgreplicated"] == 1 and "repl_fault_wall_ns" in v
    with pytest.raises(NumaEmuError) as err:  # the same fill again: nobody waits for it now
        h.fill(epoch=1, data=b"\x42" * PAGE)
    assert err.value.code == ErrorCode.ESTALE and "repl.fill" in err.value.message
    assert h.core.pool.read(page.frame, 0, 4) == b"AAAA"


def test_a_shootdown_that_overtakes_the_forwarded_copy_frees_the_spare_and_the_late_fill_is_refused():
    h = HomeNode()
    spare = h.read.frame
    # The directory made the replica, then (its copy failed) collapsed it: the shootdown comes first.
    h.view.shootdown(pc.PteShootdown(obj=OBJ, idx=h.idx, node=3, frame=spare, free=True, cause="copyfail", epoch=2))
    assert h.core.pool.free == h.free_before + 1
    with pytest.raises(NumaEmuError) as err:
        h.fill(epoch=1)
    assert err.value.code == ErrorCode.ESTALE
    assert h.core.pool.read(spare, 0, 4) == bytes(4)  # nothing written into the freed frame
    h.directory_answers(pc.DirPageReply(node=0, frame=9, generation=0, replica=False, epoch=2))
    page, _cost = h.resume()
    assert (page.node, page.frame, page.replica) == (0, 9, False)
    v = h.core.vmstat()
    assert v["nr_repl_pages"] == 0 and v["pgreplicated"] == v["pgreplicazap"] == 1
    assert v["repl_fill_refused"] == 1 and h.core.pool.free == h.free_before + 1


def test_a_fill_for_another_frame_or_page_is_refused_and_the_read_still_completes():
    h = HomeNode()
    for bad in (dict(frame=h.read.frame + 1), dict(data=b"x" * 10)):
        with pytest.raises(NumaEmuError) as err:
            h.fill(epoch=1, **bad)
        assert err.value.code in (ErrorCode.ESTALE, ErrorCode.EINVAL)
    assert not h.answer.done
    assert h.fill(epoch=1) == Ok()
    page, _ = h.resume()
    assert page.replica and h.core.vmstat()["nr_repl_pages"] == 1


def test_an_older_fill_than_a_seen_shootdown_is_asked_again():
    """A shootdown of another copy (epoch 3) seen before a fill of epoch 1: the answer is stale."""
    h = HomeNode()
    h.view.shootdown(pc.PteShootdown(obj=OBJ, idx=h.idx, node=0, frame=9, write_protect=True, epoch=3))
    assert h.fill(epoch=1) == Ok()
    with pytest.raises(StopIteration):
        h.ask.send(pc.DirPageReply(node=3, frame=h.read.frame, generation=0, replica=True, epoch=1))
    again = h.lookup.send(h.answer.result)  # asks again: a new spare is offered
    assert isinstance(again, Spawn)


# ---- the directory side -------------------------------------------------------------------

def directory(node_id: int, master_node: int):
    c = core(node_id)
    repl = Replication(c, Directory(), FileTable(), ReplicationTunables())
    entry = repl.dir.entry(OBJ, 5)
    entry.node, entry.frame, entry.gen = master_node, 2, 0
    read = pc.DirRead(obj=OBJ, idx=5, mapper=3, task_node=3, policy={}, allowed=[0, 1, 2, 3], interleave_index=0,
                      replicate=True, frame=11, generation=4)
    return c, repl, entry, repl.read(read)


def test_the_owner_is_asked_to_send_the_bytes_to_the_reader():
    c, repl, entry, gen = directory(1, master_node=0)
    call = next(gen)
    assert call.dest == "node:0" and isinstance(call.request, pc.ReplicaCopy)
    r = call.request
    assert (r.frame, r.dst, r.dst_frame, r.dst_generation, r.epoch) == (2, 3, 11, 4, 0)
    assert entry.replicas == {} and entry.lock.held  # locked while the bytes travel, recorded once they are in
    with pytest.raises(StopIteration) as stop:
        gen.send(Ok())
    reply = stop.value.value
    assert (reply.node, reply.frame, reply.replica, reply.cost_ns) == (3, 11, True, r.cost_ns)
    assert not entry.lock.held and c.events["repl_fetch_bytes"] == PAGE and entry.replicas == {3: (11, 4)}


def test_the_unsafe_collapse_never_sees_a_replica_whose_bytes_are_on_their_way():
    """The unsafe ordering clears replicas without the lock; one in flight is not recorded yet, so
    it is not freed under the reader's feet: the writer's locked collapse takes it afterwards."""
    c, repl, entry, read = directory(1, master_node=0)
    repl.tunables.unsafe_unreplicate = True
    assert isinstance(next(read).request, pc.ReplicaCopy)
    write = repl.write(pc.DirWrite(obj=OBJ, idx=5, mapper=0, task_node=0, policy={}, allowed=[0, 1, 2, 3],
                                   interleave_index=0))
    waiting = next(write)  # nothing to clear without the lock; then it waits for the lock
    assert isinstance(waiting, Future) and not waiting.done
    with pytest.raises(StopIteration):
        read.send(Ok())
    assert waiting.done and entry.replicas == {3: (11, 4)}
    calls = write.send(None)
    assert [(x.dest, x.request.frame, x.request.free, x.request.cause) for x in calls] == [("node:3", 11, True, "write")]
    with pytest.raises(StopIteration) as stop:
        write.send([pc.PteShootdownAck(unmapped=1)])
    assert stop.value.value.node == 0 and entry.replicas == {} and entry.dirty


def test_a_directory_that_owns_the_master_sends_the_bytes_on_its_answer():
    c, repl, entry, gen = directory(0, master_node=0)
    entry.frame = c.pool.alloc()
    c.pool.write(entry.frame, 0, b"\x41" * PAGE)
    with pytest.raises(StopIteration) as stop:  # no message at all before the answer
        next(gen)
    reply = stop.value.value
    assert (reply.node, reply.frame, reply.replica, reply.data) == (3, 11, True, b"\x41" * PAGE)
    assert entry.replicas == {3: (11, 4)} and not entry.lock.held and c.events["repl_fetch_bytes"] == PAGE


def test_the_readers_own_directory_pulls_the_bytes_into_its_spare():
    c, repl, entry, gen = directory(3, master_node=0)
    spare = c.pool.alloc()
    gen = repl.read(pc.DirRead(obj=OBJ, idx=5, mapper=3, task_node=3, policy={}, allowed=[0, 1, 2, 3],
                               interleave_index=0, replicate=True, frame=spare, generation=c.pool.generation[spare]))
    pull = next(gen)
    assert pull.dest == "node:0" and isinstance(pull.request, mm.FrameRead) and pull.request.frame == 2
    assert entry.replicas == {} and entry.lock.held
    with pytest.raises(StopIteration) as stop:
        gen.send(mm.FrameReadReply(data=b"\x43" * PAGE))
    reply = stop.value.value
    assert (reply.node, reply.frame, reply.replica, reply.data) == (3, spare, True, None)
    assert c.pool.read(spare, 0, 2) == b"CC" and entry.replicas == {3: (spare, c.pool.generation[spare])}


def test_an_answer_carrying_the_bytes_fills_the_spare_unless_a_shootdown_overtook_it():
    for overtaken in (False, True):
        h = HomeNode()
        spare = h.read.frame
        if overtaken:
            h.view.shootdown(pc.PteShootdown(obj=OBJ, idx=h.idx, node=3, frame=spare, free=True, cause="write",
                                             epoch=2))
        h.directory_answers(pc.DirPageReply(node=3, frame=spare, generation=h.read.generation, replica=True,
                                            epoch=1, data=b"\x44" * PAGE))
        if overtaken:  # discarded (the spare is freed already): asks again
            assert isinstance(h.lookup.send(h.answer.result), Spawn)
            assert h.core.pool.read(spare, 0, 2) == bytes(2) and h.core.vmstat()["nr_repl_pages"] == 0
        else:
            page, _ = h.resume()
            assert page.replica and h.core.pool.read(spare, 0, 2) == b"DD"
            assert h.core.vmstat()["nr_repl_pages"] == 1


def test_a_spare_freed_behind_the_readers_back_is_neither_taken_nor_freed_again():
    """The unsafe collapse frees replicas with frame.free, no shootdown: an answer naming a spare
    that was freed meanwhile is stale; the read asks again and the frame is not freed twice."""
    h = HomeNode()
    spare = h.read.frame
    h.core.release([spare])  # what frame.free does
    h.directory_answers(pc.DirPageReply(node=3, frame=spare, generation=h.read.generation, replica=True, epoch=1,
                                        data=b"\x44" * PAGE))
    again = h.lookup.send(h.answer.result)  # asks again, offering a new spare (no double free on the way)
    assert isinstance(again, Spawn)
    assert h.core.pool.free == h.free_before and h.core.vmstat()["nr_repl_pages"] == 0


def test_a_failed_copy_shoots_the_replica_down_and_answers_with_the_master():
    c, repl, entry, gen = directory(1, master_node=0)
    next(gen)
    calls = gen.throw(NumaEmuError(ErrorCode.ESTALE, "repl.fill: node 3 is not waiting"))
    assert [(x.dest, x.request.frame, x.request.free, x.request.cause, x.request.epoch) for x in calls] == [
        ("node:3", 11, True, "copyfail", 1)]
    with pytest.raises(StopIteration) as stop:
        gen.send([pc.PteShootdownAck(unmapped=0)])
    reply = stop.value.value
    assert (reply.node, reply.frame, reply.replica, reply.epoch) == (0, 2, False, 1)
    assert entry.replicas == {} and c.events["repl_copy_failed"] == 1 and not c.events["repl_fetch_bytes"]
    assert not entry.lock.held


def test_without_a_spare_a_failed_copy_frees_the_frame_it_allocated_on_the_reader():
    """The reader had no frame to offer: the directory allocates one there and has the owner copy
    into it (frame.copy); when that fails the replica is shot down (and freed) all the same."""
    c = core(1)
    repl = Replication(c, Directory(), FileTable(), ReplicationTunables())
    entry = repl.dir.entry(OBJ, 5)
    entry.node, entry.frame, entry.gen = 0, 2, 0
    gen = repl.read(pc.DirRead(obj=OBJ, idx=5, mapper=3, task_node=3, policy={}, allowed=[0, 1, 2, 3],
                               interleave_index=0, replicate=True))
    alloc = next(gen)
    assert alloc.dest == "node:3" and alloc.request.replica_of == [OBJ, 5]
    copy = gen.send(mm.FrameAllocReply(frames=[6], generations=[2]))
    assert copy.dest == "node:0" and isinstance(copy.request, pc.FrameCopy) and copy.request.dst_frame == 6
    calls = gen.throw(NumaEmuError(ErrorCode.ETIMEDOUT, "no reply"))
    assert [(x.dest, x.request.frame, x.request.free) for x in calls] == [("node:3", 6, True)]
    with pytest.raises(StopIteration) as stop:
        gen.send([pc.PteShootdownAck(unmapped=0)])
    assert not stop.value.value.replica and entry.replicas == {} and c.events["repl_copy_failed"] == 1


def test_a_locked_collapse_survives_the_unsafe_ordering_clearing_its_replicas_meanwhile():
    """vm.unsafe_unreplicate=1: a write collapses without the lock, so it may clear the replicas
    while a locked collapse (a master's move) waits for its shootdowns; the locked one then finds
    them gone and forgets nothing twice (it failed with KeyError on a real cluster)."""
    c = core(1)
    repl = Replication(c, Directory(), FileTable(), ReplicationTunables(unsafe_unreplicate=True))
    entry = repl.dir.entry(OBJ, 0)
    entry.node, entry.frame, entry.gen = 1, c.pool.alloc(), 0
    entry.replicas, entry.mappers, entry.born_ns = {2: (5, 0)}, {2: 2}, {2: 0}
    locked = repl.collapse(OBJ, 0, entry, "migration")
    shootdowns = next(locked)
    assert [(call.dest, call.request.frame) for call in shootdowns] == [("node:2", 5)]
    repl._forget_replicas(OBJ, 0, entry, dict(entry.replicas), "write")  # what _collapse_unsafe does first
    with pytest.raises(StopIteration):
        locked.send([pc.PteShootdownAck(unmapped=1)])
    assert entry.replicas == {} and entry.mappers == {} and sum(repl.lifetimes.values()) == 1


def test_the_unsafe_ordering_never_frees_a_replica_a_locked_collapse_is_freeing():
    """vm.unsafe_unreplicate=1: a write's collapse without the lock, while a locked collapse waits
    for its shootdowns (which free the replica on its node), leaves that replica to it: freed by
    both, the frame was freed twice ("frame 5 is not in use" on a real cluster)."""
    c = core(1)
    repl = Replication(c, Directory(), FileTable(), ReplicationTunables(unsafe_unreplicate=True))
    entry = repl.dir.entry(OBJ, 0)
    entry.node, entry.frame, entry.gen = 1, c.pool.alloc(), 0
    entry.replicas, entry.mappers, entry.born_ns = {2: (5, 0), 3: (6, 0)}, {2: 2, 3: 3}, {2: 0, 3: 0}
    locked = repl.collapse(OBJ, 0, entry, "reclaim", only=2)
    assert [(call.dest, call.request.frame, call.request.free) for call in next(locked)] == [("node:2", 5, True)]
    effects = []
    run_effects(repl._collapse_unsafe(OBJ, 0, entry, "write"), lambda e: effects.append(e) or [Ok()])
    frees = [(call.dest, call.request.frames) for e in effects for call in (e if isinstance(e, list) else [e])
             if isinstance(call, Call)]
    assert frees == [("node:3", [6])]  # replica 3 only: replica 2's free rides on the locked shootdown
    assert entry.replicas == {2: (5, 0)}
    with pytest.raises(StopIteration):
        locked.send([pc.PteShootdownAck(unmapped=1)])
    assert entry.replicas == {} and entry.collapsing == set()
