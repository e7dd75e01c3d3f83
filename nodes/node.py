"""One NUMA node's memory manager as one object: its services, built with explicit constructor
arguments, and one handler table. No sockets, clocks or processes: the node server
(nodes/server.py) runs it behind real sockets, and a simulator can run several in one process
(docs/design.md#pure-cores-and-effects).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from nodes.balancing import Balancer
from nodes.core import NodeCore, node_dest
from nodes.directory import Directory
from nodes.files import FileOps
from nodes.framepool import FramePool
from nodes.frames import FrameService
from nodes.mempolicy import PolicyOps
from nodes.migration import Migration
from nodes.mm import MemoryManager
from nodes.offline import NodeOffline
from nodes.pcache import PageCacheView
from nodes.reclaim import Reclaim
from nodes.replication import Replication
from nodes.store import Store
from nodes.sysctl import NodeControl
from nodes.taskmove import TaskMoves
from protocol.effects import Call
from protocol.messages import lifecycle as lc
from protocol.messages import pagecache as pc
from protocol.messages import tasks as tm

log = logging.getLogger("node")


class HandlerTable(dict):
    """Message kind -> handler. Registering a kind twice is an error: two services that both
    answer one message is a wiring mistake, found when the node is built."""

    def add(self, kind: str, handler: Callable[[Any], Any]) -> None:
        if kind in self:
            raise ValueError(f"two handlers for {kind!r}: {self[kind]!r} and {handler!r}")
        self[kind] = handler

    def add_all(self, table: dict[str, Callable[[Any], Any]]) -> None:
        for kind, handler in table.items():
            self.add(kind, handler)


class Node:
    """A node's services around its frame pool; `handlers` answers every message a node serves
    except the server's own (sockets, heartbeats, latency and fault tables, tracing)."""

    def __init__(self, node_id: int, topology: dict, pool: FramePool, store: Store, clock_ns: Callable[[], int]):
        self.node_id = node_id
        self.pool = pool
        self.core = NodeCore(node_id, topology, pool, clock_ns=clock_ns, store=store)
        self.pcache = PageCacheView(self.core)
        self.replication = Replication(self.core, Directory(), self.pcache.shootdown)
        self.pcache.replication = self.replication
        self.mm = MemoryManager(self.core, self.pcache)
        self.migration = Migration(self.core, self.mm, self.replication)
        self.balancing = Balancer(self.core, self.migration, self.pcache)
        self.mm.use_hinting(self.balancing)
        self.reclaim = Reclaim(self.core, self.replication.reclaim)
        self.core.use_reclaim(self.reclaim.shrink)
        self.handlers = HandlerTable()
        for table in (FrameService(self.core).handlers(), self.replication.handlers(), self.pcache.handlers(),
                      self.mm.handlers(), PolicyOps(self.core, self.mm).handlers(),
                      FileOps(self.core, self.mm).handlers(), TaskMoves(self.core, self.mm).handlers(),
                      NodeControl(self.core, self.mm, {**self.balancing.appliers(), **self.migration.appliers()}).handlers(),
                      self.migration.handlers(), NodeOffline(self.core, self.mm, self.migration, self.reclaim).handlers()):
            self.handlers.add_all(table)
        self.handlers.add("node.stats", self.on_stats)

    def on_stats(self, msg: tm.NodeStats) -> tm.NodeStatsReply:
        core = self.core
        return tm.NodeStatsReply(node_id=self.node_id, numastat=dict(core.numastat), vmstat=core.vmstat(),
                                 frames_free=self.pool.free, frames_total=self.pool.frames, tasks=self.mm.task_pages(),
                                 repl_lifetimes=dict(core.repl_lifetimes))

    def latency_mode(self, real: bool) -> None:
        """The injection mode in force: `real` runs balancing's scan periods on the wall clock."""
        self.balancing.use_wall_clock(real)

    def kswapd(self):
        """One round of background reclaim (nodes/reclaim.py), run outside every handler."""
        return self.reclaim.kswapd()

    def retry_frees(self):
        """Frees a peer did not confirm (nodes.core.retry_frees), sent again."""
        return self.core.retry_frees()

    def peers_up(self, nodes: list[int], shardless: list[int]) -> None:
        """Peers that are (again) alive, and those that hold no directory shard."""
        for node in nodes:
            self.core.dead.pop(node, None)
        self.core.shardless.update(n for n in shardless if 0 <= n < self.core.n_nodes)

    def node_down(self, msg: lc.NodeDown):
        """A peer is dead: the copies it held are unmapped here, and the directory entries it held
        are rebuilt from what this node announces to their new homes
        (docs/protocol.md#a-nodes-death). A generator to run outside the handler, or None when
        there is nothing to do (the node is this one, unknown, or already dead)."""
        node = msg.node_id
        if node == self.node_id or not 0 <= node < self.core.n_nodes or node in self.core.dead:
            return None
        log.warning("node %d: node %d is dead (%s)", self.node_id, node, msg.why)
        held_shard = node not in self.core.shardless  # a node that died before and came back held none
        self.core.dead[node] = msg.why
        self.core.unfreed.pop(node, None)  # its frames died with it (and a restarted node starts empty)
        self.core.shardless.add(node)
        lost = self.mm.node_died(node)
        if lost:
            log.warning("node %d: %d private page(s) of its tasks died with node %d", self.node_id, lost, node)
        records = self.pcache.node_died(node, held_shard)
        return self._after_death(node, records)

    def _after_death(self, node: int, records: dict[int, list[dict]]):
        calls = []
        for home, recs in records.items():
            rebuild = pc.DirRebuild(sender=self.node_id, records=recs)
            if home == self.node_id:
                yield from self.replication.rebuild(rebuild)
            else:
                calls.append(Call(node_dest(home), rebuild))
        if calls:
            yield calls
        yield from self.replication.node_died(node)
