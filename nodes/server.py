"""The node process: its sockets, timers and handlers around the frame pool and memory manager.

A node registers with its coordinator, heartbeats to it, and exits by itself when its parent-alive
pipe reads EOF (the coordinator is gone): a crash never leaves an orphan. Silence alone does not
make it exit: a coordinator paused for a while (SIGSTOP, a loaded host) finds its nodes alive.
Only a node without that pipe (started by hand) exits after SILENT_DEAD_S without a word.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import time
from pathlib import Path

from nodes.core import NodeCore, node_dest
from nodes.costmodel import CostModel
from nodes.directory import Directory
from nodes.files import FileOps
from nodes.framepool import FramePool
from nodes.frames import FrameService
from nodes.mempolicy import PolicyOps
from nodes.migration import Migration
from nodes.mm import MemoryManager
from nodes.pcache import PageCacheView
from nodes.reclaim import Reclaim
from nodes.replication import Replication
from nodes.store import Store
from nodes.sysctl import NodeControl
from nodes.taskmove import TaskMoves
from protocol.clusterdir import STORE_DIR, TOPOLOGY_FILE, endpoint_for, read_json
from protocol.effects import Call
from protocol.errors import NumaEmuError
from protocol.faults import FaultInjector, FaultTable
from protocol.keys import ClusterKeys
from protocol.latency import REAL, LatencyTable
from protocol.messages import faults as fm
from protocol.messages import latency as lm
from protocol.messages import pagecache as pc
from protocol.messages import trace as trm
from protocol.messages import Ok
from protocol.messages import lifecycle as lc
from protocol.messages import tasks as tm
from protocol.reactor import Reactor
from protocol.timing import HEARTBEAT_INTERVAL_S, SILENT_DEAD_S
from protocol.version import PROTOCOL_VERSION

log = logging.getLogger("node")
RECLAIM_INTERVAL_S = 0.05
FREE_RETRY_INTERVAL_S = 0.5  # frees a peer did not confirm (a partition) are sent again this often


class NodeServer:
    def __init__(self, cluster_dir: Path, name: str, node_id: int, coordinator: str, alive_fd: int | None,
                 token: str):
        self.cluster_dir = cluster_dir
        self.token = token  # proves to the coordinator that the cluster spawned us (node.register)
        self.name = name
        self.node_id = node_id
        topology = read_json(cluster_dir / TOPOLOGY_FILE)
        self.page_size = int(topology["page_size"])
        spec = topology["nodes"][node_id]
        self.pool = FramePool(int(spec["mem_bytes"]) // self.page_size, self.page_size)
        (cluster_dir / STORE_DIR).mkdir(mode=0o700, exist_ok=True)
        self.core = NodeCore(node_id, topology, self.pool, clock_ns=time.time_ns,
                             store=Store(cluster_dir / STORE_DIR, self.page_size))
        self.pcache = PageCacheView(self.core)
        self.replication = Replication(self.core, Directory(), self.pcache.shootdown)
        self.pcache.replication = self.replication
        self.mm = MemoryManager(self.core, self.pcache)
        self.migration = Migration(self.core, self.mm, self.replication)
        self.reclaim = Reclaim(self.core, self.replication.reclaim)
        self.core.use_reclaim(self.reclaim.shrink)
        self.reactor = r = Reactor(f"node {node_id}", identity=f"node:{node_id}", keys=ClusterKeys.load(cluster_dir))
        self.jitter_rng = random.Random(node_id)  # seeded: a jittered run can be replayed
        self.endpoint = r.bind(endpoint_for(cluster_dir, f"node-{node_id}"))
        r.routes["coordinator"] = coordinator
        for table in (FrameService(self.core).handlers(), self.replication.handlers(), self.pcache.handlers(),
                      self.mm.handlers(), PolicyOps(self.core, self.mm).handlers(),
                      FileOps(self.core, self.mm).handlers(), TaskMoves(self.core, self.mm).handlers(),
                      NodeControl(self.core, self.mm).handlers(), self.migration.handlers()):
            for kind, handler in table.items():
                r.on(kind, handler)
        self.heartbeat_interval_s = HEARTBEAT_INTERVAL_S
        self.last_heard = time.monotonic()
        for kind, handler in {
            "ping": self.on_ping,
            "proc.stats": lambda m: lc.ProcStatsReply(stats=r.counters()),
            "node.shutdown": self.on_shutdown,
            "coord.heartbeat": self.on_coordinator_heartbeat,
            "node.down": self.on_node_down,
            "node.stats": self.on_stats,
            "node.peers": self.on_peers,
            "node.latency": self.on_latency,
            "node.faults": self.on_faults,
            "node.trace.config": self.on_trace_config,
            "node.trace.drain": self.on_trace_drain,
        }.items():
            r.on(kind, handler)
        self.has_parent_pipe = alive_fd is not None
        self.retrying_frees = False  # a round of nodes.core.retry_frees is under way
        if alive_fd is not None:
            r.add_reader(alive_fd, lambda: self.exit("coordinator is gone (parent-alive pipe closed)"))
        r.on_signal(signal.SIGTERM, lambda: self.exit("SIGTERM"))
        r.on_signal(signal.SIGINT, lambda: self.exit("SIGINT"))

    def start(self) -> None:
        self.reactor.spawn(self._register(), self._registered)

    def _register(self):
        reply = yield Call("coordinator", lc.NodeRegister(
            node_id=self.node_id, token=self.token, pid=os.getpid(), endpoint=self.endpoint,
            protocol_version=PROTOCOL_VERSION,
            frames_total=self.pool.frames, page_size=self.page_size,
        ))
        return reply

    def _registered(self, reply: lc.NodeRegisterReply | None, exc: BaseException | None) -> None:
        if exc is not None:
            self.exit(f"registration refused: {exc}", status=1)
            return
        self.heartbeat_interval_s = reply.heartbeat_interval_s
        self.last_heard = time.monotonic()
        self.reactor.call_every(self.heartbeat_interval_s, self._heartbeat)
        self.reactor.call_every(RECLAIM_INTERVAL_S, self._reclaim)
        self.reactor.call_every(FREE_RETRY_INTERVAL_S, self._retry_frees)
        self._heartbeat()
        log.info("node %d registered with cluster %s", self.node_id, reply.cluster)

    def _heartbeat(self) -> None:
        if not self.has_parent_pipe and time.monotonic() - self.last_heard > SILENT_DEAD_S:
            self.exit(f"no word from the coordinator for {SILENT_DEAD_S:g} s", status=1)
            return
        self.reactor.notify("coordinator", lc.NodeHeartbeat(
            node_id=self.node_id, frames_free=self.pool.free, frames_total=self.pool.frames))

    def _reclaim(self) -> None:
        """kswapd (nodes/reclaim.py): runs outside every handler."""
        self.reactor.spawn(self.reclaim.kswapd(),
                           lambda _r, exc: exc is not None and log.warning("kswapd failed: %s", exc))

    def _retry_frees(self) -> None:
        """Frees a peer did not confirm (nodes.core.retry_frees), one round at a time."""
        if not self.core.unfreed or self.retrying_frees:
            return
        self.retrying_frees = True

        def done(left: int | None, exc: BaseException | None) -> None:
            self.retrying_frees = False
            if exc is not None:
                log.warning("node %d: frees sent again failed: %s", self.node_id, exc)
            elif not left:
                log.info("node %d: every free a peer missed is done", self.node_id)

        self.reactor.spawn(self.core.retry_frees(), done)

    def exit(self, why: str, status: int = 0) -> None:
        log.info("node %d exiting: %s", self.node_id, why)
        self.exit_status = status
        self.reactor.stop()

    # ---- handlers -----------------------------------------------------------------------
    def on_ping(self, msg: lc.Ping) -> lc.Pong:
        return lc.Pong(pid=os.getpid(), role="node", name=f"node {self.node_id}", uptime_s=self.reactor.uptime_s())

    def on_coordinator_heartbeat(self, msg: lc.CoordinatorHeartbeat) -> None:
        self.last_heard = time.monotonic()

    def on_peers(self, msg: lc.NodePeers) -> Ok:
        for node_id, endpoint in msg.endpoints.items():
            self.reactor.routes[f"node:{int(node_id)}"] = endpoint
            self.reactor.mark_up(f"node:{int(node_id)}")
            self.core.dead.pop(int(node_id), None)
        self.core.shardless.update(int(n) for n in msg.shardless or () if 0 <= int(n) < self.core.n_nodes)
        return Ok()

    def on_node_down(self, msg: lc.NodeDown) -> None:
        """A peer is dead: calls to it fail at once with EIO naming it, fsync passes it by, the
        copies it held are unmapped here, and the directory entries it held are rebuilt from
        what this node announces to their new homes (docs/protocol.md#a-nodes-death)."""
        node = msg.node_id
        if node == self.node_id or not 0 <= node < self.core.n_nodes or node in self.core.dead:
            return
        log.warning("node %d: node %d is dead (%s)", self.node_id, node, msg.why)
        held_shard = node not in self.core.shardless  # a node that died before and came back held none
        self.core.dead[node] = msg.why
        self.core.unfreed.pop(node, None)  # its frames died with it (and a restarted node starts empty)
        self.core.shardless.add(node)
        self.reactor.mark_down(node_dest(node), f"node {node} is dead ({msg.why})")
        lost = self.mm.node_died(node)
        if lost:
            log.warning("node %d: %d private page(s) of its tasks died with node %d", self.node_id, lost, node)
        records = self.pcache.node_died(node, held_shard)
        self.reactor.spawn(self._after_death(node, records),
                           lambda _r, exc: exc and log.warning("recovery from node %d's death: %s", node, exc))

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

    def on_latency(self, msg: lm.NodeLatency) -> Ok:
        table = LatencyTable.from_wire(msg.table)
        self.core.cost = CostModel(table.latency_ns, table.bandwidth_mib_s, self.page_size)
        if table.mode == REAL:
            me, rng = self.node_id, self.jitter_rng
            self.reactor.link_delay = lambda peer, nbytes: table.delay_s(me, int(peer[5:]), nbytes, rng)
        else:
            self.reactor.link_delay = None
        log.info("node %d: latency table version %d, mode %s, dilation %g", self.node_id, table.version,
                 table.mode, table.dilation)
        return Ok()

    def on_faults(self, msg: fm.NodeFaults) -> Ok:
        """The fault table in force: applied to every message this node sends to another node."""
        table = FaultTable.from_wire(msg.table)
        self.reactor.set_faults(FaultInjector(table, self.node_id))
        self.core.forwarding = not table.active
        log.info("node %d: fault table version %d, seed %d, %s", self.node_id, table.version, table.seed,
                 "active" if table.active else "none")
        return Ok()

    def on_trace_config(self, msg: trm.NodeTraceConfig) -> Ok:
        self.core.trace.configure(msg.on, msg.events, msg.tasks)
        return Ok()

    def on_trace_drain(self, msg: trm.NodeTraceDrain) -> trm.TraceEventsReply:
        tracer = self.core.trace
        dropped, tracer.dropped = tracer.dropped, 0
        return trm.TraceEventsReply(events=tracer.drain(), dropped=dropped)

    def on_stats(self, msg: tm.NodeStats) -> tm.NodeStatsReply:
        return tm.NodeStatsReply(node_id=self.node_id, numastat=dict(self.core.numastat), vmstat=self.core.vmstat(),
                                 frames_free=self.pool.free, frames_total=self.pool.frames, tasks=self.mm.task_pages(),
                                 repl_lifetimes=dict(self.core.repl_lifetimes))

    def on_shutdown(self, msg: lc.NodeShutdown) -> Ok:
        self.reactor.call_later(0, lambda: self.exit("shutdown requested"))
        return Ok()

    def run(self) -> int:
        self.exit_status = 0
        try:
            self.start()
            self.reactor.run()
        finally:
            self.reactor.close()
            self.pool.close()
        return self.exit_status


def serve(cluster_dir: Path, name: str, node_id: int, coordinator: str, alive_fd: int | None, token: str) -> int:
    """Run one node until it stops; its exit status."""
    try:
        server = NodeServer(cluster_dir, name, node_id, coordinator, alive_fd, token)
    except (NumaEmuError, OSError) as exc:
        log.error("node %d cannot start: %s", node_id, exc)
        return 1
    return server.run()
