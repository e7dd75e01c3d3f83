"""Messages that show and change the faults in force (CLI -> coordinator -> every node)."""
from __future__ import annotations

from numa_emu.protocol.messages.base import Ok, Reply, Request, message


@message
class FaultShowReply(Reply):
    kind = "fault.show.reply"
    table: dict  # FaultTable.to_wire(), plus "stopped": {node: seconds left}


@message
class FaultShow(Request):
    kind = "fault.show"
    reply = FaultShowReply


@message
class FaultChange(Request):
    """One change: op is drop|dup|delay|reorder (p, ms?, src?, dst?, node?, seed?), partition
    (a, b, seed?), clear, kill (node) or stop (node, seconds). Replies with the table in force."""

    kind = "fault.change"
    reply = FaultShowReply
    op: str
    args: dict


@message
class NodeFaults(Request):
    """Coordinator -> node: the fault table in force from now on."""

    kind = "node.faults"
    reply = Ok
    table: dict
