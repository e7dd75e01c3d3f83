"""numa01: autonuma-benchmark's numa01, two tasks on two nodes sharing one buffer (a shm object
of --size bytes) and each hammering all of it: no placement suits both, and with automatic NUMA
balancing on the pages move toward whichever task faulted twice in a row, back and forth (the
ping-pong shows as numa_pages_migrated well above the buffer's page count). Off, the pages stay
where the leader's first touch put them.

Set-up (not measured): the leader writes the buffer (its pages land on the leader's node); the
worker runs on the first CPU of the next node with CPUs (--nodes picks it instead) and maps the
same object. Measured phase: both start together (numa_emu/workloads/racer.py) and make
--iterations rounds; a round writes every page once, then asks where the pages are.

Result fields besides the common ones: tasks, pages, locality (the last round's share of local
accesses over both tasks), locality_series, virtual_series, task_virtual_ns, counters (the
balancing counters over the measured phase), moves_per_page (numa_pages_migrated / pages).
"""
from __future__ import annotations

import argparse
import os

from numa_emu.workloads import autonuma, racer
from numa_emu.workloads.runner import Phase, main

DEFAULTS = {"size": "256KiB", "iterations": 100}


def add_arguments(p: argparse.ArgumentParser) -> None:
    racer.add_team_arguments(p, "the second task")


def _shm_name(run_id: str) -> str:
    return f"numa01-{run_id}"


def _work(task, region, args: argparse.Namespace) -> dict:
    with Phase(task) as phase:
        samples = autonuma.hammer(task, region, args.iterations, verify=False)
    pages = len(region.where())
    return {"virtual_ns": phase.virtual_ns, "wall_s": phase.wall_s, "ops": pages * args.iterations,
            "bytes": pages * task.page_size * args.iterations, "pages": pages, **samples}


def _other_node(task, nodes: str | None) -> str:
    if nodes is not None:
        return nodes
    with_cpus = sorted(n["id"] for n in task.topology()["nodes"] if n["cpus"])
    return str(with_cpus[(with_cpus.index(task.node) + 1) % len(with_cpus)])


def lead(task, args: argparse.Namespace) -> dict:
    cluster, run_id = racer.cluster_name(args), str(os.getpid())
    cpus = racer.worker_cpus(cluster, task.cpu, 1, _other_node(task, args.nodes), leader_counts=False)[:1]
    region = task.mmap(args.size, shared=True, name=_shm_name(run_id))
    region.touch(write=True)
    with racer.Team("numa01", cluster) as team:
        summary = autonuma.run_team(team, task, cpus, args, run_id, lambda: region,
                                    lambda r: _work(task, r, args))
    return {**summary, "moves_per_page": round(summary["numa_pages_migrated"] / summary["pages"], 3)}


def run(task, args: argparse.Namespace) -> dict:
    if args.team_index is None:
        return lead(task, args)
    region = task.mmap(args.size, shared=True, name=_shm_name(args.run_id))
    racer.StartLine(args).ready_then_wait()
    return _work(task, region, args)


if __name__ == "__main__":
    raise SystemExit(main("numa01"))
