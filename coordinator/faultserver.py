"""The coordinator's fault handlers (`numa-emu fault`): it owns the fault table in force, pushes
every change to all live nodes before it answers (each applies it to what it sends to other
nodes, protocol.peercalls), and kills or stops node processes on request (docs/protocol.md#faults)."""
from __future__ import annotations

import logging
import signal
import time
from typing import Callable

from numa_emu.coordinator.state import ClusterState
from numa_emu.coordinator.supervisor import Supervisor
from numa_emu.protocol import limits
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.faults import KINDS, FaultTable
from numa_emu.protocol.messages import faults as fm

log = logging.getLogger("coordinator.faults")


class FaultService:
    def __init__(self, state: ClusterState, supervisor: Supervisor, call_later: Callable[[float, Callable[[], None]], None]):
        self.state = state
        self.supervisor = supervisor
        self.call_later = call_later
        self.table = FaultTable(len(state.topology["nodes"]))
        self.stopped: dict[int, float] = {}  # node stopped by `fault stop` -> when it is continued

    def handlers(self) -> dict:
        return {"fault.show": self.show, "fault.change": self.change}

    def _reply(self) -> fm.FaultShowReply:
        now = time.monotonic()
        wire = self.table.to_wire()
        wire["stopped"] = {str(n): round(max(0.0, t - now), 3) for n, t in sorted(self.stopped.items())}
        return fm.FaultShowReply(table=wire)

    def show(self, msg: fm.FaultShow) -> fm.FaultShowReply:
        return self._reply()

    def push(self, table: FaultTable):
        """Effects that install `table` on every live node."""
        wire = table.to_wire()
        return self.state.broadcast(fm.NodeFaults(table=wire))

    def _live_node(self, value: object) -> int:
        node = self.table.check_node(value, "node")
        if node not in {rec.id for rec in self.state.live_nodes()}:
            raise NumaEmuError(ErrorCode.ENODEV, f"fault: node {node} is not running (see `numa-emu status`)")
        return node

    def change(self, msg: fm.FaultChange):
        a = msg.args
        try:
            if msg.op == "kill":
                return self._kill(self._live_node(a["node"]))
            if msg.op == "stop":
                return self._stop(self._live_node(a["node"]), limits.FAULT_STOP_S.check(a["seconds"], "--for"))
            new = FaultTable.from_wire(self.table.to_wire())
            if a.get("seed") is not None:
                new.set_seed(a["seed"])
            if msg.op in KINDS:
                new.set_rule(msg.op, a["p"], a.get("ms"), a.get("src"), a.get("dst"), a.get("node"))
            elif msg.op == "partition":
                new.partition(a["a"], a["b"])
            elif msg.op == "clear":
                new.clear()
            elif msg.op != "seed":
                raise NumaEmuError(ErrorCode.EINVAL, f"unknown fault change {msg.op!r} "
                                                     f"({', '.join(KINDS)}, partition, clear, seed, kill, stop)")
        except (KeyError, TypeError) as exc:
            raise NumaEmuError(ErrorCode.EINVAL, f"fault {msg.op}: missing or bad argument {exc}") from None
        yield self.push(new)
        self.table = new
        log.info("fault %s %s: now version %d, seed %d", msg.op, a, new.version, new.seed)
        return self._reply()

    def _kill(self, node: int) -> fm.FaultShowReply:
        if not self.supervisor.signal(node, signal.SIGKILL):
            raise NumaEmuError(ErrorCode.ENODEV, f"fault kill: node {node} has no process")
        log.warning("fault kill: node %d sent SIGKILL", node)
        return self._reply()

    def _stop(self, node: int, seconds: float) -> fm.FaultShowReply:
        if node in self.stopped:
            raise NumaEmuError(ErrorCode.EBUSY, f"fault stop: node {node} is already stopped")
        if not self.supervisor.signal(node, signal.SIGSTOP):
            raise NumaEmuError(ErrorCode.ENODEV, f"fault stop: node {node} has no process")
        self.stopped[node] = time.monotonic() + seconds
        log.warning("fault stop: node %d stopped for %g s", node, seconds)
        self.call_later(seconds, lambda: self._continue(node))
        return self._reply()

    def _continue(self, node: int) -> None:
        self.stopped.pop(node, None)
        self.supervisor.signal(node, signal.SIGCONT)
        log.warning("fault stop: node %d continued", node)

    def continue_all(self) -> None:
        """Continue every node still stopped (the cluster is shutting down: a stopped node cannot exit)."""
        for node in list(self.stopped):
            self._continue(node)
