"""Automatic NUMA balancing on real clusters (nodes/balancing.py, docs/linux-semantics.md#automatic-numa-balancing):
the sysctl keys, the two-stage filter with exact counters and bytes, explicit policies kept,
shared pages, and determinism in virtual mode."""
from __future__ import annotations

import collections
import io
import json
import os
import subprocess
import sys

import pytest

import numa_emu
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import MPOL_F_NUMA_BALANCING
from numa_emu.protocol.topology_shapes import from_cli

pytestmark = pytest.mark.cluster
PAGE = 4096
BALANCING = ("numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
             "numa_pages_migrated", "pgmigrate_success")
# every access scans: each remote page the task holds is marked again as soon as it is unmarked
EVERY_ACCESS = {cm.NUMA_BALANCING_KEY: "1", cm.SCAN_DELAY_KEY: "0", cm.SCAN_PERIOD_MIN_KEY: "0",
                cm.SCAN_PERIOD_MAX_KEY: "0"}


def sysctl(c, values: dict) -> dict:
    with c.client() as client:
        return client.call(cm.SysctlSet(values=values)).values


def vmstat(c) -> dict[int, collections.Counter]:
    with c.client() as client:
        return {n: collections.Counter(d["vmstat"]) for n, d in client.call(tm.ClusterStats()).nodes.items()}


def balancing(c, node: int) -> dict[str, int]:
    stats = vmstat(c)[node]
    return {name: stats[name] for name in BALANCING}


def pattern(i: int) -> bytes:
    return bytes((i * 7 + j) % 251 for j in range(PAGE))


@pytest.fixture
def two(cluster_factory):
    return cluster_factory(from_cli(2, 1, "1MiB"))  # cpu n on node n, 256 frames per node


def remote_pages(task, pages: int, node: int):
    """A private region whose pages first touch put on `node`; the task's policy is default again."""
    region = task.mmap(pages * PAGE)
    task.set_mempolicy("preferred", [node])
    for i in range(pages):
        region.write(i * PAGE, pattern(i))
    task.set_mempolicy("default")
    assert region.where() == [node] * pages
    return region


def test_the_keys_have_the_kernels_names_and_defaults():
    table = cm.tunables([0, 1])
    assert {k: table[k].default for k in table if k.startswith("kernel.numa_balancing")} == {
        "kernel.numa_balancing": 0, "kernel.numa_balancing_scan_delay_ms": 1000,
        "kernel.numa_balancing_scan_period_min_ms": 1000, "kernel.numa_balancing_scan_period_max_ms": 60000,
        "kernel.numa_balancing_scan_size_mb": 256}
    assert table[cm.NUMA_BALANCING_KEY].check("1") == 1
    for key, bad in ((cm.NUMA_BALANCING_KEY, "2"), (cm.NUMA_BALANCING_KEY, "on"), (cm.SCAN_SIZE_KEY, "0"),
                     (cm.SCAN_DELAY_KEY, "-1")):
        with pytest.raises(NumaEmuError) as info:
            table[key].check(bad)
        assert info.value.message.startswith(key)


def test_balancing_is_off_by_default_and_nothing_is_marked(two):
    with numa_emu.attach(0, cluster=two.name) as task:
        region = remote_pages(task, 4, 1)
        for _ in range(5):
            region.read(0, 64)
        assert region.where() == [1] * 4
    assert balancing(two, 0) == dict.fromkeys(BALANCING, 0)
    with two.client() as client:
        assert client.call(cm.SysctlGet(keys=[cm.NUMA_BALANCING_KEY])).values == {cm.NUMA_BALANCING_KEY: 0}


def test_a_remote_page_moves_on_its_second_hinting_fault_from_the_same_node(two):
    with numa_emu.attach(0, cluster=two.name) as task:
        region = remote_pages(task, 4, 1)
        sysctl(two, EVERY_ACCESS)
        assert region.read(0, 64) == pattern(0)[:64]  # the task's first access: its scan starts
        assert balancing(two, 0) == dict.fromkeys(BALANCING, 0)
        assert region.read(0, 64) == pattern(0)[:64]  # scan: 4 marked; the first hinting fault: it stays
        assert region.where() == [1] * 4
        assert balancing(two, 0) == dict(zip(BALANCING, (4, 0, 1, 0, 0, 0)))
        assert region.read(0, PAGE) == pattern(0)  # marked again, and the second fault from node 0: it moves
        assert region.where() == [0, 1, 1, 1]
        assert balancing(two, 0) == dict(zip(BALANCING, (5, 0, 2, 0, 1, 1)))
        region.read(0, 64)  # local now: not marked again (a single-threaded task's local page)
        assert balancing(two, 0) == dict(zip(BALANCING, (5, 0, 2, 0, 1, 1)))
        region.read(PAGE, 64)  # page 1: its first hinting fault
        assert region.where() == [0, 1, 1, 1]
        for i in range(4):
            assert region.read(i * PAGE, PAGE) == pattern(i)
        assert region.where() == [0, 0, 1, 1]
        assert balancing(two, 0) == dict(zip(BALANCING, (7, 0, 6, 0, 2, 2)))


def test_an_explicit_policy_keeps_its_pages(two):
    with numa_emu.attach(0, cluster=two.name) as task:
        region = task.mmap(2 * PAGE)
        region.mbind("bind", [1])
        region.write(0, b"x")
        sysctl(two, EVERY_ACCESS)
        for _ in range(4):
            region.read(0, 64)
        assert region.where() == [1, None]
        counted = balancing(two, 0)
        assert counted["numa_hint_faults"] == 3 and counted["numa_pages_migrated"] == 0


def test_a_shared_page_moves_toward_its_only_user(two):
    with numa_emu.attach(0, cluster=two.name) as task:
        region = task.mmap(2 * PAGE, shared=True, name="balshm")
        region.mbind("bind", [1])
        region.write(0, b"shared")
        task.munmap(region.vaddr, 2 * PAGE)
        again = task.mmap(2 * PAGE, shared=True, name="balshm")
        assert again.where()[0] is None and again.read(0, 6) == b"shared"
        assert again.where()[0] == 1
        sysctl(two, EVERY_ACCESS)
        for _ in range(3):
            assert again.read(0, 6) == b"shared"
        assert again.where()[0] == 0
        counted = balancing(two, 0)
        assert counted["numa_hint_faults"] == 2 and counted["numa_pages_migrated"] == 1


def test_a_page_marked_for_a_hinting_fault_leaves_the_direct_path(two):
    """A shared page on the task's own node is read through shared memory (the direct path); once
    the scanner marks it, the next read faults through the node (a local hinting fault) instead."""
    def direct_reads(task) -> int:
        with two.client() as client:
            nodes = client.call(tm.ClusterStats()).nodes
        return next(d["tasks"][task.task_id] for d in nodes.values() if task.task_id in d["tasks"])["direct_reads"]

    with numa_emu.attach(0, cluster=two.name) as task:
        shm = task.mmap(PAGE, shared=True, name="baldirect")
        shm.mbind("bind", [0])
        shm.write(0, b"local")
        assert shm.read(0, 5) == b"local"  # by message: published to the direct path
        before = direct_reads(task)
        assert shm.read(0, 5) == b"local" and direct_reads(task) == before + 1  # direct
        other = remote_pages(task, 1, 1)  # a page on node 1: its accesses are messages, which tick the scanner
        sysctl(two, EVERY_ACCESS)
        other.read(0, 8)  # the scan starts
        other.read(0, 8)  # scan: both pages marked; the remote one's first hinting fault
        assert balancing(two, 0) == dict(zip(BALANCING, (2, 0, 1, 0, 0, 0)))
        assert shm.read(0, 5) == b"local"  # not present to the direct path: a hinting fault by message
        assert direct_reads(task) == before + 1
        assert balancing(two, 0) == dict(zip(BALANCING, (3, 0, 2, 1, 0, 0)))
        assert shm.where() == [0]


def numa02_counters(c, cpu: int, pages: int, rounds: int) -> tuple[dict, list]:
    """One task hammers private pages first touch put on the next node, with a scan every 1 ms of
    its virtual time; the balancing counters it caused and where its pages ended."""
    before = balancing(c, cpu)
    with numa_emu.attach(cpu, cluster=c.name) as task:
        region = remote_pages(task, pages, (cpu + 1) % 2)
        for _ in range(rounds):
            region.touch()
        where = region.where()
    after = balancing(c, cpu)
    return {k: after[k] - before[k] for k in BALANCING}, where


def test_balancing_is_deterministic_in_virtual_time(two):
    sysctl(two, {cm.NUMA_BALANCING_KEY: "1", cm.SCAN_DELAY_KEY: "1", cm.SCAN_PERIOD_MIN_KEY: "1",
                 cm.SCAN_PERIOD_MAX_KEY: "4", cm.SCAN_SIZE_KEY: "1"})
    first = numa02_counters(two, 0, 64, 300)
    second = numa02_counters(two, 0, 64, 300)
    assert first == second
    assert first[0]["numa_pages_migrated"] > 0 and first[0]["numa_hint_faults"] > 0


# ---- the autonuma-benchmark workloads (numa_emu/workloads/numa01.py, numa02.py) -----------------
FAST_SCANS = {cm.SCAN_DELAY_KEY: "0", cm.SCAN_PERIOD_MIN_KEY: "1", cm.SCAN_PERIOD_MAX_KEY: "16",
              cm.SCAN_SIZE_KEY: "1"}


def workload(c, name: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", f"numa_emu.workloads.{name}", "--cpu", "0", *args],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, NUMA_EMU_CLUSTER=c.name))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture
def four(cluster_factory):
    c = cluster_factory(from_cli(4, 1, "2MiB"))  # cpu n on node n, 512 frames per node
    sysctl(c, FAST_SCANS)
    return c


def test_numa02_stays_where_first_touch_put_it_with_balancing_off(four):
    line = workload(four, "numa02", "--iterations", "60")
    assert (line["tasks"], line["pages"], line["verified"]) == (4, 128, True)
    assert line["locality_series"] == [0.0] * 60 and line["converged_round"] is None
    assert line["counters"] == dict.fromkeys(line["counters"], 0)


def test_numa02_converges_to_local_accesses_with_balancing_on(four):
    sysctl(four, {cm.NUMA_BALANCING_KEY: "1"})
    line = workload(four, "numa02", "--iterations", "80")
    assert line["verified"] and line["locality_first"] == 0.0
    assert line["locality"] >= 0.9 and line["converged_round"] is not None
    counted = line["counters"]
    # every page moved once, after two hinting faults from its task's node, and never back
    assert counted["numa_pages_migrated"] == counted["pgmigrate_success"] == 4 * 128
    assert counted["numa_hint_faults"] >= 2 * 4 * 128 and counted["pgmigrate_fail"] == 0


def test_numa01_ping_pongs_its_shared_buffer(four):
    sysctl(four, {cm.NUMA_BALANCING_KEY: "1"})
    line = workload(four, "numa01", "--iterations", "600", "--size", "128KiB")
    assert line["tasks"] == 2 and line["pages"] == 32
    # no placement suits both tasks: pages move back and forth, more moves than pages
    assert line["numa_pages_migrated"] > line["pages"]
    assert line["moves_per_page"] > 1


def test_bind_with_the_balancing_flag_moves_pages_within_its_nodes(two):
    with numa_emu.attach(0, cluster=two.name) as task:
        region = remote_pages(task, 2, 1)
        task.set_mempolicy("bind", [0, 1], flags=MPOL_F_NUMA_BALANCING)
        sysctl(two, EVERY_ACCESS)
        for _ in range(3):
            assert region.read(0, PAGE) == pattern(0)
        assert region.where() == [0, 1]
        assert balancing(two, 0)["numa_pages_migrated"] == 1


def test_the_shipped_experiment_sweeps_balancing_over_rounds():
    from numa_emu.experiments.spec import load_spec

    quick = load_spec("numa-balancing", quick=True)
    assert quick.grid["workload"] == ("numa02", "numa01") and quick.metric == "locality"
    assert len(quick.configurations()) == 3 * 2 * 2
    assert {c.values["kernel.numa_balancing"] for c in quick.configurations()} == {0, 1}


def test_scan_periods_run_on_the_wall_clock_in_real_mode(two, cli):
    # a 1 ms period on the task's virtual clock scans many windows over 200 touches of 64 remote
    # pages; a 60 s period on the wall clock (real mode, dilation 1) scans one window only
    settings = {cm.NUMA_BALANCING_KEY: "1", cm.SCAN_DELAY_KEY: "0", cm.SCAN_PERIOD_MIN_KEY: "1",
                cm.SCAN_PERIOD_MAX_KEY: "1"}
    sysctl(two, settings)
    virtual, _ = numa02_counters(two, 0, 64, 200)
    assert virtual["numa_pte_updates"] > 64
    cli("latency", "--name", two.name, "inject", "real", "--dilation", "1", check=True)
    sysctl(two, {cm.SCAN_PERIOD_MIN_KEY: "60000", cm.SCAN_PERIOD_MAX_KEY: "60000"})
    real, where = numa02_counters(two, 0, 64, 200)
    # the one window came at the set-up's second write, when only page 0 was there to mark
    assert real["numa_pte_updates"] == 1 and real["numa_hint_faults"] == 1
    assert real["numa_pages_migrated"] == 0 and where == [1] * 64


def test_hinting_faults_and_balancing_moves_are_traced(two, cli, tmp_path):
    from numa_emu.trace_recorder import Recorder

    with numa_emu.attach(0, cluster=two.name) as task:
        region = remote_pages(task, 1, 1)
        sysctl(two, EVERY_ACCESS)
        out = io.StringIO()
        recorder = Recorder(two.info, out)
        recorder.configure(True)
        try:
            for _ in range(3):
                assert region.read(0, 8) == pattern(0)[:8]
            recorder.drain(final=True)
        finally:
            recorder.configure(False)
            recorder.close()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    hints = [(e["at"], e["local"], e["last"], e["to"]) for e in events if e["ev"] == "numa_hint"]
    assert hints == [(1, False, None, None), (1, False, 0, 0)]
    (move,) = [e for e in events if e["ev"] == "migrate"]
    assert (move["mode"], move["cause"], move["from"], move["to"], move["addr"]) == (
        "balancing", "fault", 1, 0, region.vaddr)
    trace = tmp_path / "balancing.jsonl"
    trace.write_text(out.getvalue())
    shown = cli("trace", "show", str(trace), "--event", "numa_hint", check=True).stdout
    assert "NUMA hinting fault, page on node 1 (its first); stays" in shown
    assert "NUMA hinting fault, page on node 1 (the previous from node 0); moves to node 0" in shown


def test_numa02_smt_runs_two_tasks_per_node_and_converges(four):
    sysctl(four, {cm.NUMA_BALANCING_KEY: "1"})
    line = workload(four, "numa02_SMT", "--iterations", "80", "--size", "256KiB")
    assert line["workload"] == "numa02_SMT" and line["tasks"] == 8 and line["pages"] == 64
    assert line["verified"] and line["locality_first"] == 0.0 and line["locality"] >= 0.9
    assert line["counters"]["numa_pages_migrated"] == 8 * 64
