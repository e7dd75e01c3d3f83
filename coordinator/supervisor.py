"""Starting and stopping the node processes: no orphans, ever (docs/conventions.md#no-orphans).

The nodes are forked by one fork server, `python -m nodes.zygote` (a fresh interpreter per node
costs 70-80 ms of imports; a fork costs a few). The zygote is started without a shell, in a new
session; it reports every node's pid when it forks it and every exit when it reaps it, one line
each on a pipe that this side reads without blocking. Every node holds the read end of a
parent-alive pipe whose write end only the coordinator holds: when the coordinator dies, for
whatever reason, every node reads EOF and exits, and then the zygote does.
Each node gets a secret register token, made here at spawn and written to the zygote's stdin
(argv is public through `ps`): node.register is accepted only with it (check_token).
Stopping is a ladder: the shutdown message (sent by the server), then SIGTERM after a grace
period, then SIGKILL, each to the recorded pids of nodes not yet reported gone.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from protocol.clusterdir import ZYGOTE_LOG, open_private
from protocol.errors import ErrorCode, NumaEmuError
from protocol.logsetup import DEFAULT_LOG_LEVEL
from protocol.timing import TERM_GRACE_S

_SPAWN_REPORT_TIMEOUT_S = 30.0


class Supervisor:
    def __init__(self, cluster_dir: Path, name: str, coordinator_endpoint: str, *, log_level: str = DEFAULT_LOG_LEVEL):
        self.cluster_dir = cluster_dir
        self.log_level = log_level  # the fork server's and every node's
        self.name = name
        self.coordinator_endpoint = coordinator_endpoint
        self.zygote: subprocess.Popen | None = None
        self._pids: dict[int, int] = {}  # node id -> pid, while not reported gone
        self._exits: list[tuple[int, int]] = []  # reported, not yet handed out by reap()
        self._buffer = b""
        self._alive_w: int | None = None
        self._tokens: dict[int, str] = {}  # node id -> the secret its node.register must carry

    def check_token(self, node_id: int, token: str) -> bool:
        """Whether `token` is the one made for node `node_id` when it was spawned."""
        expected = self._tokens.get(node_id)
        return expected is not None and hmac.compare_digest(expected.encode(), token.encode())

    def start(self, node_ids: list[int]) -> None:
        alive_r, self._alive_w = os.pipe()  # we keep the write end; it closes when we die
        self._tokens.update({i: secrets.token_hex(16) for i in node_ids})
        log = os.fdopen(open_private(self.cluster_dir / ZYGOTE_LOG), "ab", buffering=0)
        try:
            self.zygote = subprocess.Popen(
                [sys.executable, "-m", "nodes.zygote", "--cluster-dir", str(self.cluster_dir), "--name", self.name,
                 "--coordinator", self.coordinator_endpoint, "--alive-fd", str(alive_r),
                 "--nodes", ",".join(map(str, node_ids)), "--log-level", self.log_level],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                pass_fds=(alive_r,), start_new_session=True, close_fds=True,
            )
        finally:
            log.close()
            os.close(alive_r)
        try:  # a few dozen bytes per node: the pipe takes them without blocking
            self.zygote.stdin.write(json.dumps({str(i): self._tokens[i] for i in node_ids}).encode() + b"\n")
            self.zygote.stdin.flush()  # kept open: `spawn NODE TOKEN` commands follow (node restart)
        except BrokenPipeError:
            pass  # the zygote died at once; reported below
        os.set_blocking(self.zygote.stdout.fileno(), False)
        deadline = time.monotonic() + _SPAWN_REPORT_TIMEOUT_S
        while len(self._pids) + len(self._exits) < len(node_ids):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.zygote.poll() is not None and not self._read(0.0):
                raise NumaEmuError(ErrorCode.EIO, "the node fork server did not start every node; see zygote.log")
            self._read(min(remaining, 0.5))

    @property
    def zygote_pid(self) -> int | None:
        return self.zygote.pid if self.zygote is not None else None

    def _read(self, timeout_s: float) -> bool:
        """Take the zygote's reports that have arrived (waiting up to timeout_s); True if any."""
        if self.zygote is None or self.zygote.stdout is None:
            return False
        fd = self.zygote.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout_s)
        if not ready:
            return False
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            what, node, value = line.decode().split()
            if what == "spawned":
                self._pids[int(node)] = int(value)
            elif what == "exited":
                self._pids.pop(int(node), None)
                self._exits.append((int(node), int(value)))
        return bool(chunk)

    def pids(self) -> dict[int, int]:
        return dict(self._pids)

    def alive(self, node_id: int) -> bool:
        """Whether the node's process still exists (a zombie does not count), asked of the system
        itself: a node the fork server could not report (the fork server died) is still seen gone."""
        pid = self._pids.get(node_id)
        if pid is None:
            return False
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def respawn(self, node_id: int) -> None:
        """Ask the fork server for node `node_id` again (its `spawned` report comes later)."""
        if node_id in self._pids and self.alive(node_id):
            raise NumaEmuError(ErrorCode.EBUSY, f"node {node_id} is still running (pid {self._pids[node_id]})")
        token = self._tokens[node_id] = secrets.token_hex(16)  # a fresh secret for the new process
        try:
            assert self.zygote is not None and self.zygote.stdin is not None
            self.zygote.stdin.write(f"spawn {node_id} {token}\n".encode())
            self.zygote.stdin.flush()
        except (AssertionError, OSError):
            raise NumaEmuError(ErrorCode.EIO, "the node fork server is gone; restart the cluster (down, then up)") \
                from None

    def kill(self, node_id: int) -> None:
        """SIGKILL a node declared dead while its process lived (hung): dead is then true."""
        self.signal(node_id, signal.SIGKILL)

    def signal(self, node_id: int, signum: int) -> bool:
        """Send `signum` to a node's process (also `fault kill` and `fault stop`); False when it is gone."""
        pid = self._pids.get(node_id)
        if pid is None:
            return False
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def reap(self) -> list[tuple[int, int]]:
        """Nodes that exited since the last call: (node id, exit code; negative = signal)."""
        self._read(0.0)
        exits, self._exits = self._exits, []
        return exits

    def stop(self, grace_s: float) -> list[tuple[int, int]]:
        """Wait `grace_s` for the nodes to exit on their own, then SIGTERM, then SIGKILL."""
        exited = self._wait(grace_s)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self._pids:
                break
            for pid in self._pids.values():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            exited += self._wait(TERM_GRACE_S)
        if self._alive_w is not None:
            os.close(self._alive_w)
            self._alive_w = None
        if self.zygote is not None and self.zygote.stdin is not None:
            try:
                self.zygote.stdin.close()  # no more commands: the fork server leaves with its last node
            except OSError:
                pass
        if self.zygote is not None:
            try:
                self.zygote.wait(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                self.zygote.kill()
                self.zygote.wait()
            self.zygote.stdout.close()
            self.zygote = None
        return exited

    def _wait(self, timeout_s: float) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout_s
        exited = self.reap()
        while self._pids and time.monotonic() < deadline and self.zygote is not None:
            if self.zygote.poll() is not None and not self._read(0.0):
                break  # the zygote is gone: nobody will report the rest
            self._read(min(0.05, max(0.0, deadline - time.monotonic())))
            exited += self.reap()
        return exited
