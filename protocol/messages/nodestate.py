"""Messages that take a node out of service and bring it back (node offline / online): the CLI's
requests to the coordinator, and the coordinator's to the nodes (docs/protocol.md#node-offline).
"""
from __future__ import annotations

from numa_emu.protocol.messages.base import Ok, Reply, Request, message


@message
class NodeStateReply(Reply):
    kind = "node.state.reply"
    node_id: int
    offline: list  # every offline node now
    pages_moved: int = 0  # private pages and masters moved off the node
    replicas_dropped: int = 0
    tasks_moved: list | None = None  # [task_id, old_cpu, new_cpu]


@message
class NodeOffline(Request):
    """CLI -> coordinator: `numa-emu node offline N`: no new allocation on N, its pages moved to
    the nearest allowed nodes, its tasks to other CPUs of their cpusets; EBUSY and nothing moved
    when that cannot be done."""

    kind = "node.offline"
    reply = NodeStateReply
    node_id: int


@message
class NodeOnline(Request):
    """CLI -> coordinator: `numa-emu node online N`: N takes new allocations again."""

    kind = "node.online"
    reply = NodeStateReply
    node_id: int


@message
class NodeSetOffline(Request):
    """Coordinator -> every node: the offline nodes now (zonelists skip them)."""

    kind = "node.set_offline"
    reply = Ok
    offline: list


@message
class EvacuateReply(Reply):
    kind = "node.evacuate.reply"
    problems: list  # one line each: why the node's pages could not leave (the check)
    # the check: the shm policies this node's tasks set by mbind, [obj, first index, pages,
    # policy (Policy.to_wire()), task id] each: the coordinator hands them to the node going offline
    shm_policies: list | None = None
    moved: int = 0
    failed: int = 0
    replicas_dropped: int = 0


@message
class NodeEvacuate(Request):
    """Coordinator -> a node: move what this node's tasks hold on node `node` (and, on `node`
    itself, the masters and replicas it holds); with `check` only say what would stop it.
    `shm_policies` (to `node` itself): every node's EvacuateReply.shm_policies, which place the
    masters of shm pages (and, with `check`, say which are bound to offline nodes only)."""

    kind = "node.evacuate"
    reply = EvacuateReply
    node: int
    check: bool = False
    shm_policies: list | None = None
