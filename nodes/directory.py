"""This node's shard of the shared-page directory (docs/design.md#memory-model; IVY's fixed
distributed manager): one entry per shared page (shm or page-cache) whose hash lands here.

An entry holds the master copy, the replicas, the reverse map (which home node maps which copy,
and which hold it writable), the dirty bit, a version (bumped by every write access), an epoch
(bumped whenever a copy goes away or loses write permission) and the page lock. The protocol
that changes entries lives in nodes/replication.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from numa_emu.nodes.locks import PageLock


@dataclass
class DirEntry:
    node: int = -1  # master copy: node, frame and its generation (-1 until allocated)
    frame: int = 0
    gen: int = 0
    replicas: dict[int, tuple[int, int]] = field(default_factory=dict)  # node -> (frame, generation)
    born_ns: dict[int, int] = field(default_factory=dict)  # replica node -> creation time
    mappers: dict[int, int] = field(default_factory=dict)  # home node -> node of the copy it maps
    writers: set[int] = field(default_factory=set)  # home nodes that map the master writable
    dirty: bool = False
    version: int = 0
    epoch: int = 0
    lock: PageLock = field(default_factory=PageLock)
    # thrash control: a replica zapped soon after it was made backs replication off
    backoff_level: int = 0
    backoff_until_ns: int = 0
    # a node's death (docs/protocol.md#a-nodes-death): the node a dirty master died with, until
    # the next access reports it (-1: none); an entry rebuilt from the survivors' announcements
    lost_with: int = -1
    rebuilt: bool = False
    # replica nodes whose teardown a locked collapse has sent (their frames freed with the
    # shootdowns) and not yet forgotten: the unsafe ordering must not free them a second time
    collapsing: set[int] = field(default_factory=set)

    def copy_of(self, mapper: int) -> tuple[int, int, int, bool]:
        """The copy `mapper` should use: (node, frame, generation, is_replica)."""
        if mapper in self.replicas:
            frame, gen = self.replicas[mapper]
            return mapper, frame, gen, True
        return self.node, self.frame, self.gen, False


class Directory:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], DirEntry] = {}
        # Epochs only grow, across a page's entries too: a home node discards answers older than
        # the last shootdown it saw, so an entry made after a dropped one (truncate, reclaim)
        # starts at the highest epoch a dropped entry of its object reached.
        self.epoch_floor: dict[str, int] = {}

    def entry(self, obj: str, idx: int) -> DirEntry:
        key = (obj, idx)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = DirEntry(epoch=self.epoch_floor.get(obj, 0))
        return entry

    def drop(self, obj: str, idx: int, entry: DirEntry) -> None:
        """Forget `entry` (its page has no copy left), unless a fresh one replaced it meanwhile."""
        self.epoch_floor[obj] = max(self.epoch_floor.get(obj, 0), entry.epoch)
        if self.entries.get((obj, idx)) is entry:
            del self.entries[(obj, idx)]

    def of_object(self, obj: str | None) -> list[tuple[tuple[str, int], DirEntry]]:
        return [(k, e) for k, e in self.entries.items() if obj is None or k[0] == obj]

    def replica_count(self) -> int:
        return sum(len(e.replicas) for e in self.entries.values())
