"""numa02_SMT: autonuma-benchmark's numa02 on half the hardware threads, which on an SMT machine
puts two threads on each core's node: here two tasks per node (--tasks-per-node 2), each with a
private buffer that first touch put on the wrong node (numa_emu/workloads/numa02.py has the rest).
"""
from __future__ import annotations

import argparse

from numa_emu.workloads import numa02, racer
from numa_emu.workloads.runner import main

DEFAULTS = numa02.DEFAULTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    racer.add_team_arguments(p, "tasks")
    p.set_defaults(tasks_per_node=2)


def run(task, args: argparse.Namespace) -> dict:
    return numa02.run_as(task, args, "numa02_SMT")


if __name__ == "__main__":
    raise SystemExit(main("numa02_SMT"))
