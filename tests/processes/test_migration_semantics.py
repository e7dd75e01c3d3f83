"""The rest of the migration semantics on real clusters (docs/linux-semantics.md#move_pages,
#numa_maps): MPOL_MF_MOVE moves a shared page whose other mappers have all unmapped it, and
numa_maps counts private pages waiting in the migration cache where their frames are."""
from __future__ import annotations

import errno

import pytest

import numa_emu
from numa_emu.protocol.policy import MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL
from numa_emu.protocol.topology_shapes import from_cli

pytestmark = pytest.mark.cluster
PAGE = 4096
EACCES = -errno.EACCES


@pytest.fixture
def three(cluster_factory):
    return cluster_factory(from_cli(3, 1, "1MiB"))  # cpu n on node n


def test_move_moves_a_shared_page_once_its_other_mapper_unmapped_it(three, puppets):
    other = puppets(three, 1)
    with numa_emu.attach(0, cluster=three.name) as task:
        region = task.mmap(PAGE, shared=True, name="board")
        region.write(0, b"board")
        other.do("mmap", **{"as": "b"}, length=PAGE, shared=True, name="board")
        assert other.do("read", **{"as": "b"}, offset=0, length=5) == b"board".hex()
        assert task.move_pages([region.addr(0)], [2]) == [EACCES]  # node 1's task maps it
        other.do("munmap", **{"as": "b"})
        assert task.move_pages([region.addr(0)], [2]) == [2]  # nobody else maps it now
        assert region.where() == [2] and region.read(0, 5) == b"board"
        # mapped again on node 1: MOVE refuses again, and a move still reaches the new mapping
        other.do("mmap", **{"as": "b"}, length=PAGE, shared=True, name="board")
        assert other.do("read", **{"as": "b"}, offset=0, length=5) == b"board".hex()
        assert task.move_pages([region.addr(0)], [0]) == [EACCES]


def test_numa_maps_counts_pages_waiting_in_the_migration_cache(three):
    with numa_emu.attach(0, cluster=three.name) as task:
        region = task.mmap(4 * PAGE)
        region.touch(fill=7)
        region.mbind("bind", [2], flags=MPOL_MF_MOVE | MPOL_MF_LAZY)
        (info,) = [r for r in task.maps() if r["start"] == region.vaddr]
        assert info["pages"] == {0: 4} and info["present"] == 4 and info["mapmax"] == 1
        region.read(0, 1)  # the touch moves page 0 to node 2
        (info,) = [r for r in task.maps() if r["start"] == region.vaddr]
        assert info["pages"] == {0: 3, 2: 1} and info["present"] == 4


def test_move_all_without_cap_sys_nice_is_eperm(three):
    with numa_emu.attach(0, cluster=three.name, cap_sys_nice=False) as task:
        region = task.mmap(2 * PAGE)
        region.write(0, b"x")
        with pytest.raises(numa_emu.NumaEmuError) as err:
            task.move_pages([region.addr(0)], [1], MPOL_MF_MOVE_ALL)
        assert err.value.errno_name == "EPERM" and "CAP_SYS_NICE" in err.value.message
        with pytest.raises(numa_emu.NumaEmuError) as err:
            region.mbind("bind", [1], flags=MPOL_MF_MOVE_ALL)
        assert err.value.errno_name == "EPERM"
        assert region.where() == [0, None]  # nothing moved, the policy unchanged
        assert task.move_pages([region.addr(0)], [1], MPOL_MF_MOVE) == [1]  # MOVE needs no privilege
    with numa_emu.attach(0, cluster=three.name, cap_sys_nice=True) as task:
        region = task.mmap(PAGE)
        region.write(0, b"y")
        assert task.move_pages([region.addr(0)], [2], MPOL_MF_MOVE_ALL) == [2]


def sysctl(c, values: dict) -> None:
    from numa_emu.protocol.messages import control as cm

    with c.client() as client:
        client.call(cm.SysctlSet(values=values))


def test_migrate_max_mapcount_lets_move_take_pages_that_few_tasks_map(three, puppets):
    others = [puppets(three, 1), puppets(three, 2)]
    with numa_emu.attach(0, cluster=three.name) as task:
        region = task.mmap(PAGE, shared=True, name="few")
        region.write(0, b"few")
        others[0].do("mmap", **{"as": "f"}, length=PAGE, shared=True, name="few")
        assert others[0].do("read", **{"as": "f"}, offset=0, length=3) == b"few".hex()
        assert task.move_pages([region.addr(0)], [2]) == [EACCES]  # two tasks map it, the default allows one
        sysctl(three, {"vm.migrate_max_mapcount": "2"})
        assert task.move_pages([region.addr(0)], [2]) == [2]
        assert region.read(0, 3) == b"few" and others[0].do("read", **{"as": "f"}, offset=0, length=3) == b"few".hex()
        others[1].do("mmap", **{"as": "f"}, length=PAGE, shared=True, name="few")
        assert others[1].do("read", **{"as": "f"}, offset=0, length=3) == b"few".hex()
        assert task.move_pages([region.addr(0)], [1]) == [EACCES]  # three now
        sysctl(three, {"vm.migrate_max_mapcount": "1"})


def test_auto_migrate_interval_holds_the_pages_until_the_task_stayed_that_long(three):
    sysctl(three, {"vm.auto_migrate_interval_ms": "1"})
    try:
        with numa_emu.attach(0, cluster=three.name) as task:
            region = task.mmap(64 * PAGE)
            region.touch(fill=1)
            task.sched_setaffinity([1])
            assert task.node == 1
            arrived = task.clock_ns()
            touches = 0
            while region.where() == [0] * 64:
                before = task.clock_ns()
                region.touch(fill=2)
                touches += 1
                assert touches < 1000
            # the pages followed at the first request that came after 1 ms on node 1, not before
            assert before >= arrived + 1_000_000 and touches > 1
            assert region.where() == [1] * 64
            assert all(region.read(p * PAGE, PAGE) == bytes([2]) * PAGE for p in range(64))
    finally:
        sysctl(three, {"vm.auto_migrate_interval_ms": "0"})
