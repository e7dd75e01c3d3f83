"""migratepages(8): numa-emu migratepages PID FROM-NODES TO-NODES

Moves the pages of task PID that are on FROM-NODES to TO-NODES with migrate_pages(2) semantics
(docs/linux-semantics.md#migrate_pages, #migratepages): the i-th node of FROM-NODES goes to the i-th of
TO-NODES, a destination is
vacated before it is filled, and the task keeps its policy. Node strings are libnuma's (lists,
ranges, all, !, +), checked against the machine's nodes. Arguments, usage text and errors are
migratepages': exit 1 on a usage error, on invalid nodes, and with "migrate_pages: <error>" when
the migration fails (no such task, nodes outside the task's cpuset); exit 0 otherwise, also when
some pages could not be moved. The cluster: $NUMA_EMU_CLUSTER, else the only cluster up.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys

from numa_emu.cli.numactl import raw_arguments

EXIT_FAILURE = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    raw_arguments(p)


def run(args: argparse.Namespace) -> int:
    from numa_emu.cli.numastat import frontend_cluster, machine
    from numa_emu.frontends import FrontendExit
    from numa_emu.frontends.migratepages_args import parse_migratepages_args
    from numa_emu.protocol.errors import NumaEmuError
    from numa_emu.protocol.messages.migration import TaskMigratePages
    from numa_emu.protocol.timing import MIGRATE_CALL_TIMEOUT_S

    try:
        parse_migratepages_args(args.argv)  # usage errors need no cluster
        info = frontend_cluster()
        nodes = frozenset(n["id"] for n in machine(info).nodes)
        request = parse_migratepages_args(args.argv, allowed=nodes, configured=len(nodes))
    except FrontendExit as exc:
        exc.write(sys.stdout, sys.stderr)
        return exc.exit_code
    try:
        with info.client(timeout_s=MIGRATE_CALL_TIMEOUT_S) as client:
            client.call(TaskMigratePages(pid=request.pid, old_nodes=sorted(request.from_nodes),
                                         new_nodes=sorted(request.to_nodes)))
    except NumaEmuError as exc:  # migratepages.c: perror("migrate_pages"), exit 1
        number = getattr(errno, exc.code.value, None)
        print(f"migrate_pages: {os.strerror(number) if number is not None else exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
