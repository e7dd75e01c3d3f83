"""A task that a cpuset change sends to another node moves there, page table and all: it keeps
every byte it wrote, new pages are local to its new node, its shared mappings fault again through
the directory, detach frees everything wherever it is, and a bad move changes nothing."""
from __future__ import annotations

import os

import pytest

import numa_emu
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.topology import from_cli
from tests.helpers import poll_until
from tests.processes.test_tasks import check_invariants, free_frames, stats

pytestmark = pytest.mark.cluster
PAGE = 4096


@pytest.fixture
def two(cluster_factory):
    c = cluster_factory(from_cli(2, 2, "16MiB"))  # cpus 0-1 on node 0, 2-3 on node 1
    yield c
    check_invariants(c)


def coordinator(c, request):
    with c.client() as client:
        return client.call(request)


def vmstat(c, node: int) -> dict:
    return stats(c)[node]["vmstat"]


def test_attach_to_a_cpuset_on_another_node_moves_the_task_and_its_pages_follow(two):
    free_before = free_frames(two)
    coordinator(two, cm.CpusetCreate(name="far", cpus=[2, 3], mems=[0, 1]))
    with numa_emu.attach(1, cluster=two.name) as task:
        private = task.mmap(4 * PAGE)
        private.write(0, b"hello")
        private.write(3 * PAGE + 10, b"world")
        shared = task.mmap(2 * PAGE, shared=True, name="moving-shm")
        shared.write(PAGE, b"shm")
        assert (task.getcpu(), private.where(), shared.where()) == ((1, 0), [0, None, None, 0], [None, 0])

        reply = coordinator(two, cm.CpusetAttach(name="far", pid=os.getpid()))
        assert (reply.old_cpu, reply.task["cpu"], reply.task["node"]) == (1, 2, 1)
        assert task.getcpu() == (2, 1)
        # auto-migration: the two private pages wait in node 1's migration cache, still on node 0
        assert private.where() == [0, None, None, 0]
        assert vmstat(two, 1)["nr_migcache_pages"] == 2
        migrated = vmstat(two, 1).get("pgmigrate_success", 0)
        assert private.read(0, 5) == b"hello"  # the touch moves the page to the task's new node
        assert private.where() == [1, None, None, 0]
        assert private.read(3 * PAGE + 10, 5) == b"world"
        assert private.where() == [1, None, None, 1]
        v = vmstat(two, 1)
        assert (v["nr_migcache_pages"], v["pgmigrate_success"] - migrated) == (0, 2)
        assert shared.where() == [None, None]  # the shared mapping faults again on the new home
        assert shared.read(PAGE, 3) == b"shm" and shared.where() == [None, 0]  # shared pages stay
        local_before = stats(two)[1]["numastat"]["local_node"]
        private.touch(PAGE, 2 * PAGE, write=True)  # new pages: local to the new node
        assert private.where() == [1, 1, 1, 1]
        assert stats(two)[1]["numastat"]["local_node"] == local_before + 2

        coordinator(two, cm.CpusetAttach(name="/", pid=os.getpid()))  # cpu 2 is allowed in '/': stays
        assert task.getcpu() == (2, 1)
        coordinator(two, cm.CpusetSet(name="far", cpus=[0]))  # not its cpuset any more: nothing moves
        assert task.getcpu() == (2, 1)
        coordinator(two, cm.SysctlSet(values={"vm.auto_migrate": 0}))
        coordinator(two, cm.CpusetAttach(name="far", pid=os.getpid()))  # back to node 0, pages stay
        assert task.getcpu() == (0, 0)
        assert private.read(0, 5) == b"hello" and private.where() == [1, 1, 1, 1]
        assert vmstat(two, 0)["nr_migcache_pages"] == 0
    # the shm object keeps its page; everything private is free again on both nodes
    assert poll_until(lambda: free_frames(two) == {0: free_before[0] - 1, 1: free_before[1]}, 5.0,
                      what="private frames freed after detach on the new home")


def test_a_cpuset_cpus_change_moves_its_task_and_its_next_request_follows(two, monkeypatch):
    coordinator(two, cm.CpusetCreate(name="s", cpus=[1, 3], mems=[0, 1]))
    monkeypatch.setenv("NUMA_EMU_CPUSET", "s")
    with numa_emu.attach(1, cluster=two.name) as task:
        region = task.mmap(PAGE)
        region.write(0, b"a")
        reply = coordinator(two, cm.CpusetSet(name="s", cpus=[3]))
        assert reply.moved == [[task.task_id, 1, 3]]
        assert region.read(0, 1) == b"a"  # the old home answers EREMCHG; the client follows its task
        assert task.getcpu() == (3, 1)
        info = coordinator(two, tm.TaskInfo(task_id=task.task_id)).task
        assert (info["cpu"], info["node"], info["cpuset"]) == (3, 1, "s")


def test_a_bad_move_request_is_refused_and_the_task_keeps_working(two):
    with numa_emu.attach(1, cluster=two.name) as task:
        region = task.mmap(PAGE)
        region.write(0, b"x")
        endpoint0 = next(n["endpoint"] for n in coordinator(two, lc.ClusterStatus()).nodes if n["id"] == 0)
        with two.client(endpoint=endpoint0) as client:
            for bad, code in ((tm.NodeTaskMove(task_id=task.task_id, node=0, cpu=0), ErrorCode.EINVAL),  # its node
                              (tm.NodeTaskMove(task_id=task.task_id, node=1, cpu=0), ErrorCode.EINVAL),  # cpu 0: node 0
                              (tm.NodeTaskMove(task_id=task.task_id, node=9, cpu=2), ErrorCode.EINVAL),
                              (tm.NodeTaskMove(task_id=999, node=1, cpu=2), ErrorCode.ESRCH),
                              (tm.NodeTaskAdopt(task={"cpu": 0, "task_id": 1}), ErrorCode.EINVAL),
                              (tm.NodeTaskAdopt(task={"cpu": 2}), ErrorCode.EINVAL)):
                with pytest.raises(NumaEmuError) as exc:
                    client.call(bad)
                assert exc.value.code == code, bad
        assert region.read(0, 1) == b"x" and task.getcpu() == (1, 0)
