"""A task's page table in shared memory, on its home node: the entries its direct path may use
(protocol/directmap.py has the layout and the rules).

The home node is the only writer. It publishes an entry for a private page of its own pool when
it serves an access to it, and unmaps it through `unmap` before anything changes the page's
mapping: migration, the migration cache, munmap, a task move, NUMA-balancing hinting, the direct
path switched off. Every change of a task's mapping goes through `TaskTable.unmap` (or
`unmap_all`): an entry the node does not know to be safe is simply not there, and the task asks
by message. Unmapping takes the task's write lock first, so a direct write in flight finishes
before the node goes on, and none starts on the old entry after.
"""
from __future__ import annotations

import fcntl
import logging
import mmap
import os
from collections.abc import Iterable

from numa_emu.protocol import directmap as dm

log = logging.getLogger("node.directmap")


class TaskTable:
    def __init__(self, task_id: int, latency_ns: float, bytes_per_ns: float, enabled: bool):
        self.task_id = task_id
        self.fd = os.memfd_create(f"numa-emu-pagetable-{task_id}", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, dm.TABLE_BYTES)
        self.mem = mmap.mmap(self.fd, dm.TABLE_BYTES)
        self.q = memoryview(self.mem).cast("Q")
        self.live: dict[int, int] = {}  # entry base word -> the vpn published there (what unmap must clear)
        self.folded = (0, 0, 0, 0)  # what of the task's counters (H_DIRECT_NS...) its node has counted already
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
        q = self.q
        now = q[dm.H_DIRECT_NS], q[dm.H_READS], q[dm.H_WRITES], q[dm.H_REPL_HITS]
        delta, self.folded = tuple(a - b for a, b in zip(now, self.folded)), now
        return delta

    # ---- entries ------------------------------------------------------------------------
    def publish(self, vpn: int, frame: int, generation: int, writable: bool, replica: bool = False) -> None:
        """Map virtual page `vpn` to a frame of this node's pool (evicting whatever used its slot:
        a page whose entry is gone only takes the message path)."""
        q, base = self.q, dm.entry_base(vpn)
        seq = q[base]
        q[base] = seq + 1
        q[base + dm.E_TAG] = vpn + 1
        q[base + dm.E_FRAME] = frame | generation << 32
        q[base + dm.E_FLAGS] = dm.PRESENT | (dm.WRITABLE if writable else 0) | (dm.REPLICA if replica else 0)
        q[base] = seq + 2
        self.live[base] = vpn

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
        q = self.q
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a direct write in flight (protocol/directmap.py): a copy's length, unless stopped
            log.info("waiting for task %d's direct write to finish before unmapping %d page(s)", self.task_id,
                     len(bases))
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            for base in bases:
                seq = q[base]
                q[base] = seq + 1
                q[base + dm.E_TAG] = 0
                q[base + dm.E_FLAGS] = 0
                q[base] = seq + 2
                del self.live[base]
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """The task left this node: nothing of it may be used any more."""
        self.unmap_all()
        self.q[dm.H_ENABLED] = dm.CLOSED
        self.q.release()
        self.mem.close()
        os.close(self.fd)
