"""Act on one node of a running cluster.

  node restart N     start dead node N again: a fresh node with empty memory, which every
                     live node learns is up (EBUSY if N is alive, ENODEV if there is no node N)

Its memory is not brought back: the pages it held were lost with it (page-cache pages are read
again from the store).
"""
from __future__ import annotations

import argparse

from numa_emu.cli.common import add_name_option, running_cluster
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.timing import NODE_READY_TIMEOUT_S


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    r = sub.add_parser("restart", help="start a dead node again, empty")
    r.add_argument("node", type=int, metavar="N")
    add_name_option(r)


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    with info.client(timeout_s=NODE_READY_TIMEOUT_S) as client:
        reply = client.call(lc.NodeRestart(node_id=args.node))
    print(f"node {reply.node_id} restarted (pid {reply.pid})")
    return 0
