"""The rest of the migration semantics on real clusters (docs/linux-semantics.md#move_pages,
#numa_maps): MPOL_MF_MOVE moves a shared page whose other mappers have all unmapped it, and
numa_maps counts private pages waiting in the migration cache where their frames are."""
from __future__ import annotations

import errno

import pytest

import numa_emu
from protocol.policy import MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL
from protocol.topology_shapes import from_cli

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
