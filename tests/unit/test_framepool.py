"""The node's frame pool: lazy commitment, zeroed frames, generations, ENOMEM."""
from __future__ import annotations

import pytest

from numa_emu.nodes.framepool import FramePool
from numa_emu.protocol.errors import ErrorCode, NumaEmuError


def test_alloc_until_full_then_enomem_and_free_recycles():
    pool = FramePool(4, 4096)
    frames = [pool.alloc() for _ in range(4)]
    assert frames == [0, 1, 2, 3] and pool.free == 0
    with pytest.raises(NumaEmuError) as err:
        pool.alloc()
    assert err.value.code == ErrorCode.ENOMEM
    pool.free_frame(2)
    assert pool.free == 1 and pool.alloc() == 2


def test_recycled_frame_is_zeroed_and_its_generation_bumped():
    pool = FramePool(2, 4096)
    f = pool.alloc()
    pool.write(f, 100, b"hello")
    assert pool.read(f, 100, 5) == b"hello"
    gen = pool.generation[f]
    pool.free_frame(f)
    assert pool.generation[f] == gen + 1
    assert pool.alloc() == f
    assert pool.read(f) == bytes(4096)


@pytest.mark.parametrize("op", [lambda p: p.free_frame(0), lambda p: p.free_frame(9), lambda p: p.write(0, 4090, b"x" * 10),
                                lambda p: p.read(-1)])
def test_bad_frame_operations_are_einval(op):
    pool = FramePool(2, 4096)
    with pytest.raises(NumaEmuError) as err:
        op(pool)
    assert err.value.code == ErrorCode.EINVAL


def test_metadata_is_compact():
    pool = FramePool(262144, 4096)  # 1 GiB of frames
    assert pool.generation.itemsize * len(pool.generation) + len(pool.state) <= 2 * 1024 * 1024
