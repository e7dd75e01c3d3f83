"""Act on one node of a running cluster.

  node restart N     start dead node N again: a fresh node with empty memory, which every
                     live node learns is up (EBUSY if N is alive, ENODEV if there is no node N)
  node offline N     take N out of service: no new allocation lands on it, its pages move to the
                     nearest allowed nodes, its tasks to other CPUs of their cpusets (EBUSY and
                     nothing moved when that cannot be done)
  node online N      N takes new allocations again (tasks and pages stay where they are)

Its memory is not brought back: the pages it held were lost with it (page-cache pages are read
again from the store).
"""
from __future__ import annotations

import argparse

from numa_emu.cli.common import add_name_option, running_cluster
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.timing import MIGRATE_CALL_TIMEOUT_S, NODE_READY_TIMEOUT_S


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    r = sub.add_parser("restart", help="start a dead node again, empty")
    r.add_argument("node", type=int, metavar="N")
    add_name_option(r)
    for op, what in (("offline", "take a node out of service, its pages and tasks moved elsewhere"),
                     ("online", "let an offline node take new allocations again")):
        o = sub.add_parser(op, help=what)
        o.add_argument("node", type=int, metavar="N")
        add_name_option(o)


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    if args.op == "restart":
        with info.client(timeout_s=NODE_READY_TIMEOUT_S) as client:
            reply = client.call(lc.NodeRestart(node_id=args.node))
        print(f"node {reply.node_id} restarted (pid {reply.pid})")
        return 0
    request = ns.NodeOffline if args.op == "offline" else ns.NodeOnline
    with info.client(timeout_s=2 * MIGRATE_CALL_TIMEOUT_S) as client:
        reply = client.call(request(node_id=args.node))
    if args.op == "offline":
        moved = ", ".join(f"task {t} cpu {a} -> {b}" for t, a, b in reply.tasks_moved or []) or "none"
        print(f"node {reply.node_id} offline: {reply.pages_moved} page(s) moved, {reply.replicas_dropped} "
              f"replica(s) dropped; tasks moved: {moved}")
    else:
        print(f"node {reply.node_id} online")
    return 0
