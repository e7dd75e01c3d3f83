"""Show or change the latency model in force, while the cluster runs.

  latency show [--json]                      the matrix (ns), bandwidths, mode, dilation, jitter
  latency set SRC DST NS [--symmetric]       one pair's latency
  latency scale FACTOR [--remote-only]       every (remote) latency = the topology's x FACTOR
  latency jitter DIST SPREAD [SRC DST]       uniform|normal|exponential, SPREAD a fraction (0 removes)
  latency inject virtual|real [--dilation X] switch the injection mode
  latency reset                              back to the topology's latencies, no jitter

A change applies to the next message on every node, is logged by the coordinator, and shows in
`latency show`. Invalid node ids or values change nothing.
"""
from __future__ import annotations

import argparse
import json

from numa_emu.cli.common import add_json_option, add_name_option, running_cluster
from protocol import limits
from protocol.messages import latency as lm


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    show = sub.add_parser("show", help="the latency model in force")
    add_json_option(show)
    s = sub.add_parser("set", help="set one pair's latency")
    s.add_argument("src", type=int)
    s.add_argument("dst", type=int)
    s.add_argument("ns", type=limits.LATENCY_NS.argtype())
    s.add_argument("--symmetric", action="store_true", help="also DST -> SRC")
    sc = sub.add_parser("scale", help="scale latencies relative to the topology")
    sc.add_argument("factor", type=limits.LATENCY_SCALE.argtype())
    sc.add_argument("--remote-only", action="store_true")
    j = sub.add_parser("jitter", help="jitter of every link, or of SRC -> DST")
    j.add_argument("distribution", choices=("uniform", "normal", "exponential"))
    j.add_argument("spread", type=limits.JITTER_SPREAD.argtype(), help="relative spread, e.g. 0.1; 0 removes the jitter")
    j.add_argument("src", type=int, nargs="?")
    j.add_argument("dst", type=int, nargs="?")
    i = sub.add_parser("inject", help="virtual or real injection")
    i.add_argument("mode", choices=("virtual", "real"))
    i.add_argument("--dilation", type=limits.DILATION.argtype())
    sub.add_parser("reset", help="back to the topology's latencies")
    for q in sub.choices.values():
        if q is not show:
            add_json_option(q)


def format_table(t: dict) -> str:
    n = len(t["latency_ns"])
    lines = [f"injection: {t['mode']}" + (f", dilation {t['dilation']:g}" if t["mode"] == "real" else "")
             + f"  (version {t['version']})", "latency (ns):", "from\\to " + "".join(f"{j:>9}" for j in range(n))]
    for i, row in enumerate(t["latency_ns"]):
        lines.append(f"{i:>7} " + "".join(f"{v:>9.1f}" for v in row))
    lines.append("bandwidth (MiB/s):")
    for i, row in enumerate(t["bandwidth_mib_s"]):
        lines.append(f"{i:>7} " + "".join(f"{v:>9.0f}" for v in row))
    jitter = ", ".join(f"{'every link' if k == '*' else k.replace(',', '->')} {d} {s:g}" for k, (d, s) in sorted(t["jitter"].items()))
    lines.append(f"jitter: {jitter or 'none'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    if args.op == "show":
        request: lm.LatencyShow | lm.LatencyChange = lm.LatencyShow()
    else:
        fields = {"set": ("src", "dst", "ns", "symmetric"), "scale": ("factor", "remote_only"),
                  "jitter": ("distribution", "spread", "src", "dst"), "inject": ("mode", "dilation"), "reset": ()}[args.op]
        request = lm.LatencyChange(op=args.op, args={f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    with info.client() as client:
        table = client.call(request).table
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    return 0
