"""The direct path's shared page table and its reader, in one process: the node side
(nodes/directmap.py, nodes/framepool.py) and the task side (numa_emu/direct.py) opened on the
same memfds through /proc/self/fd, as a task opens its home node's."""
from __future__ import annotations

import fcntl
import os
import threading

import pytest

from numa_emu.nodes.directmap import TaskTable
from numa_emu.nodes.framepool import FramePool
from numa_emu.direct import DirectPath
from numa_emu.protocol import directmap as dm
from numa_emu.protocol.costmodel import CostModel

PAGE = 4096
VPN = 0x7F0000000  # the page of MMAP_BASE
VADDR = VPN * PAGE


@pytest.fixture
def pair():
    pool = FramePool(8, PAGE)
    table = TaskTable(1, 80.0, 10.0, True)
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


def test_the_node_unmaps_only_after_a_direct_write_in_flight_let_go_of_the_lock(pair):
    pool, table, path = pair
    frame = pool.alloc()
    table.publish(VPN, frame, pool.generation[frame], writable=True)
    fcntl.flock(path.lock_fd, fcntl.LOCK_EX)  # the task in the middle of a direct write
    done = threading.Event()
    unmapper = threading.Thread(target=lambda: (table.unmap([VPN]), done.set()))
    unmapper.start()
    assert not done.wait(0.2)  # the node waits for the write to finish
    assert path._entry(VPN, dm.PRESENT | dm.WRITABLE) is not None
    fcntl.flock(path.lock_fd, fcntl.LOCK_UN)
    unmapper.join(10)
    assert done.is_set()
    assert not path.write(VADDR, b"x")


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
    pool.version[frame] += 1  # the node in the middle of a write to the frame
    assert path.read(VADDR, 4) is None and path.read(VADDR, 2) is None
    pool.version[frame] += 1
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
