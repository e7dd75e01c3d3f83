"""The built-in workloads as tasks of a real cluster: each prints one JSON line whose facts are
exact (bytes moved, slots visited, records verified, virtual time from the topology's costs),
as `python -m numa_emu.workloads.NAME`, as `numa-emu workload NAME`, and under numactl."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from numa_emu.protocol.policy import Mode, make_policy

pytestmark = pytest.mark.cluster
PAGE = 4096
COMMON = ("workload", "virtual_ns", "wall_s", "ops", "bytes", "node", "cpu")


def cost_ns(topology, cpu_node: int, mem_node: int, nbytes: int) -> int:
    """The model's cost of one access (protocol/costmodel.py), from the topology's figures."""
    bytes_per_ns = topology.bandwidth_mib_s[cpu_node][mem_node] * 1048576 / 1e9
    return round(topology.latency_ns[cpu_node][mem_node] + nbytes / bytes_per_ns)


def run_module(cluster, name: str, *args: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-m", f"numa_emu.workloads.{name}", *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, NUMA_EMU_CLUSTER=cluster.name, **(env or {})))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    line = json.loads(lines[0])
    assert list(line)[:len(COMMON)] == list(COMMON)
    return line


def bind_env(nodes: list[int]) -> dict:
    policy = make_policy(Mode.BIND, nodes, allowed=range(4), possible=range(4))
    return {"NUMA_EMU_POLICY": json.dumps(policy.to_wire())}


@pytest.fixture
def four(cluster_factory):
    return cluster_factory("default-4n")


def test_chase_visits_every_slot_of_its_cycle_once_at_the_local_cost(four):
    line = run_module(four, "chase", "--size", "64KiB", "--granularity", "page", "--hops", "16", "--cpu", "0")
    assert line["workload"] == "chase" and line["node"] == 0 and line["cpu"] == 0
    assert line["slots"] == 16 and line["hops"] == line["ops"] == 16 and line["bytes"] == 16 * 8
    assert line["distinct_slots"] == 16 and line["cycle_closed"] is True and line["end_offset"] == 0
    assert line["virtual_ns"] == 16 * cost_ns(four.topology, 0, 0, 8)
    assert line["pages_by_node"] == {"0": 16}


def test_chase_bound_to_a_remote_node_pays_that_latency_per_hop(four):
    line = run_module(four, "chase", "--size", "128KiB", "--hops", "300", "--iterations", "2", "--seed", "7",
                      "--cpu", "1", env=bind_env([3]))
    assert line["slots"] == 128 * 1024 // 64 and line["ops"] == 600 and line["cycle_closed"] is None
    assert 0 < line["distinct_slots"] <= 600
    assert line["virtual_ns"] == 600 * cost_ns(four.topology, 1, 3, 8)
    assert line["pages_by_node"] == {"3": 32}
    again = run_module(four, "chase", "--size", "128KiB", "--hops", "300", "--iterations", "2", "--seed", "7",
                       "--cpu", "1", env=bind_env([3]))
    assert again["end_offset"] == line["end_offset"] and again["virtual_ns"] == line["virtual_ns"]


def test_stream_moves_three_times_its_size_per_iteration(four, cli):
    proc = cli("workload", "stream", "--cluster", four.name, "--size", "64KiB", "--iterations", "2", "--cpu", "2",
               check=True)
    line = json.loads(proc.stdout)
    assert line["workload"] == "stream" and line["node"] == 2 and line["verified"] is True
    assert line["size"] == 65536 and line["pages"] == 16 and line["elements"] == 8192
    assert line["bytes"] == 3 * 65536 * 2 and line["ops"] == 3 * 16 * 2
    assert line["virtual_ns"] == 3 * 16 * 2 * cost_ns(four.topology, 2, 2, PAGE)
    assert line["mb_s"] == pytest.approx(line["bytes"] / line["virtual_ns"] * 1e3)
    assert line["pages_by_node"] == {"2": 48}


def test_stream_under_numactl_interleave_spreads_its_pages(four, cli):
    proc = cli("numactl", "--interleave=all", "--", sys.executable, "-m", "numa_emu.workloads.stream",
               "--size", "64KiB", "--iterations", "1", "--cpu", "0", check=True)
    line = json.loads(proc.stdout)
    assert line["pages_by_node"] == {"0": 12, "1": 12, "2": 12, "3": 12} and line["verified"] is True
    per_page = [cost_ns(four.topology, 0, n, PAGE) for n in range(4)]
    assert line["virtual_ns"] == 3 * 4 * sum(per_page)  # 16 pages per array, 4 on each node


def test_prodcons_hands_every_record_over_verified(four):
    line = run_module(four, "prodcons", "--size", "16KiB", "--iterations", "3", "--cpu", "0", "--seed", "5")
    producer, consumer = line["producer"], line["consumer"]
    assert line["records"] == line["ops"] == 4 * (PAGE // 64) * 3 and line["verified"] is True
    assert consumer["records"] == line["records"] and consumer["errors"] == 0 and consumer["role"] == "consumer"
    assert producer["node"] == 0 and consumer["node"] == 1 and consumer["cpu"] == 1
    assert line["virtual_ns"] == consumer["pipeline_ns"] >= max(producer["virtual_ns"], consumer["virtual_ns"])
    assert line["bytes"] == line["records"] * 64 and line["records_per_s"] > 0
    again = run_module(four, "prodcons", "--size", "16KiB", "--iterations", "3", "--cpu", "0", "--seed", "5")
    assert again["virtual_ns"] == line["virtual_ns"]  # the hand-over does not depend on scheduling


def test_workload_errors_are_one_line_with_fixed_exit_codes(four, cli):
    for args, code in [(["chase", "--size", "0"], 2), (["chase", "--hops", "x"], 2),
                       (["prodcons", "--record-size", "10"], 3), (["chase", "--cpu", "9"], 3),
                       (["stream", "--cluster", "nope"], 1)]:
        proc = cli("workload", *args)
        assert proc.returncode == code and proc.stdout == "", (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, args
