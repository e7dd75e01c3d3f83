"""Messages of the cluster life cycle: registration, heartbeats, status, shutdown, ping."""
from __future__ import annotations



from numa_emu.protocol.messages.base import Notice, Ok, Reply, Request, message


@message
class Pong(Reply):
    kind = "pong"
    pid: int
    role: str  # "coordinator" or "node"
    name: str  # "node 3", "coordinator"
    uptime_s: float
    # the coordinator's CLOCK_MONOTONIC when it answered (ns): a task of a host whose clock it did
    # not measure estimates its own offset from a few pings (numa_emu.api.attach)
    monotonic_ns: int | None = None


@message
class Ping(Request):
    """Any daemon answers: who it is and since when."""

    kind = "ping"
    reply = Pong


@message
class ProcStatsReply(Reply):
    kind = "proc.stats.reply"
    stats: dict  # counter name -> value (messages in, bad messages by code, ...)


@message
class ProcStats(Request):
    """The process's own counters: messages served, malformed input rejected."""

    kind = "proc.stats"
    reply = ProcStatsReply


@message
class NodeRegisterReply(Reply):
    kind = "node.register.reply"
    cluster: str
    heartbeat_interval_s: float


@message
class NodeRegister(Request):
    """A node introduces itself to the coordinator once its sockets are bound. `token` is the
    secret the coordinator made for this node when it had it spawned (never in argv): only the
    process the cluster spawned can register as the node."""

    kind = "node.register"
    reply = NodeRegisterReply
    node_id: int
    token: str
    pid: int
    endpoint: str
    protocol_version: int
    frames_total: int
    page_size: int
    host: str = ""  # the host it runs on, on a cluster of several (protocol.hosts)
    tcp_endpoint: str = ""  # where the other hosts reach it ("" on a single host)


@message
class NodeHeartbeat(Notice):
    """Node -> coordinator, every heartbeat interval: alive, and how full."""

    kind = "node.heartbeat"
    node_id: int
    frames_free: int
    frames_total: int


@message
class CoordinatorHeartbeat(Notice):
    """Coordinator -> node, every heartbeat interval; a node without a parent-alive pipe that
    stops hearing it exits (timing.SILENT_DEAD_S)."""

    kind = "coord.heartbeat"


@message
class NodeRestartReply(Reply):
    kind = "node.restart.reply"
    node_id: int
    pid: int


@message
class NodeRestart(Request):
    """CLI -> coordinator: start dead node `node_id` again, empty (`numa-emu node restart`);
    answered once it has registered and every live node knows it is up."""

    kind = "node.restart"
    reply = NodeRestartReply
    node_id: int


@message
class NodeDown(Notice):
    """Coordinator -> every live node, when a node is known dead: calls to it fail at once (EIO)."""

    kind = "node.down"
    node_id: int
    why: str  # how it died, for the error text: "exited with status -9"


@message
class NodePeers(Request):
    """Coordinator -> node, once every node is up: where each peer listens."""

    kind = "node.peers"
    reply = Ok
    endpoints: dict  # node id -> endpoint
    shardless: list | None = None  # nodes that died since start: no directory home (docs/protocol.md#a-nodes-death)
    # [[host key, its CLOCK_MONOTONIC minus the coordinator's in ns], ...]: a cluster on several
    # hosts (protocol.delaylink: real-mode holds from the send instant across hosts)
    clocks: list | None = None


@message
class NodeShutdown(Request):
    """Coordinator -> node: stop serving, release the pool, exit."""

    kind = "node.shutdown"
    reply = Ok


@message
class ClusterStatusReply(Reply):
    kind = "cluster.status.reply"
    cluster: str
    state: str  # "starting", "up", "stopping"
    coordinator: dict  # pid, endpoint, uptime_s
    nodes: list  # one dict per node: id, pid, state, host, endpoint, frames_total, frames_free, heartbeat_age_s,
    # uptime_s, exit_code, offline (numa-emu node offline)
    topology: dict  # the topology in force (Topology.to_dict())


@message
class ClusterStatus(Request):
    kind = "cluster.status"
    reply = ClusterStatusReply


@message
class ClusterShutdown(Request):
    """CLI -> coordinator: stop every node, then the coordinator itself."""

    kind = "cluster.shutdown"
    reply = Ok




@message
class ProcHoldsReply(Reply):
    kind = "proc.holds.reply"
    hold_ns: list  # the hold each message asked for (latency × dilation + bytes / bandwidth)
    delay_ns: list  # its measured delay, send to delivery to the handler, same order


@message
class ProcHolds(Request):
    """The delaying link's own record (`real` mode): for the last held messages this process
    received from senders on its host, the requested hold and the measured delay. `clear`
    empties the record after answering."""

    kind = "proc.holds"
    reply = ProcHoldsReply
    clear: bool = False


@message
class ReplyRelay(Notice):
    """A reply for a peer of the receiver's ROUTER that the sender could not reach itself (a task
    not connected to the owner of the page its home node forwarded an access to): the receiver
    passes `envelope` (an encoded Reply) on to `route` unchanged."""

    kind = "reply.relay"
    route: bytes
    envelope: bytes
