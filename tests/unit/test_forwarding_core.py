"""Forwarded access in the pure cores, no sockets: which accesses the home node forwards (and with
what), and how the owner answers a forward, errors included (exactly one Answer each)."""
from __future__ import annotations

import types

import pytest

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.frames import FrameService
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.pagemove import PageMoves
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.nodes.replication import ReplicationTunables
from numa_emu.protocol.effects import Answer, Forward
from numa_emu.protocol.errors import ErrorCode
from numa_emu.protocol.messages import ErrorReply
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import DEFAULT_POLICY
from numa_emu.protocol.topology import build_shape

PAGE = 4096
TOPOLOGY = build_shape("full,2,mem=1MiB,cpus=1").to_dict()


def core(node: int) -> NodeCore:
    return NodeCore(node, TOPOLOGY, FramePool(16, PAGE))


@pytest.fixture
def home():
    """Node 0's memory manager with task 7 and a region of three private pages: page 0 on node 1
    (frame 5), page 1 on node 0, page 2 absent."""
    c = core(0)
    tasks: dict = {}
    view = PageCacheView(c, tasks)
    manager = MemoryManager(c, view, tasks, PageMoves(c, view), FileTable(), ReplicationTunables())
    manager.attach(tm.NodeTaskAttach(task_id=7, pid=1, comm="t", cpu=0, policy=DEFAULT_POLICY.to_wire(),
                                     mems_allowed=[0, 1]))
    region = manager.tasks[7].space.map(3, "anon")
    region.node[0], region.frame[0], region.gen[0] = 1, 5, 1
    region.node[1], region.frame[1] = 0, c.pool.alloc()
    return types.SimpleNamespace(core=c, mm=manager, task=manager.tasks[7], start=region.start, region=region)


def test_a_one_page_access_of_a_remote_private_page_is_forwarded(home):
    before = home.task.clock_ns
    out = home.mm.access(mm.Access(task_id=7, vaddr=home.start + 100, length=8, direct=True))
    assert isinstance(out, Forward) and out.dest == "node:1"
    fwd = out.notice
    cost = home.core.cost.access_ns(0, 1, 8)
    assert (fwd.home, fwd.frame, fwd.offset, fwd.length, fwd.data) == (0, 5, 100, 8, None)
    assert fwd.clock_ns == home.task.clock_ns == before + cost


def test_a_forward_names_its_page_only_when_the_owner_dies(home):
    """The page's name is built for the EIO answer of a forward lost with its owner, not for
    every forward (protocol.forwarding.Forwarding.fail)."""
    import collections

    from numa_emu.protocol.forwarding import Forwarding
    from numa_emu.protocol.link import DelayingLink

    out = home.mm.access(mm.Access(task_id=7, vaddr=home.start + 100, length=8, direct=True))
    assert callable(out.what)
    # kept with up to 4096 forwards per peer: it holds the name's values, not the region
    assert sorted(type(c.cell_contents).__name__ for c in out.what.__closure__) == ["int", "int"]
    sent, replies = [], []
    stats: collections.Counter = collections.Counter()
    fwd = Forwarding(DelayingLink(stats), stats, lambda dest, frames: sent.append(dest),
                     lambda routing, request_id, result, exc: replies.append((routing, request_id, exc)))
    fwd.forward([b"task:7:x"], 41, out)
    assert sent == ["node:1"] and replies == []
    fwd.fail("node:1", "node 1 is dead (exited with status -9)")
    [(routing, request_id, exc)] = replies
    assert (routing, request_id, exc.code) == ([b"task:7:x"], 41, ErrorCode.EIO)
    assert exc.message == (f"node 1 is dead (exited with status -9): page {home.start:#x} of task 7 "
                           "was there and is lost")
    assert stats["forwards_failed"] == 1


def test_a_forwarded_write_marks_the_page_dirty_here(home):
    out = home.mm.access(mm.Access(task_id=7, vaddr=home.start + 8, data=b"abcd", direct=True))
    assert isinstance(out, Forward) and out.notice.data == b"abcd" and out.notice.length == 0
    assert home.region.dirty[0] == 1


@pytest.mark.parametrize("vaddr_offset, length, direct", [
    (100, 8, False),  # the task cannot take an answer from the owner
    (PAGE - 4, 8, True),  # crosses into the next page
    (2 * PAGE, 8, True),  # absent: a fault first, on the home node
])
def test_other_accesses_are_served_by_the_home_node(home, vaddr_offset, length, direct):
    out = home.mm.access(mm.Access(task_id=7, vaddr=home.start + vaddr_offset, length=length, direct=direct))
    assert isinstance(out, types.GeneratorType)
    out.close()


def test_a_local_page_is_answered_at_once(home):
    out = home.mm.access(mm.Access(task_id=7, vaddr=home.start + PAGE, length=8, direct=True))
    assert isinstance(out, mm.AccessReply) and out.data == b"\0" * 8


def _forward(**kw) -> mm.AccessForward:
    fields = dict(route=b"task:1:x", request_id=42, home=0, frame=3, offset=8, length=4, data=None, clock_ns=99)
    return mm.AccessForward(**{**fields, **kw})


def test_the_owner_answers_the_task_with_its_reply():
    owner = core(1)
    owner.pool.write(3, 8, b"wxyz")
    service = FrameService(owner)
    ans = service.access_forward(_forward())
    assert isinstance(ans, Answer) and (ans.route, ans.request_id, ans.link, ans.via) == (b"task:1:x", 42, "node:0", "node:0")
    assert ans.reply == mm.AccessReply(data=b"wxyz", clock_ns=99)
    ans = service.access_forward(_forward(data=b"1234", length=0))
    assert ans.reply == mm.AccessReply(data=None, clock_ns=99) and owner.pool.read(3, 8, 4) == b"1234"


@pytest.mark.parametrize("change", [{"frame": 1 << 40}, {"offset": PAGE - 2}, {"offset": -1}, {"length": 0},
                                    {"data": b"x" * 8, "offset": PAGE - 4}, {"home": 1}, {"home": 7}])
def test_a_bad_forward_is_answered_with_one_error(change):
    ans = FrameService(core(1)).access_forward(_forward(**change))
    assert isinstance(ans, Answer) and ans.request_id == 42
    assert isinstance(ans.reply, ErrorReply) and ans.reply.code == ErrorCode.EINVAL.value and ans.reply.message
    if "home" in change:
        assert ans.via is None and ans.link is None  # no peer to hold it for or relay it through
