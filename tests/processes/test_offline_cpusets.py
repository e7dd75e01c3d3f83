"""A node taken offline leaves every cpuset's effective cpus and mems (cgroup v2's
cpuset.cpus.effective / cpuset.mems.effective follow hotplug) while the configured ones stay;
the tasks allocate on the effective mems only; online brings the node back."""
from __future__ import annotations

import json

import pytest

import numa_emu
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.policy import MPOL_F_MEMS_ALLOWED
from numa_emu.protocol.topology_shapes import from_cli

pytestmark = pytest.mark.cluster
PAGE = 4096


@pytest.fixture
def four(cluster_factory):
    return cluster_factory(from_cli(4, 1, "1MiB"))  # cpu n on node n


def call(c, request):
    with c.client(timeout_s=120) as client:
        return client.call(request)


def test_offline_drops_the_node_from_effective_mems_and_allocation_follows(four, cli, monkeypatch):
    cli("cpuset", "create", "pair", "--cpus", "1-2", "--mems", "1-2", "--name", four.name, check=True)
    monkeypatch.setenv("NUMA_EMU_CPUSET", "pair")
    with numa_emu.attach(1, cluster=four.name) as task:
        task.set_mempolicy("interleave", [1, 2])
        before = task.mmap(4 * PAGE)
        before.touch(write=True)
        assert before.where() == [1, 2, 1, 2]
        call(four, ns.NodeOffline(node_id=2))
        shown = json.loads(cli("cpuset", "show", "pair", "--json", "--name", four.name, check=True).stdout)[0]
        assert (shown["mems"], shown["effective_mems"], shown["cpus"], shown["effective_cpus"]) == ([1, 2], [1],
                                                                                                   [1, 2], [1])
        table = cli("cpuset", "show", "--name", four.name, check=True).stdout.splitlines()
        assert table == ["name  cpus         mems         memory_migrate  replication  tasks",
                         "/     0-3 (0-1,3)  0-3 (0-1,3)  0               1            -",
                         f"pair  1-2 (1)      1-2 (1)      0               1            {task.task_id}"]
        assert task.get_mempolicy(MPOL_F_MEMS_ALLOWED)[1] == [1]
        assert task.info()["mems_allowed"] == [1]
        assert before.where() == [1, 1, 1, 1]  # the interleaved pages on 2 went where it now interleaves
        after = task.mmap(4 * PAGE)
        after.touch(write=True)
        assert after.where() == [1, 1, 1, 1]  # the interleave over 1-2 allocates on 1 alone
        call(four, ns.NodeOnline(node_id=2))
        shown = json.loads(cli("cpuset", "show", "pair", "--json", "--name", four.name, check=True).stdout)[0]
        assert (shown["effective_mems"], shown["effective_cpus"]) == ([1, 2], [1, 2])
        assert task.info()["mems_allowed"] == [1, 2]
        again = task.mmap(4 * PAGE)
        again.touch(write=True)
        assert sorted(again.where()) == [1, 1, 2, 2]
