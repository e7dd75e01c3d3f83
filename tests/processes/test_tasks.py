"""Tasks on a real cluster: attach, memory by policy, bytes across nodes, errors, release of
every page on detach or death, and deterministic virtual time."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import numa_emu
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED, MPOL_F_NODE, MPOL_MF_STRICT, Mode
from tests.helpers import poll_until

pytestmark = pytest.mark.cluster
PAGE = 4096


def stats(c):
    with c.client() as client:
        return client.call(tm.ClusterStats()).nodes


def free_frames(c):
    return {n: d["frames_free"] for n, d in stats(c).items()}


def check_invariants(c):
    nodes = stats(c)
    assert sum(d["numastat"]["numa_miss"] for d in nodes.values()) == sum(d["numastat"]["numa_foreign"] for d in nodes.values())
    for d in nodes.values():
        s = d["numastat"]
        assert s["numa_hit"] + s["numa_miss"] == s["local_node"] + s["other_node"]


@pytest.fixture
def four(cluster_factory):
    c = cluster_factory("default-4n")
    yield c
    check_invariants(c)


def attach(c, cpu=None):
    return numa_emu.attach(cpu, cluster=c.name)


def test_detach_releases_every_page_and_counts_are_exact(four):
    before = free_frames(four)
    with attach(four, cpu=0) as task:
        assert task.getcpu() == (0, 0)
        region = task.mmap(100 * PAGE)
        reply = region.touch(fill=0xAB)
        assert (reply.pages, reply.faults) == (100, 100)
        assert region.where() == [0] * 100
        assert region.read(99 * PAGE + 4090, 6) == b"\xab" * 6
        assert free_frames(four)[0] == before[0] - 100
        st = stats(four)[0]["numastat"]
        assert (st["numa_hit"], st["local_node"], st["numa_miss"], st["other_node"]) == (100, 100, 0, 0)
    assert free_frames(four) == before


def test_bytes_written_on_one_node_read_back_from_every_node(four):
    with attach(four, cpu=0) as task:
        task.set_mempolicy("interleave", "0-3")
        region = task.mmap(8 * PAGE)
        payload = bytes(range(256)) * 16
        for i in range(8):
            region.write(i * PAGE, payload[i:] + payload[:i])
        assert region.where() == [0, 1, 2, 3, 0, 1, 2, 3]
        for i in range(8):
            assert region.read(i * PAGE, PAGE) == payload[i:] + payload[:i]
        # a read that spans the boundary of a local and a remote page
        assert region.read(PAGE - 3, 6) == payload[PAGE - 3:] + (payload[1:] + payload[:1])[:3]


def test_shared_region_is_visible_to_a_task_on_another_node(four, tmp_path):
    with attach(four, cpu=0) as task:
        shm = task.mmap(4 * PAGE, shared=True, name="board")
        shm.write(2 * PAGE + 10, b"from node 0")
        script = tmp_path / "reader.py"
        script.write_text(textwrap.dedent("""
            import json, sys, numa_emu
            with numa_emu.attach(cpu=3) as t:
                r = t.mmap(4 * 4096, shared=True, name="board")
                data = r.read(2 * 4096 + 10, 11)
                r.write(0, b"from node 3")
                print(json.dumps({"node": t.node, "data": data.decode(), "where": r.where()}))
        """))
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, NUMA_EMU_CLUSTER=four.name), check=True)
        result = json.loads(out.stdout)
        assert result["node"] == 3 and result["data"] == "from node 0"
        assert result["where"][2] == 0  # the master stays where it was first touched
        assert shm.read(0, 11) == b"from node 3"


@pytest.mark.parametrize("bad, code", [
    (lambda t, r: t.read(0x1000, 4), "EFAULT"),
    (lambda t, r: r.read(r.length - 2, 4), "EFAULT"),
    (lambda t, r: t.set_mempolicy("bind", []), "EINVAL"),
    (lambda t, r: t.set_mempolicy(Mode.DEFAULT, [1]), "EINVAL"),
    (lambda t, r: t.set_mempolicy("interleave", [9]), "EINVAL"),
    (lambda t, r: r.mbind(77, [0]), "EINVAL"),
    (lambda t, r: t.mmap(0), "EINVAL"),
    (lambda t, r: t.mmap(PAGE, shared=True), "EINVAL"),
    (lambda t, r: t.get_mempolicy(MPOL_F_MEMS_ALLOWED | MPOL_F_NODE), "EINVAL"),
])
def test_errors_carry_the_errno_and_the_cluster_keeps_serving(four, bad, code):
    with attach(four, cpu=1) as task:
        region = task.mmap(4 * PAGE)
        with pytest.raises(numa_emu.NumaEmuError) as err:
            bad(task, region)
        assert err.value.errno_name == code
        region.write(0, b"still fine")
        assert region.read(0, 10) == b"still fine"
    assert four.status().state == "up"


def test_unsatisfiable_bind_is_enomem_and_nothing_spills(cluster_factory):
    c = cluster_factory(_small(2, "64KiB"))  # 16 frames per node
    with attach(c, cpu=0) as task:
        region = task.mmap(32 * PAGE)
        region.mbind("bind", [1])
        with pytest.raises(numa_emu.NumaEmuError) as err:
            region.touch(write=True)
        assert err.value.errno_name == "ENOMEM"
        assert set(region.where()) <= {1, None}
        assert region.where().count(1) == 16
        other = task.mmap(2 * PAGE)
        other.touch(write=True)
        assert other.where() == [0, 0]
    check_invariants(c)


def _small(nodes, mem):
    from numa_emu.protocol.topology import from_cli

    return from_cli(nodes, 1, mem)


def test_preferred_spills_along_the_preferred_nodes_order(cluster_factory):
    c = cluster_factory(_small(2, "64KiB"))  # 16 frames per node
    with attach(c, cpu=0) as task:
        task.set_mempolicy("preferred", [1])
        region = task.mmap(20 * PAGE)
        region.touch(write=True)
        assert region.where() == [1] * 16 + [0] * 4
    nodes = stats(c)
    assert nodes[1]["numastat"]["numa_hit"] == 16 and nodes[1]["numastat"]["numa_foreign"] == 4
    assert nodes[0]["numastat"]["numa_miss"] == 4 and nodes[0]["numastat"]["local_node"] == 4
    check_invariants(c)


def test_killed_task_releases_its_memory(four, tmp_path):
    before = free_frames(four)
    script = tmp_path / "hog.py"
    script.write_text(textwrap.dedent("""
        import sys, numa_emu
        t = numa_emu.attach(cpu=2)
        t.set_mempolicy("interleave", "0-3")
        t.mmap(64 * 4096).touch(write=True)
        print("ready", flush=True)
        sys.stdin.read()
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, NUMA_EMU_CLUSTER=four.name))
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert sum(before.values()) - sum(free_frames(four).values()) == 64
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        poll_until(lambda: free_frames(four) == before, timeout_s=5, what="pages of the killed task released")
        with four.client() as client:
            assert client.call(tm.TaskList()).tasks == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def test_get_mempolicy_forms(four):
    with attach(four, cpu=0) as task:
        task.set_mempolicy("interleave", [1, 3])
        assert task.get_mempolicy() == (int(Mode.INTERLEAVE), [1, 3])
        assert task.get_mempolicy(MPOL_F_MEMS_ALLOWED) == (0, [0, 1, 2, 3])
        assert task.get_mempolicy(MPOL_F_NODE) == 1  # next interleave node
        region = task.mmap(4 * PAGE)
        region.mbind("bind", [2])
        assert task.get_mempolicy(MPOL_F_ADDR, region.addr()) == (int(Mode.BIND), [2])
        # a read maps the zero page, which every node has here: the reader's node, nothing allocated
        assert task.node_of(region.addr(PAGE)) == 0
        assert region.where() == [None, None, None, None]
        region.write(PAGE, b"x")  # the first write allocates by the policy
        assert task.node_of(region.addr(PAGE)) == 2
        assert region.where() == [None, 2, None, None]
        other = task.mmap(PAGE)
        assert task.get_mempolicy(MPOL_F_ADDR, other.addr()) == (int(Mode.DEFAULT), [])


def test_mbind_strict_reports_misplaced_pages(four):
    with attach(four, cpu=0) as task:
        region = task.mmap(4 * PAGE)
        region.touch(write=True)
        with pytest.raises(numa_emu.NumaEmuError) as err:
            region.mbind("bind", [1], flags=MPOL_MF_STRICT)
        assert err.value.errno_name == "EIO"
        region.mbind("bind", [0], flags=MPOL_MF_STRICT)


def test_mbind_splits_regions_and_interleaves_by_page_offset(four):
    with attach(four, cpu=0) as task:
        region = task.mmap(12 * PAGE)
        region.mbind("interleave", "2-3", offset=4 * PAGE, length=4 * PAGE)
        region.touch(write=True)
        where = region.where()
        assert where[:4] == [0] * 4 and where[8:] == [0] * 4
        assert sorted(where[4:8]) == [2, 2, 3, 3] and where[4] != where[5]
        assert len(task.maps()) == 3


def test_virtual_time_is_deterministic(cluster_factory, tmp_path):
    script = tmp_path / "work.py"
    script.write_text(textwrap.dedent("""
        import numa_emu
        with numa_emu.attach(cpu=0) as t:
            t.set_mempolicy("interleave", "0-3")
            r = t.mmap(64 * 4096)
            r.touch(fill=7)
            for i in range(0, 64 * 4096, 4096 * 3):
                r.write(i, b"x" * 100)
                r.read(i + 50, 200)
            print(t.clock_ns())
    """))
    clocks = []
    for _ in range(2):
        c = cluster_factory("default-4n")
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=True,
                             env=dict(os.environ, NUMA_EMU_CLUSTER=c.name))
        clocks.append(int(out.stdout))
        c.stop()
    assert clocks[0] == clocks[1] > 0


def test_remote_access_costs_more_virtual_time_than_local(four):
    with attach(four, cpu=0) as task:
        local = task.mmap(PAGE)
        remote = task.mmap(PAGE)
        remote.mbind("bind", [3])
        local.touch(write=True)
        remote.touch(write=True)
        t0 = task.clock_ns()
        local.read(0, 8)
        t1 = task.clock_ns()
        remote.read(0, 8)
        t2 = task.clock_ns()
        topo = four.topology
        bytes_per_ns = topo.bandwidth_mib_s[0][3] * 1048576 / 1e9
        assert t1 - t0 == round(topo.latency_ns[0][0] + 8 / (topo.bandwidth_mib_s[0][0] * 1048576 / 1e9))
        assert t2 - t1 == round(topo.latency_ns[0][3] + 8 / bytes_per_ns)


def test_status_lists_tasks_with_their_virtual_time(four, cli):
    with attach(four, cpu=2) as task:
        task.mmap(3 * PAGE).touch(write=True)
        out = json.loads(cli("status", "--name", four.name, "--json", check=True).stdout)
        (entry,) = out["tasks"]
        assert entry["task_id"] == os.getpid() and entry["node"] == 2 and entry["pages"] == {"2": 3}
        assert entry["clock_ns"] == task.clock_ns()
