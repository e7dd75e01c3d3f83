"""Messages that show and change the latency model in force (CLI -> coordinator -> every node)."""
from __future__ import annotations

from numa_emu.protocol.messages.base import Ok, Reply, Request, message


@message
class LatencyShowReply(Reply):
    kind = "latency.show.reply"
    table: dict  # LatencyTable.to_wire()


@message
class LatencyShow(Request):
    kind = "latency.show"
    reply = LatencyShowReply


@message
class LatencyChange(Request):
    """One change: op is set (src, dst, ns, symmetric), scale (factor, remote_only), jitter
    (distribution, spread, src?, dst?), inject (mode, dilation?) or reset. Replies with the new table."""

    kind = "latency.change"
    reply = LatencyShowReply
    op: str
    args: dict


@message
class NodeLatency(Request):
    """Coordinator -> node: the table in force from now on."""

    kind = "node.latency"
    reply = Ok
    table: dict
