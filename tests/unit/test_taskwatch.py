"""numa_emu.taskwatch: which of the three endings it sees (a real child process and a pipe)."""
from __future__ import annotations

import os
import subprocess
import sys

from numa_emu import taskwatch


def _child(code: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    return proc, os.pidfd_open(proc.pid)


def test_a_detached_line_ends_the_watch_without_a_report():
    proc, pidfd = _child("import time; time.sleep(60)")
    r, w = os.pipe()
    try:
        os.write(w, taskwatch.DETACHED)
        assert taskwatch.task_exited(r, pidfd) is False
    finally:
        proc.kill()
        proc.wait()
        for fd in (r, w, pidfd):
            os.close(fd)


def test_the_process_exit_is_reported():
    proc, pidfd = _child("pass")
    r, w = os.pipe()
    try:
        assert taskwatch.task_exited(r, pidfd) is True
    finally:
        proc.wait()
        for fd in (r, w, pidfd):
            os.close(fd)


def test_a_pipe_closed_by_a_live_process_is_no_death(monkeypatch):
    monkeypatch.setattr(taskwatch, "EXIT_GRACE_S", 0.05)
    proc, pidfd = _child("import time; time.sleep(60)")
    r, w = os.pipe()
    os.close(w)
    try:
        assert taskwatch.task_exited(r, pidfd) is False
    finally:
        proc.kill()
        proc.wait()
        os.close(r)
        os.close(pidfd)


def test_bad_arguments_get_the_usage_and_status_2(capsys):
    assert taskwatch.main(["only-a-name"]) == 2
    assert taskwatch.main(["c", "x", "1"]) == 2
    assert "usage: python -m numa_emu.taskwatch CLUSTER TASK_ID PID" in capsys.readouterr().err
