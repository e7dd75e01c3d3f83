"""The shared-memory layouts of the direct path (docs/design.md#direct-access): a node's frame pool
as tasks map it, and a task's page table, written only by its home node and read by the task.

Both are memfds of the node; a task of the same user opens them through /proc/<node pid>/fd/<fd>
(the kernel's ptrace check keeps other users out) and maps them shared.

Frame pool file: frames x page_size bytes of frames, then one u32 generation per frame (bumped
when the frame is freed), one u32 version per frame (odd while the node writes the frame: a
shared page another task writes is read again if a write overlapped the copy), then one
referenced byte per frame (reclaim's accessed bit).

Page-table file: u64 words. A header (HEADER_WORDS), then a direct-mapped table of ENTRIES
entries of 4 words, indexed by the virtual page number modulo ENTRIES (a software TLB: an entry
not present sends the access to the home node, which is always right):
    seq    even when stable, odd while the node rewrites the entry (a seqlock)
    tag    virtual page number + 1 (0: empty)
    frame  frame number | generation << 32 (the generation the page was mapped with)
    flags  PRESENT, WRITABLE, REPLICA (a read of it is a replica hit)
Shared pages (shm, file mappings, replicas) are published read-only: their writes are messages.
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
MAGIC = 0x4E554D4144495231  # "NUMADIR1"
OFF, ON, CLOSED = 0, 1, 2  # H_ENABLED: vm.direct_access off or on; CLOSED: the task left, ask the home node again
ENTRY_WORDS = 4
ENTRIES = 1 << 18  # 1 GiB of 4 KiB pages; the file is committed lazily, so untouched entries cost nothing
E_SEQ, E_TAG, E_FRAME, E_FLAGS = 0, 1, 2, 3
PRESENT, WRITABLE, REPLICA = 1, 2, 4
READ_RETRIES = 8  # a read that keeps meeting a rewrite takes the message path instead

TABLE_BYTES = (HEADER_WORDS + ENTRIES * ENTRY_WORDS) * 8


def pool_bytes(frames: int, page_size: int) -> int:
    """The size of a frame pool file: frames, generations, versions, referenced bytes."""
    return frames * page_size + frames * 8 + frames


def generations_offset(frames: int, page_size: int) -> int:
    return frames * page_size


def versions_offset(frames: int, page_size: int) -> int:
    return frames * page_size + frames * 4


def referenced_offset(frames: int, page_size: int) -> int:
    return frames * page_size + frames * 8


def entry_base(vpn: int) -> int:
    """The first word of the entry that virtual page number `vpn` uses."""
    return HEADER_WORDS + (vpn & (ENTRIES - 1)) * ENTRY_WORDS


def double_bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def bits_double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]
