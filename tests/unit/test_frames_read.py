"""frames.read (nodes/frames.py), the batched copy of a migration toward the asking node: the
frames' bytes in order, ESTALE for a frame freed since, EINVAL for bad input."""
from __future__ import annotations

import pytest

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.frames import MAX_FRAMES_READ, FrameService
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.topology import build_shape

PAGE = 4096
TOPOLOGY = build_shape("full,2,mem=1MiB,cpus=1").to_dict()


def test_frames_read_returns_each_page_in_the_order_asked():
    core = NodeCore(1, TOPOLOGY, FramePool(8, PAGE))
    frames = [core.pool.alloc() for _ in range(3)]
    for i, f in enumerate(frames):
        core.pool.write(f, 0, bytes([i + 1]) * PAGE)
    service = FrameService(core)
    gens = [core.pool.generation[f] for f in frames]
    reply = service.read_many(mm.FramesRead(frames=[frames[2], frames[0]], generations=[gens[2], gens[0]]))
    assert reply.data == bytes([3]) * PAGE + bytes([1]) * PAGE
    core.release([frames[1]])
    with pytest.raises(NumaEmuError) as err:
        service.read_many(mm.FramesRead(frames=[frames[0], frames[1]], generations=[gens[0], gens[1]]))
    assert err.value.code == ErrorCode.ESTALE


@pytest.mark.parametrize("msg", [
    mm.FramesRead(frames=[99]),
    mm.FramesRead(frames=["0"]),
    mm.FramesRead(frames=[0, 1], generations=[1]),
    mm.FramesRead(frames=[0] * (MAX_FRAMES_READ + 1)),
    mm.FramesRead(frames=7),
])
def test_frames_read_refuses_bad_input_with_einval(msg):
    with pytest.raises(NumaEmuError) as err:
        FrameService(NodeCore(1, TOPOLOGY, FramePool(8, PAGE))).read_many(msg)
    assert err.value.code == ErrorCode.EINVAL and err.value.message.startswith("frames.read")
