"""kbuild: a kernel build's page-cache pattern. Tasks on every node read one shared source tree
over and over, through read-only mappings and pread, and write a little; the 2007 patch's
benchmark ("~10 s (1 %) user time was cut off a kernel compile", docs/linux-semantics.md#findings-of-the-2007-thread).

Set-up (the leader, not measured): --files files of --size bytes (default 8 x 64 KiB, 16 pages
each) under names unique to the run, written by the leader through a writable mapping, so their
masters sit where the leader's policy puts them (its own node by default: the tree was read in
there); where() records every master's node; fsync makes the pages clean; the mapping goes. The
first --exec-files files are the compiler (mapped executable, like cc1's text); of the others the
even ones are read through a read-only mapping and the odd ones with pread (headers).

Measured phase: --tasks-per-node tasks on every node (the leader is one of its node's) start
together (numa_emu/workloads/racer.py). Each makes --iterations passes; a pass reads every page of
every file once, a page per read, in the task's own seeded random order. Every --write-every-th
read is followed by a page written to the task's own object file; every
--shared-write-every-th (0: never) by 64 bytes written into a shared file and an fsync (a
generated header), which collapses that page's replicas.

Result fields besides the common ones: tasks, files, file_pages, reads, writes, shared_writes,
remote_master_reads (reads of a page whose master is on another node than the reader's),
remote_reads (those a local replica did not serve: remote_master_reads minus the replica hits),
repl_hits, repl_fetch_bytes, pgreplicated, pgreplicazap, zap_ratio, counters (every replication
counter of the cluster over the measured phase), task_virtual_ns (each task's), masters_by_node.
`virtual_ns` is the slowest task's measured time (the build's makespan); `ops` counts every
read and write of every task. With one task per node and no shared writes it is the same on
every run.
"""
from __future__ import annotations

import argparse
import os
import random

from numa_emu.workloads import racer
from numa_emu.workloads.runner import Phase, main, positive_int

DEFAULTS = {"size": "64KiB", "iterations": 4}
SHARED_WRITE_BYTES = 64


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", type=positive_int, default=8, help="files of the shared tree (default 8)")
    p.add_argument("--exec-files", type=int, default=1, metavar="N",
                   help="of those, how many are mapped executable (the compiler; default 1)")
    p.add_argument("--write-every", type=int, default=16, metavar="N",
                   help="write a page of the task's object file after every N-th read (0: never; default 16)")
    p.add_argument("--shared-write-every", type=int, default=0, metavar="N",
                   help="write into a shared file and fsync after every N-th read (0: never, the default)")
    p.add_argument("--keep-files", action="store_true", help="leave the files in the page cache (default: truncate)")
    racer.add_team_arguments(p, "compiling tasks")


def _names(run_id: str, n_files: int) -> list[str]:
    return [f"kbuild-{run_id}-src{i}" for i in range(n_files)]


def _obj_name(run_id: str, index: int) -> str:
    return f"kbuild-{run_id}-obj{index}"


def _pages(task, args: argparse.Namespace) -> int:
    return max(1, -(-args.size // task.page_size))


def _content(i: int, size: int) -> bytes:
    line = f"/* kbuild source {i} */ #include <linux/kernel.h>\n".encode()
    return (line * (size // len(line) + 1))[:size]


def _setup(task, args: argparse.Namespace, run_id: str) -> list[int]:
    """Create and write the shared files; the node of every master, file after file."""
    size, masters = _pages(task, args) * task.page_size, []
    for i, name in enumerate(_names(run_id, args.files)):
        f = task.open(name, create=True, size=size)
        m = f.mmap(writable=True)
        m.write(0, _content(i, size))
        masters += m.where()
        f.fsync()  # clean: now it may be replicated
        m.munmap()
    return masters


class _Tree:
    """A task's view of the tree: files, mappings, its object file."""

    def __init__(self, task, args: argparse.Namespace, run_id: str, index: int):
        self.ps, self.pages = task.page_size, _pages(task, args)
        self.files = [task.open(n) for n in _names(run_id, args.files)]
        exec_files = max(0, min(args.exec_files, args.files))
        self.shared = list(range(exec_files, args.files))  # the files a shared write may hit
        self.maps = {i: f.mmap(writable=False, exec=i < exec_files) for i, f in enumerate(self.files)
                     if i < exec_files or (i - exec_files) % 2 == 0}
        reads = args.files * self.pages * args.iterations
        self.obj_pages = max(1, reads // args.write_every) if args.write_every > 0 else 1
        self.obj = task.open(_obj_name(run_id, index), create=True, size=self.obj_pages * self.ps)

    def read(self, f: int, p: int) -> None:
        if f in self.maps:
            self.maps[f].read(p * self.ps, self.ps)
        else:
            self.files[f].pread(p * self.ps, self.ps)


def _compile(task, args: argparse.Namespace, tree: _Tree, index: int) -> dict:
    rng = random.Random(f"kbuild:{args.seed}:{index}")
    pairs = [(f, p) for f in range(args.files) for p in range(tree.pages)]
    reads = writes = shared = 0
    obj_page = b"\x7fELF" + bytes(tree.ps - 4)
    with Phase(task) as phase:
        for _ in range(args.iterations):
            order = pairs[:]
            rng.shuffle(order)
            for f, p in order:
                tree.read(f, p)
                reads += 1
                if args.write_every > 0 and reads % args.write_every == 0:
                    tree.obj.pwrite((writes % tree.obj_pages) * tree.ps, obj_page)
                    writes += 1
                if args.shared_write_every > 0 and reads % args.shared_write_every == 0 and tree.shared:
                    target = tree.files[tree.shared[(shared + index) % len(tree.shared)]]
                    page = (shared * 7 + index) % tree.pages
                    target.pwrite(page * tree.ps, bytes([shared % 256]) * SHARED_WRITE_BYTES)
                    target.fsync()
                    shared += 1
    return {"virtual_ns": phase.virtual_ns, "wall_s": phase.wall_s, "ops": reads + writes + shared,
            "bytes": (reads + writes) * tree.ps + shared * SHARED_WRITE_BYTES, "reads": reads, "writes": writes,
            "shared_writes": shared}


def _cleanup(task, args: argparse.Namespace, run_id: str, tasks: int) -> None:
    """Drop the run's pages from the page cache (the names stay in the store, empty)."""
    for name in _names(run_id, args.files) + [_obj_name(run_id, i) for i in range(tasks)]:
        task.open(name).truncate(0)


def _team_options(args: argparse.Namespace) -> list[str]:
    return ["--size", str(args.size), "--iterations", str(args.iterations), "--seed", str(args.seed),
            "--files", str(args.files), "--exec-files", str(args.exec_files), "--write-every", str(args.write_every),
            "--shared-write-every", str(args.shared_write_every)]


def lead(task, args: argparse.Namespace) -> dict:
    name, run_id = racer.cluster_name(args), str(os.getpid())
    cpus = racer.worker_cpus(name, task.cpu, args.tasks_per_node, args.nodes, leader_counts=True)
    masters = _setup(task, args, run_id)
    with racer.Team("kbuild", name) as team:
        for i, cpu in enumerate(cpus, 1):
            team.spawn(i, cpu, _team_options(args), run_id)
        tree = _Tree(task, args, run_id, 0)
        team.wait_ready()
        before = racer.counters(name)
        team.go()
        mine = _compile(task, args, tree, 0)
        lines = team.results()
        delta = racer.counter_delta(before, racer.counters(name))
    for m in tree.maps.values():
        m.munmap()
    if not args.keep_files:
        _cleanup(task, args, run_id, len(cpus) + 1)
    tasks = [{**mine, "node": task.node, "cpu": task.cpu}] + lines
    remote_master = sum(args.iterations * sum(1 for m in masters if m != t["node"]) for t in tasks)
    return {"virtual_ns": max(t["virtual_ns"] for t in tasks), "wall_s": mine["wall_s"],
            "ops": sum(t["ops"] for t in tasks), "bytes": sum(t["bytes"] for t in tasks),
            "tasks": len(tasks), "files": args.files, "file_pages": tree.pages,
            "reads": sum(t["reads"] for t in tasks), "writes": sum(t["writes"] for t in tasks),
            "shared_writes": sum(t["shared_writes"] for t in tasks), "remote_master_reads": remote_master,
            "remote_reads": remote_master - delta["repl_hits"], "repl_hits": delta["repl_hits"],
            "repl_fetch_bytes": delta["repl_fetch_bytes"], "pgreplicated": delta["pgreplicated"],
            "pgreplicazap": delta["pgreplicazap"], "zap_ratio": racer.zap_ratio(delta), "counters": delta,
            "task_virtual_ns": {f"{t['node']}:{t['cpu']}:{k}": t["virtual_ns"] for k, t in enumerate(tasks)},
            "masters_by_node": {str(n): masters.count(n) for n in sorted(set(masters))}}


def run(task, args: argparse.Namespace) -> dict:
    if args.team_index is None:
        return lead(task, args)
    tree = _Tree(task, args, args.run_id, args.team_index)
    racer.StartLine(args).ready_then_wait()
    return _compile(task, args, tree, args.team_index)


if __name__ == "__main__":
    raise SystemExit(main("kbuild"))
