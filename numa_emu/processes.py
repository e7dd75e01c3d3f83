"""Our processes as the operating system sees them: is a recorded pid still one of ours, and the
stop ladder for pids we did not start ourselves (a detached cluster seen from a later CLI call).

A pid counts as ours only if its command line still carries the cluster's tag or its folder:
never kill by name pattern (docs/conventions.md#no-orphans; Mininet's `pkill -f` is the thing not to do).
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil

from numa_emu.protocol.clusterdir import process_tag


def is_ours(pid: int, name: str, cdir: Path) -> bool:
    """True if `pid` runs and its command line carries the tag of cluster `name` or its folder."""
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return process_tag(name) in cmd or str(cdir) in cmd


def alive(pids: list[int], name: str, cdir: Path) -> list[int]:
    return [pid for pid in pids if is_ours(pid, name, cdir)]


def wait_gone(pids: list[int], name: str, cdir: Path, timeout_s: float) -> list[int]:
    """Poll until none of `pids` is ours any more; the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout_s
    left = alive(pids, name, cdir)
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = alive(left, name, cdir)
    return left


def kill_ladder(pids: list[int], name: str, cdir: Path, grace_s: float) -> list[int]:
    """SIGTERM, wait, SIGKILL, wait. Returns pids that survived even that (should be none)."""
    left = alive(pids, name, cdir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                psutil.Process(pid).send_signal(sig)
            except psutil.Error:
                pass
        left = wait_gone(left, name, cdir, grace_s)
        if not left:
            break
    return left


def become_subreaper() -> bool:
    """Adopt our orphaned descendants (Linux PR_SET_CHILD_SUBREAPER), so that a detached
    coordinator that exits is reaped by us rather than left a zombie under an init that does not
    reap (as on some container and VM inits). Returns False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_children() -> int:
    """Collect every exited child (adopted ones included); the number reaped."""
    import os

    count = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return count
        if pid == 0:
            return count
        count += 1
