"""The coordinator's half of NUMA balancing's task placement (coordinator.tasks.TaskTable.numa_migrate,
task_numa_migrate): an idle CPU of the preferred node within the task's affinity and the allowed
imbalance, else a swap with a task there that prefers the asker's node, else nothing; and the
node's half (nodes.balancing.Balancer placement: decayed faults, the preferred node, the retry)."""
from __future__ import annotations

import pytest

from numa_emu.coordinator.tasks import NUMA_IMBALANCE_MIN, TaskTable
from numa_emu.nodes.balancing import TaskScan
from numa_emu.protocol.errors import ErrorCode, NumaEmuError


def table(nodes: int = 2, cpus_per_node: int = 2) -> TaskTable:
    return TaskTable({"nodes": [{"id": n, "cpus": list(range(n * cpus_per_node, (n + 1) * cpus_per_node))}
                                for n in range(nodes)]})


def task(t: TaskTable, pid: int, cpu: int | None = None, nodes_bound: list | None = None):
    return t.register(pid=pid, comm=f"t{pid}", cpu=cpu, policy=None, cpuset=None, nodes_bound=nodes_bound)


def test_an_unpinned_task_moves_to_an_idle_cpu_of_its_preferred_node():
    t = table()
    a = task(t, 1)
    outcome, changes = t.numa_migrate(a.task_id, 1)
    assert outcome == "migrated" and [(ch.node, ch.new_node, ch.cpu) for ch in changes] == [(0, 1, 2)]
    assert (a.node, a.cpu, a.numa_preferred) == (1, 2, 1)
    assert changes[0].policy == changes[0].old_policy and not changes[0].rebound  # its policy is untouched


def test_already_there_or_pinned_or_bound_elsewhere_stays():
    t = table()
    home = task(t, 1)
    assert t.numa_migrate(home.task_id, 0) == ("stay", [])
    pinned = task(t, 2, cpu=1)  # attach(cpu=1): `taskset -c 1`
    assert t.numa_migrate(pinned.task_id, 1) == ("stay", []) and pinned.numa_preferred == 1
    bound = task(t, 3, nodes_bound=[0])  # numactl --cpunodebind=0
    assert t.numa_migrate(bound.task_id, 1) == ("stay", []) and bound.cpu in (0, 1)


def test_set_affinity_is_remembered_until_the_cpuset_cpus_change():
    t = table()
    a = task(t, 1, cpu=0)
    t.set_affinity(a.task_id, [0, 1, 2, 3])
    assert t.allowed_cpus(a) == {0, 1, 2, 3}
    t.set_affinity(a.task_id, [0])
    assert t.numa_migrate(a.task_id, 1) == ("stay", [])
    t.create_cpuset("s", [0, 1, 2, 3], [0, 1])
    t.attach(a.pid, "s")
    assert a.affinity is None and t.allowed_cpus(a) == {0, 1, 2, 3}
    assert t.numa_migrate(a.task_id, 1)[0] == "migrated"


def test_the_imbalance_limit_keeps_a_crowded_node_from_filling():
    t = table(2, 4)  # cpus 0-3 node 0, 4-7 node 1
    on_1 = [task(t, pid, cpu=4 + i) for i, pid in enumerate((10, 11, 12))]  # node 1: 3 running, cpu 7 idle
    a = task(t, 1)  # node 0: alone
    assert (a.node, a.affinity, len(on_1)) == (0, None, 3)
    assert 4 - 0 > NUMA_IMBALANCE_MIN  # after the move node 1 would run 4 and node 0 none
    assert t.numa_migrate(a.task_id, 1) == ("stay", [])
    b = task(t, 2, cpu=1)
    c = task(t, 3, cpu=2)
    assert (b.node, c.node) == (0, 0)
    assert t.numa_migrate(a.task_id, 1)[0] == "migrated"  # node 0 ran 3: 4 - 2 is allowed


def test_a_swap_needs_a_task_there_that_prefers_the_askers_node_and_may_run_on_its_cpu():
    t = table(2, 1)  # cpu 0 node 0, cpu 1 node 1
    a, b = task(t, 1), task(t, 2)
    assert (a.cpu, b.cpu) == (0, 1)
    assert t.numa_migrate(a.task_id, 1) == ("stay", [])  # b has not asked for node 0
    outcome, changes = t.numa_migrate(b.task_id, 0)
    assert outcome == "swapped" and {(ch.task_id, ch.cpu) for ch in changes} == {(b.task_id, 0), (a.task_id, 1)}
    assert (a.node, b.node) == (1, 0)
    c = table(2, 1)
    x, y = task(c, 1), task(c, 2, cpu=1)  # y is pinned to cpu 1: it may not take x's cpu
    assert c.numa_migrate(x.task_id, 1) == ("stay", [])  # x prefers node 1, y does not prefer node 0
    assert c.numa_migrate(y.task_id, 0) == ("stay", [])  # y may not run on cpu 0: no swap
    assert (x.node, y.node) == (0, 1)


def test_an_unknown_node_or_task_is_an_error():
    t = table()
    a = task(t, 1)
    with pytest.raises(NumaEmuError) as info:
        t.numa_migrate(a.task_id, 7)
    assert info.value.code == ErrorCode.EINVAL and "no node 7" in info.value.message
    with pytest.raises(NumaEmuError) as info:
        t.numa_migrate(99, 0)
    assert info.value.code == ErrorCode.ESRCH


def test_a_scan_state_crosses_a_task_move_whole():
    scan = TaskScan(5, 6, 7, 8, 1, 2, {4096: 1}, {0: 3}, {1: 9, 0: 2}, 1, 11)
    assert TaskScan.from_wire(scan.to_wire()) == scan
    with pytest.raises(ValueError):
        TaskScan.from_wire([1, 2])
