"""One log file per process per `up`: the previous run's kept as .1, older ones gone, none of a node
the cluster no longer has without the .1; `numa-emu logs` reads them (also when the cluster is
down), -n, -f until the cluster goes down or Ctrl-C; `up --log-level` reaches every daemon."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import pytest

from tests.helpers import poll_until

pytestmark = pytest.mark.cluster
DEBUG_LINE = "numa_emu.log DEBUG logging at level debug"


@pytest.fixture
def up(cli, home):
    """up(*options) through the CLI under the private home as cluster 'lg'; down at teardown."""
    started = []

    def start(*options: str) -> None:
        cli("up", "--name", "lg", *options, check=True)
        started.append(True)

    yield start
    cli("down", "--all")


def _logs(home) -> list[str]:
    return sorted(p.name for p in (home / "lg").iterdir() if ".log" in p.name)


def test_one_log_per_process_per_up_the_previous_kept_as_dot_one(up, cli, home):
    up("--nodes", "3", "--log-level", "debug")
    assert _logs(home) == ["coordinator.log", "node-0.log", "node-1.log", "node-2.log", "zygote.log"]
    for name in _logs(home):
        assert stat.S_IMODE((home / "lg" / name).stat().st_mode) == 0o600
    cli("down", "--name", "lg", check=True)
    up("--nodes", "2", "--log-level", "warning")
    assert _logs(home) == ["coordinator.log", "coordinator.log.1", "node-0.log", "node-0.log.1", "node-1.log",
                           "node-1.log.1", "node-2.log.1", "zygote.log", "zygote.log.1"]
    assert DEBUG_LINE in (home / "lg" / "coordinator.log.1").read_text()
    assert " INFO " not in (home / "lg" / "coordinator.log").read_text()  # warning: no info lines
    cli("down", "--name", "lg", check=True)
    up("--nodes", "1")
    assert _logs(home) == ["coordinator.log", "coordinator.log.1", "node-0.log", "node-0.log.1", "node-1.log.1",
                           "zygote.log", "zygote.log.1"]  # the run before the previous one is gone, node 2's with it
    text = (home / "lg" / "coordinator.log").read_text()
    assert " INFO " in text and DEBUG_LINE not in text
    for name in _logs(home):
        assert stat.S_IMODE((home / "lg" / name).stat().st_mode) == 0o600


def test_log_level_debug_reaches_every_daemon(up, cli, home):
    up("--nodes", "2", "--log-level", "debug")
    for selector in ([], ["--node", "0"], ["--node", "1"]):
        proc = cli("logs", *selector, check=True)
        assert DEBUG_LINE in proc.stdout and proc.stderr == ""


def test_logs_reads_the_chosen_file_and_its_last_lines(up, cli, home):
    up("--nodes", "2")
    path = home / "lg" / "node-1.log"
    proc = cli("logs", "--node", "1", check=True)
    assert proc.stdout == path.read_text()
    proc = cli("logs", "--node", "1", "-n", "2", check=True)
    assert proc.stdout.splitlines() == path.read_text().splitlines()[-2:]
    assert cli("logs", "-n", "0", check=True).stdout == ""
    assert cli("logs", "--coordinator", check=True).stdout == (home / "lg" / "coordinator.log").read_text()
    proc = cli("logs", "--node", "5")
    assert (proc.returncode, proc.stdout) == (3, "")
    assert proc.stderr == ("numa-emu: error: cluster 'lg' has no node-5.log; its logs: coordinator.log, node-0.log, "
                           "node-1.log, zygote.log\n")
    proc = cli("logs", "--node", "1", "--zygote")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "not allowed with" in proc.stderr
    cli("down", "--name", "lg", check=True)
    proc = cli("logs", "--name", "lg", "--node", "1", check=True)  # the logs outlive the cluster
    assert proc.stdout == path.read_text() and "node 1" in proc.stdout


def _follow(home, *options: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "numa_emu.cli.main", "logs", "--name", "lg", "-f", *options],
                            stdout=stdout, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NUMA_EMU_HOME=str(home)))


def test_follow_stops_when_the_cluster_goes_down(up, cli, home):
    up("--nodes", "1")
    follower = _follow(home)
    try:
        cli("down", "--name", "lg", check=True)
        out, err = follower.communicate(timeout=20)
    finally:
        follower.kill()
    assert follower.returncode == 0
    assert out == (home / "lg" / "coordinator.log").read_text() and "coordinator lg stopped" in out
    assert err == "numa-emu: cluster 'lg' is down\n"


def test_follow_prints_new_lines_and_stops_on_ctrl_c(up, cli, home, tmp_path):
    up("--nodes", "1")
    printed = tmp_path / "out"
    with open(printed, "w") as out:
        follower = _follow(home, "-n", "1", stdout=out)
    try:
        poll_until(lambda: printed.read_text().endswith("\n"), what="logs -f printing the last line")
        first = printed.read_text()
        # a task attaching is logged by the coordinator while logs -f runs
        cli("--name", "lg", "workload", "stream", "--size", "64KiB", check=True)
        poll_until(lambda: "detached" in printed.read_text(), what="logs -f printing the task's lines")
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=20)
    finally:
        follower.kill()
    assert follower.returncode == 0 and err == ""
    text = printed.read_text()
    log = (home / "lg" / "coordinator.log").read_text().splitlines(keepends=True)
    assert first.count("\n") == 1 and first in log and log[0] not in text  # -n 1, then the new lines
    assert text.startswith(first) and "attached on cpu 0" in text
