"""The node's side of cluster control: the global tunables the coordinator pushes (node.sysctl)
and a task's move to another CPU of this node (node.task.cpu).

Each tunable that applies on the nodes has an applier here (`NodeControl.appliers`, keyed by
its sysctl key; the keys and their parsers: protocol.messages.control.tunables); every value of
a push is checked before any is applied, so a malformed push changes nothing. Pure: no
sockets, only the node's core and memory manager change.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.replication import ReplicationTunables
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import control as cm

log = logging.getLogger("node.sysctl")


class NodeControl:
    def __init__(self, core: NodeCore, mm: MemoryManager, tunables: ReplicationTunables):
        self.core = core
        self.mm = mm
        self.tunables = cm.tunables(core.possible)
        # key -> what a value does here; a new node-scope key of cm.tunables needs one entry
        self.appliers: dict[str, Callable[[int | str], None]] = {
            cm.weight_key(n): functools.partial(core.set_weight, n) for n in sorted(core.possible)}
        self.appliers[cm.NUMA_STAT_KEY] = lambda value: self.core.switch_numastat(bool(value))
        self.appliers[cm.AUTO_MIGRATE_KEY] = lambda value: self.core.set_auto_migrate(bool(value))
        self.appliers[cm.DIRECT_ACCESS_KEY] = lambda value: self.mm.set_direct_access(bool(value))
        self.appliers.update({
            cm.REPL_KEY: lambda v: setattr(tunables, "enabled", bool(v)),
            cm.REPL_MODE_KEY: lambda v: setattr(tunables, "mode", v),
            cm.REPL_BACKOFF_KEY: lambda v: setattr(tunables, "backoff", bool(v)),
            cm.REPL_WINDOW_KEY: lambda v: setattr(tunables, "thrash_window_ns", int(v) * 1_000_000),
            cm.REPL_COOLDOWN_KEY: lambda v: setattr(tunables, "cooldown_ns", int(v) * 1_000_000),
            cm.UNSAFE_KEY: lambda v: setattr(tunables, "unsafe_unreplicate", bool(v)),
            cm.UNSAFE_DELAY_KEY: lambda v: setattr(tunables, "unsafe_unmap_delay_ns", int(v) * 1_000_000),
        })

    def handlers(self) -> dict:
        return {"node.sysctl": self.sysctl, "node.task.cpu": self.task_cpu}

    def sysctl(self, msg: cm.NodeSysctl) -> Ok:
        todo = []
        for key, value in msg.values.items():
            tunable, apply = self.tunables.get(key), self.appliers.get(key)
            if tunable is None or apply is None:
                raise NumaEmuError(ErrorCode.EINVAL, f"node {self.core.node_id} has no use for sysctl key {key!r}")
            todo.append((apply, tunable.check(value)))
        for apply, value in todo:  # every value checked first: all or nothing
            apply(value)
        log.info("node %d: sysctl %s", self.core.node_id, msg.values)
        return Ok()

    def task_cpu(self, msg: cm.NodeTaskCpu) -> Ok:
        task = self.mm.task(msg.task_id)
        if self.core.cpu_node.get(msg.cpu) != self.core.node_id:
            raise NumaEmuError(ErrorCode.EINVAL, f"cpu {msg.cpu} is not on node {self.core.node_id}; a task moves to "
                                                 f"another node with node.task.move")
        task.cpu = msg.cpu
        return Ok()
