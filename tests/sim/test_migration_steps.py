"""Page migration step by step, on a simulated 4-node cluster driven one request at a time
(sim.session), with exact counters: move_pages moves private pages exactly and charges their copy
to the task's clock; mbind with MPOL_MF_MOVE moves pages by bind, interleave and preferred; a lazy
mbind unmaps now and moves each page at its next touch; MOVE_ALL moves shared pages (shm, and a
file page with replicas, which are torn down first) and every mapper refaults to the new place. (They ran on real clusters in
tests/processes/test_migration.py; nothing here needs processes.)"""
from __future__ import annotations

import errno

import pytest

from numa_emu.protocol.costmodel import SHOOTDOWN_NS, CostModel
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import (MPOL_F_ADDR, MPOL_F_NODE, MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT,
                             Mode)
from numa_emu.sim.session import Session

PAGE = 4096


def pattern(i: int) -> bytes:
    return bytes((i * 7 + j) % 251 for j in range(PAGE))


def delta(before: dict, after: dict, name: str) -> dict[int, int]:
    return {n: after[n].get(name, 0) - before[n].get(name, 0) for n in after}


@pytest.fixture(params=[0, 1, 2], ids=lambda seed: f"seed{seed}")
def four(request):
    """Four nodes of 256 frames (as `numa-emu up --nodes 4 --mem-per-node 1MiB`), a task on node 0."""
    with Session(nodes=4, cpus=[0], frames=256, seed=request.param) as s:
        yield s
        s.quiescent()
        for d in s.counters().values():
            assert d["nr_migcache_pages"] == d["pgmigcache_in"] - d["pgmigcache_out"]


def test_move_pages_moves_private_pages_exactly(four):
    t = four.tasks[0]
    m = four.do(t, t.mmap(4))
    for i in range(4):
        four.do(t, t.store(m, i * PAGE, pattern(i)))
    before, clock = four.counters(), four.do(t, t.clock_ns())
    reply = four.do(t, t.move_pages(m, [0, 1, 2, 3], [1, 2, 3, 0]))
    assert reply.status == [1, 2, 3, 0] and reply.not_moved == 0
    # virtual time: the task pays one page copy per moved page, from the cost model
    topology = four.cluster.topology
    cost = CostModel(topology["latency_ns"], topology["bandwidth_mib_s"], PAGE)
    assert four.do(t, t.clock_ns()) - clock == sum(cost.copy_ns(0, n) for n in (1, 2, 3))
    assert four.do(t, t.where(m)) == [1, 2, 3, 0]
    for i in range(4):
        assert four.do(t, t.load(m, i * PAGE, PAGE)) == pattern(i)
    after = four.counters()
    assert delta(before, after, "numa_hit") == {0: 0, 1: 1, 2: 1, 3: 1}
    assert delta(before, after, "other_node") == {0: 0, 1: 1, 2: 1, 3: 1}
    assert delta(before, after, "pgalloc") == {0: 0, 1: 1, 2: 1, 3: 1}
    assert delta(before, after, "pgmigrate_success") == {0: 3, 1: 0, 2: 0, 3: 0}
    assert delta(before, after, "frames_free") == {0: 3, 1: -1, 2: -1, 3: -1}
    assert delta(before, after, "pgfree") == {0: 3, 1: 0, 2: 0, 3: 0}
    for name in ("numa_miss", "numa_foreign", "local_node", "pgmigrate_fail"):
        assert set(delta(before, after, name).values()) == {0}, name
    four.do(t, t.store(m, PAGE + 10, b"xyz"))  # a remote write after the move lands in the new frame
    assert four.do(t, t.move_pages(m, [1], [0])).status == [0]
    assert four.do(t, t.load(m, PAGE + 8, 6)) == pattern(1)[8:10] + b"xyz" + pattern(1)[13:14]


def test_mbind_move_bind_and_interleave(four):
    t = four.tasks[0]
    m = four.do(t, t.mmap(8))
    for i in range(8):
        four.do(t, t.store(m, i * PAGE, pattern(i)))
    before = four.counters()
    four.do(t, t.mbind(m, [2], MPOL_MF_MOVE, Mode.BIND))
    assert four.do(t, t.where(m)) == [2] * 8
    after = four.counters()
    assert delta(before, after, "numa_hit")[2] == 8 and delta(before, after, "pgmigrate_success")[0] == 8
    four.do(t, t.mbind(m, [0, 1, 2, 3], MPOL_MF_MOVE, Mode.INTERLEAVE))
    first = m.vaddr // PAGE
    assert four.do(t, t.where(m)) == [(first + i) % 4 for i in range(8)]  # each page on its slot's node
    assert all(four.do(t, t.load(m, i * PAGE, PAGE)) == pattern(i) for i in range(8))
    four.do(t, t.mbind(m, [1], MPOL_MF_MOVE, Mode.PREFERRED))
    assert four.do(t, t.where(m)) == [1] * 8
    four.do(t, t.mbind(m, [], MPOL_MF_MOVE, Mode.LOCAL))  # local and default leave pages where they are
    assert four.do(t, t.where(m)) == [1] * 8
    assert all(four.do(t, t.load(m, i * PAGE, PAGE)) == pattern(i) for i in range(8))


def test_lazy_migration_moves_on_the_next_touch(four):
    t = four.tasks[0]
    m = four.do(t, t.mmap(4))
    for i in range(4):
        four.do(t, t.store(m, i * PAGE, pattern(i)))
    four.do(t, t.mbind(m, [2], MPOL_MF_MOVE | MPOL_MF_LAZY, Mode.BIND))
    assert four.do(t, t.where(m)) == [0] * 4  # unmapped, but the frames are still on node 0
    c = four.counters()[0]
    assert c["nr_migcache_pages"] == 4 and c["pgmigcache_in"] == 4 and c["pgmigrate_success"] == 0
    assert four.do(t, t.move_pages(m, [0], None)).status == [0]  # query: the node holding it
    assert four.do(t, t.load(m, PAGE, PAGE)) == pattern(1)  # the touch migrates the page
    assert four.do(t, t.where(m)) == [0, 2, 0, 0]
    assert four.do(t, t.get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR, m.vaddr + 3 * PAGE)).node == 2  # migrates too
    four.do(t, t.touch(m, write=True))
    assert four.do(t, t.where(m)) == [2] * 4
    assert all(four.do(t, t.load(m, i * PAGE, PAGE)) == pattern(i) for i in range(4))
    c = four.counters()[0]
    assert c["nr_migcache_pages"] == 0 and c["pgmigcache_out"] == 4 and c["pgmigrate_success"] == 4
    # a page already where the policy wants it is only mapped again
    four.do(t, t.mbind(m, [2], MPOL_MF_MOVE | MPOL_MF_LAZY, Mode.BIND))
    assert four.counters()[0]["nr_migcache_pages"] == 4
    assert four.do(t, t.load(m, 0, PAGE)) == pattern(0) and four.do(t, t.where(m)) == [2] * 4
    assert four.counters()[0]["pgmigrate_success"] == 4
    # default policy + lazy: the next toucher's node (first-touch semantics); unmap frees the rest
    four.do(t, t.mbind(m, [], MPOL_MF_MOVE | MPOL_MF_LAZY, Mode.DEFAULT))
    assert four.do(t, t.load(m, 2 * PAGE, 4)) == pattern(2)[:4] and four.do(t, t.where(m)) == [2, 2, 0, 2]
    free_before = four.counters()[2]["frames_free"]
    four.do(t, t.munmap(m))
    assert four.counters()[2]["frames_free"] == free_before + 3
    assert four.counters()[0]["nr_migcache_pages"] == 0


@pytest.fixture(params=[0, 1, 2], ids=lambda seed: f"seed{seed}")
def shared(request):
    """Four nodes of 256 frames and a task on each (task i on node i), file f of one page."""
    with Session(nodes=4, cpus=[0, 2, 4, 6], frames=256, files={"f": bytes(PAGE)}, seed=request.param) as s:
        yield s
        s.quiescent()


def test_mbind_move_all_moves_shared_pages(shared):
    task, other = shared.tasks[0], shared.tasks[3]
    board = shared.do(task, task.mmap(2, shared="board"))
    shared.do(task, task.store(board, 0, pattern(0)))
    shared.do(task, task.store(board, PAGE, pattern(1)))
    b = shared.do(other, other.mmap(2, shared="board"))
    assert shared.do(other, other.load(b, 0, 2 * PAGE)) == pattern(0) + pattern(1)
    shared.do(task, task.mbind(board, [2], MPOL_MF_MOVE, Mode.BIND))  # mapped by another task: left
    assert shared.do(task, task.where(board)) == [0, 0]
    with pytest.raises(NumaEmuError) as info:
        shared.do(task, task.mbind(board, [2], MPOL_MF_MOVE | MPOL_MF_STRICT, Mode.BIND))
    assert info.value.code == ErrorCode.EIO
    before, clock = shared.counters(), shared.do(task, task.clock_ns())
    shared.do(task, task.mbind(board, [2], MPOL_MF_MOVE_ALL | MPOL_MF_STRICT, Mode.BIND))
    assert shared.do(task, task.where(board)) == [2, 2]
    # virtual time: per page one copy and a shootdown on each of the two mapping nodes
    topology = shared.cluster.topology
    cost = CostModel(topology["latency_ns"], topology["bandwidth_mib_s"], PAGE)
    assert shared.do(task, task.clock_ns()) - clock == 2 * (cost.copy_ns(0, 2) + 2 * SHOOTDOWN_NS)
    assert shared.do(other, other.where(b)) == [-1, -1]  # shot down
    assert shared.do(other, other.load(b, 0, 2 * PAGE)) == pattern(0) + pattern(1)
    assert shared.do(other, other.where(b)) == [2, 2]  # refaulted through the directory
    shared.do(other, other.store(b, 5, b"after"))
    assert shared.do(task, task.load(board, 0, 10)) == pattern(0)[:5] + b"after"
    after = shared.counters()
    assert sum(delta(before, after, "pgmigrate_success").values()) == 2
    assert delta(before, after, "numa_hit")[2] == 2 and delta(before, after, "frames_free")[0] == 2


def test_shared_file_page_with_replicas_moves_and_every_reader_sees_the_same_bytes(shared):
    writer, readers, task = shared.tasks[0], shared.tasks[1:3], shared.tasks[3]
    shared.do(writer, writer.pwrite("f", 0, b"A" * PAGE))
    shared.do(writer, writer.fsync("f"))
    maps = [shared.do(r, r.mmap_file("f", 1)) for r in readers]
    for r, m in zip(readers, maps):
        assert shared.do(r, r.load(m, 0, 2)) == b"AA"
    m = shared.do(task, task.mmap_file("f", 1))
    assert shared.do(task, task.load(m, 0, 2)) == b"AA" and shared.do(task, task.where(m)) == [3]  # a replica
    before = shared.counters()
    assert sum(d["nr_repl_pages"] for d in before.values()) == 3
    assert shared.do(task, task.move_pages(m, [0], [2])).status == [-errno.EACCES]  # others map it
    assert shared.do(task, task.move_pages(m, [0], [2], MPOL_MF_MOVE_ALL)).status == [2]
    after = shared.counters()
    assert sum(delta(before, after, "pgreplicazap_migration").values()) == 3
    assert sum(d["nr_repl_pages"] for d in after.values()) == 0
    assert sum(delta(before, after, "pgmigrate_success").values()) == 1
    assert delta(before, after, "numa_hit")[2] == 1
    assert shared.do(task, task.where(m)) == [2] and shared.do(task, task.load(m, 0, PAGE)) == b"A" * PAGE
    for r, rm in zip(readers, maps):
        assert shared.do(r, r.where(rm)) == [-1]  # shot down, refaults through the directory
        assert shared.do(r, r.load(rm, PAGE - 2, 2)) == b"AA"
    shared.do(writer, writer.pwrite("f", 0, b"B"))  # the new master takes writes
    assert shared.do(task, task.load(m, 0, 2)) == b"BA"
    assert all(shared.do(r, r.load(rm, 0, 2)) == b"BA" for r, rm in zip(readers, maps))
