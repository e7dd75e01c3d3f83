"""frame.fill (nodes/frames.py), the batched memset of a touch with a fill byte: every frame's
generation checked before any is written (ESTALE, nothing written: a frame freed and reused since
it was mapped keeps its bytes), EINVAL for bad input."""
from __future__ import annotations

import pytest

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.frames import FrameService
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.topology import build_shape

PAGE = 4096
TOPOLOGY = build_shape("full,2,mem=1MiB,cpus=1").to_dict()


def test_a_fill_of_a_frame_freed_and_reused_since_is_refused_and_writes_nothing():
    core = NodeCore(1, TOPOLOGY, FramePool(8, PAGE))
    kept, reused = core.pool.alloc(), core.pool.alloc()
    gens = [core.pool.generation[kept], core.pool.generation[reused]]
    core.release([reused])
    again = core.pool.alloc()
    assert again == reused  # the freed frame went to its next owner
    core.pool.write(again, 0, b"next owner")
    with pytest.raises(NumaEmuError) as err:
        FrameService(core).fill(mm.FrameFill(frames=[kept, reused], value=7, generations=gens))
    assert err.value.code == ErrorCode.ESTALE
    assert core.pool.read(again, 0, 10) == b"next owner" and core.pool.read(kept, 0, 4) == bytes(4)
    FrameService(core).fill(mm.FrameFill(frames=[kept], value=7, generations=gens[:1]))
    assert core.pool.read(kept) == bytes([7]) * PAGE


@pytest.mark.parametrize("msg", [
    mm.FrameFill(frames=[99], value=1),
    mm.FrameFill(frames=["0"], value=1),
    mm.FrameFill(frames=[0, 1], value=1, generations=[1]),
    mm.FrameFill(frames=7, value=1),
    mm.FrameFill(frames=[0], value=256),
])
def test_frame_fill_refuses_bad_input_with_einval(msg):
    with pytest.raises(NumaEmuError) as err:
        FrameService(NodeCore(1, TOPOLOGY, FramePool(8, PAGE))).fill(msg)
    assert err.value.code == ErrorCode.EINVAL and err.value.message.startswith("frame.fill")
