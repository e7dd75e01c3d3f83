"""The shipped scenarios: small clusters whose tasks race through the memory protocol.

A scenario names its cluster (nodes, frames a node), its files (their initial bytes) and its
tasks: a CPU each and a script, a generator that yields from sim.tasks.SimTask's requests.
Registers are 8-byte tokens at page offsets, so the history check reads every value exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from numa_emu.protocol.policy import MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL
from numa_emu.sim.cluster import PAGE

Script = Callable  # (SimTask) -> generator


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    nodes: int
    frames: int
    files: dict[str, bytes]
    tasks: tuple[tuple[int, Script], ...]  # (cpu, script); task ids are 1, 2, ...
    direct: bool = False  # the tasks use the direct path where it allows, with or without --direct

    def initial(self) -> dict[str, bytes]:
        """Every register's initial bytes: the files' tokens at each page's start."""
        return {f"{name}@{off}": data[off:off + 8] for name, data in self.files.items()
                for off in range(0, len(data), PAGE)}


def token(tag: str, n: int) -> bytes:
    return f"{tag}{n:0{8 - len(tag)}d}".encode()[:8]


def file_of(tag: str, pages: int) -> bytes:
    return b"".join(token(tag, i).ljust(PAGE, b"\0") for i in range(pages))


# ---- replication and collapse ------------------------------------------------------------
def _repl_writer(t):
    yield from t.pwrite("f", 0, token("W", 1))
    yield from t.fsync("f")  # clean again: readers may replicate it
    m = yield from t.mmap_file("f", 2, writable=True)
    yield from t.store(m, PAGE, token("W", 2))  # the collapse of page 1's replicas, if any
    yield from t.fsync("f")
    yield from t.pwrite("f", 0, token("W", 3))  # page 0's collapse
    yield from t.load(m, 0)
    yield from t.munmap(m)


def _repl_reader(t):
    yield from t.pread("f", 0)
    yield from t.pread("f", PAGE)
    m = yield from t.mmap_file("f", 2)
    for _ in range(2):
        yield from t.load(m, 0)
        yield from t.load(m, PAGE)
    yield from t.pread("f", 0)
    yield from t.munmap(m)


REPLICATION = Scenario(
    "replication", "two readers replicate a file's pages (pread and mappings) while a writer on a third node "
                   "writes them (collapse), writes them back (fsync) and writes again",
    nodes=3, frames=32, files={"f": file_of("A", 2)},
    tasks=((0, _repl_writer), (2, _repl_reader), (4, _repl_reader)))


# ---- migration ----------------------------------------------------------------------------
def _migrator(t):
    m = yield from t.mmap(3)
    for p in range(3):
        yield from t.store(m, p * PAGE, token("P", p))
    yield from t.mbind(m, [1], MPOL_MF_MOVE)  # moved now
    yield from t.load(m, 0)
    yield from t.mbind(m, [2], MPOL_MF_MOVE | MPOL_MF_LAZY)  # unmapped now, moved on the next touch
    for p in range(3):
        yield from t.load(m, p * PAGE)
    yield from t.store(m, PAGE, token("Q", 1))
    yield from t.migrate_pages([2], [0])
    f = yield from t.mmap_file("f", 2, writable=True)
    yield from t.load(f, 0)
    yield from t.store(f, PAGE, token("F", 1))
    yield from t.migrate_pages([0, 1, 2], [1, 2, 0], move_all=True)  # the file's masters move too
    yield from t.move_to(2)  # to node 1: its private pages follow lazily (vm.auto_migrate)
    for p in range(3):
        yield from t.load(m, p * PAGE)
    yield from t.load(f, PAGE)
    yield from t.munmap(m)
    yield from t.munmap(f)


def _file_reader(t):
    f = yield from t.mmap_file("f", 2)
    for _ in range(3):
        yield from t.load(f, 0)
        yield from t.load(f, PAGE)
        yield from t.pread("f", PAGE)
    yield from t.munmap(f)


MIGRATION = Scenario(
    "migration", "a task's private pages move by mbind (MOVE, then LAZY) and migrate_pages, its file pages' masters "
                 "move (MOVE_ALL), and the task moves to another node, while a reader on a third node maps the file",
    nodes=3, frames=32, files={"f": file_of("B", 2)},
    tasks=((0, _migrator), (4, _file_reader)))


# ---- the 2007 unreplicate / lazy-unmap race -----------------------------------------------
def _race_reader(t):
    m = yield from t.mmap_file("f", 1)
    for _ in range(4):
        yield from t.load(m, 0)


def _race_writer(t):
    yield from t.pread("f", 0)
    m = yield from t.mmap_file("f", 1, writable=True)
    yield from t.store(m, 0, token("X", 1))
    yield from t.fsync("f")
    yield from t.store(m, 0, token("X", 2))


UNREPLICATE_RACE = Scenario(
    "unreplicate-race", "readers on two nodes map a file page and read it (replicas) while a writer writes it twice: "
                        "with vm.unsafe_unreplicate=1 a replica is freed before its unmap (the 2007 ordering)",
    nodes=3, frames=16, files={"f": file_of("R", 1)},
    tasks=((0, _race_writer), (2, _race_reader), (4, _race_reader)))


# ---- readers on every node against one writer (tests/processes' writeshare race) ----------
def _share_writer(t):
    for i in range(3):
        for page in range(3):
            yield from t.pwrite("h", page * PAGE, token(f"V{i}", page))
        yield from t.fsync("h")  # clean: the readers replicate again, and the next round collapses


def _share_reader(t):
    m = yield from t.mmap_file("h", 3)
    for _ in range(3):
        for page in range(3):
            yield from t.load(m, page * PAGE)
        yield from t.pread("h", 0)


WRITESHARE = Scenario(
    "writeshare", "readers on three nodes read a 3-page file through mappings and pread while a writer on the "
                  "fourth writes every page and fsyncs, three rounds (replicas made and collapsed over and over)",
    nodes=4, frames=32, files={"h": file_of("H", 3)},
    tasks=((0, _share_writer), (2, _share_reader), (4, _share_reader), (6, _share_reader)))


# ---- migratepages from another process while the task writes and reads ------------------
def _busy_task(t):
    m = yield from t.mmap(3)
    for i in range(12):
        yield from t.store(m, (i % 3) * PAGE + 64, token("M", i))
        yield from t.load(m, (i % 3) * PAGE + 64)


def _migratepages(t):
    for i in range(6):
        old, new = ([0], [1]) if i % 2 == 0 else ([1], [0])
        yield from t.migrate_pages_of(1, old, new)  # task 1's pages, back and forth


MIGRATE_RACE = Scenario(
    "migrate-race", "migratepages moves a task's private pages back and forth between two nodes (from another "
                    "process, through the coordinator) while the task writes and reads them",
    nodes=3, frames=32, files={},
    tasks=((0, _busy_task), (4, _migratepages)))


# ---- a shm page's master moved back and forth while another task writes it --------------
def _shm_writer(t):
    b = yield from t.mmap(1, shared="race")
    for i in range(8):
        yield from t.store(b, 8, token("S", i))
        yield from t.load(b, 8)


def _shm_mover(t):
    b = yield from t.mmap(1, shared="race")
    yield from t.load(b, 8)
    for i in range(6):
        yield from t.move_pages(b, [0], [1 + i % 2], MPOL_MF_MOVE_ALL)
        yield from t.load(b, 8)  # map it again (a write may have shot this mapping down)


SHM_MOVE_RACE = Scenario(
    "shm-move-race", "a task moves a shm page's master between two nodes (move_pages MOVE_ALL) while a task on a "
                     "third node writes and reads it",
    nodes=4, frames=16, files={},
    tasks=((6, _shm_writer), (0, _shm_mover)))


# ---- the same, the page filled (a memset: frame.fill to the master's node) ---------------
def _shm_filler(t):
    b = yield from t.mmap(1, shared="race")
    for i in range(8):
        yield from t.fill(b, 0x41 + i, 8)
        yield from t.load(b, 8)


SHM_FILL_RACE = Scenario(
    "shm-fill-race", "a task moves a shm page's master between two nodes (move_pages MOVE_ALL) while a task on a "
                     "third node fills it (touch with a fill byte) and reads it",
    nodes=4, frames=16, files={},
    tasks=((6, _shm_filler), (0, _shm_mover)))


# ---- direct writes of shared pages (docs/design.md#direct-access) --------------------------
def _direct_shm_writer(t):
    b = yield from t.mmap(1, shared="d")
    for i in range(10):
        yield from t.store(b, 8, token("D", i))  # direct while it holds the grant and the master is here
        yield from t.load(b, 8)


def _direct_shm_reader(t):
    b = yield from t.mmap(1, shared="d")
    for _ in range(8):
        yield from t.load(b, 8)


def _direct_shm_mover(t):
    b = yield from t.mmap(1, shared="d")
    yield from t.load(b, 8)
    for i in range(4):
        yield from t.move_pages(b, [0], [1 - i % 2], MPOL_MF_MOVE_ALL)  # to node 1 and back to node 0
        yield from t.load(b, 8)


DIRECT_SHM = Scenario(
    "direct-shm", "a task writes a shm page directly (its node holds the master, the task the frame's grant) while "
                  "a task of its node reads it directly, one on another node by message, and a third moves the master "
                  "to node 1 and back (MOVE_ALL): the direct path always on",
    nodes=3, frames=16, files={},
    tasks=((0, _direct_shm_writer), (1, _direct_shm_reader), (2, _direct_shm_mover), (4, _direct_shm_reader)),
    direct=True)


def _direct_file_writer(t):
    m = yield from t.mmap_file("g", 2, writable=True)
    for i in range(8):
        yield from t.store(m, (i % 2) * PAGE, token("G", i))  # the first of each page faults, then direct
        if i % 3 == 2:
            yield from t.fsync("g")  # write-protects the pages: the next store is a message again


def _direct_file_reader(t):
    m = yield from t.mmap_file("g", 2)
    for i in range(8):
        yield from t.load(m, (i % 2) * PAGE)  # replicas on another node once the pages are clean


DIRECT_FILE = Scenario(
    "direct-file", "a task writes a file's pages through a writable mapping, directly once its node is their writer, "
                   "and syncs them now and then (write-protected, then replicated by readers on two other nodes and "
                   "collapsed by the next write) while a task of its node reads them directly: the direct path always on",
    nodes=3, frames=16, files={"g": file_of("F", 2)},
    tasks=((0, _direct_file_writer), (1, _direct_file_reader), (2, _direct_file_reader), (4, _direct_file_reader)),
    direct=True)


# ---- page-cache fills and replicas on full nodes: both reclaim ----------------------------
def _stream(t, pages: range):
    for page in pages:
        yield from t.pread("big", page * PAGE)


def _full_streamer(t):
    for _ in range(2):
        yield from _stream(t, range(16))


def _full_reader(t):
    m = yield from t.mmap_file("w", 2)
    for i in range(3):
        yield from _stream(t, range(15, -1, -3))
        yield from t.load(m, (i % 2) * PAGE)  # a replica on a full node: reclaimed for, no lock held
        yield from t.pread("w", PAGE)


def _full_writer(t):
    for i in range(2):
        for page in range(2):
            yield from t.pwrite("w", page * PAGE, token(f"Z{i}", page))
        yield from t.fsync("w")  # clean: replicated again
        yield from _stream(t, range(i, 16, 4))


RECLAIM_FILL = Scenario(
    "reclaim-fill", "three nodes of 8 frames: a task streams a 16-page file twice through node 0, a reader on node 1 "
                    "reads it backwards and replicates a small file that a writer on node 2 writes, syncs and "
                    "reads the big one: page-cache fills and replicas reclaim on full nodes, with no page lock held",
    nodes=3, frames=8, files={"big": file_of("S", 16), "w": file_of("Y", 2)},
    tasks=((0, _full_streamer), (2, _full_reader), (4, _full_writer)))


SCENARIOS = {s.name: s for s in (REPLICATION, MIGRATION, UNREPLICATE_RACE, WRITESHARE, MIGRATE_RACE, SHM_MOVE_RACE,
                                 SHM_FILL_RACE, DIRECT_SHM, DIRECT_FILE, RECLAIM_FILL)}
