"""numa_emu.libnuma against libnuma's definitions (numactl libnuma.c, distance.c, numa(3)) on real
clusters: exact values from the topology, allocations where libnuma puts them, errors as errno."""
from __future__ import annotations

import errno

import pytest

import numa_emu
from numa_emu import libnuma
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.messages import control as cm

pytestmark = pytest.mark.cluster
MiB = 1 << 20


@pytest.fixture
def cxl(cluster_factory):
    """Two CPU nodes and a memory-only expander with an asymmetric SLIT (topologies/cxl-expander.toml)."""
    return cluster_factory("cxl-expander")


def test_machine_queries_are_the_topology(cxl):
    with numa_emu.attach(2, cluster=cxl.name) as task:
        assert libnuma.numa_available() == 0
        assert libnuma.numa_max_node() == 2
        assert libnuma.numa_num_configured_nodes() == 3
        assert [[libnuma.numa_distance(a, b) for b in range(3)] for a in range(3)] == [[10, 32, 50], [32, 10, 60],
                                                                                      [255, 255, 10]]
        assert libnuma.numa_distance(0, 3) == 0 and libnuma.numa_distance(-1, 0) == 0  # unknown: 0, not an error
        assert [libnuma.numa_node_of_cpu(c) for c in range(4)] == [0, 0, 1, 1]
        with pytest.raises(OSError) as err:
            libnuma.numa_node_of_cpu(4)
        assert err.value.errno == errno.EINVAL
        page = task.page_size
        assert [libnuma.numa_node_size(n) for n in range(3)] == [(1024 * MiB, 1024 * MiB), (1024 * MiB, 1024 * MiB),
                                                                (2048 * MiB, 2048 * MiB)]
        assert libnuma.numa_node_size64(2) == libnuma.numa_node_size(2)
        with pytest.raises(NumaEmuError) as err:
            libnuma.numa_node_size(3)
        assert err.value.errno == errno.ENOENT
        # onnode to the memory-only node: bound there, allocated at first touch, freed by numa_free
        region = libnuma.numa_alloc_onnode(5 * page + 1, 2)
        assert region.length == 6 * page and region.where() == [None] * 6  # nothing before the first touch
        region.touch(write=True)
        assert region.where() == [2] * 6
        assert libnuma.numa_node_size(2) == (2048 * MiB, 2048 * MiB - 6 * page)
        libnuma.numa_free(region, 6 * page)
        assert libnuma.numa_node_size(2) == (2048 * MiB, 2048 * MiB)
        libnuma.numa_free(region, 6 * page)  # void numa_free ignores munmap's complaint: twice is harmless


def test_allocations_land_where_libnuma_puts_them(cluster_factory, capfd):
    four = cluster_factory("default-4n")
    with numa_emu.attach(1, cluster=four.name) as task:
        page = task.page_size
        local = libnuma.numa_alloc_local(3 * page)
        local.touch(write=True)
        assert local.where() == [1, 1, 1]  # MPOL_LOCAL: the node of the touching CPU
        spread = libnuma.numa_alloc_interleaved(8 * page)
        spread.touch(write=True)
        first = spread.vaddr // page  # a VMA interleave goes by page offset (mm/mempolicy.c interleave_nid)
        assert spread.where() == [(first + i) % 4 for i in range(8)]
        bound = libnuma.numa_alloc_onnode(2 * page, 3)
        bound.write(0, b"x")
        assert bound.where() == [3, None]
        assert task.get_mempolicy(numa_emu.MPOL_F_ADDR, bound.addr()) == (numa_emu.MPOL_BIND, [3])
        for region in (local, spread, bound):
            libnuma.numa_free(region, region.length)
        assert libnuma.numa_node_size(3)[1] == libnuma.numa_node_size(3)[0]

        # a node the kernel refuses: libnuma reports mbind's error and returns the memory unbound...
        capfd.readouterr()
        unbound = libnuma.numa_alloc_onnode(page, 7)
        assert capfd.readouterr().err == "mbind: Invalid argument\n"
        assert task.get_mempolicy(numa_emu.MPOL_F_ADDR, unbound.addr()) == (numa_emu.MPOL_DEFAULT, [])
        # ...unless numa_fail_alloc_on_error is set: then the allocation fails (C: NULL)
        libnuma.numa_fail_alloc_on_error = 1
        try:
            with pytest.raises(OSError) as err:
                libnuma.numa_alloc_onnode(page, 7)
            assert err.value.errno == errno.EINVAL
        finally:
            libnuma.numa_fail_alloc_on_error = 0
        assert [m["start"] for m in task.maps()] == [unbound.vaddr]  # the failed one was unmapped


def test_get_mempolicy_returns_the_mode_enum(cluster_factory):
    four = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=four.name) as task:
        task.set_mempolicy("interleave", "1-2")
        mode, nodes = task.get_mempolicy()
        assert mode is numa_emu.Mode.INTERLEAVE and nodes == [1, 2]
        assert task.get_mempolicy(numa_emu.MPOL_F_NODE) == 1  # MPOL_F_NODE still gives a node id
        task.set_mempolicy("bind", [2], numa_emu.MPOL_F_STATIC_NODES)
        assert task.get_mempolicy() == (numa_emu.MPOL_BIND | numa_emu.MPOL_F_STATIC_NODES, [2])  # as the kernel
        with pytest.raises(OSError) as err:
            task.set_mempolicy("bind", [9])
        assert err.value.errno == errno.EINVAL and str(err.value).startswith("EINVAL: ")


def test_the_process_task_is_the_one_libnuma_acts_on(cluster_factory):
    one, two = cluster_factory("full,2,mem=64MiB"), cluster_factory("full,2,mem=64MiB")  # a pid is one task per cluster
    with numa_emu.attach(0, cluster=one.name) as a, numa_emu.attach(1, cluster=two.name) as b:
        with pytest.raises(NumaEmuError) as err:  # two tasks in one process: say which
            libnuma.numa_alloc_local(4096)
        assert err.value.errno == errno.EINVAL
        region = libnuma.numa_alloc_local(4096, task=b)
        region.touch(write=True)
        assert region.task is b and region.where() == [b.node]
        a.detach()
        assert libnuma.numa_alloc_local(4096).task is b  # one task left: it is the process's


def test_run_on_node_moves_the_task_as_sched_setaffinity_would(cxl, capfd):
    with numa_emu.attach(0, cluster=cxl.name) as task:
        assert libnuma.numa_run_on_node(0) == 0 and task.getcpu() == (0, 0)  # allowed already: it stays
        assert libnuma.numa_run_on_node(1) == 0
        assert task.getcpu()[1] == 1 and task.node == 1
        region = libnuma.numa_alloc_local(2 * task.page_size)
        region.touch(write=True)
        assert region.where() == [1, 1]  # local is now node 1
        assert libnuma.numa_run_on_node(-1) == 0 and task.getcpu()[1] == 1  # every CPU again: no move
        capfd.readouterr()
        for node, code, warning in ((2, errno.EINVAL, ""),  # memory only: sched_setaffinity of no CPU
                                    (3, errno.ERANGE, "libnuma: Warning: Cannot read node cpumask from sysfs\n"),
                                    (1024, errno.EINVAL, ""), (-2, errno.EINVAL, "")):
            with pytest.raises(OSError) as err:
                libnuma.numa_run_on_node(node)
            assert err.value.errno == code, node
            assert capfd.readouterr().err == warning
        assert task.getcpu()[1] == 1  # a refused call moves nothing


def test_sched_setaffinity_outside_the_cpuset_is_einval(cxl, monkeypatch):
    with cxl.client() as client:
        client.call(cm.CpusetCreate(name="low", cpus=[0, 1], mems=[0, 2]))
    monkeypatch.setenv("NUMA_EMU_CPUSET", "low")
    with numa_emu.attach(cluster=cxl.name) as task:
        with pytest.raises(NumaEmuError) as err:
            libnuma.numa_run_on_node(1)  # node 1's CPUs are not in the cpuset
        assert err.value.errno == errno.EINVAL and task.getcpu()[1] == 0
        assert task.sched_setaffinity([1, 2, 3]) == (1, 0)  # 2 and 3 are outside: only cpu 1 is left
        with pytest.raises(NumaEmuError) as err:
            task.sched_setaffinity([-1])
        assert err.value.errno == errno.EINVAL


def test_numa_available_is_minus_one_without_a_cluster(home, monkeypatch):
    monkeypatch.delenv("NUMA_EMU_CLUSTER", raising=False)
    assert libnuma.numa_available() == -1  # numa(3): the other calls are undefined then
    with pytest.raises(OSError) as err:
        libnuma.numa_max_node()  # here they say why
    assert err.value.errno == errno.ECONNREFUSED and "is not up" in str(err.value)
