"""`numa-emu sysctl` on a real cluster: weighted-interleave weights pushed to the nodes hold for the
next allocation, invalid values change nothing, vm.numa_stat=0 stops and clears the counters.
The table of keys and the node-side counters are checked as plain functions first."""
from __future__ import annotations

import pytest

import numa_emu
from numa_emu.nodes.core import NumaStatCounters
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.topology_shapes import from_cli

PAGE = 4096
W0, W1 = cm.weight_key(0), cm.weight_key(1)


# ---- the table of keys, without a cluster -------------------------------------------------------


def test_the_table_lists_every_key_with_parser_default_and_scope():
    table = cm.tunables([1, 0])
    assert list(table) == [W0, W1, "vm.auto_migrate", "vm.direct_access", "vm.numa_stat"] + REPLICATION_KEYS
    assert {t.key: t.default for t in table.values()} == dict(REPLICATION_DEFAULTS, **{
        W0: 1, W1: 1, "vm.auto_migrate": 1, "vm.direct_access": 1, "vm.numa_stat": 1})
    assert table["vm.auto_migrate"].check("0") == 0
    assert {t.scope for t in table.values()} == {cm.SCOPE_NODES}
    assert table["vm.pagecache_replication_mode"].check("no-writers") == "no-writers"
    for key, bad in (("vm.pagecache_replication_mode", "some"), ("vm.unsafe_unmap_delay_ms", "-5"),
                     ("vm.pagecache_replication", "yes")):
        with pytest.raises(NumaEmuError):
            table[key].check(bad)
    assert table[W0].check("5") == 5 and table[W0].check("0x10\n") == 16 and table[W0].check(255) == 255
    for bad in ("0", "256", "-1", "", "five", "1.5"):
        with pytest.raises(NumaEmuError) as info:
            table[W1].check(bad)
        assert info.value.code == ErrorCode.EINVAL and info.value.message.startswith(W1)
    assert table["vm.numa_stat"].check("0") == 0
    with pytest.raises(NumaEmuError):
        table["vm.numa_stat"].check("2")
    assert cm.weight_node(W1) == 1
    assert cm.weight_node("vm.numa_stat") is None and cm.weight_node(cm.WEIGHT_KEY_PREFIX + "x") is None


def test_numastat_counters_stop_and_clear():
    counters = NumaStatCounters(numa_hit=3, numa_miss=1)
    counters["numa_hit"] += 1
    counters.switch(False)
    counters["numa_hit"] += 1
    assert dict(counters) == {"numa_hit": 0, "numa_miss": 0}
    counters.switch(True)
    counters["numa_miss"] += 2
    assert dict(counters) == {"numa_hit": 0, "numa_miss": 2}


# ---- on a cluster ---------------------------------------------------------------------------------


@pytest.fixture
def two(cluster_factory):
    return cluster_factory(from_cli(2, 1, "16MiB"))


@pytest.fixture
def sysctl(cli):
    def run(c, *args: str, check: bool = True):
        return cli("sysctl", "--name", c.name, *args, check=check)

    return run


REPLICATION_DEFAULTS = {
    "vm.pagecache_replication": 1, "vm.pagecache_replication_backoff": 1,
    "vm.pagecache_replication_cooldown_ms": 1000, "vm.pagecache_replication_mode": "all",
    "vm.pagecache_replication_thrash_window_ms": 1000, "vm.unsafe_unmap_delay_ms": 100, "vm.unsafe_unreplicate": 0,
}
REPLICATION_KEYS = sorted(REPLICATION_DEFAULTS)


def numastat(c) -> dict[int, dict]:
    with c.client() as client:
        return {n: d["numastat"] for n, d in client.call(tm.ClusterStats()).nodes.items()}


def one_error_line(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(f in lines[0] for f in fragments), lines[0]


@pytest.mark.cluster
def test_weights_5_2_put_5_of_7_pages_on_node_0(two, sysctl):
    assert sysctl(two, "-a").stdout.splitlines() == [f"{W0} = 1", f"{W1} = 1", "vm.auto_migrate = 1", "vm.direct_access = 1",
                                                     "vm.numa_stat = 1"] + [
        f"{k} = {REPLICATION_DEFAULTS[k]}" for k in REPLICATION_KEYS]
    assert sysctl(two, f"{W0}=5").stdout == f"{W0} = 5\n"
    assert sysctl(two, f"{W1}=2", W0).stdout.splitlines() == [f"{W1} = 2", f"{W0} = 5"]
    with numa_emu.attach(0, cluster=two.name) as task:
        task.set_mempolicy("weighted-interleave", "0-1")
        region = task.mmap(700 * PAGE)
        region.touch(write=True)
        where = region.where()
        assert where[:14] == [0] * 5 + [1] * 2 + [0] * 5 + [1] * 2
        assert (where.count(0), where.count(1)) == (500, 200)
        vma = task.mmap(700 * PAGE)  # a region policy: interleave by page offset, same weights
        vma.mbind("weighted-interleave", "0-1")
        vma.touch(write=True)
        assert (vma.where().count(0), vma.where().count(1)) == (500, 200)
        assert sysctl(two, f"{W0}=1", f"{W1}=1").returncode == 0  # the next allocation follows
        task.set_mempolicy("weighted-interleave", "0-1")
        even = task.mmap(10 * PAGE)
        even.touch(write=True)
        assert even.where() == [0, 1] * 5


@pytest.mark.cluster
def test_an_invalid_weight_changes_nothing(two, sysctl):
    sysctl(two, f"{W0}=5", f"{W1}=2")
    before = sysctl(two, "-a").stdout
    for bad in ("0", "256", "-3", "x", ""):
        one_error_line(sysctl(two, f"{W0}={bad}", check=False), 3, W0)
    one_error_line(sysctl(two, f"{W0}=7", f"{W1}=300", check=False), 3, f"{W1}: weight 300 outside 1..255")
    one_error_line(sysctl(two, f"{W0}=7", "kernel.no.such.key=1", check=False), 3, "unknown key 'kernel.no.such.key'")
    one_error_line(sysctl(two, "vm.numa_stat=2", check=False), 3, "expected 0 or 1")
    one_error_line(sysctl(two, cm.weight_key(2), check=False), 3, "unknown key")
    one_error_line(sysctl(two, check=False), 2, "give -a")
    assert sysctl(two, "-a").stdout == before
    with numa_emu.attach(0, cluster=two.name) as task:
        task.set_mempolicy("weighted-interleave", "0-1")
        region = task.mmap(70 * PAGE)
        region.touch(write=True)
        assert (region.where().count(0), region.where().count(1)) == (50, 20)
    assert sysctl(two, "-n", W0, W1).stdout == "5\n2\n"


@pytest.mark.cluster
def test_numa_stat_0_stops_and_clears_the_counters(two, sysctl):
    with numa_emu.attach(0, cluster=two.name) as task:
        task.set_mempolicy("interleave", "0-1")
        task.mmap(10 * PAGE).touch(write=True)
        st = numastat(two)
        assert (st[0]["numa_hit"], st[0]["interleave_hit"], st[1]["numa_hit"], st[1]["other_node"]) == (5, 5, 5, 5)
        assert sysctl(two, "vm.numa_stat=0").stdout == "vm.numa_stat = 0\n"
        assert all(v == 0 for node in numastat(two).values() for v in node.values())
        task.mmap(10 * PAGE).touch(write=True)
        with two.client() as client:
            free1 = client.call(tm.ClusterStats()).nodes[1]["frames_free"]
        task.set_mempolicy("preferred", "1")  # node 1 fills, 3 pages spill: no miss, no foreign counted
        spill = task.mmap((free1 + 3) * PAGE)
        spill.touch(write=True)
        assert spill.where().count(0) == 3
        assert all(v == 0 for node in numastat(two).values() for v in node.values())
        spill.munmap()
        sysctl(two, "vm.numa_stat=1")
        task.set_mempolicy("interleave", "0-1")
        task.mmap(4 * PAGE).touch(write=True)
        st = numastat(two)
        assert (st[0]["numa_hit"], st[0]["local_node"], st[1]["numa_hit"], st[1]["other_node"]) == (2, 2, 2, 2)
        # per node: numa_hit, interleave_hit and local_node or other_node, 2 pages each; nothing else
        assert sum(v for node in st.values() for v in node.values()) == 2 * 3 * 2
