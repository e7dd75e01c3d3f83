"""The replicated page cache on real clusters (docs/linux-semantics.md#replication-state-machine
scenarios): memory pressure, the switches and modes, down/up loses no write, bad fills refused.
(One replica per reader node, none for a local master or shm, collapses by pwrite and through a
mapping, the thrash back-off and truncate run step by step on the simulator:
tests/sim/test_replication_steps.py.)"""
from __future__ import annotations

import sys

import pytest

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.topology import from_cli
from tests.helpers import PuppetError, poll_until

pytestmark = pytest.mark.cluster
PAGE = 4096


def vm(c) -> dict[int, dict]:
    with c.client() as client:
        return {n: d["vmstat"] for n, d in client.call(tm.ClusterStats()).nodes.items()}


def total(c, name: str) -> int:
    return sum(v.get(name, 0) for v in vm(c).values())


def check_replica_counters(c) -> None:
    """nr_repl_pages == pgreplicated - pgreplicazap at quiescence; zaps never exceed replications."""
    assert total(c, "nr_repl_pages") == total(c, "pgreplicated") - total(c, "pgreplicazap")
    assert total(c, "pgreplicazap") <= total(c, "pgreplicated")


@pytest.fixture
def four(cluster_factory):
    c = cluster_factory("default-4n")
    yield c
    check_replica_counters(c)


def seeded(puppets, c, pages=4, fill="41"):
    """A writer on node 0 creates file 'f' with `pages` pages of bytes `fill` and writes them back."""
    writer = puppets(c, 0)
    writer.do("open", name="f", create=True, size=pages * PAGE)
    writer.do("pwrite", name="f", offset=0, data=fill * (pages * PAGE))
    writer.do("fsync", name="f")
    return writer


def test_down_and_up_lose_no_completed_write(cluster_factory, puppets, home):
    c = cluster_factory("default-4n", name="keep")
    w = puppets(c, 1)
    w.do("open", name="f", create=True, size=3 * PAGE)
    w.do("pwrite", name="f", offset=PAGE - 2, data="c0ffee")  # no fsync: dirty in the page cache
    w.close()
    c.stop()
    assert (home / "keep" / "store" / "f").read_bytes()[PAGE - 2:PAGE + 1] == bytes.fromhex("c0ffee")
    c2 = cluster_factory("default-4n", name="keep")
    r = puppets(c2, 2)
    r.do("open", name="f")
    assert r.do("pread", name="f", offset=PAGE - 2, length=3) == "c0ffee"


def test_memory_pressure_reclaims_replicas_first(cluster_factory, puppets):
    c = cluster_factory(from_cli(2, 1, "64KiB"))  # 16 frames per node
    w = puppets(c, 0)
    w.do("open", name="f", create=True, size=12 * PAGE)
    w.do("pwrite", name="f", offset=0, data="61" * (12 * PAGE))
    w.do("fsync", name="f")
    r = puppets(c, 1)
    r.do("open", name="f")
    r.do("pread", name="f", offset=0, length=12 * PAGE)
    assert vm(c)[1]["nr_repl_pages"] == 12
    r.do("mmap", **{"as": "a"}, length=4 * PAGE)
    r.do("write", **{"as": "a"}, offset=0, data="00" * (4 * PAGE))  # node 1 now has no free frame
    poll_until(lambda: vm(c)[1].get("pgreplicazap_reclaim", 0) >= 1, timeout_s=5, what="replicas reclaimed")
    assert r.do("pread", name="f", offset=0, length=4) == "61616161"  # still readable, from what is left
    check_replica_counters(c)


def test_private_read_only_mapping_refuses_writes(four, puppets):
    seeded(puppets, four)
    r = puppets(four, 2)
    r.do("open", name="f")
    r.do("map", name="f", **{"as": "m"}, writable=False)
    with pytest.raises(PuppetError) as err:
        r.do("write", **{"as": "m"}, offset=0, data="00")
    assert err.value.errno_name == "EACCES"
    assert r.do("read", **{"as": "m"}, offset=0, length=1) == "41"


def _read_remote(puppets, c, cpu=3, cpuset_env=None):
    reader = puppets(c, cpu)
    reader.do("open", name="f")
    assert reader.do("pread", name="f", offset=0, length=1) == "41"
    return reader


def test_global_switch_turns_replication_off_and_on(four, puppets, cli):
    seeded(puppets, four, pages=2)
    cli("sysctl", "--name", four.name, "vm.pagecache_replication=0", check=True)
    _read_remote(puppets, four)
    assert total(four, "pgreplicated") == 0
    cli("sysctl", "--name", four.name, "vm.pagecache_replication=1", check=True)
    _read_remote(puppets, four, cpu=2)
    assert vm(four)[2]["pgreplicated"] == 1


def test_cpuset_switch_scopes_replication(four, puppets, cli, tmp_path):
    seeded(puppets, four, pages=2)
    cli("cpuset", "create", "norepl", "--name", four.name, "--cpus", "3", "--mems", "0-3", "--replication", "off",
        check=True)
    script = tmp_path / "r.py"
    script.write_text("import numa_emu\nwith numa_emu.attach() as t:\n    print(t.open('f').pread(0, 1).hex())\n")
    out = cli("cpuset", "exec", "--name", four.name, "norepl", "--", sys.executable, str(script), check=True)
    assert out.stdout.strip() == "41" and total(four, "pgreplicated") == 0
    _read_remote(puppets, four, cpu=3)  # the same cpu outside the cpuset replicates
    assert vm(four)[3]["pgreplicated"] == 1


def test_no_writers_mode_skips_files_mapped_writable(four, puppets, cli):
    writer = seeded(puppets, four, pages=2)
    cli("sysctl", "--name", four.name, "vm.pagecache_replication_mode=no-writers", check=True)
    writer.do("map", name="f", **{"as": "w"}, writable=True)  # the file is now writably mapped
    _read_remote(puppets, four)
    assert total(four, "pgreplicated") == 0
    writer.do("munmap", **{"as": "w"})
    _read_remote(puppets, four, cpu=2)
    assert vm(four)[2]["pgreplicated"] == 1


def test_exec_only_mode_replicates_only_executable_mappings(four, puppets, cli):
    writer = seeded(puppets, four, pages=2)
    cli("sysctl", "--name", four.name, "vm.pagecache_replication_mode=exec-only", check=True)
    _read_remote(puppets, four)
    assert total(four, "pgreplicated") == 0
    writer.do("map", name="f", **{"as": "x"}, writable=False, exec=True)
    _read_remote(puppets, four, cpu=2)
    assert vm(four)[2]["pgreplicated"] == 1


def test_up_unsafe_unreplicate_sets_the_switch(cli, cluster_name):
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", "--unsafe-unreplicate", check=True)
    try:
        out = cli("sysctl", "--name", cluster_name, "vm.unsafe_unreplicate", check=True).stdout
        assert out == "vm.unsafe_unreplicate = 1\n"
    finally:
        cli("down", "--name", cluster_name, check=True)


def test_replica_lifetime_histogram(four, puppets, cli):
    writer = seeded(puppets, four, pages=2)
    _read_remote(puppets, four, cpu=3)
    writer.do("pwrite", name="f", offset=0, data="44")  # zaps the replica well under a second old
    out = cli("vmstat", "--name", four.name, "--repl-lifetimes", check=True).stdout.splitlines()
    assert out[0] == "replica lifetimes (creation to zap), 1 replicas torn down"
    assert len(out) == 2 and out[1].split()[1] == "1" and out[1].split()[0].endswith("ms")


def test_no_replica_frame_leaks_when_shootdowns_overtake_answers(four, cli):
    """writeshare makes readers on every node race a writer's collapses; a shootdown can reach a
    reader's node before the directory's answer to it. Afterwards (the workload truncates its
    file) no replica frame may be left anywhere."""
    cli("sysctl", "--name", four.name, "vm.pagecache_replication_backoff=0", check=True)
    for _ in range(2):
        out = cli("workload", "writeshare", "--cluster", four.name, "--iterations", "15", "--pause-ms", "5",
                  check=True)
        assert '"stale_reads": 0' in out.stdout
        assert total(four, "nr_repl_pages") == 0
    assert total(four, "pgreplicated") > 0 and total(four, "pgreplicazap") == total(four, "pgreplicated")


def test_a_fill_or_copy_nobody_asked_for_gets_one_clear_error_and_the_node_keeps_serving(four, puppets):
    """repl.fill is a forwarded reply: a node takes one only into a frame it offered for that page
    and is still waiting on; anything else is refused (ESTALE, counted), and so is a repl.copy of
    a frame whose generation moved on; replication on the same nodes then works as before."""
    nodes = four.status().nodes
    with four.client(5.0, nodes[3]["endpoint"]) as n3, four.client(5.0, nodes[0]["endpoint"]) as n0:
        for frame in (0, 7, 10**9):
            with pytest.raises(NumaEmuError) as err:
                n3.call(pc.ReplicaFill(obj="file:f", idx=0, frame=frame, generation=0, epoch=1, cost_ns=0,
                                       data=b"\x42" * PAGE))
            assert err.value.code == ErrorCode.ESTALE and "repl.fill: node 3 is not waiting" in err.value.message
        with pytest.raises(NumaEmuError) as err:
            n0.call(pc.ReplicaCopy(frame=0, generation=12345, dst=3, obj="file:f", idx=0, dst_frame=0,
                                   dst_generation=0, epoch=1, cost_ns=0))
        assert err.value.code == ErrorCode.ESTALE
        with pytest.raises(NumaEmuError) as err:
            n0.call(pc.ReplicaCopy(frame=0, generation=0, dst=0, obj="file:f", idx=0, dst_frame=0,
                                   dst_generation=0, epoch=1, cost_ns=0))
        assert err.value.code == ErrorCode.EINVAL
    assert vm(four)[3]["repl_fill_refused"] == 3
    seeded(puppets, four)
    reader = puppets(four, 3)
    reader.do("open", name="f")
    reader.do("map", name="f", **{"as": "m"}, writable=False)
    assert reader.do("read", **{"as": "m"}, offset=0, length=PAGE * 4)[:4] == "4141"
    assert reader.do("where", **{"as": "m"}) == [3, 3, 3, 3]
    assert total(four, "nr_repl_pages") == 4 and vm(four)[3]["repl_fill_refused"] == 3
