"""The coordinator's latency handlers: it owns the latency table in force and pushes every change
to all live nodes before it answers, so a change applies to the next message anywhere."""
from __future__ import annotations

import logging

from numa_emu.coordinator.state import ClusterState
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.latency import LatencyTable
from numa_emu.protocol.messages import latency as lm

log = logging.getLogger("coordinator.latency")


class LatencyService:
    def __init__(self, state: ClusterState, mode: str, dilation: float):
        self.state = state
        self.table = LatencyTable.from_topology(state.topology, mode, dilation)

    def handlers(self) -> dict:
        return {"latency.show": self.show, "latency.change": self.change}

    def show(self, msg: lm.LatencyShow) -> lm.LatencyShowReply:
        return lm.LatencyShowReply(table=self.table.to_wire())

    def push(self, table: LatencyTable):
        """Effects that install `table` on every live node."""
        wire = table.to_wire()
        return self.state.broadcast(lm.NodeLatency(table=wire))

    def change(self, msg: lm.LatencyChange):
        new = LatencyTable.from_wire(self.table.to_wire())
        a = msg.args
        try:
            if msg.op == "set":
                new.set(a["src"], a["dst"], a["ns"], bool(a.get("symmetric", False)))
            elif msg.op == "scale":
                new.scale(a["factor"], bool(a.get("remote_only", False)))
            elif msg.op == "jitter":
                new.set_jitter(a["distribution"], a["spread"], a.get("src"), a.get("dst"))
            elif msg.op == "inject":
                new.set_mode(a["mode"], a.get("dilation"))
            elif msg.op == "reset":
                new.reset()
            else:
                raise NumaEmuError(ErrorCode.EINVAL, f"unknown latency change {msg.op!r} (set, scale, jitter, inject, reset)")
        except (KeyError, TypeError) as exc:
            raise NumaEmuError(ErrorCode.EINVAL, f"latency {msg.op}: missing or bad argument {exc}") from None
        yield self.push(new)
        self.table = new
        log.info("latency %s %s: now version %d, mode %s, dilation %g", msg.op, a, new.version, new.mode, new.dilation)
        return lm.LatencyShowReply(table=new.to_wire())
