"""The sparse per-page arrays of the page tables (nodes.sparsearray): exact values across chunk
edges, splits anywhere, and nothing allocated for what was never touched."""
from __future__ import annotations

from array import array

import pytest

from numa_emu.nodes.pagetable import ANON, AddressSpace
from numa_emu.nodes.sparsearray import CHUNK, SparseArray

BIG = 64 * 1024 * 1024  # the pages of a 256 GiB mapping


def test_an_untouched_array_of_64m_entries_allocates_nothing():
    a = SparseArray("h", BIG, -1)
    assert (a[0], a[BIG - 1], a[-1]) == (-1, -1, -1)
    a[5] = -1  # writing the default allocates nothing either
    assert a.chunks == {} and a.count(-1) == BIG and a.items() == [] and 3 not in a and -1 in a


def test_points_and_slices_across_chunk_edges():
    a = SparseArray("h", 3 * CHUNK + 10, -1)
    a[CHUNK - 1], a[CHUNK], a[-1] = 4, 5, 6
    assert sorted(a.chunks) == [0, 1, 3]
    assert a.items() == [(CHUNK - 1, 4), (CHUNK, 5), (3 * CHUNK + 9, 6)]
    assert a[CHUNK - 2:CHUNK + 2] == array("h", [-1, 4, 5, -1])
    a[2 * CHUNK - 1:2 * CHUNK + 1] = array("h", [7, 8])
    assert a[2 * CHUNK - 1:2 * CHUNK + 1].tolist() == [7, 8] and sorted(a.chunks) == [0, 1, 2, 3]
    assert (a.count(-1), a.count(7), a.items(CHUNK)) == (len(a) - 5, 1, [(CHUNK, 5), (2 * CHUNK - 1, 7),
                                                                            (2 * CHUNK, 8), (3 * CHUNK + 9, 6)])
    b = SparseArray("B", 10)
    b[2:5] = b"\x01\x01\x01"
    assert list(b) == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    with pytest.raises(IndexError):
        a[len(a)]
    with pytest.raises(ValueError):
        b[0:2] = b"\x01"


@pytest.mark.parametrize("at", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7, 3 * CHUNK])
def test_split_anywhere_keeps_every_value(at):
    length = 3 * CHUNK
    a = SparseArray("I", length)
    want = {i: i + 1 for i in (0, 3, CHUNK - 1, CHUNK, 2 * CHUNK + 6, 2 * CHUNK + 7, length - 1)}
    for i, v in want.items():
        a[i] = v
    tail = a.split(at)
    assert (len(a), len(tail)) == (at, length - at)
    assert a.items() == [(i, v) for i, v in sorted(want.items()) if i < at]
    assert tail.items() == [(i - at, v) for i, v in sorted(want.items()) if i >= at]
    assert all(len(c) == min(CHUNK, len(x) - ci * CHUNK) for x in (a, tail) for ci, c in x.chunks.items())


def test_wire_round_trip_and_refusals():
    a = SparseArray("h", 2 * CHUNK + 3, -1)
    a[CHUNK + 2] = 3
    a[-1] = 1
    assert SparseArray.from_wire("h", len(a), -1, a.to_wire()) == a
    for bad in ([[5, b""]], [[0, b"\x00\x00"]], [[2, a.chunks[2].tobytes()], [2, a.chunks[2].tobytes()]]):
        with pytest.raises(ValueError):
            SparseArray.from_wire("h", len(a), -1, bad)


def test_a_256gib_region_maps_splits_and_unmaps_at_the_cost_of_its_touched_pages():
    space = AddressSpace(4096)
    region = space.map(BIG, ANON)
    region.node[BIG // 2], region.frame[BIG // 2] = 1, 77
    head, = space.isolate(region.start, (BIG // 2) * 4096)
    tail = space.find(region.start + (BIG // 2) * 4096)
    assert (head.npages, tail.npages, tail.node[0], tail.frame[0]) == (BIG // 2, BIG // 2, 1, 77)
    assert tail.present_pages() == 1
    assert head.present_pages() == 0 and sum(len(c) for c in head.node.chunks.values()) == 0
    assert len(tail.node.chunks) == 1
