"""Latency on a real cluster: `latency set` changes the virtual cost of the next remote access by
exactly the modeled amount; `real` mode holds inter-node messages back measurably."""
from __future__ import annotations

import json
import time

import pytest

import numa_emu

pytestmark = pytest.mark.cluster
PAGE = 4096


def _read_cost(task, region, offset=0):
    t0 = task.clock_ns()
    region.read(offset, 8)
    return task.clock_ns() - t0


def test_latency_set_changes_the_next_remote_access_exactly(cluster_factory, cli):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        remote = task.mmap(PAGE)
        remote.mbind("bind", [2])
        remote.touch(write=True)
        topo = c.topology
        bw = topo.bandwidth_mib_s[0][2] * 1048576 / 1e9
        assert _read_cost(task, remote) == round(topo.latency_ns[0][2] + 8 / bw)
        out = cli("latency", "--name", c.name, "set", "0", "2", "1000", check=True).stdout
        assert "version 2" in out.splitlines()[0]
        assert _read_cost(task, remote) == round(1000 + 8 / bw)
        cli("latency", "--name", c.name, "scale", "3", "--remote-only", check=True)
        assert _read_cost(task, remote) == round(3 * topo.latency_ns[0][2] + 8 / bw)
        cli("latency", "--name", c.name, "reset", check=True)
        assert _read_cost(task, remote) == round(topo.latency_ns[0][2] + 8 / bw)
    shown = json.loads(cli("latency", "--name", c.name, "show", "--json", check=True).stdout)
    assert shown["latency_ns"] == [list(map(float, r)) for r in topo.latency_ns] and shown["version"] == 4


def test_invalid_changes_are_refused_and_change_nothing(cluster_factory, cli):
    c = cluster_factory("default-4n")
    before = cli("latency", "--name", c.name, "show", "--json", check=True).stdout
    for args in (["set", "0", "9", "100"], ["set", "0", "1", "-5"], ["scale", "0"],
                 ["inject", "real", "--dilation", "-1"], ["jitter", "normal", "0.1", "0"], ["set", "x", "1", "5"]):
        proc = cli("latency", "--name", c.name, *args)
        assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, args
        assert cli("latency", "--name", c.name, "show", "--json", check=True).stdout == before


def _median_read_s(region, n=15):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        region.read(0, 8)
        times.append(time.perf_counter() - t0)
    return sorted(times)[n // 2]


def test_real_mode_holds_inter_node_messages_back(cluster_factory, cli):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        local, remote = task.mmap(PAGE), task.mmap(PAGE)
        remote.mbind("bind", [3])
        local.touch(write=True)
        remote.touch(write=True)
        base_remote = _median_read_s(remote)
        cli("latency", "--name", c.name, "inject", "real", "--dilation", "20000", check=True)
        # a remote read is a frame.read to node 3 and its reply: held back 190 ns x 20000 = 3.8 ms each way
        lat = c.topology.latency_ns
        expected_s = (lat[0][3] + lat[3][0]) * 20000 * 1e-9
        delayed = _median_read_s(remote)
        assert delayed - base_remote >= 0.8 * expected_s
        assert _median_read_s(local) < 0.5 * expected_s  # local accesses are never held back
        cli("latency", "--name", c.name, "inject", "virtual", check=True)
        assert _median_read_s(remote) < 0.5 * expected_s
