"""Inject faults on purpose into the messages between nodes, or into node processes.

  fault drop P        [--link SRC DST | --node N] [--seed S]   lose each message with probability P
  fault dup P         [--link SRC DST | --node N] [--seed S]   send it twice
  fault delay P --ms MS  [...]                                 hold it MS, in order
  fault reorder P --ms MS  [...]                               hold it MS while later ones overtake it
  fault partition A B [--seed S]     cut node sets A and B (e.g. 0,1 and 2-3) from each other, both ways
  fault kill N                       SIGKILL node N's process (the node is then dead)
  fault stop N --for SECONDS         SIGSTOP node N, SIGCONT after SECONDS
  fault show [--json]                the faults in force
  fault clear                        remove every rule and partition

Without --link or --node a rule applies to every link; P = 0 removes it. Decisions are a function
of the seed, the link and the message's number on it: the same seed repeats a run. Requests
between nodes are retried and deduplicated, so operations still complete (docs/protocol.md#faults).
"""
from __future__ import annotations

import argparse
import json

from numa_emu.cli.common import add_json_option, add_name_option, running_cluster
from numa_emu.protocol import limits
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.faults import DEFAULT_DELAY_MS, KINDS, format_table
from numa_emu.protocol.messages import faults as fm
from numa_emu.protocol.nodemask import parse_nodelist


def _nodes(text: str) -> list[int]:
    try:
        return sorted(parse_nodelist(text, what="node set"))
    except NumaEmuError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    sub.add_parser("show", help="the faults in force")
    for kind in KINDS:
        k = sub.add_parser(kind, help=f"{kind} messages between nodes with a probability")
        k.add_argument("p", type=limits.FAULT_PROBABILITY.argtype(), help="probability per message, 0..1 (0 removes)")
        if kind in ("delay", "reorder"):
            k.add_argument("--ms", type=limits.FAULT_DELAY_MS.argtype(), default=DEFAULT_DELAY_MS,
                           help=f"how long a message is held (default {DEFAULT_DELAY_MS:g})")
        scope = k.add_mutually_exclusive_group()
        scope.add_argument("--link", nargs=2, type=limits.NODE_ID.argtype(), metavar=("SRC", "DST"), help="one link, SRC -> DST")
        scope.add_argument("--node", type=limits.NODE_ID.argtype(), help="every link of node N, both ways")
    part = sub.add_parser("partition", help="cut two sets of nodes from each other")
    part.add_argument("a", type=_nodes, help="node set, e.g. 0,1")
    part.add_argument("b", type=_nodes, help="node set, e.g. 2-3")
    for q in list(sub.choices.values())[1:]:
        q.add_argument("--seed", type=limits.FAULT_SEED.argtype(), help="seed of the decisions (kept until changed)")
    kill = sub.add_parser("kill", help="SIGKILL a node's process")
    kill.add_argument("node", type=limits.NODE_ID.argtype())
    stop = sub.add_parser("stop", help="SIGSTOP a node's process, SIGCONT later")
    stop.add_argument("node", type=limits.NODE_ID.argtype())
    stop.add_argument("--for", dest="seconds", type=limits.FAULT_STOP_S.argtype(), required=True, metavar="SECONDS")
    sub.add_parser("clear", help="remove every rule and partition")
    for q in sub.choices.values():
        add_json_option(q)


def _args(args: argparse.Namespace) -> dict:
    if args.op in KINDS:
        out = {"p": args.p, "seed": args.seed, "node": args.node, "ms": getattr(args, "ms", None)}
        if args.link:
            out["src"], out["dst"] = args.link
        return {k: v for k, v in out.items() if v is not None}
    if args.op == "partition":
        return {k: v for k, v in {"a": args.a, "b": args.b, "seed": args.seed}.items() if v is not None}
    if args.op == "kill":
        return {"node": args.node}
    if args.op == "stop":
        return {"node": args.node, "seconds": args.seconds}
    return {}


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    request: fm.FaultShow | fm.FaultChange
    request = fm.FaultShow() if args.op == "show" else fm.FaultChange(op=args.op, args=_args(args))
    with info.client() as client:
        table = client.call(request).table
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    return 0
