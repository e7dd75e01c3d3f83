"""This node's shard of the shared-page directory (DESIGN.md, Shared pages; IVY's fixed
distributed manager): one entry per shared page whose hash lands here, holding the master copy,
the home nodes that map it, a dirty bit, a version and the page lock.

Replicas, shootdowns and collapse (the replicated page cache) grow from here in a later issue;
today an entry has one copy, the master, which every mapper uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from nodes.core import NodeCore
from nodes.locks import PageLock
from nodes.placement import place
from protocol.errors import ErrorCode, NumaEmuError
from protocol.messages import Ok
from protocol.messages import memory as mm
from protocol.policy import Policy


@dataclass
class DirEntry:
    node: int = -1  # master copy: node and frame (-1 until allocated)
    frame: int = 0
    mappers: dict[int, int] = field(default_factory=dict)  # home node -> number of task mappings
    dirty: bool = False
    version: int = 0
    lock: PageLock = field(default_factory=PageLock)


class Directory:
    def __init__(self, core: NodeCore):
        self.core = core
        self.entries: dict[tuple[str, int], DirEntry] = {}

    def handlers(self) -> dict:
        return {"dir.fault": self.fault, "dir.unmap": self.unmap}

    def fault(self, msg: mm.DirFault):
        c = self.core
        if not (0 <= msg.mapper < c.n_nodes and 0 <= msg.task_node < c.n_nodes) or msg.idx < 0:
            raise NumaEmuError(ErrorCode.EINVAL, "dir.fault: bad node or page index")
        key = (msg.obj, msg.idx)
        entry = self.entries.setdefault(key, DirEntry())
        yield from entry.lock.acquire()
        try:
            if entry.node < 0:
                policy = Policy.from_wire(msg.policy)
                placement = place(policy, task_node=msg.task_node, allowed=frozenset(msg.allowed) & c.possible, fallback_orders=c.fallback,
                                  interleave_index=msg.interleave_index, weights=c.weights)
                got = yield from c.allocate(placement, 1, msg.task_node)
                if not got:
                    raise NumaEmuError(ErrorCode.ENOMEM, f"no node of the policy has a free frame for {msg.obj}:{msg.idx}")
                entry.node, entry.frame = got[0]
            entry.mappers[msg.mapper] = entry.mappers.get(msg.mapper, 0) + 1
            if msg.write:
                entry.dirty = True
                entry.version += 1
            return mm.DirFaultReply(node=entry.node, frame=entry.frame)
        finally:
            entry.lock.release()

    def unmap(self, msg: mm.DirUnmap) -> Ok:
        for idx in msg.idx:
            entry = self.entries.get((msg.obj, int(idx)))
            if entry is not None and msg.mapper in entry.mappers:
                entry.mappers[msg.mapper] -= 1
                if entry.mappers[msg.mapper] <= 0:
                    del entry.mappers[msg.mapper]
        return Ok()
