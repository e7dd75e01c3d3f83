"""The cluster life cycle on real processes: up, status, hardware, down, crashes, stale folders."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from numa_emu import cluster as cl
from numa_emu.protocol.clusterdir import CLUSTER_FILE
from tests.helpers import poll_until

pytestmark = pytest.mark.cluster


def _status(cli, name):
    proc = cli("status", "--name", name, "--json", check=True)
    return json.loads(proc.stdout)


def _gone(pids):
    return all(_gone_one(p) for p in pids)


def _gone_one(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # never was, or exited between two looks
        return True


def test_up_status_down_through_the_cli(cli, home, cluster_name):
    up = cli("up", "--name", cluster_name, "-t", "default-4n", check=True)
    assert up.stdout.startswith(f"cluster {cluster_name} up: 4 nodes (default-4n)")
    st = _status(cli, cluster_name)
    assert st["cluster"] == cluster_name and st["state"] == "up"
    assert [n["id"] for n in st["nodes"]] == [0, 1, 2, 3]
    topo = json.loads((home / cluster_name / "topology.json").read_text())
    for node, spec in zip(st["nodes"], topo["nodes"]):
        assert node["state"] == "up"
        assert node["frames_total"] == spec["mem_bytes"] // topo["page_size"]
        assert node["frames_free"] == node["frames_total"]
        assert f"numa-emu[{cluster_name}] node {node['id']}" in " ".join(psutil.Process(node["pid"]).cmdline())
    pids = [st["coordinator"]["pid"]] + [n["pid"] for n in st["nodes"]]
    human = cli("status", "--name", cluster_name, check=True).stdout.splitlines()
    assert human[0].startswith(f"cluster {cluster_name}: up, 4 nodes")
    assert len(human) == 2 + 4
    down = cli("down", "--name", cluster_name, check=True)
    assert down.stdout.strip() == f"cluster {cluster_name} down"
    assert _gone(pids), "down returned while processes of the cluster were alive"
    assert not (home / cluster_name / CLUSTER_FILE).exists()


def test_daemons_of_a_host_share_one_session_each_its_own_group(cli, cluster_name):
    """One session (one autogroup: docs/design.md#node-fork-server), a process group each."""
    cli("up", "--name", cluster_name, "--nodes", "3", "--mem-per-node", "16MiB", check=True)
    try:
        st = _status(cli, cluster_name)
        coordinator = st["coordinator"]["pid"]
        nodes = [n["pid"] for n in st["nodes"]]
        zygote = psutil.Process(nodes[0]).ppid()
        daemons = [coordinator, zygote, *nodes]
        assert {os.getsid(p) for p in daemons} == {coordinator}
        assert [os.getpgid(p) for p in daemons] == daemons
        assert os.getsid(coordinator) != os.getsid(0)  # not the session of the shell that ran `up`
    finally:
        cli("down", "--name", cluster_name, check=True)


def test_default_name_is_the_only_cluster_up(cli, cluster_name):
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    st = json.loads(cli("status", "--json", check=True).stdout)
    assert st["cluster"] == cluster_name
    cli("down", check=True)


def test_hardware_prints_numactl_layout(cli, cluster_name):
    cli("up", "--name", cluster_name, "--nodes", "3", "--cpus-per-node", "2", "--mem-per-node", "64MiB",
        "--distances", "10,16,21;16,10,21;21,21,10", check=True)
    try:
        out = cli("hardware", "--name", cluster_name, check=True).stdout
        assert out.splitlines()[:7] == [
            "available: 3 nodes (0-2)",
            "node 0 cpus: 0 1",
            "node 0 size: 64 MB",
            "node 0 free: 64 MB",
            "node 1 cpus: 2 3",
            "node 1 size: 64 MB",
            "node 1 free: 64 MB",
        ]
        assert out.splitlines()[-4:] == ["node   0   1   2 ", "  0:  10  16  21 ", "  1:  16  10  21 ", "  2:  21  21  10 "]
        fallback = cli("hardware", "--name", cluster_name, "--fallback", check=True).stdout.splitlines()
        assert len(fallback) == 3 and "0 1 2" in fallback[0]
    finally:
        cli("down", "--name", cluster_name)


def test_killed_node_is_reported_dead_within_3s(cluster_factory):
    c = cluster_factory("default-4n")
    victim = c.status().nodes[2]
    os.kill(victim["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    poll_until(lambda: c.status().nodes[2]["state"] == "dead", timeout_s=3.0, what="node 2 reported dead")
    assert time.monotonic() - t0 < 3.0
    states = [n["state"] for n in c.status().nodes]
    assert states == ["up", "up", "dead", "up"]


def test_nodes_exit_by_themselves_when_the_coordinator_dies(cluster_factory, home):
    c = cluster_factory("default-4n")
    pids = [n["pid"] for n in c.status().nodes]
    c.started.proc.kill()
    c.started.proc.wait()
    poll_until(lambda: _gone(pids), timeout_s=5.0, what="every node to exit after its coordinator died")


def test_stale_cluster_is_detected_and_cleaned(cli, home, cluster_name):
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    st = _status(cli, cluster_name)
    coordinator = st["coordinator"]["pid"]
    os.kill(coordinator, signal.SIGKILL)
    poll_until(lambda: _gone([coordinator]), what="coordinator killed")
    proc = cli("status", "--name", cluster_name)
    assert proc.returncode == 1
    assert f"cluster '{cluster_name}' was stale" in proc.stderr
    assert f"cluster '{cluster_name}' is not up" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (home / cluster_name / CLUSTER_FILE).exists()
    assert _gone([n["pid"] for n in st["nodes"]])
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    cli("down", "--name", cluster_name, check=True)


def test_foreground_cluster_stops_on_ctrl_c(home, cluster_name):
    proc = subprocess.Popen([sys.executable, "-m", "numa_emu.cli.main", "up", "--foreground", "--name", cluster_name,
                             "--nodes", "2", "--mem-per-node", "16MiB"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NUMA_EMU_HOME=str(home)))
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"cluster {cluster_name} up: 2 nodes")
        info = cl.find(cluster_name, home)
        assert info is not None
        pids = info.pids
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        poll_until(lambda: _gone(pids), timeout_s=5.0, what="foreground cluster processes to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_python_api_cluster_context_manager(home, cluster_name):
    with cl.Cluster("default-4n", name=cluster_name, base=home) as c:
        st = c.status()
        pids = [st.coordinator["pid"]] + [n["pid"] for n in st.nodes]
        assert st.state == "up" and len(st.nodes) == 4
    assert _gone(pids)
