"""The replicated page cache step by step, on a simulated 4-node cluster driven one request at a
time (sim.session), with exact counters: a remote read makes one replica on the reader's node,
shared by the node's other readers; a write (pwrite, or through a mapping) collapses every replica
before it lands; a replica zapped inside the thrash window backs replication of its page off; no
replica of a local master or of shm; truncate zaps replicas, and a page written again is served.
(They ran on real clusters in tests/processes/test_replication.py; nothing here needs processes.)"""
from __future__ import annotations

import pytest

from numa_emu.sim.session import Session

PAGE = 4096
CPU = {node: 2 * node for node in range(4)}  # the first CPU of each node of the simulated cluster


@pytest.fixture(params=[0, 1, 2], ids=lambda seed: f"seed{seed}")
def four(request):
    """A writer on node 0 that created file f, 4 pages of 0x41, and wrote it back (so it is clean
    and its masters are on node 0); readers on nodes 1, 2, 3 and a second one on node 3. Three
    seeds: the messages of each step are delivered in three different orders."""
    with Session(nodes=4, cpus=[CPU[0], CPU[1], CPU[2], CPU[3], CPU[3] + 1], files={"f": bytes(4 * PAGE)},
                 seed=request.param) as s:
        writer = s.tasks[0]
        s.do(writer, writer.pwrite("f", 0, b"\x41" * 4 * PAGE))
        s.do(writer, writer.fsync("f"))
        yield s
        s.quiescent()
        assert s.total("nr_repl_pages") == s.total("pgreplicated") - s.total("pgreplicazap")


def test_remote_read_makes_one_replica_on_the_readers_node(four):
    reader, second = four.tasks[3], four.tasks[4]
    m = four.do(reader, reader.mmap_file("f", 4))
    assert four.do(reader, reader.load(m, PAGE + 5, 3)) == b"AAA"
    assert four.do(reader, reader.where(m)) == [-1, 3, -1, -1]
    assert four.vmstat(3)["nr_repl_pages"] == 1 and four.vmstat(3)["pgreplicated"] == 1
    assert four.total("pgreplicated") == 1
    assert four.do(second, second.pread("f", PAGE, 2)) == b"AA"  # the node's replica, shared
    assert four.total("pgreplicated") == 1 and four.vmstat(3)["repl_hits"] >= 2


def test_write_collapses_replicas_and_no_reader_sees_old_bytes(four):
    writer, readers = four.tasks[0], four.tasks[1:4]
    maps = []
    for r in readers:
        maps.append(four.do(r, r.mmap_file("f", 4)))
        assert four.do(r, r.load(maps[-1], 0, 2)) == b"AA"
    assert four.total("nr_repl_pages") == 3
    four.do(writer, writer.pwrite("f", 0, b"BB"))
    assert four.total("nr_repl_pages") == 0
    assert four.total("pgreplicazap") == 3 and four.total("pgreplicazap_write") == 3
    for r, m in zip(readers, maps):
        assert four.do(r, r.where(m))[0] == -1  # the replica mapping was shot down
        assert four.do(r, r.load(m, 0, 3)) == b"BBA"
        assert four.do(r, r.where(m))[0] == 0  # dirty: readers use the master, no new replica
    assert four.total("pgreplicated") == 3


def test_a_write_through_a_mapping_also_collapses(four):
    writer, reader = four.tasks[0], four.tasks[3]
    m = four.do(reader, reader.mmap_file("f", 4, writable=True))
    assert four.do(reader, reader.load(m, 0, 1)) == b"A"
    four.do(reader, reader.store(m, 0, b"Z"))  # the reader writes: its own replica goes first
    assert four.vmstat(3)["pgreplicazap_write"] == 1 and four.total("nr_repl_pages") == 0
    assert four.do(writer, writer.pread("f", 0, 2)) == b"ZA"


def test_thrashing_page_backs_off(four):
    writer, reader = four.tasks[0], four.tasks[3]
    assert four.do(reader, reader.pread("f", 0, 1)) == b"A"
    four.do(writer, writer.pwrite("f", 0, b"C"))  # zapped well inside the 1 s thrash window
    four.do(writer, writer.fsync("f"))
    assert four.do(reader, reader.pread("f", 0, 1)) == b"C"
    assert four.total("pgreplicabackoff") == 1 and four.total("repl_backoff_skips") == 1
    assert four.total("pgreplicated") == 1 and four.vmstat(3)["nr_repl_pages"] == 0


def test_no_replica_for_a_local_master_or_for_anonymous_and_shm_pages(four):
    writer, reader = four.tasks[0], four.tasks[2]
    assert four.do(writer, writer.pread("f", 0, 1)) == b"A"
    s = four.do(writer, writer.mmap(1, shared="board"))
    four.do(writer, writer.store(s, 0, b"\xff"))
    b = four.do(reader, reader.mmap(1, shared="board"))
    assert four.do(reader, reader.load(b, 0, 1)) == b"\xff"
    assert four.do(reader, reader.where(b)) == [0]
    assert four.total("pgreplicated") == 0


def test_truncate_zaps_replicas_and_drops_pages(four):
    writer, reader = four.tasks[0], four.tasks[3]
    assert four.do(reader, reader.pread("f", 3 * PAGE, 2)) == b"AA"
    four.do(writer, writer.truncate("f", 2 * PAGE + 10))
    assert four.total("pgreplicazap_truncate") == 1
    assert four.do(reader, reader.pread("f", 2 * PAGE, 100)) == b"A" * 10
    assert four.do(reader, reader.pread("f", 3 * PAGE, 10)) == b""


def test_pages_truncated_then_written_again_are_served(four):
    """A page's entry dropped by truncate and made again starts above the epochs its mappers saw
    (a fresh entry at epoch 0 had every answer taken for stale: the node spun for good)."""
    writer = four.tasks[0]
    assert four.do(writer, writer.pread("f", 0, 2)) == b"AA"
    four.do(writer, writer.truncate("f", 0))
    four.do(writer, writer.pwrite("f", 0, b"B" * 4 * PAGE))
    assert four.do(writer, writer.pread("f", 3 * PAGE, 2)) == b"BB"
