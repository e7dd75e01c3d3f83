"""Fixtures shared by every tier: a private NUMA_EMU_HOME, real clusters with unique names, the
CLI as a subprocess, puppet tasks, and a check that no process leaks. What tests and benchmarks
share (polling with a deadline, the leak scan, the puppet) is in tests/helpers.py."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from numa_emu import processes
from tests.helpers import Puppet, kill_left_behind

processes.become_subreaper()  # detached coordinators are re-parented to us and reaped below
# Speed lives in benchmarks, never in tests: hypothesis's 200 ms deadline per example failed a codec
# round trip at 395 ms on a loaded 2-core machine.
settings.register_profile("numa-emu", deadline=None)
settings.load_profile("numa-emu")

_names = itertools.count()


@pytest.fixture
def home(monkeypatch) -> Path:
    """A private NUMA_EMU_HOME with a short path (ipc socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="ne-", dir="/tmp"))
    monkeypatch.setenv("NUMA_EMU_HOME", str(path))
    yield path
    leaked = kill_left_behind(path)
    processes.reap_children()
    shutil.rmtree(path, ignore_errors=True)
    assert not leaked, f"processes left behind: {[(p.pid, p.info['cmdline']) for p in leaked]}"


@pytest.fixture
def cluster_name(request) -> str:
    return f"t{os.getpid()}-{next(_names)}"


@pytest.fixture
def cluster_factory(home, cluster_name):
    """Start real clusters (numa_emu.cluster.Cluster) under the private home; all stopped at teardown."""
    from numa_emu.cluster import Cluster

    started: list[Cluster] = []

    def make(topology="default-4n", name: str | None = None, **kw) -> Cluster:
        c = Cluster(topology, name=name or f"{cluster_name}-{len(started)}", base=home, **kw)
        c.start()
        started.append(c)
        return c

    yield make
    for c in reversed(started):
        c.stop()
        _report_crashes(home / c.name)


def _report_crashes(cluster_dir: Path) -> None:
    """Print the tracebacks a cluster's daemons logged (pytest shows them with a failure), so that
    a node that died under load can be told from one that crashed."""
    for log in sorted(cluster_dir.glob("*.log")):
        text = log.read_text(errors="replace")
        if any(mark in text for mark in ("Traceback", "-> dead", "-> suspect", "exited with status")):
            print(f"---- {log.name} ----\n{text[-4000:]}")


@pytest.fixture
def cli(home):
    """Run the real `numa-emu` command: returns CompletedProcess with text output."""

    def run(*args: str, timeout_s: float = 60, check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "numa_emu.cli.main", *args], capture_output=True, text=True,
                              timeout=timeout_s, env=dict(os.environ, NUMA_EMU_HOME=str(home)), input=input)
        processes.reap_children()
        if check and proc.returncode != 0:
            raise AssertionError(f"numa-emu {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    return run


@pytest.fixture
def puppets(home):
    """puppets(cluster, cpu) -> Puppet (tests/helpers.py); every puppet is detached at teardown."""
    made: list[Puppet] = []

    def make(cluster, cpu: int | None) -> Puppet:  # None: the coordinator's pick, not pinned
        made.append(Puppet(cpu, cluster=cluster.name, home=home))
        return made[-1]

    yield make
    for p in made:
        p.close()
