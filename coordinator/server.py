"""The coordinator process: its sockets, timers and handlers around the pure ClusterState.

Start-up: bind, start the nodes, wait for every node.register, then write cluster.json and tell
the CLI "ready" through the ready pipe. Runs until cluster.shutdown, SIGTERM/SIGINT, or the
death of a --foreground parent.
"""
from __future__ import annotations

import dataclasses
import logging
import signal
import os
import time
from pathlib import Path

from numa_emu.coordinator.faultserver import FaultService
from numa_emu.coordinator.fileserver import FileService
from numa_emu.coordinator.latencyserver import LatencyService
from numa_emu.coordinator.offline import OfflineService
from numa_emu.coordinator.state import ClusterState
from numa_emu.coordinator.supervisor import Placement, Supervisor
from numa_emu.coordinator.taskserver import TaskService
from numa_emu.coordinator.traceserver import TraceService
from numa_emu.protocol.clusterdir import CLUSTER_FILE, RUN_DIR, STORE_DIR, TOPOLOGY_FILE, endpoint_for, read_json, write_json_atomic
from numa_emu.protocol.effects import Call, Future
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.heartbeat import DEAD, SUSPECT, UP
from numa_emu.protocol.hosts import CONNECTION_FILE, HOSTS_FILE, Host, connection
from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.logsetup import DEFAULT_LOG_LEVEL
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.reactor import Reactor
from numa_emu.protocol.routing import node_dest
from numa_emu.protocol.timing import CHILD_POLL_INTERVAL_S, HEARTBEAT_INTERVAL_S, NODE_READY_TIMEOUT_S, SHUTDOWN_GRACE_S
from numa_emu.protocol.version import PROTOCOL_VERSION

log = logging.getLogger("coordinator")


def _placement(cluster_dir: Path) -> Placement | None:
    """The hosts of a cluster on several (hosts.json, written by `up`), else None."""
    path = cluster_dir / HOSTS_FILE
    if not path.exists():
        return None
    data = read_json(path)
    return Placement(hosts=tuple(Host.from_dict(h) for h in data["hosts"]), launcher=data["launcher"],
                     ssh_opts=tuple(data.get("ssh_opts", ())), my_host=data["my_host"],
                     tcp_endpoint=f"tcp://{data['bind']}:0")
RESTART_TIMEOUT_S = 30.0  # a restarted node registers within this (a fork: well under a second)


class CoordinatorServer:
    def __init__(self, cluster_dir: Path, name: str, ready_fd: int | None, parent_alive_fd: int | None,
                 inject: str = "virtual", dilation: float = 1.0, sysctl: list[str] | None = None,
                 log_level: str = DEFAULT_LOG_LEVEL):
        self.cluster_dir = cluster_dir
        self.name = name
        self.ready_fd = ready_fd
        self.reactor = Reactor("coordinator", keys=ClusterKeys.load(cluster_dir))
        topology = read_json(cluster_dir / TOPOLOGY_FILE)
        placement = _placement(cluster_dir)
        self.host = placement.my_host if placement else ""
        self.state = ClusterState(name, topology, time.monotonic(), HEARTBEAT_INTERVAL_S, host=self.host)
        (cluster_dir / RUN_DIR).mkdir(mode=0o700, exist_ok=True)
        self.endpoint = self.reactor.bind(endpoint_for(cluster_dir, "coordinator"))
        self.tcp_endpoint = ""  # the other hosts' way in, on a cluster of several
        if placement is not None:
            self.tcp_endpoint = self.reactor.bind_also(placement.tcp_endpoint)
            placement = dataclasses.replace(placement, tcp_endpoint=self.tcp_endpoint)
        self.placement = placement
        self.supervisor = Supervisor(cluster_dir, name, self.endpoint, log_level=log_level, placement=placement)
        self.started_wall = time.time()
        r = self.reactor
        self.tasks = TaskService(r, self.state, watch_elsewhere=self.supervisor.watch_task,
                                 clocks=self.supervisor.clock_offsets)
        self.latency = LatencyService(self.state, inject, dilation)
        self.trace = TraceService(self.state)
        self.files = FileService(self.state, cluster_dir / STORE_DIR)
        self.faults = FaultService(self.state, self.supervisor, r.call_later)
        self.offline = OfflineService(self.state, self.tasks)
        self.tasks.sysctl.preset(sysctl or [])
        for service in (self.tasks, self.latency, self.trace, self.files, self.faults, self.offline):
            for kind, handler in service.handlers().items():
                r.on(kind, handler)
        for kind, handler in {
            "ping": self.on_ping,
            "proc.stats": lambda m: lc.ProcStatsReply(stats=r.counters()),
            "node.register": self.on_register,
            "node.heartbeat": self.on_heartbeat,
            "cluster.status": self.on_status,
            "cluster.shutdown": self.on_shutdown,
            "node.restart": self.on_restart,
        }.items():
            r.on(kind, handler)
        if parent_alive_fd is not None:
            r.add_reader(parent_alive_fd, lambda: self._parent_gone(parent_alive_fd))
        r.on_signal(signal.SIGTERM, self.begin_shutdown)
        r.on_signal(signal.SIGINT, self.begin_shutdown)
        self._stopping = False
        self.restarting: dict[int, Future] = {}  # node id -> its restart, until it registers

    # ---- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        keys = self.reactor.keys  # how a task on any host finds us (numa_emu.cluster.connect)
        write_json_atomic(self.cluster_dir / CONNECTION_FILE, connection(
            self.name, self.host, self.tcp_endpoint or self.endpoint, keys.public, keys.secret))
        try:
            self.supervisor.start(sorted(self.state.nodes))
        except NumaEmuError as exc:  # a host that cannot be reached, an agent that failed: one line to `up`
            log.error("%s", exc.message)
            self._tell_cli(f"error {exc.message}")
            raise
        self._write_cluster_file()
        r = self.reactor
        r.call_every(HEARTBEAT_INTERVAL_S, self._heartbeat)
        r.call_every(CHILD_POLL_INTERVAL_S, self._reap)
        r.call_every(HEARTBEAT_INTERVAL_S, self.tasks.watch)
        r.call_later(NODE_READY_TIMEOUT_S, self._ready_deadline)
        log.info("coordinator %s started %d nodes, endpoint %s", self.name, len(self.state.nodes), self.endpoint)
        if self.endpoint.startswith("tcp://"):
            log.info("serving on loopback tcp, CURVE only: the cluster folder's path is too long for ipc sockets")

    def _write_cluster_file(self) -> None:
        sup = self.supervisor
        write_json_atomic(self.cluster_dir / CLUSTER_FILE, {
            "name": self.name,
            "state": self.state.state,
            "protocol_version": PROTOCOL_VERSION,
            "coordinator": {"pid": os.getpid(), "endpoint": self.endpoint, "started": self.started_wall,
                            "host": self.host, "tcp_endpoint": self.tcp_endpoint},
            # a node on another host: its pid is that host's (clean-up here leaves it to its agent)
            "nodes": [{"id": i, "pid": pid, "host": sup.host_of(i)} for i, pid in sorted(sup.pids().items())],
            "zygote": {"pid": sup.zygote_pid if self.placement is None else None},
            "agents": sup.agent_pids(),
        })

    def _tell_cli(self, line: str) -> None:
        if self.ready_fd is not None:
            try:
                os.write(self.ready_fd, line.encode() + b"\n")
                os.close(self.ready_fd)
            except OSError:
                pass  # the CLI went away; the cluster lives on regardless
            self.ready_fd = None

    def _ready_deadline(self) -> None:
        if self.state.state == "starting":
            missing = [n.id for n in self.state.nodes.values() if n.state != "up"]
            self._tell_cli(f"error nodes {missing} not ready after {NODE_READY_TIMEOUT_S:g} s; see their logs")
            self.begin_shutdown()

    def _parent_gone(self, fd: int) -> None:
        self.reactor.remove_reader(fd)
        log.info("foreground parent exited; shutting down")
        self.begin_shutdown()

    def begin_shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.state.state = "stopping"
        self.reactor.spawn(self._shutdown(), lambda *_: None)

    def _shutdown(self):
        self.faults.continue_all()
        try:  # `down` never loses a completed write: every dirty page-cache page goes to the store first
            yield self.files.writeback_all()
        except NumaEmuError as exc:
            log.error("writeback before shutdown failed: %s", exc)
        calls = self.state.broadcast(lc.NodeShutdown(), SHUTDOWN_GRACE_S)
        try:
            yield calls
        except NumaEmuError as exc:
            log.warning("not every node acknowledged the shutdown: %s", exc)
        for node_id, code in self.supervisor.stop(SHUTDOWN_GRACE_S):
            self.state.node_exited(node_id, code, time.monotonic())
        self._tell_cli("error cluster stopped before it was ready")
        (self.cluster_dir / CLUSTER_FILE).unlink(missing_ok=True)
        (self.cluster_dir / CONNECTION_FILE).unlink(missing_ok=True)
        log.info("coordinator %s stopped", self.name)
        self.reactor.stop()

    # ---- timers -------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        now = time.monotonic()
        changes = []
        for node_id, old, new in self.state.tick(now):
            why = "no heartbeat" if new == SUSPECT else "heard within the interval"
            if new == DEAD:  # silent past the grace while its process lives: hung; make dead true
                self.supervisor.kill(node_id)
                why = f"silent for {self.state.silent_dead_s:g} s, killed"
            changes.append(((node_id, old, new), why))
        for rec in self.state.nodes.values():  # a silent node whose process is gone is dead now
            if rec.state == SUSPECT and not self.supervisor.alive(rec.id):
                changes.append((self.state.node_exited(rec.id, None, now), "its process is gone"))
        for change, why in changes:
            self._changed(change, why)
        for rec in self.state.live_nodes():
            self.reactor.notify(node_dest(rec.id), lc.CoordinatorHeartbeat())

    def _changed(self, change: tuple[int, str, str] | None, why: str) -> None:
        """Log and trace a node's change of state; a death is told to every live node, so that
        calls to the dead one fail at once instead of at their deadline."""
        if change is None:
            return
        node_id, old, new = change
        log.warning("node %d: %s -> %s (%s)", node_id, old, new, why)
        self.trace.node_changed(node_id, old, new)
        if new == DEAD:
            self.tasks.home_died(node_id, why)
            self.reactor.mark_down(node_dest(node_id), f"node {node_id} is dead ({why})")
            for rec in self.state.live_nodes():
                self.reactor.notify(node_dest(rec.id), lc.NodeDown(node_id=node_id, why=why))

    def _reap(self) -> None:
        for node_id, code in self.supervisor.reap():
            self.reactor.forget(node_dest(node_id))
            restart = self.restarting.pop(node_id, None)
            if restart is not None:
                restart.set_exception(NumaEmuError(ErrorCode.EIO, f"node {node_id} exited during its restart "
                                                                  f"(status {code}); see node-{node_id}.log"))
            self._changed(self.state.node_exited(node_id, code, time.monotonic()), f"exited with status {code}")
            if self.state.state == "starting":
                self._tell_cli(f"error node {node_id} exited during start-up (status {code}); see node-{node_id}.log")
                self.begin_shutdown()
        for task_id in self.supervisor.tasks_gone():
            self.tasks.gone(task_id)

    # ---- handlers -----------------------------------------------------------------------
    def on_ping(self, msg: lc.Ping) -> lc.Pong:
        return lc.Pong(pid=os.getpid(), role="coordinator", name=f"coordinator of {self.name}",
                       uptime_s=self.reactor.uptime_s(), monotonic_ns=time.monotonic_ns())

    def on_register(self, msg: lc.NodeRegister) -> lc.NodeRegisterReply:
        if not self.supervisor.check_token(msg.node_id, msg.token):
            log.warning("node.register for node %d refused: wrong token (pid %d, endpoint %r)",
                        msg.node_id, msg.pid, msg.endpoint)
            raise NumaEmuError(ErrorCode.EACCES, f"node.register refused: node {msg.node_id} was not spawned "
                                                 "by this cluster with that token")
        if self._stopping:
            raise NumaEmuError(ErrorCode.EBUSY, "the cluster is stopping")
        restart = self.restarting.get(msg.node_id)
        if self.state.state != "starting" and restart is None:
            raise NumaEmuError(ErrorCode.EPERM, f"node {msg.node_id} was not asked to start (numa-emu node restart)")
        all_ready = self.state.register(
            node_id=msg.node_id, pid=msg.pid, endpoint=msg.endpoint, frames_total=msg.frames_total,
            page_size=msg.page_size, protocol_version=msg.protocol_version, now=time.monotonic(),
            host=msg.host, tcp_endpoint=msg.tcp_endpoint,
        )
        self.reactor.forget(node_dest(msg.node_id))  # a restarted node: connect to its new endpoint
        self.reactor.routes[node_dest(msg.node_id)] = self.state.endpoints_from(self.host, [self.state.nodes[msg.node_id]])[msg.node_id]
        self.reactor.mark_up(node_dest(msg.node_id))
        if all_ready:
            self.reactor.spawn(self._announce_peers(), self._ready)
        if restart is not None:
            del self.restarting[msg.node_id]
            log.warning("node %d: dead -> up (restarted, pid %d)", msg.node_id, msg.pid)
            self.trace.node_changed(msg.node_id, DEAD, UP)
            restart.set_result(msg.pid)
        return lc.NodeRegisterReply(cluster=self.name, heartbeat_interval_s=self.state.heartbeat_interval_s)

    def _clocks(self) -> list | None:
        """Every host's clock against ours, for NodePeers (None on a single host)."""
        offsets = self.supervisor.clock_offsets()
        return [[key, offset] for key, offset in offsets.items()] if len(offsets) > 1 else None

    def _announce_peers(self):
        nodes = list(self.state.nodes.values())  # each is told the endpoints its own host reaches
        yield [Call(node_dest(r.id), lc.NodePeers(endpoints=self.state.endpoints_from(r.host, nodes),
                                                   clocks=self._clocks())) for r in nodes]
        yield self.latency.push(self.latency.table)
        yield self.faults.push(self.faults.table)
        yield self.tasks.sysctl.push_all()

    def on_restart(self, msg: lc.NodeRestart):
        """`numa-emu node restart N`: the fork server starts dead node N again, empty; once it
        has registered, every live node (it too) learns the peers, and it gets the latency
        table, the fault table and the tunables in force (the file table reaches it with the next file.open)."""
        rec = self.state.nodes.get(msg.node_id)
        if rec is None:
            raise NumaEmuError(ErrorCode.ENODEV, f"no node {msg.node_id} in cluster {self.name} "
                                                 f"(nodes 0-{len(self.state.nodes) - 1})")
        if self.state.state != UP or rec.state != DEAD or msg.node_id in self.restarting:
            what = "restarting" if msg.node_id in self.restarting else rec.state
            raise NumaEmuError(ErrorCode.EBUSY, f"node {msg.node_id} is {what}; only a dead node of a running cluster "
                                                "can be restarted")
        registered = self.restarting[msg.node_id] = Future()
        try:
            self.supervisor.respawn(msg.node_id)
        except NumaEmuError:
            del self.restarting[msg.node_id]
            raise
        self.reactor.call_later(RESTART_TIMEOUT_S, lambda: self._restart_deadline(msg.node_id, registered))
        log.info("node %d: restart requested", msg.node_id)
        pid = yield registered
        live = self.state.live_nodes()
        new = node_dest(msg.node_id)
        try:
            yield [Call(node_dest(r.id), lc.NodePeers(endpoints=self.state.endpoints_from(r.host, live),
                                                      shardless=self.state.shardless(), clocks=self._clocks()))
                   for r in live]
        except NumaEmuError as exc:  # a peer that did not answer (suspect) still takes node N for dead
            log.warning("node %d restarted, but not every node heard of it: %s", msg.node_id, exc)
        for other in self.state.nodes.values():  # the peers still dead, as the others know them
            if other.state == DEAD:
                why = "its process is gone" if other.exit_code is None else f"exited with status {other.exit_code}"
                self.reactor.notify(new, lc.NodeDown(node_id=other.id, why=why))
        yield [c for c in self.latency.push(self.latency.table) + self.faults.push(self.faults.table)
               + self.tasks.sysctl.push_all() + self.offline.push_all() if c.dest == new]
        self._write_cluster_file()
        log.info("node %d restarted (pid %d)", msg.node_id, pid)
        return lc.NodeRestartReply(node_id=msg.node_id, pid=pid)

    def _restart_deadline(self, node_id: int, registered: Future) -> None:
        if self.restarting.get(node_id) is registered:
            del self.restarting[node_id]
            self.supervisor.kill(node_id)
            registered.set_exception(NumaEmuError(ErrorCode.ETIMEDOUT, f"node {node_id} did not register within "
                                                  f"{RESTART_TIMEOUT_S:g} s; see node-{node_id}.log"))

    def _ready(self, _result: object, exc: BaseException | None) -> None:
        if exc is not None:
            self._tell_cli(f"error nodes could not learn their peers: {exc}")
            self.begin_shutdown()
            return
        self._write_cluster_file()
        self._tell_cli(f"ready {self.endpoint}")
        log.info("cluster %s is up: %d nodes", self.name, len(self.state.nodes))

    def on_heartbeat(self, msg: lc.NodeHeartbeat) -> None:
        self._changed(self.state.heartbeat(node_id=msg.node_id, frames_free=msg.frames_free,
                                           frames_total=msg.frames_total, now=time.monotonic()), "spoke again")

    def on_status(self, msg: lc.ClusterStatus) -> lc.ClusterStatusReply:
        now = time.monotonic()
        return lc.ClusterStatusReply(
            cluster=self.name,
            state=self.state.summary(),
            coordinator={"pid": os.getpid(), "endpoint": self.endpoint, "uptime_s": round(self.reactor.uptime_s(), 3),
                         "host": self.host, "tcp_endpoint": self.tcp_endpoint},
            nodes=[dict(n, offline=n["id"] in self.offline.offline) for n in self.state.node_status(now)],
            topology=self.state.topology,
        )

    def on_shutdown(self, msg: lc.ClusterShutdown) -> Ok:
        self.reactor.call_later(0, self.begin_shutdown)
        return Ok()

    def run(self) -> None:
        try:
            try:
                self.start()
            except NumaEmuError:
                return  # told to `up` and logged; nothing was left running (Supervisor.start)
            self.reactor.run()
        finally:
            self.supervisor.stop(0)
            self.reactor.close()
