"""A request that waited for its task's lock (nodes.mm.MemoryManager.locked) while the lock's
holder moved the task to another node gets EREMCHG, so its client follows the task and sends it
again; one whose task detached meanwhile gets ESRCH. Nothing of the request ran either way."""
from __future__ import annotations

import pytest

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.pagemove import PageMoves
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.nodes.replication import ReplicationTunables
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import DEFAULT_POLICY
from numa_emu.protocol.topology import build_shape


@pytest.fixture
def manager() -> MemoryManager:
    c = NodeCore(0, build_shape("full,2,mem=1MiB,cpus=1").to_dict(), FramePool(16, 4096))
    tasks: dict = {}
    view = PageCacheView(c, tasks)
    mm = MemoryManager(c, view, tasks, PageMoves(c, view), FileTable(), ReplicationTunables())
    mm.attach(tm.NodeTaskAttach(task_id=7, pid=1, comm="t", cpu=0, policy=DEFAULT_POLICY.to_wire(), mems_allowed=[0, 1]))
    return mm


def _wait_behind_the_holder(mm: MemoryManager, ran: list):
    task = mm.tasks[7]
    for _ in task.lock.acquire():  # the holder (a task move) has it at once
        pass

    def request():
        ran.append(True)
        return "done"
        yield

    waiting = mm.locked(task, request())
    next(waiting)  # queued for the lock
    return task, waiting


@pytest.mark.parametrize("moved, code, words", [(True, ErrorCode.EREMCHG, "moved to node 1 while the request waited"),
                                                (False, ErrorCode.ESRCH, "detached while the request waited")])
def test_a_request_queued_behind_a_move_or_detach(manager, moved, code, words):
    ran: list = []
    task, waiting = _wait_behind_the_holder(manager, ran)
    if moved:
        manager.moved_away(task, 1)
    else:
        del manager.tasks[7]
    task.lock.release()  # handed to the waiting request
    with pytest.raises(NumaEmuError) as err:
        waiting.send(None)
    assert err.value.code == code and words in err.value.message
    assert ran == [] and not task.lock.held
