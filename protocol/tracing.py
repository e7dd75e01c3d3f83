"""Trace points: memory-management events with both clocks, recorded as JSON-able dicts.

An event is {"ev": kind, "wall_ns": ..., "node": ..., then the kind's fields, usually "task",
"vns" (the task's virtual clock), "obj"/"idx" or "addr", "frame", "to"/"from" nodes}. Off by
default; when off a trace point costs one attribute test (`if tracer.on:`), the call sites build
nothing. The clock is injected, so a pure core stays free of clocks (docs/design.md#pure-cores-and-effects).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

# Every event kind, with what it marks. `trace on --events` takes these names.
EVENTS = {
    "fault": "a task touched a page that was not present (read or write; local or remote supplier)",
    "alloc": "frames allocated for a fault: supplier node, preferred node, hit or miss",
    "free": "frames freed",
    "access": "a task read or wrote a page on another node (remote access)",
    "policy": "a task policy, region policy (mbind) or cpuset change",
    "replicate": "a replica of a shared page was created",
    "unreplicate": "replicas of a shared page were torn down (with the cause)",
    "shootdown": "a page-table unmap sent to a home node, and its acknowledgement",
    "stale": "an access through a mapping whose frame was freed or reused (caught by generation)",
    "migrate": "a page moved between nodes, or failed to (mode direct|lazy|auto|balancing, cause, from/to node and frame, result)",
    "numa_hint": "a NUMA hinting fault: a page the balancing scanner marked was touched (local or not, and where it goes)",
    "migcache": "a lazily migrated private page entered the migration cache (unmapped) or left it (next touch)",
    "writeback": "a dirty page-cache page written to the backing store",
    "reclaim": "a frame reclaimed under memory pressure",
    "node": "a node came up, went suspect, died or stopped",
    "task": "a task attached or detached",
}
MAX_BUFFERED = 200_000  # events kept per process between drains; the oldest are dropped beyond


class Tracer:
    def __init__(self, node: int | str, clock_ns: Callable[[], int]):
        self.node = node
        self.on = False
        self.events: frozenset[str] | None = None  # None: every kind
        self.tasks: frozenset[int] | None = None  # None: every task
        self.buffer: deque[dict[str, Any]] = deque(maxlen=MAX_BUFFERED)
        self.dropped = 0
        self._clock = clock_ns

    def configure(self, on: bool, events: list[str] | None = None, tasks: list[int] | None = None) -> None:
        self.on = on
        self.events = frozenset(events) if events else None
        self.tasks = frozenset(tasks) if tasks else None

    def emit(self, ev: str, task: int | None = None, **fields: Any) -> None:
        """Record one event; call only under `if tracer.on:`."""
        if self.events is not None and ev not in self.events:
            return
        if self.tasks is not None and task is not None and task not in self.tasks:
            return
        if len(self.buffer) == self.buffer.maxlen:
            self.dropped += 1
        event = {"ev": ev, "wall_ns": self._clock(), "node": self.node}
        if task is not None:
            event["task"] = task
        event.update(fields)
        self.buffer.append(event)

    def drain(self) -> list[dict[str, Any]]:
        out = list(self.buffer)
        self.buffer.clear()
        return out

    def take_dropped(self) -> int:
        """How many events were dropped since the last call (the buffer was full)."""
        dropped, self.dropped = self.dropped, 0
        return dropped
