"""A moving task's state crosses nodes as data (nodes.taskmove): page tables, policies and clocks
come back exactly, and a malformed image is refused with EINVAL."""
from __future__ import annotations

import msgpack
import pytest

from numa_emu.nodes.mm import TaskState
from numa_emu.nodes.pagetable import ANON, FILE, SHM, AddressSpace
from numa_emu.nodes.placement import InterleaveCursor
from numa_emu.nodes.taskmove import task_from_image, task_image
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import Mode, Policy


def _task() -> TaskState:
    space = AddressSpace(4096)
    anon = space.map(8, ANON)
    anon.node[0:3] = anon.node[0:3].__class__("h", [0, 2, 1])
    anon.frame[0:3] = anon.frame[0:3].__class__("I", [7, 70000, 3])
    anon.gen[1] = 5
    anon.dirty[2] = 1
    space.isolate(anon.start + 4096, 2 * 4096)[0].policy = Policy(Mode.INTERLEAVE, frozenset({0, 2}))
    shm = space.map(2, SHM, "s", 3)
    shm.wr[1] = 1
    f = space.map(1, FILE, "f")
    f.writable, f.exec = False, True
    return TaskState(4, 1234, "w", 3, 1, Policy(Mode.BIND, frozenset({1, 2})), frozenset({0, 1, 2}), space,
                     clock_ns=99, faults=3, il_cursor=InterleaveCursor(2, 1), replication=False)


def _wire(image: dict) -> dict:
    return msgpack.unpackb(msgpack.packb(image), raw=False, strict_map_key=False)


def test_a_task_image_round_trips_through_msgpack():
    task = _task()
    back = task_from_image(_wire(task_image(task)), node=2, cpu=5)
    assert (back.task_id, back.pid, back.comm, back.cpu, back.node) == (4, 1234, "w", 5, 2)
    assert (back.policy, back.mems, back.clock_ns, back.faults) == (task.policy, task.mems, 99, 3)
    assert (back.il_cursor, back.replication) == (InterleaveCursor(2, 1), False)
    assert back.space.next_vaddr == task.space.next_vaddr and back.space.maps_made == task.space.maps_made
    for a, b in zip(task.space.regions, back.space.regions, strict=True):
        assert (a.start, a.npages, a.kind, a.name, a.obj_offset, a.policy, a.writable, a.exec, a.map_id) == \
               (b.start, b.npages, b.kind, b.name, b.obj_offset, b.policy, b.writable, b.exec, b.map_id)
        assert (a.node, a.frame, a.gen, a.dirty, a.wr) == (b.node, b.frame, b.gen, b.dirty, b.wr)
    assert back.space.find(task.space.regions[1].start) is back.space.regions[1]


@pytest.mark.parametrize("spoil", [
    lambda im: im.pop("space"),
    lambda im: im.update(policy="bind"),
    lambda im: im["space"]["regions"][0].update(node=b"\x00"),
    lambda im: im["space"]["regions"][0].update(npages=99),
])
def test_a_malformed_image_is_einval(spoil):
    image = _wire(task_image(_task()))
    spoil(image)
    with pytest.raises(NumaEmuError) as exc:
        task_from_image(image, node=0, cpu=0)
    assert exc.value.code == ErrorCode.EINVAL
