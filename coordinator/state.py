"""The coordinator's pure core for cluster membership: which node is up, suspect or dead.

A silent node is suspect and comes back up when it speaks again; it is dead when its process is
gone (node_exited) or after a long silence (Liveness). The cluster reports itself `degraded`
while any node is dead, never `up`.

No sockets, no clock, no processes: every handler takes `now` (seconds, monotonic) from the
server around it, so tests drive it with plain calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.heartbeat import DEAD, SUSPECT, UP, Liveness
from numa_emu.protocol.hosts import pick_endpoint
from numa_emu.protocol.messages import Request
from numa_emu.protocol.routing import node_dest
from numa_emu.protocol.timing import OWN_PAUSE_S, SILENT_DEAD_S
from numa_emu.protocol.version import PROTOCOL_VERSION

STARTING, STOPPED, DEGRADED = "starting", "stopped", "degraded"


@dataclass
class NodeRecord:
    id: int
    state: str = STARTING
    pid: int = 0
    endpoint: str = ""
    host: str = ""  # on a cluster of several hosts (protocol.hosts); "" on one
    tcp_endpoint: str = ""  # where processes of other hosts reach it
    frames_total: int = 0
    frames_free: int = 0
    registered_at: float | None = None
    liveness: Liveness | None = None
    exit_code: int | None = None
    history: list[tuple[float, str]] = field(default_factory=list)


class ClusterState:
    def __init__(self, name: str, topology: dict, now: float, heartbeat_interval_s: float,
                 silent_dead_s: float = SILENT_DEAD_S, host: str = ""):
        self.name = name
        self.host = host  # the coordinator's host: where tasks attach from unless they say (protocol.hosts)
        self.topology = topology
        self.started_at = now
        self.state = STARTING
        self.heartbeat_interval_s = heartbeat_interval_s
        self.silent_dead_s = silent_dead_s
        self.last_tick = now
        self.page_size = int(topology["page_size"])
        self.nodes = {n["id"]: NodeRecord(n["id"]) for n in topology["nodes"]}

    def _node(self, node_id: int) -> NodeRecord:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise NumaEmuError(ErrorCode.ENODEV, f"no node {node_id} in cluster {self.name}") from None

    def _set_state(self, rec: NodeRecord, state: str, now: float) -> tuple[int, str, str] | None:
        if rec.state == state:
            return None
        old, rec.state = rec.state, state
        rec.history.append((now, state))
        return rec.id, old, state

    def register(self, *, node_id: int, pid: int, endpoint: str, frames_total: int, page_size: int,
                 protocol_version: int, now: float, host: str = "", tcp_endpoint: str = "") -> bool:
        """Record a node's registration; True when this made every node ready."""
        if protocol_version != PROTOCOL_VERSION:
            raise NumaEmuError(
                ErrorCode.EPROTO,
                f"node {node_id} speaks protocol version {protocol_version}, "
                f"the coordinator speaks {PROTOCOL_VERSION}",
            )
        rec = self._node(node_id)
        if rec.state not in (STARTING, DEAD):
            raise NumaEmuError(ErrorCode.EEXIST, f"node {node_id} is registered already (pid {rec.pid})")
        if page_size != self.page_size:
            raise NumaEmuError(ErrorCode.EINVAL, f"node {node_id} has page size {page_size}, cluster has {self.page_size}")
        rec.pid, rec.endpoint, rec.frames_total, rec.frames_free = pid, endpoint, frames_total, frames_total
        rec.host, rec.tcp_endpoint = host, tcp_endpoint
        rec.registered_at = now
        rec.liveness = Liveness(now, self.heartbeat_interval_s, self.silent_dead_s)
        self._set_state(rec, UP, now)
        was_starting = self.state == STARTING
        if was_starting and all(r.state == UP for r in self.nodes.values()):
            self.state = UP
            return True
        return False

    def heartbeat(self, *, node_id: int, frames_free: int, frames_total: int,
                  now: float) -> tuple[int, str, str] | None:
        """A node spoke: a suspect one rejoins (the change is returned)."""
        rec = self._node(node_id)
        if rec.liveness is None or rec.state in (DEAD, STOPPED):
            return None  # a heartbeat from a node we buried: it must re-register first
        rec.liveness.beat(now)
        rec.frames_free, rec.frames_total = frames_free, frames_total
        return self._set_state(rec, UP, now)

    def node_exited(self, node_id: int, exit_code: int | None, now: float) -> tuple[int, str, str] | None:
        """The node's process is gone (exit_code None: found gone, status unknown)."""
        rec = self._node(node_id)
        rec.exit_code = exit_code
        return self._set_state(rec, STOPPED if self.state == "stopping" else DEAD, now)

    def tick(self, now: float) -> list[tuple[int, str, str]]:
        """Liveness transitions since the last tick: (node, old state, new state). A gap between
        ticks longer than OWN_PAUSE_S was this process's own pause: not counted as the nodes' silence."""
        gap, self.last_tick = now - self.last_tick, now
        changes = []
        for rec in self.nodes.values():
            if rec.liveness is None or rec.state in (DEAD, STOPPED):
                continue
            if gap > OWN_PAUSE_S:
                rec.liveness.excuse(gap, now)
            change = self._set_state(rec, rec.liveness.state(now), now)
            if change:
                changes.append(change)
        return changes

    def summary(self) -> str:
        """The cluster's state as reported: `degraded` instead of `up` while a node is dead."""
        if self.state == UP and any(r.state == DEAD for r in self.nodes.values()):
            return DEGRADED
        return self.state

    def shardless(self) -> list[int]:
        """Nodes that died since start: their directory shard died with them, and they hold
        none again until the cluster restarts (docs/protocol.md#a-nodes-death)."""
        return sorted(r.id for r in self.nodes.values() if any(state == DEAD for _t, state in r.history))

    def endpoints_from(self, host: str, records: list[NodeRecord] | None = None) -> dict[int, str]:
        """Node id -> the endpoint a process on `host` reaches it at (ipc on its own host, tcp
        from another: protocol.hosts.pick_endpoint), for `records` (default: every registered node)."""
        records = self.nodes.values() if records is None else records
        return {r.id: pick_endpoint(r.host, r.endpoint, r.tcp_endpoint, host) for r in records if r.endpoint}

    def live_nodes(self) -> list[NodeRecord]:
        return [r for r in self.nodes.values() if r.state in (UP, SUSPECT)]

    def broadcast(self, request: Request, timeout_s: float | None = None) -> list[Call]:
        """The Calls that send `request` to every live node (yield them: the replies, in order)."""
        return [Call(node_dest(r.id), request, timeout_s) for r in self.live_nodes()]

    def node_status(self, now: float) -> list[dict]:
        out = []
        for rec in self.nodes.values():
            out.append({
                "id": rec.id,
                "pid": rec.pid,
                "state": rec.state,
                "host": rec.host,
                "endpoint": rec.endpoint,
                "tcp_endpoint": rec.tcp_endpoint,
                "frames_total": rec.frames_total,
                "frames_free": rec.frames_free,
                "heartbeat_age_s": round(rec.liveness.age_s(now), 3) if rec.liveness else None,
                "uptime_s": round(now - rec.registered_at, 3) if rec.registered_at is not None else None,
                "exit_code": rec.exit_code,
            })
        return out
