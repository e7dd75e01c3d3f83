"""One NUMA node's memory manager as one object: its services, built with explicit constructor
arguments, and one handler table. No sockets, clocks or processes: the node server
(nodes/server.py) runs it behind real sockets, and a simulator can run several in one process
(docs/design.md#pure-cores-and-effects).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from numa_emu.nodes.balancing import Balancer
from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.directory import Directory
from numa_emu.nodes.files import FileOps
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.frames import FrameService
from numa_emu.nodes.master_move import MasterMove
from numa_emu.nodes.mempolicy import PolicyOps
from numa_emu.nodes.migration import Migration
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.offline import NodeOffline
from numa_emu.nodes.pagemove import MigrationTunables, PageMoves
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.nodes.reclaim import Reclaim
from numa_emu.nodes.replication import Replication, ReplicationTunables
from numa_emu.nodes.store import RemoteStore, Store
from numa_emu.nodes.sysctl import NodeControl
from numa_emu.nodes.taskmove import TaskMoves
from numa_emu.protocol.effects import Call, Spawn
from numa_emu.protocol.messages import REGISTRY, Message, Notice, Request
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.routing import node_dest

log = logging.getLogger("node")


class HandlerTable(dict):
    """Message class -> handler: the one table of a node. A kind string names its class
    (protocol.messages.REGISTRY). Registering a message twice is an error: two services that
    both answer one message is a wiring mistake, found when the node is built."""

    def add(self, message: str | type[Message], handler: Callable[[Any], Any]) -> None:
        cls = REGISTRY.get(message) if isinstance(message, str) else message
        if cls is None or not issubclass(cls, (Request, Notice)):
            raise ValueError(f"{message!r} is not a request or notice of protocol.messages")
        if cls in self:
            raise ValueError(f"two handlers for {cls.kind!r}: {self[cls]!r} and {handler!r}")
        self[cls] = handler

    def add_all(self, table: dict[str, Callable[[Any], Any]]) -> None:
        for kind, handler in table.items():
            self.add(kind, handler)

    def by_kind(self) -> dict[str, Callable[[Any], Any]]:
        """The same table keyed by the kind each message carries on the wire (what a reactor dispatches on)."""
        return {cls.kind: handler for cls, handler in self.items()}


class Node:
    """A node's services around its frame pool; `handlers` answers every message a node serves
    except the server's own (sockets, heartbeats, latency and fault tables, tracing).

    Each service gets what it uses as constructor arguments, in the order below; none is handed
    another after construction. A call a service makes to this node itself is a Call like any
    other, answered from `handlers` by the effect runner (protocol.effects.answer_locally)."""

    def __init__(self, node_id: int, topology: dict, pool: FramePool, store: Store | RemoteStore, clock_ns: Callable[[], int]):
        self.node_id = node_id
        self.pool = pool
        # Direct reclaim (nodes/reclaim.py) needs the core's frame lists, and the core's
        # allocation walk needs direct reclaim: the walk gets this narrow callable.
        self.core = core = NodeCore(node_id, topology, pool, clock_ns=clock_ns, store=store,
                                    reclaim=self._direct_reclaim)
        tasks: dict = {}  # this node's tasks: the memory manager's, and the page cache's reverse map's
        # read by several services, set by one (nodes.sysctl)
        files, tunables, move_tunables = FileTable(), ReplicationTunables(), MigrationTunables()
        self.pcache = PageCacheView(core, tasks)
        self.replication = Replication(core, Directory(), files, tunables)
        self.moves = PageMoves(core, self.pcache, move_tunables)
        # balancing moves pages through the shared moves; the memory manager ticks its scanner
        # and hands it the marked pages a task touches
        self.balancing = Balancer(core, self.moves, self.pcache)
        self.mm = MemoryManager(core, self.pcache, tasks, self.moves, files, tunables, hinting=self.balancing)
        self.migration = Migration(core, self.mm, self.pcache, self.moves, move_tunables)
        self.reclaim = Reclaim(core)
        self.handlers = HandlerTable()
        for service in (files, FrameService(core), self.replication, MasterMove(core, self.replication), self.pcache,
                        self.mm, PolicyOps(core, self.mm, self.migration), FileOps(core, self.mm, self.pcache, files),
                        TaskMoves(core, self.mm, self.pcache, self.moves),
                        NodeControl(core, self.mm, tunables, move_tunables, self.balancing.appliers()), self.migration,
                        NodeOffline(core, self.mm, self.migration, self.reclaim, files)):
            self.handlers.add_all(service.handlers())
        self.handlers.add("node.stats", self.on_stats)

    def _direct_reclaim(self, want: int, replicas_only: bool, capture):
        return self.reclaim.shrink(want, replicas_only=replicas_only, capture=capture)

    def vmstat(self) -> dict[str, int]:
        """The node's vmstat: the core's counters and gauges, and the migration cache's gauge
        that PageMoves keeps."""
        return self.core.vmstat() | {"nr_migcache_pages": self.moves.migcache_pages}

    def on_stats(self, msg: tm.NodeStats) -> tm.NodeStatsReply:
        return tm.NodeStatsReply(node_id=self.node_id, numastat=dict(self.core.numastat), vmstat=self.vmstat(),
                                 frames_free=self.pool.free, frames_total=self.pool.frames, tasks=self.mm.task_pages(),
                                 repl_lifetimes=dict(self.replication.lifetimes))

    def latency_mode(self, real: bool) -> None:
        """The injection mode in force: `real` runs balancing's scan periods on the wall clock."""
        self.balancing.use_wall_clock(real)

    def kswapd(self):
        """One round of background reclaim (nodes/reclaim.py), run outside every handler."""
        return self.reclaim.kswapd()

    def retry_frees(self):
        """Frees, undoings of timed-out allocations and numa_foreign totals a peer did not confirm
        (nodes.core.retry_frees, retry_allocs, retry_foreign), sent again; how many are left."""
        left = yield from self.core.retry_frees()
        left += yield from self.core.retry_allocs()
        return left + (yield from self.core.retry_foreign())

    def close(self) -> None:
        """Release the node's memory: its tasks' page tables, then its frame pool (a node that
        ends with its process needs none of this; one of a simulated cluster does)."""
        self.mm.close_tables()
        self.pool.close()

    def settle_direct(self) -> None:
        """Frames held for tasks' direct writes that have ended since are let go (nodes/directmap.py)."""
        self.mm.settle_tables()

    def peers_up(self, nodes: list[int], shardless: list[int]) -> None:
        """Peers that are (again) alive, and those that hold no directory shard."""
        self.core.peers_up(nodes, shardless)

    def node_down(self, msg: lc.NodeDown):
        """A peer is dead: the copies it held are unmapped here, and the directory entries it held
        are rebuilt from what this node announces to their new homes
        (docs/protocol.md#a-nodes-death). A generator to run outside the handler, or None when
        there is nothing to do (the node is this one, unknown, or already dead)."""
        node = msg.node_id
        if node == self.node_id or not 0 <= node < self.core.n_nodes or node in self.core.dead:
            return None
        log.warning("node %d: node %d is dead (%s)", self.node_id, node, msg.why)
        held_shard = self.core.node_died(node, msg.why)
        self.replication.expect_rebuild(node, held_shard)
        lost = self.mm.node_died(node)
        if lost:
            log.warning("node %d: %d private page(s) of its tasks died with node %d", self.node_id, lost, node)
        records = self.pcache.node_died(node, held_shard)
        if held_shard:  # to every possible new home, empty too: each waits for every survivor's
            for home in range(self.core.n_nodes):
                if home not in self.core.shardless:
                    records.setdefault(home, [])
        return self._after_death(node, records)

    def _after_death(self, node: int, records: dict[int, list[dict]]):
        if node in self.replication.rebuilding:
            yield Spawn(self.replication.rebuild_deadline(node))
        calls = [Call(node_dest(home), pc.DirRebuild(sender=self.node_id, records=recs, dead=node))
                 for home, recs in records.items()]
        if calls:
            yield calls
        yield from self.replication.node_died(node)
