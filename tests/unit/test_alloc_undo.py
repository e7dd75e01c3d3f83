"""A frame.alloc whose call timed out is undone on the node that served it (nodes.core: tickets,
frame.alloc.undo, retry_allocs): its frames are freed once, however often the undo comes; one
undone before it came takes nothing; one still being served is waited for; and the requester
counts the numa_foreign that the supplier's numa_miss owes, once."""
from __future__ import annotations

import pytest

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.framepool import FREE, USED, FramePool
from numa_emu.nodes.frames import FrameService
from numa_emu.protocol.effects import Call, Future
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.topology import build_shape
from tests.helpers import run_effects

TOPOLOGY = build_shape("full,2,mem=1MiB,cpus=1").to_dict()
TICKET = [0, 123, 1]


def supplier() -> tuple[NodeCore, FrameService]:
    c = NodeCore(1, TOPOLOGY, FramePool(8, 4096))
    return c, FrameService(c)


def alloc(service: FrameService, count: int = 2, ticket: list | None = TICKET) -> mm.FrameAllocReply:
    return run_effects(service.alloc(mm.FrameAlloc(count=count, preferred=0, task_node=0, ticket=ticket)),
                       lambda e: pytest.fail(f"no effect expected: {e}"))


def undo(service: FrameService, *tickets: list) -> list[int]:
    return run_effects(service.undo(mm.FrameAllocUndo(tickets=list(tickets))),
                       lambda e: pytest.fail(f"no effect expected: {e}")).allocated


def test_an_undo_frees_what_the_allocation_took_once():
    c, service = supplier()
    got = alloc(service)
    assert len(got.frames) == 2 and c.pool.free == 6 and c.numastat["numa_miss"] == 2
    assert undo(service, TICKET) == [2] and c.pool.free == 8
    again = c.pool.alloc()  # a frame reused since: a second undo must not free it
    assert undo(service, TICKET) == [2] and c.pool.free == 7 and c.pool.state[again]


def test_an_allocation_undone_before_it_came_takes_nothing():
    c, service = supplier()
    assert undo(service, TICKET) == [0]
    assert alloc(service).frames == [] and c.pool.free == 8 and c.numastat["numa_miss"] == 0
    assert alloc(service, ticket=None).frames != []  # without a ticket (a call to itself): as before


def test_an_undo_waits_for_the_allocation_being_served():
    c, service = supplier()
    entry = c.begin_alloc(TICKET)
    gen = service.undo(mm.FrameAllocUndo(tickets=[TICKET]))
    waited = next(gen)
    assert isinstance(waited, Future) and not waited.done
    c.end_alloc(entry, [c.pool.alloc()])
    with pytest.raises(StopIteration) as stop:
        gen.send(None)
    assert stop.value.value.allocated == [1] and c.pool.free == 8


def test_a_timed_out_allocation_is_undone_and_its_foreign_counted_once():
    requester = NodeCore(0, TOPOLOGY, FramePool(8, 4096))

    def timeout(effect):
        raise NumaEmuError(ErrorCode.ETIMEDOUT, "node 1 did not answer")
    assert run_effects(requester.alloc_on(1, 2, preferred=0, task_node=0), timeout) == []
    assert requester.unconfirmed() and list(requester.allocs_unsure) == [1]
    sent = []

    def answer(call):  # each call of a gathered list on its own
        assert isinstance(call, Call)
        sent.append(call.request)
        return mm.FrameAllocUndoReply(allocated=[2]) if isinstance(call.request, mm.FrameAllocUndo) else None
    assert run_effects(requester.retry_allocs(), answer) == 0
    assert [type(m).__name__ for m in sent] == ["FrameAllocUndo", "StatAdd"]
    assert sent[1].total == 2 and not requester.allocs_unsure  # numa_foreign owed to node 0: 2 pages


def test_bad_tickets_are_einval():
    _c, service = supplier()
    for bad in ([1, 2], ["a", 1, 2], [True, 1, 2]):
        with pytest.raises(NumaEmuError) as info:
            alloc(service, ticket=bad)
        assert info.value.code == ErrorCode.EINVAL
        with pytest.raises(NumaEmuError):
            undo(service, bad)


def test_what_a_dead_requester_took_and_nobody_took_up_is_freed():
    """node.down of the requester: the frames of its allocations that no page, replica or task
    names are freed (it died before it used them); a task's private frame stays (task.purge's)."""
    c, service = supplier()
    plain = alloc(service).frames
    owned = run_effects(service.alloc(mm.FrameAlloc(count=1, preferred=0, task_node=0, task_id=9,
                                                    ticket=[0, 123, 2])), lambda e: None).frames
    assert c.pool.free == 5
    c.node_died(0, "killed")
    assert c.pool.free == 7 and all(c.pool.state[f] == FREE for f in plain) and c.pool.state[owned[0]] == USED
    assert undo(service, TICKET) == [2] and c.pool.free == 7  # an undo after it frees nothing again
