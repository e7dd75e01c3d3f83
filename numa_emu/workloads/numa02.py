"""numa02: autonuma-benchmark's numa02, one task per node (--tasks-per-node), each hammering
a private buffer of --size bytes whose pages first touch put on the wrong node: the next node
with CPUs after the task's own (as in the benchmark, where the main thread touches every
thread's memory before the threads spread). With automatic NUMA balancing on
(`numa-emu sysctl kernel.numa_balancing=1`) the pages move to their task's node and locality
rises to 1; off, they stay where first touch put them (locality 0).

Set-up (not measured): each task maps its buffer, writes it under `preferred` the wrong node,
then sets its policy back to default (balancing moves only pages under the default policy, as
Linux's MPOL_F_MOF). Measured phase: every task (the leader is one of its node's) starts
together (numa_emu/workloads/racer.py) and makes --iterations rounds; a round writes every page
of its buffer once, then asks where its pages are (numa_emu/workloads/autonuma.py).

Result fields besides the common ones: tasks, pages (per task), locality (the last round's
share of local accesses, over every task), locality_first, locality_series and virtual_series
(per round: the share over every task, the slowest task's virtual time since the start),
converged_round (the first round from which locality stays >= 0.9, None if never), verified
(every task read back the bytes of its last round),
task_virtual_ns, counters (the balancing counters of the cluster over the measured phase).
"""
from __future__ import annotations

import argparse
import os

from numa_emu.workloads import autonuma, racer
from numa_emu.workloads.runner import Phase, main

DEFAULTS = {"size": "512KiB", "iterations": 100}
TASKS_PER_NODE = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    racer.add_team_arguments(p, "tasks")
    p.set_defaults(tasks_per_node=TASKS_PER_NODE)


def _wrong_node(task) -> int:
    nodes = sorted(n["id"] for n in task.topology()["nodes"] if n["cpus"])
    return nodes[(nodes.index(task.node) + 1) % len(nodes)]


def _prepare(task, args: argparse.Namespace):
    region = task.mmap(args.size)
    task.set_mempolicy("preferred", [_wrong_node(task)])
    region.touch(write=True)
    task.set_mempolicy("default")
    return region


def _work(task, region, args: argparse.Namespace) -> dict:
    with Phase(task) as phase:
        samples = autonuma.hammer(task, region, args.iterations)
    pages = len(region.where())
    return {"virtual_ns": phase.virtual_ns, "wall_s": phase.wall_s, "ops": pages * args.iterations,
            "bytes": pages * task.page_size * args.iterations, "pages": pages, **samples}


def lead(task, args: argparse.Namespace, name: str) -> dict:
    cluster, run_id = racer.cluster_name(args), str(os.getpid())
    cpus = racer.worker_cpus(cluster, task.cpu, args.tasks_per_node, args.nodes, leader_counts=True)
    with racer.Team(name, cluster) as team:
        return autonuma.run_team(team, task, cpus, args, run_id, lambda: _prepare(task, args),
                                 lambda r: _work(task, r, args))


def run_as(task, args: argparse.Namespace, name: str) -> dict:
    if args.team_index is None:
        return lead(task, args, name)
    region = _prepare(task, args)
    racer.StartLine(args).ready_then_wait()
    return _work(task, region, args)


def run(task, args: argparse.Namespace) -> dict:
    return run_as(task, args, "numa02")


if __name__ == "__main__":
    raise SystemExit(main("numa02"))
