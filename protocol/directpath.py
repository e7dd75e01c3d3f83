"""A task's direct path: reads and writes of its pages on its home node without a message, through
the node's frame pool and the task's page table in shared memory (protocol/directmap.py). The
client API's tasks use it (numa_emu/api.py), and so do the simulator's (sim/tasks.py).

An access goes direct only when every page it touches has a present entry (a write: a writable
one) whose frame still has the generation the entry was made with; anything else returns None
(or False) and the caller sends the message, as it always did. A read copies, then checks the
entry's seqlock and the frame's generation again, and retries a bounded number of times. A write
holds the table's flock around the check and the copy; the home node tries it before it unmaps a
page and, when it cannot have it, unmaps all the same and holds the old frames from reuse. So
after the copy the writer lets go of the lock (a syscall: a full barrier) and checks its entries
again: moved, the node may have taken the frame under it, and the write is sent as a message
(its bytes in the old frame are harmless: held, then freed). Each direct access charges the task what its home node would have charged
(protocol.costmodel.transfer_ns with the local latency and bandwidth the node publishes).
"""
from __future__ import annotations

import fcntl
import mmap
import os
import select
import time
from array import array
from dataclasses import dataclass

from numa_emu.protocol import directmap as dm
from numa_emu.protocol.costmodel import TOUCH_BYTES, transfer_ns

# How stale a direct access may be about its home node's death: the node's process is checked at
# most this often (a pidfd poll is a syscall; an access is a few hundred nanoseconds).
LIVENESS_CHECK_S = 0.01
_INDEX_MASK = dm.ENTRIES - 1
_monotonic = time.monotonic
_POPULATE_PAGES = 16  # a run of this many frames is mapped in with one madvise
_MADV_POPULATE_READ, _MADV_POPULATE_WRITE = 22, 23  # Linux 5.14 (in the mmap module from Python 3.13)
_ENTRY_BYTES = dm.ENTRY_WORDS * 8
_ODD_VERSION = dm.ODD
_TABLE_START = dm.HEADER_WORDS * 8
_ODD = bytes(i & 1 for i in range(256))  # a byte -> 1 if odd: bytes.translate checks a column of seqs at once
# entry flags -> the set of flag words that have them all
_FLAGS_OK = {want: frozenset(v for v in range(16) if v & want == want)
             for want in (dm.PRESENT, dm.PRESENT | dm.WRITABLE)}


@dataclass(slots=True)
class _Span:
    """The entries of a range of pages as DirectPath._span found them."""
    vaddr: int
    length: int
    count: int  # pages
    first: int  # byte offset of the first entry in the table
    cut: tuple[int, int, int] | None  # where the entries wrap around the table's end, if they do
    raw: bytes  # the entries' bytes, as read
    frames: list[int]
    f0: int  # the first frame if the frames follow each other, else -1
    gens: list[int]
    vers: bytes | list[int]  # the frames' version words (bytes when consecutive)
    flags: list[int]


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
        voff = dm.versions_offset(frames, page_size)
        self.vers = self.pv[voff:voff + 8 * frames].cast("Q")  # both halves: what a reader checks
        self.halves = self.pv[voff:voff + 8 * frames].cast("I")  # 2 * frame + dm.TASK_HALF: a direct writer's
        self.ref = self.pv[dm.referenced_offset(frames, page_size):]
        self.pidfd = os.pidfd_open(pid)
        self.next_check = 0.0
        self.dead = False
        self.cost_seq = -1
        self.latency, self.bytes_per_ns = 0.0, 1.0
        self.costs: dict[int, int] = {}  # bytes -> ns, for the cost in force
        self.populate = True

    @property
    def closed(self) -> bool:
        """The home node let go of this table (the task moved), or died: drop it (the mappings
        would keep a dead node's memory alive) and, if the node lives, ask for a new one."""
        return self.dead or self.q[dm.H_ENABLED] == dm.CLOSED

    def charged(self) -> int:
        """Virtual ns this table's direct accesses charged so far."""
        return self.q[dm.H_DIRECT_NS]

    def counts(self) -> tuple[int, int]:
        """(reads, writes) this table served directly (the node's task stats count every table's)."""
        return self.q[dm.H_READS], self.q[dm.H_WRITES]

    def _usable(self) -> bool:
        """The slow half of the gate every access passes (inlined in read and write): the switch,
        the cost in force, and at most every LIVENESS_CHECK_S whether the node still lives."""
        q = self.q
        if self.dead or q[dm.H_ENABLED] != dm.ON:
            return False
        if q[dm.H_COST_SEQ] != self.cost_seq:
            self._load_cost()
        now = time.monotonic()
        if now > self.next_check:
            self.next_check = now + LIVENESS_CHECK_S
            if select.select([self.pidfd], [], [], 0)[0]:  # the node's process ended: its memory is gone
                self.dead = True
                self.cost_seq = -1  # keeps every access on the slow half of the gate
                return False
        return True

    def _load_cost(self) -> None:
        q = self.q
        while True:
            seq = q[dm.H_COST_SEQ]
            latency, bpn = dm.bits_double(q[dm.H_LATENCY]), dm.bits_double(q[dm.H_BYTES_PER_NS])
            if not seq & 1 and q[dm.H_COST_SEQ] == seq:
                self.latency, self.bytes_per_ns, self.cost_seq = latency, bpn, seq
                self.costs: dict[int, int] = {}
                return

    def _cost(self, nbytes: int) -> int:
        """What the home node charges for a local access of `nbytes` (protocol.costmodel)."""
        ns = self.costs.get(nbytes)
        if ns is None:
            ns = self.costs[nbytes] = round(transfer_ns(self.latency, self.bytes_per_ns, nbytes))
        return ns

    def _entry(self, vpn: int, flags: int) -> tuple[int, int, int, int, int, int] | None:
        """(seq, entry base, frame, generation, frame version, flags) of a present entry with
        `flags`, stable and with no write of the node under way; None if absent."""
        q = self.q
        base = dm.HEADER_WORDS + (vpn & _INDEX_MASK) * dm.ENTRY_WORDS
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
            version = self.vers[frame]
            if version & _ODD_VERSION:
                continue
            return seq, base, frame, gen, version, fl
        return None

    def _span(self, vaddr: int, length: int, flags: int) -> _Span | None:
        """The entries of every page of the range, present with `flags`, stable, with their frames'
        generations, and no write of the node under way; None: take the message path. Checked a
        whole column at a time (slices of one copy of the entries), not a page at a time."""
        shift = self.shift
        vpn0 = vaddr >> shift
        count = ((vaddr + length - 1) >> shift) - vpn0 + 1
        if count > dm.ENTRIES:
            return None
        i0 = vpn0 & _INDEX_MASK
        first = (dm.HEADER_WORDS + i0 * dm.ENTRY_WORDS) * 8
        wrap = max(0, i0 + count - dm.ENTRIES)  # entries after the end of the table, from its start again
        cut = (first + (count - wrap) * _ENTRY_BYTES, _TABLE_START, _TABLE_START + wrap * _ENTRY_BYTES)
        ok = _FLAGS_OK[flags]
        for _ in range(dm.READ_RETRIES):
            table = self.table
            raw = table[first:cut[0]] + table[cut[1]:cut[2]] if wrap else table[first:cut[0]]
            if 1 in raw[0::_ENTRY_BYTES].translate(_ODD):  # the low byte of each seq: one being rewritten
                continue
            words, halves = memoryview(raw).cast("Q"), memoryview(raw).cast("I")
            fl = words[3::4].tolist()
            if words[1::4].tolist() != list(range(vpn0 + 1, vpn0 + count + 1)) or not set(fl) <= ok:
                return None
            frames, gens = halves[4::8].tolist(), halves[5::8].tolist()
            f0 = frames[0]
            if frames == list(range(f0, f0 + count)):  # consecutive frames (a fresh region): whole slices
                if f0 + count > self.frames or self.gens[f0:f0 + count].tolist() != gens:
                    return None
                vers = self.vers[f0:f0 + count].tobytes()
                if 1 in vers[0::4].translate(_ODD):
                    continue
            else:
                if max(frames) >= self.frames or [self.gens[f] for f in frames] != gens:
                    return None
                vers = [self.vers[f] for f in frames]
                if any(v & _ODD_VERSION for v in vers):
                    continue
                f0 = -1
            span = _Span(vaddr, length, count, first, cut if wrap else None, raw, frames, f0, gens, vers, fl)
            if self._entries_still(span):  # the copy of the entries was not torn by a rewrite (a seqlock read)
                return span
        return None

    def _entries_still(self, span: _Span) -> bool:
        table, first, cut = self.table, span.first, span.cut
        if cut is None:
            return table[first:first + len(span.raw)] == span.raw
        return table[first:cut[0]] + table[cut[1]:cut[2]] == span.raw

    def _still(self, span: _Span) -> bool:
        """No entry of `span` was rewritten, no frame freed and none written by the node since."""
        if not self._entries_still(span):
            return False
        f0, count = span.f0, span.count
        if f0 >= 0:
            return self.gens[f0:f0 + count].tolist() == span.gens and self.vers[f0:f0 + count].tobytes() == span.vers
        gens, vers = self.gens, self.vers
        return [gens[f] for f in span.frames] == span.gens and [vers[f] for f in span.frames] == span.vers

    def _runs(self, span: _Span, write: bool = True) -> list[list[int]]:
        """(pool offset, bytes) runs: pages whose frames follow each other make one copy."""
        ps = self.ps
        off = span.vaddr & (ps - 1)
        if span.f0 >= 0:
            runs = [[span.f0 * ps + off, span.length]]
        else:
            runs, pos, length = [], 0, span.length
            for frame in span.frames:
                start = frame * ps + off
                n = min(ps - off, length - pos)
                if runs and runs[-1][0] + runs[-1][1] == start:
                    runs[-1][1] += n
                else:
                    runs.append([start, n])
                pos, off = pos + n, 0
        if span.count >= _POPULATE_PAGES and self.populate:
            self._populate(runs, _MADV_POPULATE_WRITE if write else _MADV_POPULATE_READ)
        return runs

    def _accessed(self, span: _Span, page_bytes: int | None = None) -> int:
        """Set the frames' referenced bytes; what the node would charge for the span, a page at a
        time (`page_bytes` each, or the bytes of each page the access covers)."""
        count = span.count
        if span.f0 >= 0:
            self.ref[span.f0:span.f0 + count] = b"\x01" * count
        else:
            ref = self.ref
            for frame in span.frames:
                ref[frame] = 1
        cost = self._cost
        if page_bytes is not None:
            return cost(page_bytes) * count
        ps = self.ps
        head = min(ps - (span.vaddr & (ps - 1)), span.length)
        if count == 1:
            return cost(head)
        tail = (span.vaddr + span.length) & (ps - 1) or ps
        return cost(head) + cost(ps) * (count - 2) + cost(tail)

    def _shared_halves(self, span: _Span) -> list[int] | slice:
        """The task halves of the versions of the shared pages' frames in `span`, which a write
        makes odd around its copy (_bump before and after): other tasks' direct reads, and the
        node's, wait for it or copy again."""
        flags = span.flags
        if not any(f & dm.SHARED for f in flags):
            return []
        if span.f0 >= 0 and all(f & dm.SHARED for f in flags):  # consecutive frames: one strided slice
            return slice(2 * span.f0 + dm.TASK_HALF, 2 * (span.f0 + span.count), 2)
        return [2 * frame + dm.TASK_HALF for frame, f in zip(span.frames, flags) if f & dm.SHARED]

    def _bump(self, halves: list[int] | slice) -> None:
        """Each of these version halves one further (odd: a write begins; even: it ended)."""
        view = self.halves
        if isinstance(halves, slice):
            view[halves] = array("I", [(v + 1) & 0xFFFFFFFF for v in view[halves].tolist()])
            return
        for half in halves:
            view[half] = (view[half] + 1) & 0xFFFFFFFF

    def _populate(self, runs: list, advice: int) -> None:
        # one madvise maps a long run's pages in this process at once, instead of a fault per page
        try:
            for start, n in runs:
                if n < _POPULATE_PAGES * self.ps:
                    continue  # a short run: the faults cost what the call would
                first = start - start % mmap.PAGESIZE
                self.pool.madvise(advice, first, start + n - first)
        except OSError:
            self.populate = False  # a kernel before 5.14

    def read(self, vaddr: int, length: int) -> bytes | None:
        """The bytes, or None: take the message path (which also answers bad arguments)."""
        q = self.q
        if type(vaddr) is not int or type(length) is not int or length <= 0 or vaddr < 0:
            return None
        if (q[dm.H_ENABLED] != dm.ON or q[dm.H_COST_SEQ] != self.cost_seq or _monotonic() > self.next_check) \
                and not self._usable():
            return None
        ps = self.ps
        off = vaddr & (ps - 1)
        if off + length <= ps:  # the common case: within one page, inline
            vpn = vaddr >> self.shift
            base = dm.HEADER_WORDS + (vpn & _INDEX_MASK) * dm.ENTRY_WORDS
            for _ in range(dm.READ_RETRIES):
                seq = q[base]
                tag, fw, fl = q[base + 1], q[base + 2], q[base + 3]
                if seq & 1 or q[base] != seq:
                    continue
                if tag != vpn + 1:
                    return None
                frame, gen = fw & 0xFFFFFFFF, fw >> 32
                if frame >= self.frames:
                    return None
                version = self.vers[frame]
                start = frame * ps + off
                data = self.pool[start:start + length]
                # not rewritten, freed or written by the node meanwhile
                if self.gens[frame] == gen and q[base] == seq and not version & _ODD_VERSION \
                        and self.vers[frame] == version:
                    self.ref[frame] = 1
                    q[dm.H_DIRECT_NS] += self._cost(length)
                    q[dm.H_READS] += 1
                    if fl & dm.REPLICA:
                        q[dm.H_REPL_HITS] += 1
                    return data
            return None
        for _ in range(dm.READ_RETRIES):
            span = self._span(vaddr, length, dm.PRESENT)
            if span is None:
                return None
            pv = self.pv
            runs = self._runs(span, write=False)
            if len(runs) == 1:
                data = pv[runs[0][0]:runs[0][0] + length].tobytes()  # the one copy
            else:
                data = b"".join([pv[start:start + n] for start, n in runs])
            if self._still(span):
                q[dm.H_DIRECT_NS] += self._accessed(span)
                q[dm.H_READS] += 1
                hits = sum(span.flags.count(v) for v in set(span.flags) if v & dm.REPLICA)
                if hits:
                    q[dm.H_REPL_HITS] += hits
                return data
        return None

    def write(self, vaddr: int, data: bytes) -> bool:
        """Write `data` at `vaddr` if every page of it is mapped writable here; False: send the message."""
        if type(vaddr) is not int or not isinstance(data, (bytes, bytearray, memoryview)) or vaddr < 0:
            return False
        if isinstance(data, memoryview) and not (data.c_contiguous and data.itemsize == 1 and data.ndim == 1):
            return False  # the message path copies it into bytes
        length, q = len(data), self.q
        if length <= 0:
            return False
        if (q[dm.H_ENABLED] != dm.ON or q[dm.H_COST_SEQ] != self.cost_seq or _monotonic() > self.next_check) \
                and not self._usable():
            return False
        ps = self.ps
        off = vaddr & (ps - 1)
        if off + length <= ps:  # the common case: within one page
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)  # what the node tries before it unmaps (protocol/directmap.py)
            try:
                got = self._entry(vaddr >> self.shift, dm.PRESENT | dm.WRITABLE)
                if got is None:
                    return False
                start = got[2] * ps + off
                if got[5] & dm.SHARED:  # others may read it: odd around the copy, as the node's writes are
                    halves, half = self.halves, 2 * got[2] + dm.TASK_HALF
                    version = halves[half]
                    halves[half] = (version + 1) & 0xFFFFFFFF
                    self.pv[start:start + length] = data
                    halves[half] = (version + 2) & 0xFFFFFFFF
                else:
                    self.pv[start:start + length] = data
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)  # a barrier: the copy is visible before the check below
            if q[got[1]] != got[0]:  # unmapped while it copied: the frame may be another page's now
                return False
            self.ref[got[2]] = 1
            q[dm.H_DIRECT_NS] += self._cost(length)
            q[dm.H_WRITES] += 1
            return True
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            span = self._span(vaddr, length, dm.PRESENT | dm.WRITABLE)
            if span is None:
                return False
            shared = self._shared_halves(span)
            self._bump(shared)
            src, pv, pos = memoryview(data), self.pv, 0
            for start, n in self._runs(span):
                pv[start:start + n] = src[pos:pos + n]
                pos += n
            self._bump(shared)
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        if not self._entries_still(span):  # an entry unmapped while it copied: all of it again, by message
            return False
        q[dm.H_DIRECT_NS] += self._accessed(span)
        q[dm.H_WRITES] += 1
        return True

    def touch(self, vaddr: int, length: int, write: bool, fill: int | None) -> int | None:
        """Touch present pages as the home node would (one cache line of each, or `fill` every
        byte); the pages touched, or None if one of them is not mapped here (as needed)."""
        q = self.q
        if type(vaddr) is not int or type(length) is not int or length <= 0 or vaddr < 0 \
                or not (fill is None or type(fill) is int):
            return None
        if (q[dm.H_ENABLED] != dm.ON or q[dm.H_COST_SEQ] != self.cost_seq or _monotonic() > self.next_check) \
                and not self._usable():
            return None
        ps = self.ps
        first, end = vaddr - vaddr % ps, vaddr + length
        span = end - first + (-(end - first)) % ps  # whole pages, as the node touches them
        writing = write or fill is not None
        if writing:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            pages = self._span(first, span, dm.PRESENT | (dm.WRITABLE if writing else 0))
            if pages is None:
                return None
            if fill is not None:
                shared = self._shared_halves(pages)
                self._bump(shared)
                page, pv = bytes([fill]) * ps, self.pv
                for start, n in self._runs(pages):
                    pv[start:start + n] = page * (n // ps)
                self._bump(shared)
        finally:
            if writing:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        if fill is not None and not self._entries_still(pages):  # unmapped while it filled: by message
            return None
        q[dm.H_DIRECT_NS] += self._accessed(pages, ps if fill is not None else TOUCH_BYTES)
        return pages.count

    def close(self) -> None:
        for view in ("gens", "vers", "halves", "ref", "pv", "q"):
            if hasattr(self, view):
                getattr(self, view).release()
        self.table.close()
        os.close(self.lock_fd)
        if hasattr(self, "pool"):
            self.pool.close()
        if hasattr(self, "pidfd"):
            os.close(self.pidfd)
