"""The coordinator's tracing handlers: switch trace points on every node, and collect their events
(plus the coordinator's own: nodes up and down) for the recorder."""
from __future__ import annotations

import time

from numa_emu.coordinator.state import ClusterState
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import trace as trm
from numa_emu.protocol.tracing import EVENTS, Tracer


class TraceService:
    def __init__(self, state: ClusterState):
        self.state = state
        self.tracer = Tracer("coordinator", time.time_ns)

    def handlers(self) -> dict:
        return {"trace.config": self.config, "trace.collect": self.collect}

    def config(self, msg: trm.TraceConfig):
        unknown = sorted(set(msg.events or ()) - EVENTS.keys())
        if unknown:
            raise NumaEmuError(ErrorCode.EINVAL, f"unknown trace event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
        if msg.tasks and not all(isinstance(t, int) and not isinstance(t, bool) for t in msg.tasks):
            raise NumaEmuError(ErrorCode.EINVAL, "trace tasks must be pids (integers)")
        yield self.state.broadcast(trm.NodeTraceConfig(on=msg.on, events=msg.events, tasks=msg.tasks))
        self.tracer.configure(msg.on, msg.events, msg.tasks)
        return Ok()

    def collect(self, msg: trm.TraceCollect):
        replies = yield self.state.broadcast(trm.NodeTraceDrain())
        events = self.tracer.drain()
        dropped = self.tracer.take_dropped()
        for reply in replies:
            events.extend(reply.events)
            dropped += reply.dropped
        events.sort(key=lambda e: e["wall_ns"])
        return trm.TraceEventsReply(events=events, dropped=dropped)

    def node_changed(self, node_id: int, old: str, new: str) -> None:
        if self.tracer.on:
            self.tracer.emit("node", target=node_id, old=old, new=new)
