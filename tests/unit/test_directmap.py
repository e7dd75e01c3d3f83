"""The direct path's shared page table and its reader, in one process: the node side
(nodes/directmap.py, nodes/framepool.py) and the task side (protocol/directpath.py) opened on the
same memfds through /proc/self/fd, as a task opens its home node's."""
from __future__ import annotations

import fcntl
import os
import threading

import pytest

from numa_emu.nodes.directmap import TaskTable
from numa_emu.nodes.framepool import FramePool
from numa_emu.protocol.directpath import DirectPath
from numa_emu.protocol import directmap as dm
from numa_emu.protocol.costmodel import CostModel
from numa_emu.protocol.errors import ErrorCode, NumaEmuError

PAGE = 4096
VPN = 0x7F0000000  # the page of MMAP_BASE
VADDR = VPN * PAGE


@pytest.fixture
def pair():
    pool = FramePool(8, PAGE)
    table = TaskTable(1, pool, 80.0, 10.0, True)
    path = DirectPath(os.getpid(), pool.fd, pool.frames, table.fd, PAGE)
    yield pool, table, path
    path.close()
    table.close()
    pool.close()


def test_a_published_page_reads_and_writes_directly_and_charges_the_cost_model(pair):
    pool, table, path = pair
    frame = pool.alloc()
    pool.write(frame, 0, b"hello")
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    assert path.read(VADDR, 5) == b"hello"
    assert path.write(VADDR + 4090, b"abcdef")
    assert pool.read(frame, 4090, 6) == b"abcdef"
    # the node's own charge for the same accesses: latency + bytes over bandwidth, rounded
    cost = CostModel([[80]], [[10 * 1e9 / 1048576]], PAGE)
    assert table.take() == (cost.access_ns(0, 0, 5) + cost.access_ns(0, 0, 6), 1, 1, 0) == (161, 1, 1, 0)
    assert table.take() == (0, 0, 0, 0)


def test_a_range_over_several_pages_is_direct_only_if_every_page_is_mapped(pair):
    pool, table, path = pair
    frames = [pool.alloc() for _ in range(3)]
    for i, f in enumerate(frames[:2]):
        pool.write(f, 0, bytes([i + 1]) * PAGE)
        table.publish(VPN + i, f, pool.generation[f], writable=True)
    assert path.read(VADDR + PAGE - 2, 4) == b"\x01\x01\x02\x02"
    assert path.read(VADDR + PAGE, 2 * PAGE) is None  # page 2 is not mapped
    assert not path.write(VADDR + PAGE, b"x" * (PAGE + 1))
    assert pool.read(frames[1], 0, 1) == b"\x02"  # nothing of the refused write landed


def test_absent_unmapped_read_only_and_freed_pages_take_the_message_path(pair):
    pool, table, path = pair
    frame = pool.alloc()
    assert path.read(VADDR, 8) is None
    table.publish(VPN, frame, pool.generation[frame], writable=False)
    assert path.read(VADDR, 8) == bytes(8)
    assert not path.write(VADDR, b"x")  # read-only: the first write is a message (the dirty bit)
    table.publish(VPN + dm.ENTRIES, frame, pool.generation[frame], writable=True)  # same slot: evicts
    assert path.read(VADDR, 8) is None
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    pool.free_frame(frame)  # a free the node did not unmap first: the generation catches it
    assert path.read(VADDR, 8) is None and not path.write(VADDR, b"x")
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    table.unmap([VPN])
    assert path.read(VADDR, 8) is None and not path.write(VADDR, b"x")
    assert table.take()[1:] == (1, 0, 0)


def test_an_entry_being_rewritten_is_retried_a_bounded_number_of_times_then_refused(pair):
    pool, table, path = pair
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    base = dm.entry_base(VPN)
    table.q[base] += 1  # a writer stopped in the middle of its rewrite
    assert path.read(VADDR, 8) is None
    assert path.read(VADDR, 2 * PAGE) is None
    table.q[base] += 1
    assert path.read(VADDR, 8) == bytes(8)


def test_the_node_never_waits_for_a_direct_write_in_flight_and_holds_its_frame_until_the_write_ends(pair):
    pool, table, path = pair
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    fcntl.flock(path.lock_fd, fcntl.LOCK_EX)  # the task in the middle of a direct write (or stopped there)
    unmapper = threading.Thread(target=table.unmap, args=([VPN],))
    unmapper.start()
    unmapper.join(10)
    assert not unmapper.is_alive()  # cleared without waiting
    assert path._entry(VPN, dm.PRESENT) is None and table.held == [frame]
    pool.free_frame(frame)  # the page migrated or unmapped: freed, but not reusable yet
    assert (pool.held, pool.free) == (1, 7)
    assert frame not in [pool.alloc() for _ in range(7)]
    with pytest.raises(NumaEmuError) as full:
        pool.alloc()
    assert full.value.code == ErrorCode.ENOMEM
    assert not table.settle()  # still in flight
    path.pv[frame * PAGE:frame * PAGE + 4] = b"late"  # the rest of the write lands in the held frame
    fcntl.flock(path.lock_fd, fcntl.LOCK_UN)
    assert table.settle() and table.held == [] and (pool.held, pool.free) == (0, 1)
    assert pool.alloc() == frame and pool.read(frame, 0, 4) == bytes(4)  # reused only now, zeroed


class _NodeUnmapsMidWrite(DirectPath):
    """A writer whose page the node unmaps just after the writer checked its entry, while the
    writer holds its lock (the node cannot have it, so it clears the entry and holds the frame)."""

    node_table: TaskTable

    def _entry(self, vpn, flags):
        got = super()._entry(vpn, flags)
        self.node_table.unmap([vpn])
        return got

    def _span(self, vaddr, length, flags):
        span = super()._span(vaddr, length, flags)
        self.node_table.unmap(range(vaddr // PAGE, (vaddr + length - 1) // PAGE + 1))
        return span


@pytest.mark.parametrize("how", ["one page", "a range", "a fill"])
def test_a_write_whose_page_was_unmapped_while_it_copied_goes_again_by_message_and_charges_nothing(pair, how):
    pool, table, path = pair
    frames = [pool.alloc() for _ in range(2)]
    for i, f in enumerate(frames):
        table.publish(VPN + i, f, pool.generation[f], writable=True)
    writer = _NodeUnmapsMidWrite(os.getpid(), pool.fd, pool.frames, table.fd, PAGE)
    writer.node_table = table
    try:
        if how == "one page":
            assert writer.write(VADDR + 8, b"new") is False
        elif how == "a range":
            assert writer.write(VADDR + PAGE - 2, b"new") is False
        else:
            assert writer.touch(VADDR, 2 * PAGE, True, 0x6E) is None
        assert table.take() == (0, 0, 0, 0)  # the message that writes again charges it
        held = frames if how != "one page" else frames[:1]
        assert table.held == held and len(table.live) == 2 - len(held)
        landed = {"one page": (b"new", b"\0"), "a range": (b"ne", b"w"), "a fill": (b"n" * 2, b"n")}[how]
        assert (pool.read(frames[0], 8, 3) if how == "one page" else pool.read(frames[0], PAGE - 2, 2),
                pool.read(frames[1], 0, 1)) == landed  # harmless: those frames are held until the writer let go
        for f in frames:
            pool.free_frame(f)
        assert pool.held == len(held)
        assert table.settle() and pool.held == 0 and pool.free == pool.frames  # the writer let go of its lock
    finally:
        writer.close()


def test_a_table_closed_during_a_direct_write_stays_open_until_the_write_ends():
    pool = FramePool(4, PAGE)
    table = TaskTable(1, pool, 80.0, 10.0, True)
    path = DirectPath(os.getpid(), pool.fd, pool.frames, table.fd, PAGE)
    try:
        frame = pool.alloc()
        table.publish(VPN, frame, pool.generation[frame], writable=True)
        fcntl.flock(path.lock_fd, fcntl.LOCK_EX)
        assert table.close() is False and path.closed and table.held == [frame]
        os.fstat(table.fd)  # kept open: settle needs its lock
        assert not table.settle()
        fcntl.flock(path.lock_fd, fcntl.LOCK_UN)
        fd = table.fd
        assert table.settle() and pool.held == 0
        with pytest.raises(OSError):
            os.fstat(fd)
    finally:
        path.close()
        pool.close()


def test_switching_off_unmaps_everything_and_a_closed_table_says_so(pair):
    pool, table, path = pair
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    table.set_enabled(False)
    assert path.read(VADDR, 8) is None and not path.closed
    table.set_enabled(True)
    assert path.read(VADDR, 8) is None  # nothing published again yet
    table.set_cost(100.0, 10.0)
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    assert path.read(VADDR, 10) == bytes(10)
    assert table.take()[0] == 101  # the new cost applies to the next access
    table.unmap_all()
    table.q[dm.H_ENABLED] = dm.CLOSED
    assert path.closed


def test_a_replica_read_counts_a_hit_and_a_write_of_the_node_under_way_is_waited_out(pair):
    pool, table, path = pair
    frame = pool.alloc()
    pool.write(frame, 0, b"copy")
    table.publish(VPN, frame, pool.generation[frame], writable=False, replica=True)
    assert path.read(VADDR, 4) == b"copy" and path.read(VADDR, PAGE + 0) == b"copy" + bytes(PAGE - 4)
    assert table.take()[1:] == (2, 0, 2)
    pool.version[2 * frame + dm.NODE_HALF] += 1  # the node in the middle of a write to the frame
    assert path.read(VADDR, 4) is None and path.read(VADDR, 2) is None
    pool.version[2 * frame + dm.NODE_HALF] += 1
    assert path.read(VADDR, 4) == b"copy"


def test_bad_arguments_take_the_message_path_which_answers_them(pair):
    pool, table, path = pair
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    for vaddr, length in ((VADDR, 0), (VADDR, -1), (-VADDR, 8), (float(VADDR), 8), (VADDR, 8.0), (VADDR, True)):
        assert path.read(vaddr, length) is None
        assert path.touch(vaddr, length, False, None) is None
    for data in (5, "text", None, b""):
        assert path.write(VADDR, data) is False
    assert path.touch(VADDR, 8, False, 1.5) is None
    assert path.write(VADDR, memoryview(b"ab")) and path.read(VADDR, 2) == b"ab"


@pytest.mark.parametrize("order", ["consecutive", "scattered"])
def test_a_range_is_checked_a_column_at_a_time_with_the_same_bytes_and_charges_as_page_by_page(order):
    pool = FramePool(64, PAGE)
    table = TaskTable(1, pool, 80.0, 10.0, True)
    path = DirectPath(os.getpid(), pool.fd, pool.frames, table.fd, PAGE)
    try:
        frames = [pool.alloc() for _ in range(20)]
        frames = sorted(frames) if order == "consecutive" else sorted(frames)[::-1]
        for i, f in enumerate(frames):
            pool.write(f, 0, bytes([i + 1]) * PAGE)
            table.publish(VPN + i, f, pool.generation[f], writable=True)
        length = 19 * PAGE - 300  # a part of the first page and of the last
        expect = b"".join(bytes([i + 1]) * PAGE for i in range(20))[100:100 + length]
        assert path.read(VADDR + 100, length) == expect
        assert path.write(VADDR + 100, b"w" * length)
        assert pool.read(frames[0], 0, 101) == b"\x01" * 100 + b"w" and pool.read(frames[19], 0, 1) == b"\x14"
        cost = CostModel([[80]], [[10 * 1e9 / 1048576]], PAGE)
        per_page = [PAGE - 100] + [PAGE] * 17 + [length - (PAGE - 100) - 17 * PAGE]
        assert table.take()[:3] == (2 * sum(cost.access_ns(0, 0, n) for n in per_page), 1, 1)
        assert path.touch(VADDR, 20 * PAGE, write=False, fill=9) == 20
        assert pool.read(frames[7], 0, PAGE) == b"\x09" * PAGE
        pool.free_frame(frames[10])  # a frame freed (its generation moves) under a published entry
        assert path.read(VADDR, 20 * PAGE) is None and not path.write(VADDR, b"x" * 20 * PAGE)
    finally:
        path.close()
        table.close()
        pool.close()


def test_a_range_across_the_end_of_the_table_wraps_around_to_its_start(pair):
    pool, table, path = pair
    vpn = dm.ENTRIES * 0x7F1 - 2  # its last two entries, then the first two
    frames = [pool.alloc() for _ in range(4)]
    for i, f in enumerate(frames):
        pool.write(f, 0, bytes([i + 1]) * PAGE)
        table.publish(vpn + i, f, pool.generation[f], writable=True)
    assert path.read(vpn * PAGE, 4 * PAGE) == b"".join(bytes([i + 1]) * PAGE for i in range(4))
    table.unmap([vpn + 3])
    assert path.read(vpn * PAGE, 4 * PAGE) is None
    assert path.read(vpn * PAGE, 3 * PAGE) == b"".join(bytes([i + 1]) * PAGE for i in range(3))


def test_a_run_published_at_once_reads_writes_and_unmaps_as_pages_published_one_by_one(pair):
    pool, table, path = pair
    frames = [pool.alloc() for _ in range(5)]
    for i, f in enumerate(frames):
        pool.write(f, 0, bytes([i + 1]) * PAGE)
    table.publish_run(VPN, frames, [pool.generation[f] for f in frames], [1, 1, 0, 1, 1])
    assert path.read(VADDR, 5 * PAGE) == b"".join(bytes([i + 1]) * PAGE for i in range(5))
    assert path.write(VADDR + PAGE, b"w") and not path.write(VADDR + 2 * PAGE, b"w")  # page 2 is clean: read-only
    assert pool.read(frames[1], 0, 2) == b"w\x02"
    table.unmap([VPN + 4])
    assert path.read(VADDR + 4 * PAGE, 1) is None and path.read(VADDR + 3 * PAGE, 1) == b"\x04"
    assert sorted(table.live.values()) == [VPN + i for i in range(4)]


def _task_half(pool: FramePool, frame: int) -> int:
    return pool.version[2 * frame + dm.TASK_HALF]


@pytest.mark.parametrize("how", ["one page", "a range", "a fill"])
def test_a_direct_write_of_a_shared_page_leaves_its_half_of_the_version_even_and_moved(pair, how):
    pool, table, path = pair
    frames = [pool.alloc() for _ in range(2)]
    for i, f in enumerate(frames):
        table.publish(VPN + i, f, pool.generation[f], writable=True, shared=True)
    if how == "one page":
        assert path.write(VADDR + 8, b"12345678")
    elif how == "a range":
        assert path.write(VADDR, b"w" * (2 * PAGE))
    else:
        assert path.touch(VADDR, 2 * PAGE, True, 7) == 2
    written = frames[:1] if how == "one page" else frames
    assert [_task_half(pool, f) for f in frames] == [2 if f in written else 0 for f in frames]
    assert [pool.version[2 * f + dm.NODE_HALF] for f in frames] == [0, 0]  # the node's half is the node's


def test_a_private_page_written_directly_keeps_its_version(pair):
    pool, table, path = pair
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    assert path.write(VADDR, b"x" * PAGE) and pool.versions[frame] == 0  # only its task reads it


def test_readers_wait_out_a_direct_write_of_a_shared_page_and_a_writer_killed_inside_one_is_evened(pair):
    pool, table, path = pair
    frame = pool.alloc()
    pool.write(frame, 0, b"old!")
    table.publish(VPN, frame, pool.generation[frame], writable=True, shared=True)
    pool.version[2 * frame + dm.TASK_HALF] += 1  # a task of the node inside a direct write of the frame
    assert path.read(VADDR, 4) is None  # another task's direct read copies again, then asks the node
    assert pool.read_stable(frame, 0, 4) is None  # and so does the node
    assert not path.write(VADDR, b"new!")  # no second writer: the grant's holder is inside a write
    table.unmap([VPN])  # the node takes the grant back; no lock held: the writer died inside its write
    assert _task_half(pool, frame) == 2 and table.held == []
    assert pool.read_stable(frame, 0, 4) == b"old!"


def test_the_node_holds_a_shared_frame_until_the_writer_inside_a_write_lets_go(pair):
    pool, table, path = pair
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True, shared=True)
    fcntl.flock(path.lock_fd, fcntl.LOCK_EX)  # inside its write (or stopped there)
    pool.version[2 * frame + dm.TASK_HALF] += 1
    table.unmap([VPN])
    assert pool.is_held(frame) and _task_half(pool, frame) == 1  # its half stays its own until it lets go
    pool.version[2 * frame + dm.TASK_HALF] += 1
    fcntl.flock(path.lock_fd, fcntl.LOCK_UN)
    assert table.settle() and not pool.is_held(frame) and _task_half(pool, frame) == 2
