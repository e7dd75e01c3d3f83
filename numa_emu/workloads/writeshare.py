"""writeshare: write-shared file pages that make the replicated page cache thrash. Readers on
every node keep reading pages that one writer keeps writing.

Set-up (the leader, which is the writer, not measured): a file of --size bytes (default 4 pages)
under a name unique to the run, written once through the writer's mapping (the masters sit where
its policy puts them: its own node by default) and fsynced. Readers, --tasks-per-node on every
node (the writer's too), map it read-only.

Measured phase (every task starts together, numa_emu/workloads/racer.py): the writer makes
--iterations rounds; a round stamps every page with the round's number (8 bytes, through its
writable mapping, or with pwrite under --write-via pwrite), fsyncs (the pages are clean again,
so they may be replicated again) and pauses --pause-ms of wall time, so that the readers can.
The readers read --read-bytes from every page, pass after pass, until the writer is done: with
pread (read(2), the default), where every read of a clean remote page may replicate it again,
or through a read-only mapping (--read-via mmap), where a mapping that refaulted while the page
was dirty stays on the master until something unmaps it, as a pte does in Linux. Each replica
made between two rounds is zapped by the next round: the replicate/zap cycle of the 2007 thread,
whose runs saw 84-98 % of the replicas zapped. vm.pagecache_replication_backoff stops
replicating a page that thrashes; vm.pagecache_replication_mode=no-writers stops replicating a
file that a task maps writable (not one written with pwrite: --write-via pwrite shows the gap);
exec-only replicates only files mapped executable (this one never is).

A history check on the side, which costs nothing in the model: once a write has completed, the
writer publishes its number in a host shared-memory array; a reader loads that number before
each read, and a read that returns an older one is stale. The default protocol never allows
one; vm.unsafe_unreplicate=1 does, through mappings (--read-via mmap: a pread checks the frame's
generation and asks again), counted by the nodes as repl_stale_access and here as stale_reads.

Result fields besides the common ones: readers, pages, rounds, writes, reads, remote_master_reads,
remote_reads (minus the replica hits), stale_reads, reader_ns_per_read, repl_hits,
repl_fetch_bytes, pgreplicated, pgreplicazap, zap_ratio, pgreplicabackoff, repl_backoff_skips,
repl_stale_access, counters (every replication counter over the phase). `virtual_ns` is the
writer's measured time: its collapses cost more the more replicas there are to shoot down.
"""
from __future__ import annotations

import argparse
import mmap
import os
import struct
import tempfile
import time

from numa_emu.protocol import limits

from numa_emu.workloads import racer
from numa_emu.workloads.runner import Phase, main, positive_int

DEFAULTS = {"size": "16KiB", "iterations": 20}
STAMP = struct.Struct("<Q")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pause-ms", type=limits.MILLISECONDS.argtype(), default=20.0, metavar="MS",
                   help="wall time between the writer's rounds, for the readers to replicate (default 20)")
    p.add_argument("--read-bytes", type=positive_int, default=64, metavar="N",
                   help="bytes per read, from the start of the page: 8 to a page (default 64)")
    p.add_argument("--write-via", choices=("mmap", "pwrite"), default="mmap",
                   help="the writer writes through a writable mapping (default) or with pwrite")
    p.add_argument("--read-via", choices=("pread", "mmap"), default="pread",
                   help="the readers read with pread (default: every read may replicate again) or through "
                        "a read-only mapping (a mapping that refaulted on the master stays there)")
    p.add_argument("--keep-file", action="store_true", help="leave the file in the page cache (default: truncate)")
    p.add_argument("--published-fd", type=int, default=None, help=argparse.SUPPRESS)
    racer.add_team_arguments(p, "readers")


def _name(run_id: str) -> str:
    return f"writeshare-{run_id}"


def _pages(task, args: argparse.Namespace) -> int:
    return max(1, -(-args.size // task.page_size))


def _write_round(f, region, pages: int, ps: int, seq: int, published: mmap.mmap | None) -> None:
    for page in range(pages):
        data = STAMP.pack(seq)
        if region is not None:
            region.write(page * ps, data)
        else:
            f.pwrite(page * ps, data)
        if published is not None:  # completed: from now on no read may return less
            STAMP.pack_into(published, page * STAMP.size, seq)
    f.fsync()


def _write(task, args: argparse.Namespace, f, region, published: mmap.mmap) -> dict:
    pages, ps = _pages(task, args), task.page_size
    with Phase(task) as phase:
        for seq in range(1, args.iterations + 1):
            _write_round(f, region, pages, ps, seq, published)
            if args.pause_ms > 0 and seq < args.iterations:
                time.sleep(args.pause_ms / 1000)
    return {"virtual_ns": phase.virtual_ns, "wall_s": phase.wall_s, "writes": pages * args.iterations}


def _read(task, args: argparse.Namespace, f, published: mmap.mmap, line: racer.StartLine) -> dict:
    pages, ps = _pages(task, args), task.page_size
    n = max(STAMP.size, min(args.read_bytes, ps))  # the stamp at least, a page at most
    region = task.mmap_file(f, writable=False) if args.read_via == "mmap" else None
    read = region.read if region is not None else f.pread
    line.ready_then_wait()
    reads = passes = stale = 0
    with Phase(task) as phase:
        while passes == 0 or not line.stopped():
            for page in range(pages):
                done = STAMP.unpack_from(published, page * STAMP.size)[0]
                seq = STAMP.unpack_from(read(page * ps, n))[0]
                stale += seq < done
                reads += 1
            passes += 1
    return {"virtual_ns": phase.virtual_ns, "wall_s": phase.wall_s, "ops": reads, "bytes": reads * n,
            "reads": reads, "passes": passes, "stale_reads": stale}


def _team_options(args: argparse.Namespace, fd: int) -> list[str]:
    return ["--size", str(args.size), "--iterations", str(args.iterations), "--seed", str(args.seed),
            "--read-bytes", str(args.read_bytes), "--read-via", args.read_via, "--published-fd", str(fd)]


def lead(task, args: argparse.Namespace) -> dict:
    name, run_id = racer.cluster_name(args), str(os.getpid())
    cpus = racer.worker_cpus(name, task.cpu, args.tasks_per_node, args.nodes, leader_counts=False)
    pages, ps = _pages(task, args), task.page_size
    f = task.open(_name(run_id), create=True, size=pages * ps)
    region = f.mmap(writable=True)
    region.write(0, bytes(pages * ps))
    masters = region.where()
    f.fsync()
    if args.write_via == "pwrite":
        region.munmap()
        region = None
    with tempfile.TemporaryFile() as shared, racer.Team("writeshare", name, pass_fds=(shared.fileno(),)) as team:
        shared.truncate(pages * STAMP.size)
        published = mmap.mmap(shared.fileno(), pages * STAMP.size)
        for i, cpu in enumerate(cpus, 1):
            team.spawn(i, cpu, _team_options(args, shared.fileno()), run_id)
        team.wait_ready()
        before = racer.counters(name)
        team.go()
        try:
            mine = _write(task, args, f, region, published)
        finally:
            team.stop()
        readers = team.results()
        delta = racer.counter_delta(before, racer.counters(name))
        published.close()
    if region is not None:
        region.munmap()
    if not args.keep_file:
        f.truncate(0)
    remote_master = sum(r["passes"] * sum(1 for m in masters if m != r["node"]) for r in readers)
    reads = sum(r["reads"] for r in readers)
    return {"virtual_ns": mine["virtual_ns"], "wall_s": mine["wall_s"], "ops": mine["writes"] + reads,
            "bytes": mine["writes"] * STAMP.size + sum(r["bytes"] for r in readers), "readers": len(readers),
            "pages": pages, "rounds": args.iterations, "writes": mine["writes"], "reads": reads,
            "remote_master_reads": remote_master, "remote_reads": remote_master - delta["repl_hits"],
            "stale_reads": sum(r["stale_reads"] for r in readers),
            "reader_ns_per_read": sum(r["virtual_ns"] for r in readers) / reads if reads else None,
            "repl_hits": delta["repl_hits"], "repl_fetch_bytes": delta["repl_fetch_bytes"],
            "pgreplicated": delta["pgreplicated"], "pgreplicazap": delta["pgreplicazap"],
            "zap_ratio": racer.zap_ratio(delta), "pgreplicabackoff": delta["pgreplicabackoff"],
            "repl_backoff_skips": delta["repl_backoff_skips"], "repl_stale_access": delta["repl_stale_access"],
            "counters": delta, "write_via": args.write_via, "read_via": args.read_via,
            "masters_by_node": {str(n): masters.count(n) for n in sorted(set(masters))}}


def run(task, args: argparse.Namespace) -> dict:
    if args.team_index is None:
        return lead(task, args)
    f = task.open(_name(args.run_id))
    with mmap.mmap(args.published_fd, _pages(task, args) * STAMP.size, access=mmap.ACCESS_READ) as published:
        line = racer.StartLine(args)
        return _read(task, args, f, published, line)


if __name__ == "__main__":
    raise SystemExit(main("writeshare"))
