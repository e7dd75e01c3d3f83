"""What tests and benchmarks share: waiting with a deadline, the scan for processes left behind,
and the task puppet (a task process driven one JSON command per line, tests/puppet.py), so that
one test or benchmark plays several tasks on several nodes. The history checker is
tests/history.py; the protocol's invariants are checked in the simulator (sim/invariants.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import psutil

PUPPET = Path(__file__).with_name("puppet.py")


def poll_until(condition: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition"):
    """Wait for `condition()` to be truthy and return its value; fail at the deadline. Never a bare sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def vm_total(cluster, key: str) -> int:
    """vmstat counter `key` summed over the cluster's nodes (0 where a node does not count it)."""
    from numa_emu.protocol.messages.tasks import ClusterStats
    with cluster.client() as client:
        return sum(d["vmstat"].get(key, 0) for d in client.call(ClusterStats()).nodes.values())


def run_effects(gen, answer: Callable[[object], object]):
    """Drive a node's handler generator to its end with protocol.effects.drive (the one driver of
    the reactor and the simulator), each effect answered at once: `answer(effect)` gives its
    result or raises its NumaEmuError; a list of effects (a parallel gather) gets one answer each
    and fails as a whole. The generator's result, or its error raised (an AssertionError of
    `answer` goes straight up)."""
    from numa_emu.protocol.effects import Future, drive
    from numa_emu.protocol.errors import NumaEmuError

    def as_future(effect) -> Future:
        fut = Future()
        try:
            fut.set_result([answer(e) for e in effect] if isinstance(effect, list) else answer(effect))
        except NumaEmuError as exc:
            fut.set_exception(exc)
        return fut

    out: list = []
    drive(gen, as_future, lambda result, exc: out.append((result, exc)), passes=(AssertionError,))
    result, exc = out[0]
    if exc is not None:
        raise exc
    return result


def processes_under(path: Path) -> list[psutil.Process]:
    """Live processes whose command line names `path` (a fresh folder: only ours can)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(path) in " ".join(proc.info["cmdline"] or []):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def kill_left_behind(path: Path) -> list[psutil.Process]:
    """Kill every process still naming `path`, wait for them; the list (empty when all was clean)."""
    leaked = processes_under(path)
    for proc in leaked:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(leaked, timeout=5)
    return leaked


class PuppetError(RuntimeError):
    """A puppet's API call failed: the errno's name and the message, as the task saw them."""

    def __init__(self, errno_name: str, message: str):
        super().__init__(f"{errno_name}: {message}")
        self.errno_name = errno_name
        self.message = message


class Puppet:
    """A task process attached at `cpu` of cluster `cluster`, driven one command at a time.

    `do(op, **kw)` answers the call's result (bytes as hex) or raises PuppetError; `timed` also
    gives the seconds the API call took, measured inside the task around that call alone (the
    pipe and JSON are never part of a timing). The commands are tests/puppet.py's. `home` (the
    cluster's NUMA_EMU_HOME) goes into the command line, so that a leak scan finds a puppet that
    outlived its test."""

    def __init__(self, cpu: int | None, *, cluster: str, home: Path | None = None, cpuset: str | None = None):
        env = dict(os.environ, NUMA_EMU_CLUSTER=cluster)
        if cpuset:
            env["NUMA_EMU_CPUSET"] = cpuset
        argv = [sys.executable, str(PUPPET), "any" if cpu is None else str(cpu)] + ([str(home)] if home else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     start_new_session=True)
        self.node = self._answer(60.0)[0]

    def send(self, op: str, **kw) -> None:
        """Start a command without waiting for it (answer() reads its answer later)."""
        self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
        self.proc.stdin.flush()

    def answer(self, timeout_s: float = 60.0) -> dict:
        """The next answer as the task wrote it: {"ok": ..., "s": ...} or {"error": ..., "message": ...}."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            raise AssertionError(f"puppet task {self.proc.pid} gave no answer within {timeout_s:g} s "
                                 f"(exit code {self.proc.poll()})")
        return json.loads(line)

    def _answer(self, timeout_s: float) -> tuple[object, float]:
        answer = self.answer(timeout_s)
        if "error" in answer:
            raise PuppetError(answer["error"], answer["message"])
        return answer["ok"], answer.get("s", 0.0)

    def timed(self, op: str, timeout_s: float = 60.0, **kw) -> tuple[object, float]:
        """(result, seconds of the API call measured in the task)."""
        self.send(op, **kw)
        return self._answer(timeout_s)

    def do(self, op: str, timeout_s: float = 60.0, **kw):
        return self.timed(op, timeout_s, **kw)[0]

    def close(self) -> None:
        """EOF: the task detaches and exits; killed if it does not within 10 s."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> "Puppet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
