"""A request that waits for its task's lock (nodes.mm.MemoryManager.locked) while the task moves
to another node gets EREMCHG, so that its client sends it again to the new home (nothing of it was
done); one that waits while the task detaches gets ESRCH."""
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


def manager() -> MemoryManager:
    c = NodeCore(0, build_shape("full,2,mem=1MiB,cpus=1").to_dict(), FramePool(16, 4096))
    tasks: dict = {}
    view = PageCacheView(c, tasks)
    mgr = MemoryManager(c, view, tasks, PageMoves(c, view), FileTable(), ReplicationTunables())
    mgr.attach(tm.NodeTaskAttach(task_id=7, pid=1, comm="t", cpu=0, policy=DEFAULT_POLICY.to_wire(),
                                 mems_allowed=[0, 1]))
    return mgr


@pytest.mark.parametrize("meanwhile, code", [("moved", ErrorCode.EREMCHG), ("detached", ErrorCode.ESRCH)])
def test_a_request_waiting_for_the_lock_hears_where_the_task_went(meanwhile, code):
    mgr = manager()
    task = mgr.tasks[7]
    ran = []

    def body():
        ran.append(True)
        return "done"
        yield

    next(task.lock.acquire(), None)  # a move or a detach holds the lock
    assert task.lock.held
    waiter = mgr.locked(task, body())
    next(waiter)  # waits for the lock
    if meanwhile == "moved":
        mgr.moved_away(task, 1)
    else:
        del mgr.tasks[7]
    task.lock.release()
    with pytest.raises(NumaEmuError) as info:
        waiter.send(None)
    assert info.value.code == code and ran == []
    assert not task.lock.held
