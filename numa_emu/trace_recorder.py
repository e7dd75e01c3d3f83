"""Recording a trace: switch trace points on, drain every node through the coordinator, and write
one JSON-lines file in timestamp order.

Order across nodes: a drain request is sent at wall time T; every node drains after it receives
the request, so every event stamped before T is in that drain's reply. Events stamped before T
are written, later ones wait for the next drain (a watermark), so the file is globally sorted.
"""
from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Callable, TextIO

from numa_emu.cluster import ClusterInfo
from numa_emu.traceview.events import expand
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import trace as trm

DRAIN_INTERVAL_S = 0.2


class Recorder:
    def __init__(self, info: ClusterInfo, out: TextIO):
        self.client = info.client(timeout_s=10.0)
        self.out = out
        self.pending: list[dict] = []
        self.written = 0
        self.dropped = 0

    def configure(self, on: bool, events: list[str] | None = None, tasks: list[int] | None = None) -> None:
        self.client.call(trm.TraceConfig(on=on, events=events, tasks=tasks))

    def drain(self, final: bool = False) -> None:
        sent_ns = time.time_ns()
        reply = self.client.call(trm.TraceCollect())
        self.dropped += reply.dropped
        fresh = [one for event in reply.events for one in expand(event)]  # batched faults: one line per page
        merged = sorted(self.pending + fresh, key=lambda e: e["wall_ns"])
        cut = len(merged) if final else next((i for i, e in enumerate(merged) if e["wall_ns"] >= sent_ns), len(merged))
        for event in merged[:cut]:
            self.out.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.written += cut
        self.pending = merged[cut:]

    def record(self, until: Callable[[], bool]) -> None:
        """Drain every DRAIN_INTERVAL_S until `until()` is true (or Ctrl-C), then a last time."""
        try:
            while not until():
                time.sleep(DRAIN_INTERVAL_S)  # the pacing of the recorder itself, not a wait for a condition
                self.drain()
        except KeyboardInterrupt:
            pass
        finally:
            self.drain(final=True)

    def close(self) -> None:
        self.client.close()


def record_file(info: ClusterInfo, path: Path, until: Callable[[], bool], events: list[str] | None,
                tasks: list[int] | None, started: Callable[[], None] = lambda: None) -> tuple[int, int]:
    """Record into `path` until `until()`; `started()` runs once the trace points are on (start
    the command there, so that none of its first events is lost). Returns (written, dropped)."""
    try:
        out = open(path, "w")
    except OSError as exc:
        raise NumaEmuError(ErrorCode.EACCES if exc.errno == errno.EACCES else ErrorCode.ENOENT,
                           f"cannot write the trace to {path}: {exc.strerror}") from None
    with out:
        recorder = Recorder(info, out)
        try:
            recorder.drain()  # discard nothing: events from before `on` are not buffered anyway
            recorder.configure(True, events, tasks)
            try:
                started()
                recorder.record(until)
            finally:
                recorder.configure(False)
                recorder.drain(final=True)
        finally:
            recorder.close()
    return recorder.written, recorder.dropped
