"""A node taken out of service and brought back (`numa-emu node offline N` / `online N`;
docs/linux-semantics.md#node-offline, docs/protocol.md#node-offline), the node's side:

- node.set_offline: the offline nodes leave every zonelist here (the kernel rebuilds its
  zonelists without a node whose memory went offline), so no new allocation lands on them; every
  task's placement cache is dropped. Online again, the zonelists built at start come back.
- node.evacuate N (check): what would keep this node's tasks' private pages on N (a bind to N
  alone). The coordinator asks every node before it changes anything: EBUSY, nothing moved.
- node.evacuate N: this node's tasks' private pages on N move where their policies now place
  them (nearest allowed node first); on N itself, the masters of shared pages it holds move to
  the nearest online node with room (their directory homes move them, every mapping shot down)
  and its replicas are dropped (the masters serve their readers).
Pure: no sockets; generators yield protocol.effects.Call as every handler does.
"""
from __future__ import annotations

import logging

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.migration import Migration
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.reclaim import Reclaim
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import nodestate as ns

log = logging.getLogger("node.offline")


class NodeOffline:
    def __init__(self, core: NodeCore, mm: MemoryManager, migration: Migration, reclaim: Reclaim):
        self.core = core
        self.mm = mm
        self.migration = migration
        self.reclaim = reclaim
        self.offline: frozenset[int] = frozenset()

    def handlers(self) -> dict:
        return {"node.set_offline": self.set_offline, "node.evacuate": self.evacuate}

    def set_offline(self, msg: ns.NodeSetOffline) -> Ok:
        c = self.core
        if not isinstance(msg.offline, list) or not all(isinstance(n, int) and 0 <= n < c.n_nodes for n in msg.offline):
            raise NumaEmuError(ErrorCode.EINVAL, f"node.set_offline: {msg.offline!r} is not a list of nodes")
        self.offline = frozenset(msg.offline)
        c.set_offline(self.offline)
        for task in self.mm.tasks.values():
            task.placements.clear()
        log.info("node %d: offline nodes now %s", c.node_id, sorted(self.offline))
        return Ok()

    def evacuate(self, msg: ns.NodeEvacuate):
        c = self.core
        if not isinstance(msg.node, int) or not 0 <= msg.node < c.n_nodes:
            raise NumaEmuError(ErrorCode.EINVAL, f"node.evacuate: no node {msg.node!r}")
        if msg.check:
            problems = [f"task {t.task_id} has {n} page(s) bound to node {msg.node} alone"
                        for t in self.mm.tasks.values() if (n := self.migration.stuck_on(t, msg.node))]
            return ns.EvacuateReply(problems=problems)
        return self._evacuate(msg.node)

    def _evacuate(self, node: int):
        c = self.core
        moved = failed = dropped = 0
        for task in list(self.mm.tasks.values()):
            m, f = yield from self.mm.locked(task, self.migration.evacuate_task(task, node))
            moved, failed = moved + m, failed + f
        if node == c.node_id:
            m, f = yield from self._masters_away()
            moved, failed = moved + m, failed + f
            while c.replica_frames:
                freed = yield from self.reclaim.shrink(len(c.replica_frames), "direct", replicas_only=True)
                if not freed:
                    break
                dropped += freed
            failed += len(c.replica_frames)
        return ns.EvacuateReply(problems=[], moved=moved, failed=failed, replicas_dropped=dropped)

    def _masters_away(self):
        """Every master this node holds, to the nearest online node that takes it."""
        c = self.core
        moved = failed = 0
        for frame, (obj, idx) in list(c.master_frames.items()):
            if c.master_frames.get(frame) != (obj, idx):
                continue  # moved or freed meanwhile
            for target in c.fallback[c.node_id]:
                if target == c.node_id or target in c.dead:
                    continue
                status = yield from self.migration.move_master(obj, idx, target, "offline")
                if status == target:
                    moved += 1
                    break
            else:
                failed += 1
        return moved, failed
