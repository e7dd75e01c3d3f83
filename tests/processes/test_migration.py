"""Page migration on real clusters (REFERENCE.md b2, b4, b5, b7, b10): move_pages statuses and
errors, migrate_pages' relative rule, mbind MOVE / MOVE_ALL / STRICT and MOVE|LAZY, cpuset
memory_migrate, shared pages with replicas; bytes always preserved, counters exact, invariants."""
from __future__ import annotations

import errno
import threading

import pytest

import numa_emu
from protocol.client import Client
from protocol.messages import migration as mg
from protocol.messages import tasks as tm
from protocol.policy import (MPOL_F_ADDR, MPOL_F_NODE, MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT,
                             Mode)
from protocol.topology_shapes import from_cli
from tests.conftest import PuppetError, poll_until

pytestmark = pytest.mark.cluster
PAGE = 4096
ENOENT, EFAULT, EACCES, ENOMEM = -errno.ENOENT, -errno.EFAULT, -errno.EACCES, -errno.ENOMEM


def stats(c) -> dict[int, dict]:
    with c.client() as client:
        return client.call(tm.ClusterStats()).nodes


def counters(c) -> dict[int, dict]:
    """Per node: numastat and vmstat counters in one dict."""
    return {n: {**d["numastat"], **d["vmstat"], "frames_free": d["frames_free"]} for n, d in stats(c).items()}


def delta(before: dict, after: dict, name: str) -> dict[int, int]:
    return {n: after[n].get(name, 0) - before[n].get(name, 0) for n in after}


def check_invariants(c) -> None:
    nodes = counters(c)
    assert sum(d["numa_miss"] for d in nodes.values()) == sum(d["numa_foreign"] for d in nodes.values())
    for d in nodes.values():
        assert d["numa_hit"] + d["numa_miss"] == d["local_node"] + d["other_node"]
        assert d.get("nr_migcache_pages", 0) == d.get("pgmigcache_in", 0) - d.get("pgmigcache_out", 0)
    total = lambda name: sum(d.get(name, 0) for d in nodes.values())  # noqa: E731
    assert total("nr_repl_pages") == total("pgreplicated") - total("pgreplicazap")


@pytest.fixture
def four(cluster_factory):
    c = cluster_factory(from_cli(4, 1, "1MiB"))  # cpu n on node n, 256 frames per node
    yield c
    check_invariants(c)


def attach(c, cpu):
    return numa_emu.attach(cpu, cluster=c.name)


def pattern(i: int) -> bytes:
    return bytes((i * 7 + j) % 251 for j in range(PAGE))


def test_move_pages_moves_private_pages_exactly(four):
    with attach(four, 0) as task:
        region = task.mmap(4 * PAGE)
        for i in range(4):
            region.write(i * PAGE, pattern(i))
        before = counters(four)
        status = task.move_pages([region.addr(i * PAGE) for i in range(4)], [1, 2, 3, 0])
        assert status == [1, 2, 3, 0] and task.last_not_moved == 0
        assert region.where() == [1, 2, 3, 0]
        for i in range(4):
            assert region.read(i * PAGE, PAGE) == pattern(i)
        after = counters(four)
        assert delta(before, after, "numa_hit") == {0: 0, 1: 1, 2: 1, 3: 1}
        assert delta(before, after, "other_node") == {0: 0, 1: 1, 2: 1, 3: 1}
        assert delta(before, after, "pgalloc") == {0: 0, 1: 1, 2: 1, 3: 1}
        assert delta(before, after, "pgmigrate_success") == {0: 3, 1: 0, 2: 0, 3: 0}
        assert delta(before, after, "frames_free") == {0: 3, 1: -1, 2: -1, 3: -1}
        assert delta(before, after, "pgfree") == {0: 3, 1: 0, 2: 0, 3: 0}
        for name in ("numa_miss", "numa_foreign", "local_node", "pgmigrate_fail"):
            assert set(delta(before, after, name).values()) == {0}, name
        region.write(PAGE + 10, b"xyz")  # a remote write after the move lands in the new frame
        assert task.move_pages([region.addr(PAGE)], [0]) == [0]
        assert region.read(PAGE + 8, 6) == pattern(1)[8:10] + b"xyz" + pattern(1)[13:14]
