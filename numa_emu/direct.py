"""A task's direct path: reads and writes of its pages on its home node without a message, through
the node's frame pool and the task's page table in shared memory (protocol/directmap.py).

An access goes direct only when every page it touches has a present entry (a write: a writable
one) whose frame still has the generation the entry was made with; anything else returns None
(or False) and the caller sends the message, as it always did. A read copies, then checks the
entry's seqlock and the frame's generation again, and retries a bounded number of times. A write
holds the table's flock around the check and the copy, which the home node takes before it
unmaps a page. Each direct access charges the task what its home node would have charged
(protocol.costmodel.transfer_ns with the local latency and bandwidth the node publishes).
"""
from __future__ import annotations

import fcntl
import mmap
import os
import select
import time

from protocol import directmap as dm
from protocol.costmodel import transfer_ns

# How stale a direct access may be about its home node's death: the node's process is checked at
# most this often (a pidfd poll is a syscall; an access is a few hundred nanoseconds).
LIVENESS_CHECK_S = 0.01


class DirectPath:
    def __init__(self, pid: int, pool_fd: int, frames: int, table_fd: int, page_size: int):
        if page_size & (page_size - 1):
            raise ValueError(f"page size {page_size} is not a power of two")
        self.ps, self.shift, self.frames = page_size, page_size.bit_length() - 1, frames
        fd = os.open(f"/proc/{pid}/fd/{pool_fd}", os.O_RDWR | os.O_CLOEXEC)
        try:
            self.pool = mmap.mmap(fd, dm.pool_bytes(frames, page_size))
        finally:
            os.close(fd)
        # kept open: flock on this open file description is the task's write lock
        self.lock_fd = os.open(f"/proc/{pid}/fd/{table_fd}", os.O_RDWR | os.O_CLOEXEC)
        self.table = mmap.mmap(self.lock_fd, dm.TABLE_BYTES)
        self.q = memoryview(self.table).cast("Q")
        if self.q[dm.H_MAGIC] != dm.MAGIC:
            self.close()
            raise ValueError("not a numa-emu page table")
        self.pv = memoryview(self.pool)
        goff = dm.generations_offset(frames, page_size)
        self.gens = self.pv[goff:goff + 4 * frames].cast("I")
        self.ref = self.pv[dm.referenced_offset(frames, page_size):]
        self.pidfd = os.pidfd_open(pid)
        self.checked = time.monotonic()
        self.dead = False
        self.cost_seq = -1
        self.latency, self.bytes_per_ns = 0.0, 1.0

    @property
    def closed(self) -> bool:
        """The home node let go of this table (the task moved): ask it again for a new one."""
        return self.q[dm.H_ENABLED] == dm.CLOSED

    def _usable(self) -> bool:
        q = self.q
        if q[dm.H_ENABLED] != dm.ON or self.dead:
            return False
        if q[dm.H_COST_SEQ] != self.cost_seq:
            self._load_cost()
        now = time.monotonic()
        if now - self.checked > LIVENESS_CHECK_S:
            self.checked = now
            if select.select([self.pidfd], [], [], 0)[0]:  # the node's process ended: its memory is gone
                self.dead = True
                return False
        return True

    def _load_cost(self) -> None:
        q = self.q
        while True:
            seq = q[dm.H_COST_SEQ]
            latency, bpn = dm.bits_double(q[dm.H_LATENCY]), dm.bits_double(q[dm.H_BYTES_PER_NS])
            if not seq & 1 and q[dm.H_COST_SEQ] == seq:
                self.latency, self.bytes_per_ns, self.cost_seq = latency, bpn, seq
                return

    def _charge(self, sizes: list[int], counter: int) -> None:
        lat, bpn, q = self.latency, self.bytes_per_ns, self.q
        q[dm.H_DIRECT_NS] += sum(round(transfer_ns(lat, bpn, n)) for n in sizes)
        q[counter] += 1

    def _entry(self, vpn: int, flags: int) -> tuple[int, int, int, int] | None:
        """(seq, entry base, frame, generation) of a present entry with `flags`, stable; None if absent."""
        q = self.q
        base = dm.entry_base(vpn)
        for _ in range(dm.READ_RETRIES):
            seq = q[base]
            if seq & 1:
                continue
            tag, fw, fl = q[base + 1], q[base + 2], q[base + 3]
            if q[base] != seq:
                continue
            if tag != vpn + 1 or fl & flags != flags:
                return None
            frame, gen = fw & 0xFFFFFFFF, fw >> 32
            if frame >= self.frames or self.gens[frame] != gen:
                return None
            return seq, base, frame, gen
        return None

    def read(self, vaddr: int, length: int) -> bytes | None:
        """The bytes, or None: take the message path."""
        if length <= 0 or vaddr < 0 or not self._usable():
            return None
        ps, shift = self.ps, self.shift
        off = vaddr & (ps - 1)
        if off + length <= ps:  # the common case: within one page
            vpn = vaddr >> shift
            for _ in range(dm.READ_RETRIES):
                got = self._entry(vpn, dm.PRESENT)
                if got is None:
                    return None
                seq, base, frame, gen = got
                start = frame * ps + off
                data = self.pool[start:start + length]
                if self.gens[frame] == gen and self.q[base] == seq:  # not rewritten nor freed meanwhile
                    self.ref[frame] = 1
                    self._charge([length], dm.H_READS)
                    return data
            return None
        out = bytearray(length)
        sizes, pos = [], 0
        while pos < length:
            vpn, off = divmod(vaddr + pos, ps)
            n = min(ps - off, length - pos)
            for _ in range(dm.READ_RETRIES):
                got = self._entry(vpn, dm.PRESENT)
                if got is None:
                    return None
                seq, base, frame, gen = got
                start = frame * ps + off
                out[pos:pos + n] = self.pv[start:start + n]
                if self.gens[frame] == gen and self.q[base] == seq:
                    self.ref[frame] = 1
                    break
            else:
                return None
            sizes.append(n)
            pos += n
        self._charge(sizes, dm.H_READS)
        return bytes(out)

    def write(self, vaddr: int, data: bytes) -> bool:
        """Write `data` at `vaddr` if every page of it is mapped writable here; False: send the message."""
        length = len(data)
        if length <= 0 or vaddr < 0 or not self._usable():
            return False
        ps, pieces, pos = self.ps, [], 0
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)  # the node unmaps only holding it (protocol/directmap.py)
        try:
            while pos < length:
                vpn, off = divmod(vaddr + pos, ps)
                n = min(ps - off, length - pos)
                got = self._entry(vpn, dm.PRESENT | dm.WRITABLE)
                if got is None:
                    return False
                pieces.append((got[2], off, pos, n))
                pos += n
            src = memoryview(data)
            for frame, off, pos, n in pieces:
                start = frame * ps + off
                self.pv[start:start + n] = src[pos:pos + n]
                self.ref[frame] = 1
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        self._charge([n for _f, _o, _p, n in pieces], dm.H_WRITES)
        return True

    def close(self) -> None:
        for view in ("gens", "ref", "pv", "q"):
            if hasattr(self, view):
                getattr(self, view).release()
        self.table.close()
        os.close(self.lock_fd)
        if hasattr(self, "pool"):
            self.pool.close()
        if hasattr(self, "pidfd"):
            os.close(self.pidfd)
