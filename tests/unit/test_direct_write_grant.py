"""The direct-write grant of a shared master (nodes/core.py grant_direct_write): one holder a
frame, taken back before the node writes the frame, refused while an earlier holder may still be
inside a write, and a read of the node never returns half of a direct write (read_local)."""
from __future__ import annotations

from numa_emu.nodes.core import _STABLE_WAITS, NodeCore
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.frames import FrameService
from numa_emu.protocol import directmap as dm
from numa_emu.protocol.effects import Sleep
from numa_emu.protocol.messages import memory as mm
from tests.helpers import run_effects
from numa_emu.protocol.topology import build_shape

PAGE = 4096
TOPOLOGY = build_shape("full,2,mem=1MiB,cpus=1").to_dict()


def _core() -> NodeCore:
    return NodeCore(0, TOPOLOGY, FramePool(8, PAGE))


def test_the_grant_moves_to_the_last_writer_and_the_node_takes_it_back_before_its_own_write():
    core, revoked = _core(), []
    frame = core.pool.alloc()
    assert core.grant_direct_write(frame, (1, 0x1000), lambda: revoked.append(1), take=True)
    assert core.grant_direct_write(frame, (1, 0x1000), lambda: revoked.append(1), take=True)  # the holder again: kept
    assert revoked == []
    assert core.grant_direct_write(frame, (2, 0x5000), lambda: revoked.append(2), take=True)
    assert revoked == [1]
    core.write_local(frame, 0, b"node")  # a message write (another node's writer, a fill)
    assert revoked == [1, 2] and frame not in core.direct_writers
    assert core.pool.read(frame, 0, 4) == b"node"


def test_no_grant_while_a_holder_may_still_be_inside_a_write_and_none_outlives_the_frame():
    core = _core()
    frame = core.pool.alloc()
    core.pool.hold([frame])  # an earlier holder's entry was cleared without its lock
    assert not core.grant_direct_write(frame, (1, 0x1000), lambda: None, take=True)
    core.pool.let_go([frame])
    assert core.grant_direct_write(frame, (1, 0x1000), lambda: None, take=True)
    core.release([frame])
    assert frame not in core.direct_writers


def _drive(gen):
    """Run a node generator whose only effects are Sleeps; (result, sleeps)."""
    sleeps: list[Sleep] = []

    def sleep(effect) -> None:
        assert isinstance(effect, Sleep)
        sleeps.append(effect)
    return run_effects(gen, sleep), len(sleeps)


def test_frame_read_waits_for_the_holders_write_then_takes_the_grant_back_from_a_stuck_one():
    core, revoked = _core(), []
    frame = core.pool.alloc()
    core.pool.write(frame, 0, b"page")
    service = FrameService(core)
    msg = mm.FrameRead(frame=frame, offset=0, length=4, generation=core.pool.generation[frame])
    assert service.read(msg).data == b"page"  # no holder: read at once
    core.grant_direct_write(frame, (1, 0x1000), lambda: revoked.append(1), take=True)
    reply, sleeps = _drive(service.read(msg))  # a holder not writing: one stable copy
    assert (reply.data, sleeps, revoked) == (b"page", 0, [])
    core.pool.version[2 * frame + dm.TASK_HALF] += 1  # the holder inside a write that never ends (stopped)
    reply, sleeps = _drive(service.read(msg))
    assert reply.data == b"page" and sleeps == _STABLE_WAITS and revoked == [1]  # waited, then took the grant back
