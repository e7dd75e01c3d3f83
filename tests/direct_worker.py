"""Worker tasks for the direct-path stress tests (tests/processes/test_direct.py), every operation
logged with CLOCK_MONOTONIC for the history checker (tests/history.py).

    python direct_worker.py writer CPU PAGES STOPFILE [CPU,CPU...]
        stamps its private pages with sequence numbers and reads them back, while the test
        migrates them (and with CPUs, moves itself among them every 100 operations: a task move,
        its pages following lazily by auto-migration); prints "ready PID FD" once its pages exist
        (FD: its open of its page table, whose flock a direct write holds), then one JSON object:
        {"writes": [[page, seq, start_ns, end_ns], ...], "reads": [...], "direct": [reads, writes]}
    python direct_worker.py reuser CPU STOPFILE
        maps, fills with its own byte, checks and unmaps fresh pages over and over (so freed
        frames are reused at once); prints {"bad": [...], "rounds": n}
    python direct_worker.py filewriter CPU NAME PAGES STOPFILE
        writes whole pages of file NAME (each page's bytes say its page and sequence number) and
        syncs them, so that the pages are clean again and replicated anew after each collapse
    python direct_worker.py mapwriter CPU NAME PAGES STOPFILE [CPU,CPU...]
        writes whole pages of file NAME as filewriter does, but through a writable shared mapping
        (direct once its node is the page's writer and this task holds the frame's grant), and
        syncs every 20 writes (write-protecting the pages: the next write of each is a message);
        prints "ready PID FD" once every page was written once, then filewriter's JSON object
        with its direct counts and "last": the last sequence number of each page (synced); with
        CPUs, it moves itself among them every 100 writes (its grants go with its old table) and
        writes how many moves so far into STOPFILE.hops
    python direct_worker.py mover CPU NAME PAGES STOPFILE
        maps file NAME and moves all its pages (MPOL_MF_MOVE_ALL: other tasks map them) to node
        1 and back to node 0, over and over; prints {"moves": n, "moved": pages moved, "failed":
        {status: pages}} (ENOENT: a page reclaimed since the mover mapped it)
    python direct_worker.py filereader CPU NAME PAGES STOPFILE [tolerant]
        reads NAME's pages (one or two at a time) through a read-only mapping, which it unmaps and
        maps again every 100 reads; both print the writer's JSON object (the reader's writes empty);
        "tolerant" (the unsafe mode) counts a page of the wrong bytes in "bad" instead of failing
    python direct_worker.py churner CPU NAME PAGES STOPFILE
        reads file NAME (made by the test, bigger than its node) over and over, so that its node
        reclaims; prints {"bad": [...], "rounds": n}
    python direct_worker.py bulk CPU MIB STOPFILE
        maps MIB MiB, fills them (dirty: its later writes are direct), prints "ready PID FD" (FD:
        its open of its page table, whose flock a direct write holds), then writes the whole region
        with byte 1, 2, 1, ... in one Region.write each; prints {"rounds": n, "where": [nodes],
        "intact": the region holds the last round's bytes, "direct": [reads, writes]}
Each runs until STOPFILE exists (the test makes it when its moves are done).
"""
from __future__ import annotations

import json
import os
import random
import sys
import time

import numa_emu
from numa_emu.protocol.policy import MPOL_MF_MOVE_ALL

PAGE = 4096
STAMP = 8  # bytes: the sequence number, little endian, at the start of the page (and at its end)


def writer(cpu: int, pages: int, stop: str, hops: list[int]) -> dict:
    writes, reads, ops = [], [], 0
    rng = random.Random(cpu)
    with numa_emu.attach(cpu=cpu) as t:
        region = t.mmap(pages * PAGE)
        seqs = [0] * pages
        for page in range(pages):  # a message each: the pages exist, written (dirty), before the test starts moving them
            region.write(page * PAGE, bytes(PAGE))
        print("ready", t.pid, t._dpath.lock_fd, flush=True)  # the fd whose flock its direct writes hold
        while not os.path.exists(stop):
            ops += 1
            if hops and ops % 100 == 0:
                t.sched_setaffinity([hops[ops // 100 % len(hops)]])
            page = rng.randrange(pages)
            seqs[page] += 1
            stamp = seqs[page].to_bytes(STAMP, "little")
            start = time.monotonic_ns()
            region.write(page * PAGE, stamp)  # both ends of the page: a write lands whole or is lost whole
            region.write(page * PAGE + PAGE - STAMP, stamp)
            writes.append([page, seqs[page], start, time.monotonic_ns()])
            page = rng.randrange(pages)
            start = time.monotonic_ns()
            data = region.read(page * PAGE, PAGE)
            head, tail = int.from_bytes(data[:STAMP], "little"), int.from_bytes(data[-STAMP:], "little")
            if head != tail:
                raise SystemExit(f"page {page}: torn, head {head} tail {tail}")
            reads.append([page, head, start, time.monotonic_ns()])
        direct = counts(t)  # this table's; the node's stats have all
    return {"writes": writes, "reads": reads, "direct": list(direct), "hops": ops // 100 if hops else 0}


def reuser(cpu: int, stop: str) -> dict:
    bad, rounds = [], 0
    with numa_emu.attach(cpu=cpu) as t:
        while not os.path.exists(stop):
            rounds += 1
            value = rounds % 251 + 1
            region = t.mmap(16 * PAGE)
            region.touch(fill=value)
            for page in range(16):
                data = region.read(page * PAGE, PAGE)
                if data != bytes([value]) * PAGE:
                    bad.append(f"round {rounds} page {page}: {sorted(set(data))[:4]} instead of {value}")
            region.munmap()
    return {"bad": bad[:20], "rounds": rounds}


def file_page(page: int, seq: int) -> bytes:
    """Page `page` of the stressed file after its write number `seq` (0: as created, zeros)."""
    return (page << 40 | seq).to_bytes(STAMP, "little") * (PAGE // STAMP) if seq else bytes(PAGE)


def file_writer(cpu: int, name: str, pages: int, stop: str) -> dict:
    writes, seqs, rng = [], [0] * pages, random.Random(cpu)
    with numa_emu.attach(cpu=cpu) as t:
        f = t.open(name)
        print("ready", t.pid, flush=True)
        while not os.path.exists(stop):
            page = rng.randrange(pages)
            seqs[page] += 1
            start = time.monotonic_ns()
            f.pwrite(page * PAGE, file_page(page, seqs[page]))  # collapses the page's replicas
            writes.append([page, seqs[page], start, time.monotonic_ns()])
            f.fsync()  # clean again: the next read elsewhere replicates it
    return {"writes": writes, "reads": [], "direct": [0, 0], "hops": 0}


def counts(t) -> tuple[int, int]:
    """(reads, writes) the task's direct path served through its current table."""
    return t._dpath.counts() if t._dpath is not None else (0, 0)


def map_writer(cpu: int, name: str, pages: int, stop: str, hops: list[int]) -> dict:
    writes, seqs, rng, earlier = [], [0] * pages, random.Random(cpu), [0, 0]
    with numa_emu.attach(cpu=cpu) as t:
        f = t.open(name)
        region = t.mmap_file(f, writable=True)
        for page in range(pages):  # the write faults: this node becomes the pages' writer
            seqs[page] += 1
            start = time.monotonic_ns()
            region.write(page * PAGE, file_page(page, seqs[page]))
            writes.append([page, seqs[page], start, time.monotonic_ns()])
        print("ready", t.pid, t._dpath.lock_fd, flush=True)
        while not os.path.exists(stop):
            if hops and len(writes) % 100 == 0:
                earlier = [a + b for a, b in zip(earlier, counts(t))]  # a move gives the task a new table
                t.sched_setaffinity([hops[len(writes) // 100 % len(hops)]])
                with open(stop + ".hops", "w") as moves:  # how many so far, for the test to wait on
                    moves.write(str(len(writes) // 100))
            page = rng.randrange(pages)
            seqs[page] += 1
            start = time.monotonic_ns()
            region.write(page * PAGE, file_page(page, seqs[page]))
            writes.append([page, seqs[page], start, time.monotonic_ns()])
            if len(writes) % 20 == 0:
                f.fsync()  # clean: replicated again by the other node's reader, then collapsed by the next write
        f.fsync()
        direct = [a + b for a, b in zip(earlier, counts(t))]
    return {"writes": writes, "reads": [], "direct": direct, "hops": len(writes) // 100 if hops else 0,
            "last": seqs}


def mover(cpu: int, name: str, pages: int, stop: str) -> dict:
    moves, moved, failed = 0, 0, {}
    with numa_emu.attach(cpu=cpu) as t:
        region = t.mmap_file(t.open(name), writable=False)
        while not os.path.exists(stop):
            region.read(0, pages * PAGE)  # mapped (again, after a reclaim): move_pages moves pages the task maps
            moves += 1
            target = moves % 2  # node 1, then node 0, ...
            status = region.move_pages([target] * pages, flags=MPOL_MF_MOVE_ALL)
            moved += sum(1 for s in status if s == target)
            for s in status:
                if s != target:
                    failed[str(s)] = failed.get(str(s), 0) + 1
            time.sleep(0.02)  # pacing: the other tasks get their accesses in between
    return {"moves": moves, "moved": moved, "failed": failed}


def file_reader(cpu: int, name: str, pages: int, stop: str, tolerant: bool = False) -> dict:
    reads, rng, ops, bad = [], random.Random(cpu), 0, 0
    with numa_emu.attach(cpu=cpu) as t:
        f = t.open(name)
        region = t.mmap_file(f, writable=False)
        print("ready", t.pid, flush=True)
        while not os.path.exists(stop):
            ops += 1
            if ops % 100 == 0:  # munmap: the entries go, the replicas stay for the next mapping
                region.munmap()
                region = t.mmap_file(f, writable=False)
                with open(stop + ".reads", "w") as done:  # how many so far, and direct, for the test to wait on
                    done.write(f"{len(reads)} {counts(t)[0]}")
            count = rng.choice((1, 2))
            first = rng.randrange(pages - count + 1)
            start = time.monotonic_ns()
            data = region.read(first * PAGE, count * PAGE)
            end = time.monotonic_ns()
            for i in range(count):
                got = data[i * PAGE:(i + 1) * PAGE]
                word = int.from_bytes(got[:STAMP], "little")
                page, seq = (first + i, 0) if word == 0 else (word >> 40, word & (1 << 40) - 1)
                if page != first + i or got != file_page(page, seq):
                    if tolerant:  # the unsafe mode: a read through a freed replica, counted
                        bad += 1
                        continue
                    raise SystemExit(f"page {first + i}: bytes of another page or torn: {sorted(set(got))[:8]}")
                reads.append([page, seq, start, end])
        direct = counts(t)
    return {"writes": [], "reads": reads, "direct": list(direct), "hops": 0, "bad": bad}


def big_page(i: int) -> bytes:
    """Page i of the churner's file: every page different (the test makes the file with it)."""
    return (f"big:{i:06d};".encode() * PAGE)[:PAGE]


def churner(cpu: int, name: str, pages: int, stop: str) -> dict:
    bad, rounds, chunk = [], 0, 16
    with numa_emu.attach(cpu=cpu) as t:
        f = t.open(name)
        while not os.path.exists(stop):
            rounds += 1
            for first in range(0, pages, chunk):
                data = f.pread(first * PAGE, chunk * PAGE)
                if data != b"".join(big_page(i) for i in range(first, first + chunk)):
                    bad.append(f"round {rounds}: pages {first}..{first + chunk - 1} read back wrong")
                if os.path.exists(stop):
                    break
    return {"bad": bad[:20], "rounds": rounds}


def bulk(cpu: int, mib: int, stop: str) -> dict:
    size, rounds = mib << 20, 0
    patterns = [bytes([1]) * size, bytes([2]) * size]
    with numa_emu.attach(cpu=cpu) as t:
        region = t.mmap(size)
        region.touch(write=True, fill=0)  # asks for the direct path first: the pages are published writable
        print("ready", t.pid, t._dpath.lock_fd, flush=True)
        while not os.path.exists(stop):
            region.write(0, patterns[rounds % 2])
            rounds += 1
        last = patterns[(rounds - 1) % 2][:1 << 20]  # read back a MiB at a time: one message each
        intact = all(region.read(off, 1 << 20) == last for off in range(0, size, 1 << 20))
        return {"rounds": rounds, "where": sorted(set(region.where())), "intact": intact,
                "direct": list(t._dpath.counts())}


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "bulk":
        out = bulk(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif kind == "mapwriter":
        out = map_writer(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5],
                         [int(c) for c in sys.argv[6].split(",")] if len(sys.argv) > 6 else [])
    elif kind == "filereader":
        out = file_reader(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5],
                          len(sys.argv) > 6 and sys.argv[6] == "tolerant")
    elif kind in ("filewriter", "mover", "churner"):
        run = {"filewriter": file_writer, "mover": mover, "churner": churner}[kind]
        out = run(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif kind == "writer":
        out = writer(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                     [int(c) for c in sys.argv[5].split(",")] if len(sys.argv) > 5 else [])
    else:
        out = reuser(int(sys.argv[2]), sys.argv[3])
    print(json.dumps(out), flush=True)
