"""No lost write: every read a task completes returns the bytes of a write that completed before
the read began and was not overwritten before it began (or the initial bytes when there was
none), or of a write that overlapped the read (docs/protocol.md#invariants, 3). Once a node has
died, a shared page may read any value ever written to it or its initial bytes (a write not
written back may die with its node); private memory keeps the strict rule (its lost pages fail
with EIO).

Registers are 8 bytes, named by object and offset ("f@4096": file f at offset 4096; "t3@64": task
3's private memory; "shm:race@8"); the times are a logical clock of operation starts and ends.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from numa_emu.sim.network import Violation


@dataclass
class Write:
    start: int
    end: int | None  # None while in flight
    value: bytes


class History:
    def __init__(self) -> None:
        self.clock = itertools.count()
        self.initial: dict[str, bytes] = {}
        self.writes: dict[str, list[Write]] = {}
        self.reads = 0
        # A node died: a write not yet written back may die with it (reported once with EIO, then
        # reads give the stored bytes), so a read may give any value ever written, never another.
        self.crashed = False
        self.untracked: set[str] = set()  # objects written otherwise than in registers: their reads are not checked
        # private memory: a page lost with its node fails every access with EIO (docs/protocol.md#a-nodes-death),
        # so its reads keep the strict rule after a death too
        self.private: set[str] = set()

    def untrack(self, prefix: str) -> None:
        self.untracked.add(prefix)

    def now(self) -> int:
        return next(self.clock)

    def write_begins(self, key: str, value: bytes) -> Write:
        w = Write(self.now(), None, value)
        self.writes.setdefault(key, []).append(w)
        return w

    def write_ends(self, w: Write) -> None:
        w.end = self.now()

    def read_ends(self, key: str, start: int, value: bytes, who: str) -> None:
        end = self.now()
        if key.rsplit("@", 1)[0] in self.untracked:
            return
        self.reads += 1
        writes = self.writes.get(key, [])
        before = [w for w in writes if w.end is not None and w.end < start]
        allowed = {w.value for w in before if not any(o.start > w.end for o in before)}
        if not before:
            allowed.add(self.initial.get(key, bytes(len(value))))
        allowed.update(w.value for w in writes if w.start < end and (w.end is None or w.end > start))
        if self.crashed and key.rsplit("@", 1)[0] not in self.private:
            allowed.update(w.value for w in writes)
            allowed.add(self.initial.get(key, bytes(len(value))))
        if value not in allowed:
            raise Violation(f"lost write: {who} read {key} = {value.hex()}, expected one of "
                            f"{', '.join(sorted(v.hex() for v in allowed))}")
