"""NUMA balancing moves tasks toward their memory (nodes/balancing.py task placement, the
coordinator's task.numa_migrate; docs/linux-semantics.md#automatic-numa-balancing): a task whose
hinting faults are on another node runs there if a CPU of it is idle, swaps with a task there
that prefers the first task's node, and never leaves the CPUs it is pinned to."""
from __future__ import annotations


import pytest

from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.topology_shapes import from_cli
from tests.helpers import poll_until, vm_total

pytestmark = pytest.mark.cluster
PAGE, PAGES = 4096, 8
# every access scans: each remote page is marked again as soon as its hinting fault clears it
EVERY_ACCESS = {cm.NUMA_BALANCING_KEY: "1", cm.SCAN_DELAY_KEY: "0", cm.SCAN_PERIOD_MIN_KEY: "0",
                cm.SCAN_PERIOD_MAX_KEY: "0"}
MOVES = ("numa_task_migrated", "numa_task_swapped")


@pytest.fixture
def two(cluster_factory):
    return cluster_factory(from_cli(2, 1, "1MiB"))  # cpu n on node n


def memory_on(task, node: int) -> None:
    """A private region "m" bound to `node` (MPOL_BIND without MPOL_F_NUMA_BALANCING: its pages
    never move), written, so that every hinting fault of the task is on `node`."""
    task.do("mmap", length=PAGES * PAGE, **{"as": "m"})
    task.do("mbind", mode="bind", nodes=[node], **{"as": "m"})
    for i in range(PAGES):
        task.do("write", offset=i * PAGE, data=bytes([i + 1]).hex() * PAGE, **{"as": "m"})


def read_all(task) -> None:
    for i in range(PAGES):
        assert task.do("read", offset=i * PAGE, length=PAGE, **{"as": "m"}) == bytes([i + 1]).hex() * PAGE


def start_balancing(c) -> None:
    with c.client() as client:
        client.call(cm.SysctlSet(values=EVERY_ACCESS))


def test_a_task_moves_to_the_idle_node_that_holds_its_memory(two, puppets):
    task = puppets(two, None)  # not pinned: the coordinator picks cpu 0
    assert task.do("info")["cpu"] == 0
    memory_on(task, 1)
    start_balancing(two)

    def moved() -> bool:
        read_all(task)
        return task.do("info")["node"] == 1
    poll_until(moved, timeout_s=60, what="the task to run on node 1, where its memory is")
    info = task.do("info")
    assert (info["cpu"], info["numa_preferred"], info["affinity"]) == (1, 1, [0, 1])
    assert task.do("where", **{"as": "m"}) == [1] * PAGES  # the task moved, not its pages
    read_all(task)  # served by its new home
    assert {k: vm_total(two, k) for k in MOVES} == {"numa_task_migrated": 1, "numa_task_swapped": 0}
    assert vm_total(two, "numa_pages_migrated") == 0


def test_two_tasks_on_busy_nodes_swap_places(two, puppets):
    a, b = puppets(two, None), puppets(two, None)  # cpu 0 and cpu 1: no CPU is idle
    assert (a.do("info")["cpu"], b.do("info")["cpu"]) == (0, 1)
    memory_on(a, 1)
    memory_on(b, 0)
    start_balancing(two)

    def swapped() -> bool:
        read_all(a)
        read_all(b)
        return (a.do("info")["node"], b.do("info")["node"]) == (1, 0)
    poll_until(swapped, timeout_s=60, what="the two tasks to swap nodes")
    read_all(a)
    read_all(b)
    assert (a.do("info")["cpu"], b.do("info")["cpu"]) == (1, 0)
    assert {k: vm_total(two, k) for k in MOVES} == {"numa_task_migrated": 0, "numa_task_swapped": 2}


def test_a_pinned_task_stays_where_it_was_put(two, puppets):
    """attach(cpu=0) pins the task, as `taskset -c 0` would: it asks, and stays."""
    task = puppets(two, 0)
    memory_on(task, 1)
    start_balancing(two)

    def asked() -> bool:
        read_all(task)
        return task.do("info")["numa_preferred"] == 1 and vm_total(two, "numa_hint_faults") >= 4 * PAGES
    poll_until(asked, timeout_s=60, what="the task to ask for node 1, and many hinting faults")
    info = task.do("info")
    assert (info["node"], info["cpu"], info["affinity"]) == (0, 0, [0])
    assert {k: vm_total(two, k) for k in MOVES} == {"numa_task_migrated": 0, "numa_task_swapped": 0}


def test_balancing_off_moves_no_task(two, puppets):
    task = puppets(two, None)
    memory_on(task, 1)
    for _ in range(5):
        read_all(task)
    info = task.do("info")
    assert (info["node"], info["numa_preferred"]) == (0, -1)
    assert (vm_total(two, "numa_hint_faults"), vm_total(two, "numa_task_migrated")) == (0, 0)
