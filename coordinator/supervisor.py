"""Starting and stopping the node processes: no orphans, ever (STYLE.md guideline 8).

Each node is started without a shell, in a new session, holding the read end of a
parent-alive pipe: when the coordinator dies, for whatever reason, every node reads EOF and exits.
Stopping is a ladder: the shutdown message (sent by the server), then SIGTERM after a grace
period, then SIGKILL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from protocol.timing import TERM_GRACE_S


class Supervisor:
    def __init__(self, cluster_dir: Path, name: str, coordinator_endpoint: str):
        self.cluster_dir = cluster_dir
        self.name = name
        self.coordinator_endpoint = coordinator_endpoint
        self.procs: dict[int, subprocess.Popen] = {}
        self._alive_w: int | None = None

    def start(self, node_ids: list[int]) -> None:
        alive_r, self._alive_w = os.pipe()  # we keep the write end; it closes when we die
        try:
            for node_id in node_ids:
                self.procs[node_id] = self._spawn(node_id, alive_r)
        finally:
            os.close(alive_r)

    def _spawn(self, node_id: int, alive_r: int) -> subprocess.Popen:
        log = open(self.cluster_dir / f"node-{node_id}.log", "ab", buffering=0)
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "nodes", "--cluster-dir", str(self.cluster_dir), "--name", self.name,
                 "--node", str(node_id), "--coordinator", self.coordinator_endpoint, "--alive-fd", str(alive_r)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(alive_r,), start_new_session=True, close_fds=True,
            )
        finally:
            log.close()

    def pids(self) -> dict[int, int]:
        return {node_id: p.pid for node_id, p in self.procs.items()}

    def reap(self) -> list[tuple[int, int]]:
        """Nodes that exited since the last call: (node id, exit code; negative = signal)."""
        exited = []
        for node_id, proc in list(self.procs.items()):
            code = proc.poll()
            if code is not None:
                exited.append((node_id, code))
                del self.procs[node_id]
        return exited

    def stop(self, grace_s: float) -> list[tuple[int, int]]:
        """Wait `grace_s` for the nodes to exit on their own, then SIGTERM, then SIGKILL."""
        exited = self._wait(grace_s)
        for sig, wait_s in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, TERM_GRACE_S)):
            if not self.procs:
                break
            for proc in self.procs.values():
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            exited += self._wait(wait_s)
        if self._alive_w is not None:
            os.close(self._alive_w)
            self._alive_w = None
        return exited

    def _wait(self, timeout_s: float) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout_s
        exited = self.reap()
        while self.procs and time.monotonic() < deadline:
            time.sleep(0.005)  # polling child exit; no condition to wait on across several children
            exited += self.reap()
        return exited
