"""`numa-emu top`: one frame for scripts (--once), and the full-screen view driven through a
pseudo-terminal: it draws, quits on q with exit 0, and leaves the terminal as it found it."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

import numa_emu
from numa_emu import processes

pytestmark = pytest.mark.cluster
PAGE = 4096
ALT_SCREEN_ON, ALT_SCREEN_OFF = b"\x1b[?1049h", b"\x1b[?1049l"


@pytest.fixture
def busy(cluster_factory):
    """A 2-node cluster with a task on cpu 0 holding 30 pages, 10 of them on node 1."""
    c = cluster_factory("full,2,mem=64MiB")
    with numa_emu.attach(0, cluster=c.name, comm="toptask") as task:
        task.mmap(20 * PAGE).touch(fill=1)
        remote = task.mmap(10 * PAGE)
        remote.mbind("bind", "1")
        remote.touch(fill=2)
        yield c, task


def test_once_prints_one_frame(busy, cli):
    c, task = busy
    proc = cli("top", "--name", c.name, "--once", "--interval", "0.2", check=True)
    out = proc.stdout
    assert out.splitlines()[0] == f"numa-emu top  cluster {c.name} (up), 2 nodes, 1 task"
    assert "\x1b[" not in out  # not a terminal: no escapes, no full screen
    lines = [line.rstrip() for line in out.splitlines()]
    nodes = lines[lines.index("nodes") + 3:lines.index("nodes") + 5]
    assert [line.split()[:4] for line in nodes] == [["0", "up", "20", str(16384 - 20)], ["1", "up", "10", str(16384 - 10)]]
    row = next(line.split() for line in lines if line.startswith(f"{task.task_id} "))
    assert row[:4] == [str(task.task_id), "toptask", "0", "0"]
    assert row[6:] == ["30", "30", "N0=20", "N1=10", "66.7"]


def test_once_json_prints_the_frames_numbers(busy, cli):
    c, task = busy
    proc = cli("top", "--name", c.name, "--once", "--json", "--interval", "0.2", check=True)
    frame = json.loads(proc.stdout)
    assert (frame["cluster"], frame["state"]) == (c.name, "up") and frame["interval_s"] > 0
    assert [(n["node"], n["state"], n["used"], n["free"], n["total"]) for n in frame["nodes"]] == [
        (0, "up", 20, 16384 - 20, 16384), (1, "up", 10, 16384 - 10, 16384)]
    assert frame["nodes"][0]["remote"] == {"of": "alloc", "share": 0.0}
    [t] = frame["tasks"]
    assert (t["task"], t["comm"], t["cpu"], t["node"], t["pages"], t["total"]) == (
        task.task_id, "toptask", 0, 0, {"0": 20, "1": 10}, 30)
    assert t["locality"] == pytest.approx(20 / 30)


def test_json_needs_once(busy, cli):
    c, _ = busy
    proc = cli("top", "--name", c.name, "--json")
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", "numa-emu: error: top: --json prints one frame: add --once\n")


def test_interval_must_be_positive(busy, cli):
    c, _ = busy
    proc = cli("top", "--name", c.name, "--interval", "0")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "--interval" in proc.stderr


def _read_until(fd: int, proc: subprocess.Popen, wanted: list[bytes], timeout_s: float) -> bytes:
    """Read the terminal's output until every `wanted` appears (or the process exits)."""
    out = b""
    deadline = time.monotonic() + timeout_s
    while not all(w in out for w in wanted):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {wanted}; got {out[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:  # EIO: nothing holds the other end any more
                break
        elif proc.poll() is not None:
            break
    return out


def test_full_screen_draws_quits_on_q_and_restores_the_terminal(busy, home):
    c, task = busy
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(slave)
    env = dict(os.environ, NUMA_EMU_HOME=str(home), TERM="xterm-256color", COLUMNS="80", LINES="24")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "numa_emu.cli.main", "top", "--name", c.name, "--interval", "0.2"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    try:
        out = _read_until(master, proc, [ALT_SCREEN_ON, b"numa-emu top", b"toptask"], timeout_s=20)
        assert termios.tcgetattr(slave)[3] & termios.ICANON == 0  # cbreak while it runs
        os.write(master, b"q")
        assert proc.wait(timeout=10) == 0
        out += _read_until(master, proc, [ALT_SCREEN_OFF], timeout_s=5)
        after = termios.tcgetattr(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        processes.reap_children()
        os.close(master)
        os.close(slave)
    assert after == before  # echo and line editing are back
    assert out.index(ALT_SCREEN_ON) < out.index(b"numa-emu top") < out.rindex(ALT_SCREEN_OFF)
    text = out.decode(errors="replace")
    assert "migr/s" in text and "N0=20 N1=10" in text and "Traceback" not in text
