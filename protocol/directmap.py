"""The shared-memory layouts of the direct path (docs/design.md#direct-access): a node's frame pool
as tasks map it, and a task's page table, written only by its home node and read by the task.

Both are memfds of the node; a task of the same user opens them through /proc/<node pid>/fd/<fd>
(the kernel's ptrace check keeps other users out) and maps them shared.

Frame pool file: frames x page_size bytes of frames, then one u64 version per frame, then one u32
generation per frame (bumped when the frame is freed), then one referenced byte per frame
(reclaim's accessed bit). A version is two u32 halves, each with one writer, each odd while its
writer writes the frame: the low half the node's (pool.write), the high half the task's that holds
the frame's direct-write grant (a shared page written by several tasks has at most one at a time:
the node hands the grant over only once the last holder can no longer be writing). A reader
copies, then checks that the version was even and did not move; the node reads such a frame the
same way (FramePool.read_stable).

Page-table file: u64 words. A header (HEADER_WORDS), then a direct-mapped table of ENTRIES
entries of 4 words, indexed by the virtual page number modulo ENTRIES (a software TLB: an entry
not present sends the access to the home node, which is always right):
    seq    even when stable, odd while the node rewrites the entry (a seqlock)
    tag    virtual page number + 1 (0: empty)
    frame  frame number | generation << 32 (the generation the page was mapped with)
    flags  PRESENT, WRITABLE, REPLICA (a read of it is a replica hit), SHARED (a page other tasks
           may read: a direct write makes the frame's version odd around its copy)
Shared pages (shm, file mappings) are published writable only to the one task of the node that
holds the write grant of a master its node may write (the directory's writer, no replica):
replicas and pages write-protected by their directory (writeback, replication) are read-only.
The task adds what its direct accesses cost to H_DIRECT_NS (only the task writes it, only the
node reads it and folds it into the task's clock). The node writes the local access cost
(latency ns and bytes per ns as IEEE doubles) under the H_COST_SEQ seqlock.

Writes: the task holds flock(LOCK_EX) on its own open of the page-table file around each direct
write (the entry checked under it), then lets go and checks the entry's seq again: moved, the
write is sent again as a message. The node tries the same lock (LOCK_NB, never waiting: a task
stopped inside a write must not stall it) before it unmaps an entry it published. Got, no write is
in flight. Not got, it clears the entries all the same and holds the frames of the writable ones
from reuse until it gets the lock, so that no direct write lands in a frame after the node reused
it, and the writer's check finds its entry moved. flock is a syscall: a full barrier on both sides
(x86 may pass a store over a later load), and the kernel drops it when its holder dies (kill -9
leaves no lock held).
"""
from __future__ import annotations

import struct

HEADER_WORDS = 16
H_MAGIC, H_ENABLED, H_COST_SEQ, H_LATENCY, H_BYTES_PER_NS = 0, 1, 2, 3, 4
H_DIRECT_NS, H_READS, H_WRITES, H_REPL_HITS = 8, 9, 10, 11  # written by the task only
MAGIC = 0x4E554D4144495232  # "NUMADIR2" (the layout with two-writer versions)
OFF, ON, CLOSED = 0, 1, 2  # H_ENABLED: vm.direct_access off or on; CLOSED: the task left, ask the home node again
ENTRY_WORDS = 4
ENTRIES = 1 << 18  # 1 GiB of 4 KiB pages; the file is committed lazily, so untouched entries cost nothing
E_SEQ, E_TAG, E_FRAME, E_FLAGS = 0, 1, 2, 3
PRESENT, WRITABLE, REPLICA, SHARED = 1, 2, 4, 8
READ_RETRIES = 8  # a read that keeps meeting a rewrite takes the message path instead

TABLE_BYTES = (HEADER_WORDS + ENTRIES * ENTRY_WORDS) * 8
ODD = 1 | 1 << 32  # a version with either half odd: a write of the frame is under way
NODE_HALF, TASK_HALF = 0, 1  # index of a frame's halves in a u32 view of the versions: 2 * frame + half


def pool_bytes(frames: int, page_size: int) -> int:
    """The size of a frame pool file: frames, versions, generations, referenced bytes."""
    return frames * page_size + frames * 12 + frames


def versions_offset(frames: int, page_size: int) -> int:
    return frames * page_size  # u64 aligned


def generations_offset(frames: int, page_size: int) -> int:
    return frames * page_size + frames * 8


def referenced_offset(frames: int, page_size: int) -> int:
    return frames * page_size + frames * 12


def entry_base(vpn: int) -> int:
    """The first word of the entry that virtual page number `vpn` uses."""
    return HEADER_WORDS + (vpn & (ENTRIES - 1)) * ENTRY_WORDS


def double_bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def bits_double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]
