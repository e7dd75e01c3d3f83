"""A task's page table in shared memory, on its home node: the entries its direct path may use
(protocol/directmap.py has the layout and the rules).

The home node is the only writer. It publishes an entry for a private page of its own pool when
it serves an access to it, and unmaps it through `unmap` before anything changes the page's
mapping: migration, the migration cache, munmap, a task move, NUMA-balancing hinting, the direct
path switched off. Every change of a task's mapping goes through `TaskTable.unmap` (or
`unmap_all`): an entry the node does not know to be safe is simply not there, and the task asks
by message.

Unmapping never waits for the task (a task stopped inside a direct write would stall the node's
loop): it tries the task's write lock without blocking. Got, no direct write is in flight. Not
got, the entries are cleared all the same, and the frames of the writable ones are held in the
pool (never reused, even once freed) until the lock can be had: at the next unmap, the task's
next request, a timer (`settle`). The writer finds its entry moved when it checks again after
letting go of the lock, and writes again by message, wherever the page is then.
"""
from __future__ import annotations

import fcntl
import logging
import mmap
import os
from array import array
from collections.abc import Iterable, Sequence

from numa_emu.nodes.framepool import FramePool
from numa_emu.protocol import directmap as dm

log = logging.getLogger("node.directmap")
NOTHING = (0, 0, 0, 0)
_WRITABLE = dm.PRESENT | dm.WRITABLE  # TaskTable.take when the task made no direct access since the last call


class TaskTable:
    def __init__(self, task_id: int, pool: FramePool, latency_ns: float, bytes_per_ns: float, enabled: bool):
        """`pool`: this node's frame pool, which holds the frames a direct write may still reach."""
        self.task_id = task_id
        self.pool = pool
        self.held: list[int] = []  # frames held in the pool: cleared while the task held its write lock
        self.closing = False  # closed while frames were held: the memfd stays open until `settle` lets go
        self.fd = os.memfd_create(f"numa-emu-pagetable-{task_id}", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, dm.TABLE_BYTES)
        self.mem = mmap.mmap(self.fd, dm.TABLE_BYTES)
        self.q = memoryview(self.mem).cast("Q")
        self.live: dict[int, int] = {}  # entry base word -> the vpn published there (what unmap must clear)
        self.folded = [0, 0, 0, 0]  # what of the task's counters (H_DIRECT_NS...) its node has counted already
        self.q[dm.H_MAGIC] = dm.MAGIC
        self.set_cost(latency_ns, bytes_per_ns)
        self.set_enabled(enabled)

    # ---- header -------------------------------------------------------------------------
    def set_cost(self, latency_ns: float, bytes_per_ns: float) -> None:
        """The local access cost the task charges itself from its next access on."""
        q = self.q
        q[dm.H_COST_SEQ] += 1
        q[dm.H_LATENCY] = dm.double_bits(latency_ns)
        q[dm.H_BYTES_PER_NS] = dm.double_bits(bytes_per_ns)
        q[dm.H_COST_SEQ] += 1

    def set_enabled(self, on: bool) -> None:
        if not on:
            self.unmap_all()
        self.q[dm.H_ENABLED] = dm.ON if on else dm.OFF

    def take(self) -> tuple[int, int, int, int]:
        """(virtual ns, reads, writes, replica hits) of the task's direct accesses since the last call."""
        now = self.q[dm.H_DIRECT_NS:dm.H_REPL_HITS + 1].tolist()
        if now == self.folded:  # the common case of a message: nothing direct since the last one
            return NOTHING
        delta, self.folded = tuple(a - b for a, b in zip(now, self.folded)), now
        return delta

    # ---- entries ------------------------------------------------------------------------
    def publish(self, vpn: int, frame: int, generation: int, writable: bool, replica: bool = False,
                shared: bool = False) -> None:
        """Map virtual page `vpn` to a frame of this node's pool (evicting whatever used its slot:
        a page whose entry is gone only takes the message path). `shared`: other tasks may read
        the frame, so a direct write of it makes the frame's version odd around its copy."""
        q, base = self.q, dm.entry_base(vpn)
        seq = q[base]
        q[base] = seq + 1
        q[base + dm.E_TAG] = vpn + 1
        q[base + dm.E_FRAME] = frame | generation << 32
        q[base + dm.E_FLAGS] = (dm.PRESENT | (dm.WRITABLE if writable else 0) | (dm.REPLICA if replica else 0)
                                | (dm.SHARED if shared else 0))
        q[base] = seq + 2
        self.live[base] = vpn

    def publish_run(self, vpn: int, frames: Sequence[int], gens: Sequence[int], dirty: Sequence[int]) -> None:
        """publish() for the private pages vpn, vpn + 1, ... (writable where dirty is 1): each
        column of the entries written as one strided slice, the seqs odd before and even after."""
        n, q = len(frames), self.q
        i0 = vpn & (dm.ENTRIES - 1)
        if i0 + n > dm.ENTRIES:  # the run wraps around the table's end: one at a time
            for i in range(n):
                self.publish(vpn + i, frames[i], gens[i], dirty[i] == 1)
            return
        b0 = dm.HEADER_WORDS + i0 * dm.ENTRY_WORDS
        b1 = b0 + n * dm.ENTRY_WORDS
        seqs = q[b0:b1:dm.ENTRY_WORDS].tolist()
        q[b0:b1:dm.ENTRY_WORDS] = array("Q", [s + 1 for s in seqs])
        q[b0 + dm.E_TAG:b1:dm.ENTRY_WORDS] = array("Q", range(vpn + 1, vpn + n + 1))
        q[b0 + dm.E_FRAME:b1:dm.ENTRY_WORDS] = array("Q", [f | g << 32 for f, g in zip(frames, gens)])
        q[b0 + dm.E_FLAGS:b1:dm.ENTRY_WORDS] = array("Q", [_WRITABLE if d == 1 else dm.PRESENT for d in dirty])
        q[b0:b1:dm.ENTRY_WORDS] = array("Q", [s + 2 for s in seqs])
        self.live.update(zip(range(b0, b1, dm.ENTRY_WORDS), range(vpn, vpn + n)))

    def unmap(self, vpns: Iterable[int]) -> None:
        """Take pages out of the table; returns once no direct write to them can be in flight."""
        todo = []
        for vpn in vpns:
            base = dm.entry_base(vpn)
            if self.live.get(base) == vpn:
                todo.append(base)
        if todo:
            self._clear(todo)

    def unmap_all(self) -> None:
        if self.live:
            self._clear(list(self.live))

    def _clear(self, bases: list[int]) -> None:
        q, locked, writable = self.q, self._try_lock(), []
        for base in bases:
            if q[base + dm.E_FLAGS] & dm.WRITABLE:
                writable.append(q[base + dm.E_FRAME] & 0xFFFFFFFF)
            seq = q[base]
            q[base] = seq + 1
            q[base + dm.E_TAG] = 0
            q[base + dm.E_FLAGS] = 0
            q[base] = seq + 2
            del self.live[base]
        # Not got: a direct write in flight, or its task stopped inside one. Tried again, which is
        # also a full barrier (a syscall): the cleared entries are visible before the caller
        # copies or frees a frame, so the writer's check after its copy sees them moved.
        if not locked and not self._try_lock():
            if writable:
                self.pool.hold(writable)
                self.held += writable
                log.info("task %d holds its direct write lock: %d frame(s) held until it lets go", self.task_id,
                         len(writable))
            return
        self._let_go(writable)

    def _try_lock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _let_go(self, cleared: Sequence[int] = ()) -> None:
        """Holding the lock: no direct write is in flight, so no frame needs holding any more,
        and the version halves of the frames it could write are even again (`cleared`: frames of
        writable entries just cleared; a task killed inside a write left its half odd)."""
        try:
            for frame in cleared:
                self.pool.end_task_write(frame)
            if self.held:
                for frame in self.held:
                    self.pool.end_task_write(frame)
                self.pool.let_go(self.held)
                self.held = []
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def settle(self) -> bool:
        """Let go of the held frames if no direct write is in flight now (a closed table then
        closes for good); True when nothing is held any more."""
        if self.held and self._try_lock():
            self._let_go()
            if self.closing:
                self._release()
        return not self.held

    def close(self) -> bool:
        """The task left this node: nothing of it may be used any more. False while frames are
        held: `settle` closes it once they are let go."""
        self.unmap_all()
        self.q[dm.H_ENABLED] = dm.CLOSED
        if self.held:
            self.closing = True
            return False
        self._release()
        return True

    def release(self) -> None:
        """Free the table's memory and memfd now, held frames or not (the node ends)."""
        if self.fd >= 0:
            self._release()

    def _release(self) -> None:
        self.q.release()
        self.mem.close()
        os.close(self.fd)
        self.fd = -1
