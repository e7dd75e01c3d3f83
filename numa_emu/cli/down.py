"""Stop a cluster (or --all): when this returns, no process of that cluster is alive.

A stale cluster (its coordinator gone) is cleaned up with a message.
"""
from __future__ import annotations

import argparse

from numa_emu import cluster
from numa_emu.cli.common import add_name_option
from numa_emu.cli.main import EXIT_ERROR, EXIT_UNREACHABLE, fail, warn


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    p.add_argument("--all", action="store_true", help="stop every cluster under $NUMA_EMU_HOME")


def run(args: argparse.Namespace) -> int:
    if args.all:
        if args.name:
            fail("give either --name or --all")
            return 2
        todo = cluster.names()
    else:
        todo = [cluster.resolve_name(args.name, warn=warn)]
    status = 0
    for name in todo:
        stale = []
        info = cluster.find(name, warn=lambda m: (stale.append(m), warn(m)))
        if info is None:
            if not stale and not args.all:
                fail(f"cluster '{name}' is not up")
                status = EXIT_UNREACHABLE
            continue
        left = cluster.stop(info)
        if left:
            fail(f"cluster '{name}': processes {left} would not stop")
            status = EXIT_ERROR
        else:
            print(f"cluster {name} down")
    return status
