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

from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.node import Node
from numa_emu.nodes.store import RemoteStore, Store
from numa_emu.protocol.clusterdir import STORE_DIR, TOPOLOGY_FILE, endpoint_for, read_json
from numa_emu.protocol.delaylink import HOST_KEY
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.faults import FaultInjector, FaultTable
from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.latency import REAL, LatencyTable
from numa_emu.protocol.messages import faults as fm
from numa_emu.protocol.messages import latency as lm
from numa_emu.protocol.messages import trace as trm
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.reactor import Reactor
from numa_emu.protocol.routing import node_dest, node_of
from numa_emu.protocol.timing import HEARTBEAT_INTERVAL_S, SILENT_DEAD_S
from numa_emu.protocol.version import PROTOCOL_VERSION

log = logging.getLogger("node")
RECLAIM_INTERVAL_S = 0.05
FREE_RETRY_INTERVAL_S = 0.5  # frees and numa_foreign totals a peer did not confirm (a partition) are sent again this often
# frames held for a task's direct write in flight (nodes/directmap.py) are let go this soon after it ends
DIRECT_SETTLE_INTERVAL_S = 0.1


class NodeServer:
    def __init__(self, cluster_dir: Path, name: str, node_id: int, coordinator: str, alive_fd: int | None,
                 token: str, *, host: str = "", bind: str = "", remote_store: bool = False):
        self.cluster_dir = cluster_dir
        self.token = token  # proves to the coordinator that the cluster spawned us (node.register)
        self.name = name
        self.node_id = node_id
        topology = read_json(cluster_dir / TOPOLOGY_FILE)
        self.page_size = int(topology["page_size"])
        spec = topology["nodes"][node_id]
        self.pool = FramePool(int(spec["mem_bytes"]) // self.page_size, self.page_size)
        # One store per cluster, the coordinator's: read here when this folder is its (same host and
        # NUMA_EMU_HOME), else through it (remote_store: the folder of another host's agent)
        if remote_store:
            store = RemoteStore(self.page_size)
        else:
            (cluster_dir / STORE_DIR).mkdir(mode=0o700, exist_ok=True)
            store = Store(cluster_dir / STORE_DIR, self.page_size)
        self.node = Node(node_id, topology, self.pool, store, time.time_ns)
        self.core = self.node.core
        self.reactor = r = Reactor(f"node {node_id}", identity=node_dest(node_id), keys=ClusterKeys.load(cluster_dir),
                                   ignore_requests_of_the_dead=True)
        self.jitter_rng = random.Random(node_id)  # seeded: a jittered run can be replayed
        self.endpoint = r.bind(endpoint_for(cluster_dir, f"node-{node_id}"))
        # A cluster on several hosts: peers of other hosts come over tcp on this host's address (protocol.hosts)
        self.host = host
        self.tcp_endpoint = r.bind_also(f"tcp://{bind}:0") if bind else ""
        r.routes["coordinator"] = coordinator
        for kind, handler in self.node.handlers.by_kind().items():
            r.on(kind, handler)
        self.heartbeat_interval_s = HEARTBEAT_INTERVAL_S
        self.last_heard = time.monotonic()
        for kind, handler in {
            "ping": self.on_ping,
            "proc.stats": lambda m: lc.ProcStatsReply(stats=r.counters()),
            "node.shutdown": self.on_shutdown,
            "coord.heartbeat": self.on_coordinator_heartbeat,
            "node.down": self.on_node_down,
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
            protocol_version=PROTOCOL_VERSION, host=self.host, tcp_endpoint=self.tcp_endpoint,
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
        self.reactor.call_every(DIRECT_SETTLE_INTERVAL_S, self.node.settle_direct)
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
        self.reactor.spawn(self.node.kswapd(),
                           lambda _r, exc: exc is not None and log.warning("kswapd failed: %s", exc))

    def _retry_frees(self) -> None:
        """Frees and numa_foreign totals a peer did not confirm (nodes.node.Node.retry_frees), one
        round at a time."""
        if not self.core.unconfirmed() or self.retrying_frees:
            return
        self.retrying_frees = True

        def done(left: int | None, exc: BaseException | None) -> None:
            self.retrying_frees = False
            if exc is not None:
                log.warning("node %d: frees or counters sent again failed: %s", self.node_id, exc)
            elif not left:
                log.info("node %d: every free and counter a peer missed is done", self.node_id)

        self.reactor.spawn(self.node.retry_frees(), done)

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
            self.reactor.routes[node_dest(int(node_id))] = endpoint
            self.reactor.mark_up(node_dest(int(node_id)))
        self.node.peers_up([int(n) for n in msg.endpoints], [int(n) for n in msg.shardless or ()])
        clocks = {int(key): int(offset) for key, offset in msg.clocks or ()}
        if HOST_KEY in clocks:  # against the coordinator's clock: make them against ours
            self.reactor.set_clock_offsets({k: off - clocks[HOST_KEY] for k, off in clocks.items() if k != HOST_KEY})
        return Ok()

    def on_node_down(self, msg: lc.NodeDown) -> None:
        """A peer is dead: calls to it fail at once with EIO naming it, fsync passes it by, and
        the node recovers (nodes.node.Node.node_down)."""
        recovery = self.node.node_down(msg)
        if recovery is None:
            return
        node = msg.node_id
        self.reactor.mark_down(node_dest(node), f"node {node} is dead ({msg.why})")
        self.reactor.spawn(recovery, lambda _r, exc: exc and log.warning("recovery from node %d's death: %s", node, exc))

    def on_latency(self, msg: lm.NodeLatency) -> Ok:
        table = LatencyTable.from_wire(msg.table)
        self.core.set_cost(table.latency_ns, table.bandwidth_mib_s)
        self.node.mm.costs_changed()
        if table.mode == REAL:
            me, rng = self.node_id, self.jitter_rng
            self.reactor.set_link_delay(lambda peer, nbytes: table.delay_s(me, node_of(peer), nbytes, rng))
        else:
            self.reactor.set_link_delay(None)
        self.node.latency_mode(table.mode == REAL)
        log.info("node %d: latency table version %d, mode %s, dilation %g", self.node_id, table.version,
                 table.mode, table.dilation)
        return Ok()

    def on_faults(self, msg: fm.NodeFaults) -> Ok:
        """The fault table in force: applied to every message this node sends to another node."""
        table = FaultTable.from_wire(msg.table)
        self.reactor.set_faults(FaultInjector(table, self.node_id))
        self.core.set_forwarding(not table.active)
        log.info("node %d: fault table version %d, seed %d, %s", self.node_id, table.version, table.seed,
                 "active" if table.active else "none")
        return Ok()

    def on_trace_config(self, msg: trm.NodeTraceConfig) -> Ok:
        self.core.trace.configure(msg.on, msg.events, msg.tasks)
        return Ok()

    def on_trace_drain(self, msg: trm.NodeTraceDrain) -> trm.TraceEventsReply:
        tracer = self.core.trace
        dropped = tracer.take_dropped()
        return trm.TraceEventsReply(events=tracer.drain(), dropped=dropped)

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


def serve(cluster_dir: Path, name: str, node_id: int, coordinator: str, alive_fd: int | None, token: str,
          *, host: str = "", bind: str = "", remote_store: bool = False) -> int:
    """Run one node until it stops; its exit status."""
    try:
        server = NodeServer(cluster_dir, name, node_id, coordinator, alive_fd, token, host=host, bind=bind,
                            remote_store=remote_store)
    except (NumaEmuError, OSError) as exc:
        log.error("node %d cannot start: %s", node_id, exc)
        return 1
    return server.run()
