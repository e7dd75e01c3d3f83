"""Reclaim of clean page-cache pages on a real cluster (issue 10, defect 6): a file twice the
cluster's memory reads back exactly with no ENOMEM, what was dropped is counted exactly
(pgsteal), the frames come back for other uses, and a dirty page is never lost."""
from __future__ import annotations

import pytest

import numa_emu
from numa_emu.protocol.clusterdir import STORE_DIR
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.topology import from_cli

pytestmark = pytest.mark.cluster
PAGE = 4096
NODE_FRAMES = 256  # 1 MiB per node
FILE_PAGES = 4 * NODE_FRAMES  # twice the cluster's memory (2 nodes)
CHUNK = 16 * PAGE


def page_bytes(name: str, i: int) -> bytes:
    """Page i of file `name`: every page different, so a page read from the wrong place shows."""
    return (f"{name}:{i:06d};".encode() * PAGE)[:PAGE]


def stats(c) -> dict[int, dict]:
    with c.client() as client:
        return {int(n): d for n, d in client.call(tm.ClusterStats()).nodes.items()}


def total(s: dict, name: str) -> int:
    return sum(d["vmstat"].get(name, 0) for d in s.values())


@pytest.fixture
def small(cluster_factory, home):
    c = cluster_factory(from_cli(2, 1, "1MiB"))
    store = home / c.name / STORE_DIR
    (store / "big").write_bytes(b"".join(page_bytes("big", i) for i in range(FILE_PAGES)))
    return c


def read_all(task, name: str, pages: int) -> None:
    f = task.open(name)
    for off in range(0, pages * PAGE, CHUNK):
        data = f.pread(off, CHUNK)
        first = off // PAGE
        assert data == b"".join(page_bytes(name, i) for i in range(first, first + CHUNK // PAGE)), f"at {off}"


def assert_reclaim_counted(s: dict) -> None:
    """Every frame that entered the page cache (read in from the store, or a replica made) is
    either still there or was stolen by reclaim: nothing else freed any in these runs."""
    filled = total(s, "pgpgin") * 1024 // PAGE
    stolen = total(s, "pgsteal_direct") + total(s, "pgsteal_kswapd")
    assert stolen == filled + total(s, "pgreplicated") - total(s, "nr_file_pages")
    assert total(s, "pgreplicazap") == total(s, "pgreplicazap_reclaim")  # every replica dropped went by reclaim
    assert total(s, "nr_repl_pages") == total(s, "pgreplicated") - total(s, "pgreplicazap")


def test_a_file_twice_the_memory_reads_back_and_its_frames_come_back(small, cli):
    cli("sysctl", "--name", small.name, "vm.pagecache_replication=0", check=True)
    with numa_emu.attach(0, cluster=small.name) as task:
        read_all(task, "big", FILE_PAGES)
        s = stats(small)
        assert all(d["frames_free"] < 2 * 32 for d in s.values())  # both nodes were filled
        filled = total(s, "pgpgin") * 1024 // PAGE
        assert filled >= FILE_PAGES and total(s, "pgreplicated") == 0
        assert total(s, "pgsteal_direct") >= FILE_PAGES - 2 * NODE_FRAMES
        assert total(s, "pgscan_direct") >= total(s, "pgsteal_direct")  # no replica: each stolen frame was scanned
        assert_reclaim_counted(s)
        shown = cli("vmstat", "--name", small.name, check=True).stdout.split("\n")
        names = [line.split()[0] for line in shown if line]
        assert names.index("pgpgin") < names.index("pgsteal_direct") < names.index("pgscan_direct")
        assert f"pgsteal_direct {total(s, 'pgsteal_direct')}" in shown
        # the frames are there for anything else: a private region the size of a node
        region = task.mmap(NODE_FRAMES * PAGE)
        region.touch(fill=7)
        assert region.read(NODE_FRAMES * PAGE - 3, 3) == b"\x07" * 3
        after = stats(small)
        stolen = total(after, "pgsteal_direct") - total(s, "pgsteal_direct")
        assert stolen >= NODE_FRAMES - sum(d["frames_free"] for d in s.values())
        assert total(after, "nr_file_pages") == total(s, "nr_file_pages") - stolen
        assert sum(d["frames_total"] - d["frames_free"] for d in after.values()) == \
            total(after, "nr_file_pages") + NODE_FRAMES  # the page cache and the region, nothing leaked
        assert_reclaim_counted(after)
        region.munmap()
        task.open("big").truncate(0)  # drops the cached pages: every frame is free again
        end = stats(small)
        assert all(d["frames_free"] == d["frames_total"] for d in end.values())
        assert total(end, "nr_file_pages") == 0
        big = task.open("big")  # a page whose entries were dropped (shootdowns seen here) is usable again
        big.pwrite(PAGE - 2, b"again")
        assert big.pread(PAGE - 2, 5) == b"again"


def test_with_replication_replicas_go_first_and_everything_adds_up(small):
    with numa_emu.attach(1, cluster=small.name) as warm:  # node 1 caches the first pages: node 0 replicates them
        read_all(warm, "big", NODE_FRAMES // 2)
    with numa_emu.attach(0, cluster=small.name) as task:
        read_all(task, "big", FILE_PAGES)
        s = stats(small)
        assert total(s, "pgreplicated") > 0 and total(s, "pgreplicazap_reclaim") > 0
        assert_reclaim_counted(s)
        read_all(task, "big", NODE_FRAMES)  # what was dropped reads back from the store
        assert_reclaim_counted(stats(small))


def test_a_dirty_page_is_written_back_before_it_is_dropped(small, home):
    store = home / small.name / STORE_DIR
    synced, dirty = page_bytes("e", 0), page_bytes("d", 0) + page_bytes("d", 1)
    with numa_emu.attach(0, cluster=small.name) as task:
        e = task.open("e", create=True, size=PAGE)
        e.pwrite(0, synced)
        e.fsync()
        d = task.open("d", create=True, size=2 * PAGE)
        d.pwrite(0, dirty[:PAGE])  # dirty through write(2)
        m = d.mmap(writable=True)
        m.write(PAGE, dirty[PAGE:])  # dirty through a shared mapping
        assert (store / "d").read_bytes() == bytes(2 * PAGE)  # nothing written back yet
        read_all(task, "big", FILE_PAGES)  # pressure: node 0 is reclaimed over and over
        s = stats(small)
        assert total(s, "nr_vmscan_write") == 2 and total(s, "pgwriteback") == 3  # d's two pages by reclaim
        assert (store / "d").read_bytes() == dirty and (store / "e").read_bytes() == synced
        assert m.read(0, 2 * PAGE) == dirty  # the mapping was shot down: it faults the pages in again
        assert d.pread(0, 2 * PAGE) == dirty and e.pread(0, PAGE) == synced
