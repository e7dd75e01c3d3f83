"""The coordinator's pure cpuset core: names and lists, the root, create/delete, a task's cpu
within a new set, the memory_migrate rule, and the rebinding of policies when mems change
(the examples of Documentation/admin-guide/mm/numa_memory_policy.rst, docs/linux-semantics.md#rebinding)."""
from __future__ import annotations

import pytest

from numa_emu.coordinator.cpusets import ROOT, CpusetTable, check_name, migration_needed
from numa_emu.coordinator.tasks import TaskTable
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES, Mode, Policy


def machine(nodes: int, cpus_per_node: int = 2) -> dict:
    return {"nodes": [{"id": n, "cpus": list(range(n * cpus_per_node, (n + 1) * cpus_per_node))}
                      for n in range(nodes)]}


def raises(code: ErrorCode, fragment: str, fn, *args, **kw) -> NumaEmuError:
    with pytest.raises(NumaEmuError) as info:
        fn(*args, **kw)
    assert info.value.code == code, info.value
    assert fragment in info.value.message, info.value.message
    return info.value


@pytest.fixture
def table() -> TaskTable:
    return TaskTable(machine(4))  # cpus 0-1 on node 0, 2-3 on node 1, 4-5 on node 2, 6-7 on node 3


def snapshot(t: TaskTable):
    return ({cs.name: cs.to_dict() for cs in t.cpusets},
            {r.task_id: (r.cpu, r.cpuset, r.policy) for r in t.tasks.values()})


# ---- names, lists, the root ------------------------------------------------------------------


@pytest.mark.parametrize("name, fragment", [
    ("", "non-empty"), ("/", "root cpuset"), ("a/b", "flat"), ("/a", "flat"), ("a b", "no blanks"),
    ("tab\there", "no blanks"), ("x" * 65, "longer than 64"), (None, "non-empty"),
])
def test_bad_names_are_einval(name, fragment):
    raises(ErrorCode.EINVAL, fragment, check_name, name)


def test_good_names():
    for name in ("a", "batch-1", "db.primary", "x" * 64):
        assert check_name(name) == name


def test_root_holds_the_machine_and_is_read_only(table):
    root = table.cpuset(None)
    assert root.to_dict() == {"name": ROOT, "cpus": list(range(8)), "mems": [0, 1, 2, 3],
                              "memory_migrate": False, "replication": True}
    assert table.cpuset(ROOT) is root
    raises(ErrorCode.EACCES, "whole machine", table.change_cpuset, ROOT, mems=[0])
    raises(ErrorCode.EACCES, "whole machine", table.change_cpuset, ROOT, cpus=[0])
    raises(ErrorCode.EACCES, "cannot be deleted", table.delete_cpuset, ROOT)
    table.change_cpuset(ROOT, replication=False)  # flags of the root may change
    assert table.create_cpuset("a", [0], [0]).replication is False  # and new sets inherit them
    assert table.create_cpuset("b", [0], [0], replication=True).replication is True


@pytest.mark.parametrize("cpus, mems, fragment", [
    ([], [0], "at least one cpu"),
    ([0], [], "at least one memory node"),
    ([8], [0], "no cpu(s) 8 in this machine (cpus are 0-7)"),
    ([0, 9, 10], [0], "no cpu(s) 9-10"),
    ([0], [4], "no node(s) 4 in this machine (nodes are 0-3)"),
    ([-1], [0], "invalid cpu -1"),
    ([0], [True], "invalid node True"),
    (["0"], [0], "invalid cpu '0'"),
])
def test_cpus_and_mems_must_exist_and_not_be_empty(table, cpus, mems, fragment):
    before = snapshot(table)
    raises(ErrorCode.EINVAL, fragment, table.create_cpuset, "a", cpus, mems)
    assert snapshot(table) == before


def test_create_show_delete(table):
    cs = table.create_cpuset("a", [3, 2, 2], [1], memory_migrate=True)
    assert table.cpuset_info(cs) == {"name": "a", "cpus": [2, 3], "mems": [1], "memory_migrate": True,
                                     "replication": True, "effective_cpus": [2, 3], "effective_mems": [1],
                                     "tasks": []}
    raises(ErrorCode.EEXIST, "cpuset 'a' exists already", table.create_cpuset, "a", [0], [0])
    assert [c.name for c in table.cpusets] == [ROOT, "a"]
    table.delete_cpuset("a")
    raises(ErrorCode.ENOENT, "no cpuset 'a'", table.delete_cpuset, "a")
    raises(ErrorCode.ENOENT, "no cpuset 'a'", table.cpuset, "a")


def test_delete_is_busy_while_tasks_are_in_the_set(table):
    table.create_cpuset("a", [0, 1], [0])
    table.register(pid=100, comm="w", cpu=None, policy=None, cpuset="a", nodes_bound=None)
    raises(ErrorCode.EBUSY, "cpuset 'a' has 1 task(s)", table.delete_cpuset, "a")
    table.remove(100)
    table.delete_cpuset("a")


def test_register_inside_a_cpuset(table):
    table.create_cpuset("a", [2, 3], [1])
    first = table.register(pid=1, comm="w", cpu=None, policy=None, cpuset="a", nodes_bound=None)
    second = table.register(pid=2, comm="w", cpu=None, policy=None, cpuset="a", nodes_bound=None)
    assert (first.cpu, first.node, second.cpu) == (2, 1, 3)
    assert table.info(first)["mems_allowed"] == [1]
    raises(ErrorCode.ENOENT, "no cpuset 'zz'", table.register, pid=3, comm="w", cpu=None, policy=None,
           cpuset="zz", nodes_bound=None)


# ---- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, moves", [
    ({0, 1}, {0, 1}, False),
    ({0, 1}, {0, 1, 2}, False),  # node_remap keeps 0 and 1 where they are
    ({1, 2}, {0, 1, 2}, False),  # sets of different sizes: nodes still allowed keep their pages
    ({1, 2}, {2, 3}, True),  # same size: 2 -> 3, then 1 -> 2 (relative placement moves kept nodes)
    ({0, 1}, {2, 3}, True),
    ({0, 1}, {0}, True),
    ({0}, {0, 1}, False),
])
def test_migration_needed_follows_do_migrate_pages(old, new, moves):
    assert migration_needed(old, new) is moves


def test_cpu_within_keeps_the_node():
    sets = CpusetTable({0: 0, 1: 0, 2: 1, 3: 1}, [0, 1])
    assert sets.cpu_within(1, frozenset({0, 1, 2}), {}) == 1
    assert sets.cpu_within(1, frozenset({0, 2, 3}), {}) == 0
    assert sets.cpu_within(0, frozenset({1, 2}), {}) == 1
    assert sets.cpu_within(1, frozenset({2, 3}), {}) == 2  # no cpu left on node 0: another node's
    assert sets.cpu_within(1, frozenset({2, 3}), {2: 1}) == 3  # the least loaded one


# ---- rebinding on a change of mems ------------------------------------------------------------


def _task_with(table: TaskTable, pid: int, cpuset: str, mode: int, nodes: list[int]) -> None:
    table.register(pid=pid, comm=f"t{pid}", cpu=None, policy=None, cpuset=cpuset, nodes_bound=None)
    table.set_policy(pid, mode, nodes)


def test_numa_memory_policy_doc_examples():
    """numa_memory_policy.rst: mems 1-3 -> 3-5 with interleave over 1-3: default 3,4,5, static 3;
    relative over 2-5 in mems 2-5 -> 3-7: 3,5-7; then mems 0,2-3,5: 0,2-3,5."""
    table = TaskTable(machine(8, 1))
    table.create_cpuset("doc", list(range(8)), [1, 2, 3])
    _task_with(table, 1, "doc", Mode.INTERLEAVE, [1, 2, 3])
    _task_with(table, 2, "doc", Mode.INTERLEAVE | MPOL_F_STATIC_NODES, [1, 2, 3])
    _, changes = table.change_cpuset("doc", mems=[3, 4, 5])
    assert table.get(1).policy.nodes == {3, 4, 5}
    assert table.get(2).policy.nodes == {3}
    assert table.get(2).policy.user_nodes == {1, 2, 3}
    assert {(c.task_id, c.old_mems, c.mems) for c in changes} == {(1, frozenset({1, 2, 3}), frozenset({3, 4, 5})),
                                                                   (2, frozenset({1, 2, 3}), frozenset({3, 4, 5}))}
    table.create_cpuset("rel", list(range(8)), [2, 3, 4, 5])
    _task_with(table, 3, "rel", Mode.INTERLEAVE | MPOL_F_RELATIVE_NODES, [2, 3, 4, 5])
    table.change_cpuset("rel", mems=[3, 4, 5, 6, 7])
    assert table.get(3).policy.nodes == {3, 5, 6, 7}
    table.change_cpuset("rel", mems=[0, 2, 3, 5])
    assert table.get(3).policy.nodes == {0, 2, 3, 5}


def test_mems_change_on_four_nodes():
    table = TaskTable(machine(4))
    table.create_cpuset("a", list(range(8)), [0, 1])
    _task_with(table, 1, "a", Mode.INTERLEAVE, [0, 1])
    _task_with(table, 2, "a", Mode.BIND | MPOL_F_STATIC_NODES, [0, 1])
    _task_with(table, 3, "a", Mode.PREFERRED, [1])
    _task_with(table, 4, "a", Mode.DEFAULT, [])
    table.change_cpuset("a", mems=[2, 3])
    assert table.get(1).policy == Policy(Mode.INTERLEAVE, {2, 3})
    assert table.get(2).policy.nodes == {2, 3}  # empty intersection: the whole new set (kernel `tmp = *nodes`)
    assert table.get(3).policy == Policy(Mode.PREFERRED, {1})  # mpol_rebind_preferred keeps the node
    assert table.get(4).policy == Policy()
    table.change_cpuset("a", mems=[1, 2])
    assert table.get(2).policy.nodes == {1}  # static keeps the intersection of its user mask
    assert table.get(1).policy.nodes == {1, 2}


def test_a_change_reports_only_tasks_it_touches(table):
    table.create_cpuset("a", [0, 1, 2], [0, 1])
    table.register(pid=1, comm="w", cpu=1, policy=None, cpuset="a", nodes_bound=None)
    _, changes = table.change_cpuset("a", cpus=[0, 1, 2, 3], replication=False)
    assert changes == []
    assert table.cpuset("a").replication is False
    _, changes = table.change_cpuset("a", mems=[0, 1, 2])
    assert [(c.task_id, c.rebound, c.cpu_moved) for c in changes] == [(1, True, False)]


# ---- cpus of a running task --------------------------------------------------------------------


def test_new_cpus_move_a_task_within_its_node_else_to_another_node(table):
    table.create_cpuset("a", [0, 1, 2, 3], [0, 1])
    table.register(pid=1, comm="w", cpu=1, policy=None, cpuset="a", nodes_bound=None)
    table.register(pid=2, comm="w", cpu=2, policy=None, cpuset="a", nodes_bound=None)
    _, changes = table.change_cpuset("a", cpus=[0, 2])
    assert [(c.task_id, c.old_cpu, c.cpu, c.node, c.rebound) for c in changes] == [(1, 1, 0, 0, False)]
    assert table.get(1).cpu == 0
    assert not changes[0].node_moved
    _, changes = table.change_cpuset("a", cpus=[0, 1])  # task 2 (cpu 2, node 1) must leave node 1
    assert [(c.task_id, c.old_cpu, c.cpu, c.node, c.new_node, c.node_moved) for c in changes] == [
        (2, 2, 1, 1, 0, True)]
    assert (table.get(2).cpu, table.get(2).node) == (1, 0)


def test_attach_moves_cpu_and_rebinds_from_the_old_mems(table):
    table.create_cpuset("same", [0, 1], [0, 1])
    table.create_cpuset("sibling", [0], [0])
    table.create_cpuset("far", [2, 3], [1])
    table.register(pid=7, comm="w", cpu=1, policy=None, cpuset=None, nodes_bound=None)
    table.set_policy(7, Mode.INTERLEAVE, [0, 1, 2, 3])
    rec, old, change = table.attach(7, "same")
    assert (old.name, rec.cpuset, rec.cpu, change.cpu_moved) == (ROOT, "same", 1, False)
    assert rec.policy.nodes == {0, 1}  # remap 0-3 onto 0-1: 0,2 -> 0 and 1,3 -> 1
    rec, old, change = table.attach(7, "sibling")
    assert (old.name, rec.cpu, change.old_cpu, rec.node) == ("same", 0, 1, 0)
    assert rec.policy.nodes == {0}
    rec, old, change = table.attach(7, "far")
    assert (old.name, rec.cpu, rec.node, change.node, change.new_node, change.node_moved) == ("sibling", 2, 1, 0, 1, True)
    raises(ErrorCode.ESRCH, "no task with pid 8", table.attach, 8, "same")
    raises(ErrorCode.ENOENT, "no cpuset 'zz'", table.attach, 7, "zz")


# ---- memory_migrate ----------------------------------------------------------------------------


def test_memory_migrate_asks_for_the_pages_to_move_when_the_remap_moves_a_node(table):
    table.create_cpuset("m", [0, 1], [0, 1], memory_migrate=True)
    table.register(pid=1, comm="w", cpu=0, policy=None, cpuset="m", nodes_bound=None)
    _, changes = table.change_cpuset("m", mems=[2, 3])
    assert [(c.old_mems, c.mems, c.migrate) for c in changes] == [({0, 1}, {2, 3}, True)]
    _, changes = table.change_cpuset("m", mems=[1, 2])  # same size: 2 -> 1, 3 -> 2
    assert [c.migrate for c in changes] == [True]
    _, changes = table.change_cpuset("m", mems=[0, 1, 2])  # 1 and 2 stay allowed in a bigger set
    assert [c.migrate for c in changes] == [False]
    table.change_cpuset("m", mems=[0, 1])
    _, changes = table.change_cpuset("m", mems=[0, 1, 2])  # the remap is the identity: nothing moves
    assert [c.migrate for c in changes] == [False]
    _, changes = table.change_cpuset("m", memory_migrate=False, mems=[3])  # off in the same write: pages stay
    assert [c.migrate for c in changes] == [False]
    assert table.cpuset("m").mems == {3} and not table.cpuset("m").memory_migrate
    table.create_cpuset("m2", [0, 1], [0], memory_migrate=True)
    rec, _, change = table.attach(1, "m2")  # from mems 3 to 0: the pages follow
    assert change.migrate and rec.cpuset == "m2"
    table.create_cpuset("plain", [0, 1], [1])
    _, _, change = table.attach(1, "plain")  # no memory_migrate there: pages stay
    assert not change.migrate


def test_offline_nodes_leave_the_effective_masks_and_the_configured_ones_stay(table):
    cs = table.create_cpuset("a", [2, 3, 4], [1, 2])
    lone = table.create_cpuset("lone", [4], [2])
    table.set_offline_nodes(frozenset({2}))
    table.set_offline_cpus(frozenset({4, 5}))
    assert (table.effective_mems(cs), table.effective_cpus(cs)) == ({1}, {2, 3})
    # nothing left: the root's effective masks (guarantee_online_mems / _cpus)
    assert (table.effective_mems(lone), table.effective_cpus(lone)) == ({0, 1, 3}, {0, 1, 2, 3, 6, 7})
    info = table.cpuset_info(cs)
    assert (info["mems"], info["effective_mems"], info["cpus"], info["effective_cpus"]) == ([1, 2], [1], [2, 3, 4], [2, 3])
    table.set_offline_nodes(frozenset())
    table.set_offline_cpus(frozenset())
    assert (table.effective_mems(cs), table.effective_cpus(cs)) == ({1, 2}, {2, 3, 4})


def test_a_task_policy_meets_the_effective_mems_so_offline_nodes_alone_are_einval(table):
    table.register(pid=1, comm="w", cpu=0, policy=None, cpuset=None, nodes_bound=None)
    table.set_offline_nodes(frozenset({2}))
    before = snapshot(table)
    err = raises(ErrorCode.EINVAL, "", table.set_policy, 1, int(Mode.BIND), [2])
    assert err.message == "policy nodes 2 have none of the task's mems_allowed 0-1,3 (nodes outside its cpuset or offline)"
    assert snapshot(table) == before
    assert table.set_policy(1, int(Mode.INTERLEAVE), [1, 2, 3]).nodes == {1, 3}  # the online part, as Linux keeps
    raises(ErrorCode.EINVAL, "policy nodes 2 have none", table.register, pid=2, comm="v", cpu=0, cpuset=None,
           policy=Policy(Mode.BIND, frozenset({2})).to_wire(), nodes_bound=None)  # numactl --all -m 2: exec'd
    table.set_offline_nodes(frozenset())
    assert table.set_policy(1, int(Mode.BIND), [2]).nodes == {2}


def test_memory_migrate_pairs_the_effective_mems_while_a_node_is_offline(table):
    table.create_cpuset("m", [0, 1], [1, 2], memory_migrate=True)
    table.register(pid=1, comm="w", cpu=0, policy=None, cpuset="m", nodes_bound=None)
    table.set_offline_nodes(frozenset({2}))
    _, changes = table.change_cpuset("m", mems=[2, 3])  # effective 1 -> 3: the pages on 1 go to 3
    assert [(c.old_mems, c.mems, c.old_effective, c.migrate) for c in changes] == [({1, 2}, {2, 3}, {1}, True)]
    # configured 2-3 -> 1,3 would move 2 to 1; effective 3 -> 1,3 keeps node 3's pages (allowed still)
    _, changes = table.change_cpuset("m", mems=[1, 3])
    assert [(c.old_effective, c.rebound, c.migrate) for c in changes] == [({3}, True, False)]


def offline(t: TaskTable, nodes: set[int]) -> list:
    """What OfflineService does to the table: the offline nodes change, then the rebind."""
    before = {cs.name: t.effective_mems(cs) for cs in t.cpusets}
    t.set_offline_nodes(frozenset(nodes))
    return t.rebind_to_effective(before)


def test_hotplug_rebinds_task_policies_from_the_old_effective_mems_to_the_new(table):
    bind = Policy(Mode.BIND, frozenset({1})).to_wire()
    inter = Policy(Mode.INTERLEAVE, frozenset({1, 3})).to_wire()
    static = Policy(Mode.BIND, frozenset({1}), MPOL_F_STATIC_NODES, frozenset({1})).to_wire()
    for pid, pol in ((1, bind), (2, inter), (3, static)):
        table.register(pid=pid, comm="w", cpu=0, policy=pol, cpuset=None, nodes_bound=None)
    table.create_cpuset("far", [0], [2, 3])
    table.register(pid=4, comm="f", cpu=0, policy=None, cpuset="far", nodes_bound=None)
    changes = offline(table, {1})
    # bitmap_remap 0-3 -> 0,2,3: 1 (2nd) -> 2, 3 (4th) -> 0 (4th mod 3); static: {1} & 0,2-3 is empty -> all
    assert [(c.task_id, c.old_effective, c.effective, c.policy.nodes) for c in changes] == [
        (1, {0, 1, 2, 3}, {0, 2, 3}, {2}), (2, {0, 1, 2, 3}, {0, 2, 3}, {0, 2}), (3, {0, 1, 2, 3}, {0, 2, 3}, {0, 2, 3})]
    assert all(c.rebound and not c.migrate and not c.cpu_moved and c.mems == c.old_mems == {0, 1, 2, 3}
               for c in changes)  # task 4's cpuset kept its effective mems: untouched
    assert [table.tasks[i].policy.nodes for i in (1, 2, 3)] == [{2}, {0, 2}, {0, 2, 3}]
    assert table.tasks[3].policy.reported_nodes == {1}  # get_mempolicy gives a static policy's user mask
    changes = offline(table, set())  # online: rebound back; the default remap is lossy, static comes back
    assert [(c.task_id, c.policy.nodes) for c in changes] == [(1, {1}), (2, {0, 1}), (3, {1})]
    assert offline(table, set()) == []


def test_hotplug_rebinds_a_cpuset_left_without_online_mems_onto_the_roots(table):
    table.create_cpuset("lone", [0], [2])
    table.register(pid=1, comm="w", cpu=0, policy=Policy(Mode.BIND, frozenset({2})).to_wire(), cpuset="lone",
                   nodes_bound=None)
    assert [(c.old_effective, c.effective, c.policy.nodes) for c in offline(table, {2})] == [({2}, {0, 1, 3}, {0})]
    assert [(c.effective, c.policy.nodes) for c in offline(table, set())] == [({2}, {2})]


def test_a_mems_change_while_a_node_is_offline_rebinds_between_effective_mems(table):
    table.create_cpuset("m", [0, 1], [1, 2])
    table.register(pid=1, comm="w", cpu=0, policy=Policy(Mode.INTERLEAVE, frozenset({1, 2})).to_wire(), cpuset="m",
                   nodes_bound=None)
    offline(table, {2})
    assert table.tasks[1].policy.nodes == {1}
    _, changes = table.change_cpuset("m", mems=[1, 2, 3])  # effective 1 -> 1,3: remap keeps 1
    assert [(c.old_effective, c.effective, c.policy.nodes) for c in changes] == [({1}, {1, 3}, {1})]


def test_an_inherited_policy_is_rebound_from_the_mems_it_was_made_against(table):
    bind = Policy(Mode.BIND, frozenset({1})).to_wire()
    static = Policy(Mode.BIND, frozenset({1}), MPOL_F_STATIC_NODES, frozenset({1})).to_wire()
    table.set_offline_nodes(frozenset({1}))
    # numactl -m 1 ran while 0-3 were online; its program's child attaches after node 1 went
    assert table.register(pid=1, comm="c", cpu=0, policy=bind, policy_mems=[0, 1, 2, 3], cpuset=None,
                          nodes_bound=None).policy.nodes == {2}
    s = table.register(pid=2, comm="c", cpu=0, policy=static, policy_mems=[0, 1, 2, 3], cpuset=None,
                       nodes_bound=None).policy
    assert (s.nodes, s.reported_nodes) == ({0, 2, 3}, {1})
    raises(ErrorCode.EINVAL, "policy nodes 1 have none", table.register, pid=3, comm="c", cpu=0, policy=bind,
           cpuset=None, nodes_bound=None)  # made against the task's own mems, as before: nothing left
    raises(ErrorCode.EINVAL, "no node(s) 9 in this machine", table.register, pid=4, comm="c", cpu=0, policy=bind,
           policy_mems=[9], cpuset=None, nodes_bound=None)
    raises(ErrorCode.EINVAL, "policy nodes 1 have none", table.register, pid=5, comm="c", cpu=0, policy=bind,
           policy_mems=[0, 2], cpuset=None, nodes_bound=None)  # checked as set_mempolicy checked it
    assert 3 not in table.tasks and 4 not in table.tasks and 5 not in table.tasks
