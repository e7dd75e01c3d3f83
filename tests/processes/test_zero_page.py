"""The shared zero page (mm/memory.c do_anonymous_page): a read of an untouched private page
allocates nothing and moves no numa counter; the first write allocates by the policy in force
then. numa_maps, where and move_pages see no page of the task's (docs/linux-semantics.md#the-zero-page)."""
from __future__ import annotations

import errno

import pytest

from tests.processes.test_tasks import PAGE, attach, stats

pytestmark = pytest.mark.cluster


@pytest.fixture
def four(cluster_factory):
    return cluster_factory("default-4n")


def memory(c) -> dict:
    """Per node: free frames and the six numastat counters, as one comparable value."""
    return {n: (d["frames_free"], d["numastat"]) for n, d in stats(c).items()}


def test_a_read_only_pass_allocates_nothing_and_a_later_write_follows_the_policy_then(four):
    with attach(four, cpu=0) as task:
        region = task.mmap(8 * PAGE)
        before = memory(four)
        reply = region.touch()  # a read: every page maps the zero page
        assert (reply.pages, reply.faults) == (8, 8)
        assert region.read(0, 8 * PAGE) == bytes(8 * PAGE)
        t0 = task.clock_ns()
        assert region.read(3 * PAGE + 5, 8) == bytes(8)
        topo = four.topology  # zeros at the cost of a local access
        assert task.clock_ns() - t0 == round(topo.latency_ns[0][0] + 8 / (topo.bandwidth_mib_s[0][0] * 1048576 / 1e9))
        assert region.touch().faults == 0  # mapped already: no fault again
        assert memory(four) == before  # no frame taken, no numa counter moved
        assert region.where() == [None] * 8
        (info,) = [r for r in task.maps() if r["start"] == region.vaddr]
        assert (info["present"], info["pages"], info["dirty"]) == (0, {}, 0)
        # move_pages: the zero page is no page to report or move (mm/migrate.c, Linux 6.12)
        assert region.move_pages(None) == [-errno.EFAULT] * 8
        assert region.move_pages([1] * 8) == [-errno.EFAULT] * 8

        # the policy changes after the reads: the first write allocates by the new one
        region.mbind("bind", [3], offset=2 * PAGE, length=2 * PAGE)
        region.write(2 * PAGE + 100, b"abc")
        task.set_mempolicy("bind", [2])
        region.touch(5 * PAGE, PAGE, write=True)
        assert region.where() == [None, None, 3, None, None, 2, None, None]
        after = memory(four)
        assert after[3][0] == before[3][0] - 1 and after[2][0] == before[2][0] - 1
        assert after[3][1]["numa_hit"] == before[3][1]["numa_hit"] + 1
        assert after[3][1]["other_node"] == before[3][1]["other_node"] + 1
        assert region.read(2 * PAGE + 98, 7) == b"\0\0abc\0\0"
        assert region.read(PAGE, 3 * PAGE) == bytes(PAGE + 100) + b"abc" + bytes(2 * PAGE - 103)
        assert region.move_pages(None) == [-errno.EFAULT] * 2 + [3] + [-errno.EFAULT] * 2 + [2] + [-errno.EFAULT] * 2
        (info,) = [r for r in task.maps() if r["start"] == region.vaddr + 2 * PAGE]
        assert (info["present"], info["dirty"]) == (1, 1)


def test_memhog_style_fill_writes_and_a_never_touched_page_is_enoent(four):
    with attach(four, cpu=1) as task:
        region = task.mmap(4 * PAGE)
        assert region.move_pages(None) == [-errno.ENOENT] * 4
        region.touch(0, PAGE, fill=0x11)  # memhog's memset: a write
        region.touch(PAGE, PAGE)
        assert region.where() == [1, None, None, None]  # cpu 1 is on node 1
        assert region.move_pages(None) == [1, -errno.EFAULT, -errno.ENOENT, -errno.ENOENT]
        assert region.read(0, 2) == b"\x11\x11" and region.read(PAGE, 2) == b"\0\0"
