"""Messages that switch tracing and collect trace events (CLI -> coordinator -> every node)."""
from __future__ import annotations

from numa_emu.protocol.messages.base import Ok, Reply, Request, message


@message
class TraceConfig(Request):
    """Switch trace points on or off everywhere; `events` and `tasks` filter (None: all)."""

    kind = "trace.config"
    reply = Ok
    on: bool
    events: list | None = None
    tasks: list | None = None


@message
class TraceEventsReply(Reply):
    kind = "trace.events.reply"
    events: list  # event dicts, each node's in its order
    dropped: int


@message
class TraceCollect(Request):
    """Drain the buffered events of the coordinator and of every live node."""

    kind = "trace.collect"
    reply = TraceEventsReply


@message
class NodeTraceConfig(Request):
    kind = "node.trace.config"
    reply = Ok
    on: bool
    events: list | None = None
    tasks: list | None = None


@message
class NodeTraceDrain(Request):
    kind = "node.trace.drain"
    reply = TraceEventsReply
