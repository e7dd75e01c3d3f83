"""Page migration on real clusters (docs/linux-semantics.md#move_pages, #migrate_pages, #mbind,
#cpusets, #vmstat): move_pages statuses and errors, migrate_pages' relative rule, mbind MOVE /
MOVE_ALL / STRICT and MOVE|LAZY, cpuset memory_migrate, shared pages with replicas; bytes always
preserved, counters exact, invariants. (move_pages of private pages, mbind MOVE by bind and
interleave, lazy migration of private pages, MOVE_ALL of shm pages and of a file page with
replicas run step by step on the simulator:
tests/sim/test_migration_steps.py; concurrent migrations under writers: tests/sim/test_protocol_races.py.)"""
from __future__ import annotations

import collections
import errno

import pytest

import numa_emu
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import (MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT,
                             Mode)
from numa_emu.protocol.topology_shapes import from_cli
from tests.helpers import poll_until

pytestmark = pytest.mark.cluster
PAGE = 4096
ENOENT, EFAULT, EACCES, ENOMEM = -errno.ENOENT, -errno.EFAULT, -errno.EACCES, -errno.ENOMEM


def stats(c) -> dict[int, dict]:
    with c.client() as client:
        return client.call(tm.ClusterStats()).nodes


def counters(c) -> dict[int, dict]:
    """Per node: numastat and vmstat counters in one dict."""
    return {n: collections.Counter({**d["numastat"], **d["vmstat"], "frames_free": d["frames_free"]})
            for n, d in stats(c).items()}


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


def hog(puppets, c, cpu: int, pages: int):
    """Another task (a process of its own) that fills `pages` frames of its local node."""
    p = puppets(c, cpu)
    p.do("mmap", **{"as": "h"}, length=pages * PAGE)
    for i in range(pages):
        p.do("write", **{"as": "h"}, offset=i * PAGE, data="ff")
    return p


def pattern(i: int) -> bytes:
    return bytes((i * 7 + j) % 251 for j in range(PAGE))


@pytest.fixture
def small(cluster_factory):
    c = cluster_factory(from_cli(2, 1, "64KiB"))  # 16 frames per node
    yield c
    check_invariants(c)


def test_move_pages_query_and_every_page_status(small, puppets):
    other = puppets(small, 1)
    with attach(small, 0) as task:
        region = task.mmap(4 * PAGE)
        region.write(0, b"a")
        region.write(2 * PAGE, b"c")
        hole = region.addr(4 * PAGE)  # the guard page after the region: not mapped
        # query only: node, -ENOENT (never touched), -EFAULT (not mapped)
        assert task.move_pages([region.addr(0), region.addr(PAGE), hole]) == [0, ENOENT, EFAULT]
        # a shared page that another task maps: -EACCES without MOVE_ALL, moved with it
        board = task.mmap(PAGE, shared=True, name="board")
        board.write(0, b"shared!")
        other.do("mmap", **{"as": "b"}, length=PAGE, shared=True, name="board")
        assert other.do("read", **{"as": "b"}, offset=0, length=7) == b"shared!".hex()
        assert task.move_pages([board.addr(0)], [1]) == [EACCES] and task.last_not_moved == 0
        assert task.move_pages([board.addr(0)], [1], MPOL_MF_MOVE_ALL) == [1]
        assert board.where() == [1] and board.read(0, 7) == b"shared!"
        assert other.do("read", **{"as": "b"}, offset=0, length=7) == b"shared!".hex()
        # fill node 1, then: -ENOMEM, counted as not moved; "already there"; -ENOENT; -EFAULT
        hog(puppets, small, 1, 15)
        assert poll_until(lambda: stats(small)[1]["frames_free"] == 0, what="node 1 full")
        status = task.move_pages([region.addr(0), region.addr(2 * PAGE), region.addr(PAGE), hole], [1, 0, 1, 1])
        assert status == [ENOMEM, 0, ENOENT, EFAULT] and task.last_not_moved == 1
        assert region.read(0, 1) == b"a" and region.where()[0] == 0
        assert counters(small)[0]["pgmigrate_fail"] == 1


def test_move_pages_call_errors_leave_the_cluster_serving(four, cluster_factory, cli, monkeypatch):
    with attach(four, 0) as task:
        region = task.mmap(2 * PAGE)
        region.touch(write=True)
        addrs = [region.addr(0), region.addr(PAGE)]
        cases = [
            (lambda: task.move_pages(addrs, [1], MPOL_MF_MOVE), "EINVAL", "2 addresses but 1 nodes"),
            (lambda: task.move_pages(addrs, [1, 1], 1 << 5), "EINVAL", "flags"),
            (lambda: task.move_pages(addrs, [1, 9]), "ENODEV", "node 9 does not exist"),
            (lambda: task.migrate_pages([], [1]), "EINVAL", "old_nodes is empty"),
            (lambda: task.migrate_pages([0], [7]), "EINVAL", "do not exist"),
            (lambda: task.mbind(region.addr(0), PAGE, "bind", [1], MPOL_MF_LAZY), "EINVAL", "MPOL_MF_LAZY"),
            (lambda: task.mbind(region.addr(0), PAGE, "bind", [1], 1 << 6), "EINVAL", "not valid"),
        ]
        for call, code, text in cases:
            with pytest.raises(numa_emu.NumaEmuError) as info:
                call()
            assert info.value.errno_name == code and text in info.value.message, info.value
        assert region.where() == [0, 0] and task.move_pages(addrs, [1, 1]) == [1, 1]
    cli("cpuset", "create", "--name", four.name, "low", "--cpus", "0", "--mems", "0-1", check=True)
    monkeypatch.setenv("NUMA_EMU_CPUSET", "low")
    with attach(four, 0) as task:
        region = task.mmap(PAGE)
        region.touch(write=True)
        with pytest.raises(numa_emu.NumaEmuError) as info:
            task.move_pages([region.addr(0)], [2])
        assert info.value.errno_name == "EACCES" and "cpuset" in info.value.message
        with pytest.raises(numa_emu.NumaEmuError) as info:
            task.migrate_pages([0], [2, 3])
        assert info.value.errno_name == "EINVAL" and "none of new_nodes" in info.value.message
        assert task.migrate_pages([0], [1, 2]) == 0 and region.where() == [1]  # cut down to the mems


def test_migrate_pages_relative_rule_keeps_bytes_and_policy(four):
    with attach(four, 0) as task:
        task.set_mempolicy("interleave", [0, 1])
        region = task.mmap(8 * PAGE)
        for i in range(8):
            region.write(i * PAGE, pattern(i))
        assert region.where() == [0, 1] * 4
        before = counters(four)
        assert task.migrate_pages([0, 1], [2, 3]) == 0
        assert region.where() == [2, 3] * 4
        assert all(region.read(i * PAGE, PAGE) == pattern(i) for i in range(8))
        after = counters(four)
        assert delta(before, after, "numa_hit") == {0: 0, 1: 0, 2: 4, 3: 4}
        assert delta(before, after, "pgmigrate_success") == {0: 8, 1: 0, 2: 0, 3: 0}
        assert delta(before, after, "frames_free") == {0: 4, 1: 4, 2: -4, 3: -4}
        assert task.get_mempolicy() == (int(Mode.INTERLEAVE), [0, 1])  # the task keeps its policy
        # 2,3 -> 1,2 then 1,2 -> 2,3: node 2 is vacated (2 -> 3) before it is filled (1 -> 2);
        # the other order would move the pages of node 1 twice
        assert task.migrate_pages([2, 3], [1, 2]) == 0 and region.where() == [1, 2] * 4
        assert task.migrate_pages([1, 2], [2, 3]) == 0 and region.where() == [2, 3] * 4
        assert all(region.read(i * PAGE, PAGE) == pattern(i) for i in range(8))
        # a node in both sets of different sizes keeps its pages
        assert task.migrate_pages([2, 3], [3]) == 0 and region.where() == [3, 3] * 4


def test_migrate_pages_counts_pages_not_moved(small, puppets):
    with attach(small, 0) as task:
        region = task.mmap(4 * PAGE)
        region.touch(fill=0x5A)
        hog(puppets, small, 1, 14)
        assert poll_until(lambda: stats(small)[1]["frames_free"] == 2, what="node 1 nearly full")
        assert task.migrate_pages([0], [1]) == 2
        assert sorted(region.where()) == [0, 0, 1, 1]
        assert region.read(0, 4 * PAGE) == b"\x5a" * 4 * PAGE


def test_mbind_move_strict_answers_eio_when_pages_cannot_move(small, puppets):
    with attach(small, 0) as task:
        region = task.mmap(4 * PAGE)
        region.touch(fill=1)
        other = hog(puppets, small, 1, 14)
        assert poll_until(lambda: stats(small)[1]["frames_free"] == 2, what="node 1 nearly full")
        with pytest.raises(numa_emu.NumaEmuError) as info:
            region.mbind("bind", [1], flags=MPOL_MF_MOVE | MPOL_MF_STRICT)
        assert info.value.errno_name == "EIO" and "could not be moved" in info.value.message
        assert sorted(region.where()) == [0, 0, 1, 1]  # what could move, moved; the policy stands
        assert region.read(0, 4 * PAGE) == b"\x01" * 4 * PAGE
        other.do("munmap", **{"as": "h"})
        region.mbind("bind", [1], flags=MPOL_MF_MOVE | MPOL_MF_STRICT)
        assert region.where() == [1] * 4


def test_lazy_migration_of_shared_pages(four, puppets):
    other = puppets(four, 3)
    with attach(four, 0) as task:
        board = task.mmap(3 * PAGE, shared=True, name="board")
        for i in range(3):
            board.write(i * PAGE, pattern(i))
        other.do("mmap", **{"as": "b"}, length=3 * PAGE, shared=True, name="board")
        assert other.do("read", **{"as": "b"}, offset=2 * PAGE, length=4) == pattern(2)[:4].hex()
        before = counters(four)
        # MOVE|LAZY: pages 0 and 1 (this task's alone) are unmapped; page 2, mapped by the other task, stays
        board.mbind("bind", [2], flags=MPOL_MF_MOVE | MPOL_MF_LAZY)
        assert board.where() == [0, 0, 0] and sum(delta(before, counters(four), "pgmigrate_success").values()) == 0
        assert board.read(PAGE, PAGE) == pattern(1) and board.where() == [0, 2, 0]  # moved by the touch
        assert task.node_of(board.addr(0)) == 2  # get_mempolicy(NODE|ADDR) moves it too
        # MOVE_ALL|LAZY: the other task's mapping goes too; the next touch here moves the page
        board.mbind("bind", [2], flags=MPOL_MF_MOVE_ALL | MPOL_MF_LAZY)
        assert other.do("where", **{"as": "b"}) == [None, None, None]
        board.write(2 * PAGE + 1, b"!")
        assert board.where() == [2, 2, 2]
        expected = pattern(2)[:1] + b"!" + pattern(2)[2:]
        assert other.do("read", **{"as": "b"}, offset=0, length=3 * PAGE) == (pattern(0) + pattern(1) + expected).hex()
        assert other.do("where", **{"as": "b"}) == [2, 2, 2]
        after = counters(four)
        assert sum(delta(before, after, "pgmigrate_success").values()) == 3
        assert delta(before, after, "numa_hit")[2] == 3 and delta(before, after, "frames_free")[0] == 3
        assert sum(d["nr_migcache_pages"] for d in after.values()) == 0  # the page cache kept them, not a migration cache


def test_cpuset_memory_migrate_moves_pages_relatively(four):
    """The coordinator's NodeTaskPolicy with migrate=True (cpuset memory_migrate) on the node:
    mems 0,1 -> 2,3 moves node 0's pages to 2 and node 1's to 3, shared pages too."""
    with attach(four, 0) as task:
        task.set_mempolicy("interleave", [0, 1])
        region = task.mmap(4 * PAGE)
        for i in range(4):
            region.write(i * PAGE, pattern(i))
        board = task.mmap(PAGE, shared=True, name="board")
        board.write(0, b"board")
        policy = task.info()["policy"]
        with four.client(endpoint=task._home.endpoint) as home:
            home.call(tm.NodeTaskPolicy(task_id=task.task_id, policy=policy, mems_allowed=[2, 3],
                                        old_mems_allowed=[0, 1, 2, 3]))  # memory_migrate off: nothing moves
            assert region.where() == [0, 1, 0, 1]
            home.call(tm.NodeTaskPolicy(task_id=task.task_id, policy=policy, mems_allowed=[2, 3],
                                        old_mems_allowed=[0, 1], migrate=True))
        assert region.where() == [2, 3, 2, 3] and board.where() == [2]
        assert all(region.read(i * PAGE, PAGE) == pattern(i) for i in range(4)) and board.read(0, 5) == b"board"


def test_migrations_are_traced_and_told(four, puppets, cli, tmp_path):
    import io
    import json

    from numa_emu.trace_recorder import Recorder

    other = puppets(four, 3)
    out = io.StringIO()
    with attach(four, 0) as task:
        region = task.mmap(2 * PAGE)
        region.write(0, b"p")
        board = task.mmap(PAGE, shared=True, name="board")
        board.write(0, b"s")
        other.do("mmap", **{"as": "b"}, length=PAGE, shared=True, name="board")
        assert other.do("read", **{"as": "b"}, offset=0, length=1) == "73"
        recorder = Recorder(four.info, out)
        recorder.configure(True)
        try:
            assert task.move_pages([region.addr(0)], [1]) == [1]
            assert task.move_pages([board.addr(0)], [2], MPOL_MF_MOVE_ALL) == [2]
            region.mbind("bind", [2], flags=MPOL_MF_MOVE | MPOL_MF_LAZY)
            assert region.read(0, 1) == b"p"
            recorder.drain(final=True)
        finally:
            recorder.configure(False)
            recorder.close()
        clock = task.clock_ns()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    moves = [e for e in events if e["ev"] == "migrate"]
    private, shared, lazy = moves
    assert (private["mode"], private["cause"], private["from"], private["to"], private["result"]) == \
        ("direct", "syscall", 0, 1, "ok")
    assert private["addr"] == region.addr(0) and private["task"] == task.task_id and 0 < private["vns"] <= clock
    assert (shared["obj"], shared["idx"], shared["from"], shared["to"], shared["result"]) == ("shm:board", 0, 0, 2, "ok")
    assert isinstance(shared["new_frame"], int) and isinstance(shared["from_frame"], int)
    assert (lazy["mode"], lazy["cause"], lazy["from"], lazy["to"]) == ("lazy", "fault", 1, 2)
    cache = [(e["what"], e["at"]) for e in events if e["ev"] == "migcache"]
    assert cache == [("in", 1), ("out", 1)]  # page 1 was never touched: nothing to unmap
    # the shared page: every mapping shot down and acknowledged before its old frame was freed
    page = [e for e in events if e.get("obj") == "shm:board"]
    acked = next(e for e in page if e["ev"] == "shootdown" and e.get("phase") == "acked")
    assert acked["cause"] == "migration" and sorted(acked["targets"]) == [0, 3]
    freed = next(e for e in events if e["ev"] == "free" and e["node"] == 0 and shared["from_frame"] in e["frames"])
    assert acked["wall_ns"] <= freed["wall_ns"] <= shared["wall_ns"]
    trace = tmp_path / "migrate.jsonl"
    trace.write_text(out.getvalue())
    story = cli("trace", "show", str(trace), "--page", "shm:board:0", "--event", "migrate", check=True).stdout
    assert "migrated shm:board:0 from node 0 (frame" in story and "to node 2 (frame" in story and "(syscall)" in story
    story = cli("trace", "show", str(trace), "--event", "migcache", check=True).stdout
    assert "unmapped into the migration cache" in story and "left the migration cache" in story


def test_a_large_migration_goes_in_chunks(cluster_factory):
    c = cluster_factory(from_cli(2, 1, "16MiB"))
    with attach(c, 0) as task:
        region = task.mmap(3000 * PAGE)
        region.touch(fill=0x77)
        region.write(2999 * PAGE + 5, b"end")
        before = counters(c)
        assert task.migrate_pages("0", "1") == 0
        assert region.where() == [1] * 3000
        assert region.read(2999 * PAGE, 8) == b"\x77" * 5 + b"end"
        after = counters(c)
        assert delta(before, after, "numa_hit")[1] == 3000 and delta(before, after, "frames_free") == {0: 3000, 1: -3000}
    check_invariants(c)


def test_bad_migration_messages_get_one_clear_error(four):
    with attach(four, 0) as task:
        region = task.mmap(PAGE)
        region.write(0, b"ok")
        with four.client(endpoint=task._home.endpoint) as node:
            bad = [
                (mg.MovePages(task_id=999, addrs=[region.addr(0)]), "ESRCH"),
                (mg.MovePages(task_id=task.task_id, addrs=["x"]), "EINVAL"),
                (mg.MigratePages(task_id=999, old_nodes=[0], new_nodes=[1]), "ESRCH"),
                (mg.DirMigrate(obj="shm:x", idx=0, target=9, mapper=0, task_node=0, task_id=1), "EINVAL"),
                (pc.FrameCopy(frame=10 ** 6, generation=0, dst=1, dst_frame=0, dst_generation=0, free=True), "EINVAL"),
            ]
            for msg, code in bad:
                with pytest.raises(numa_emu.NumaEmuError) as info:
                    node.call(msg)
                assert info.value.errno_name == code, (msg.kind, info.value)
            # a page nobody has: nothing to move
            reply = node.call(mg.DirMigrate(obj="shm:none", idx=0, target=1, mapper=0, task_node=0, task_id=1))
            assert reply.status == ENOENT and not reply.remap
        assert region.read(0, 2) == b"ok" and task.move_pages([region.addr(0)], [1]) == [1]
