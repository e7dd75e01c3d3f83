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

from nodes.core import NodeCore
from nodes.mm import MemoryManager
from protocol.errors import ErrorCode, NumaEmuError
from protocol.messages import Ok
from protocol.messages import control as cm

log = logging.getLogger("node.sysctl")


class NumaStatCounters(dict):
    """The node's numastat counters, which vm.numa_stat can stop: while `enabled` is False,
    updates are dropped, as zone_statistics returns early when numa stats are off
    (mm/page_alloc.c; docs/linux-semantics.md#numastat-counters). Turning them off also clears them (vm.numa_stat=0:
    "disable numa statistics, and clear numa counters")."""

    enabled: bool = True

    def __setitem__(self, key: str, value: int) -> None:
        if self.enabled:
            super().__setitem__(key, value)

    def switch(self, on: bool) -> None:
        if not on:
            for key in self:
                super().__setitem__(key, 0)
        self.enabled = on


class NodeControl:
    def __init__(self, core: NodeCore, mm: MemoryManager,
                 more_appliers: dict[str, Callable[[int | str], None]] | None = None):
        self.core = core
        self.mm = mm
        self.tunables = cm.tunables(core.possible)
        if not isinstance(core.numastat, NumaStatCounters):
            core.numastat = NumaStatCounters(core.numastat)
        # key -> what a value does here; a new node-scope key of cm.tunables needs one entry
        self.appliers: dict[str, Callable[[int | str], None]] = {
            cm.weight_key(n): functools.partial(self._set_weight, n) for n in sorted(core.possible)}
        self.appliers[cm.NUMA_STAT_KEY] = lambda value: self.core.numastat.switch(bool(value))
        self.appliers[cm.AUTO_MIGRATE_KEY] = lambda value: setattr(self.core, "auto_migrate", bool(value))
        repl = core.repl
        self.appliers.update({
            cm.REPL_KEY: lambda v: setattr(repl, "enabled", bool(v)),
            cm.REPL_MODE_KEY: lambda v: setattr(repl, "mode", v),
            cm.REPL_BACKOFF_KEY: lambda v: setattr(repl, "backoff", bool(v)),
            cm.REPL_WINDOW_KEY: lambda v: setattr(repl, "thrash_window_ns", int(v) * 1_000_000),
            cm.REPL_COOLDOWN_KEY: lambda v: setattr(repl, "cooldown_ns", int(v) * 1_000_000),
            cm.UNSAFE_KEY: lambda v: setattr(repl, "unsafe_unreplicate", bool(v)),
            cm.UNSAFE_DELAY_KEY: lambda v: setattr(repl, "unsafe_unmap_delay_ns", int(v) * 1_000_000),
        })
        self.appliers.update(more_appliers or {})  # other services' keys (nodes.balancing)

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

    def _set_weight(self, node: int, weight: int) -> None:
        # A fresh dict each time: placement caches key on the policy and the target node only,
        # and the target is computed from these weights at every fault, so the next allocation
        # follows the new weights.
        weights = dict(self.core.weights or {})
        weights[node] = weight
        self.core.weights = weights

    def task_cpu(self, msg: cm.NodeTaskCpu) -> Ok:
        task = self.mm.task(msg.task_id)
        if self.core.cpu_node.get(msg.cpu) != self.core.node_id:
            raise NumaEmuError(ErrorCode.EINVAL, f"cpu {msg.cpu} is not on node {self.core.node_id}; a task moves to "
                                                 f"another node with node.task.move")
        task.cpu = msg.cpu
        return Ok()
