"""Show or change the latency model in force, while the cluster runs.

  latency show [--json]                      the matrix (ns), bandwidths, mode, dilation, jitter
  latency set SRC DST NS [--symmetric]       one pair's latency
  latency scale FACTOR [--remote-only]       every (remote) latency = the topology's x FACTOR
  latency jitter DIST SPREAD [SRC DST]       uniform|normal|exponential, SPREAD a fraction (0 removes)
  latency jitter none [SRC DST]              no jitter (same as SPREAD 0)
  latency inject virtual|real [--dilation X] switch the injection mode
  latency reset                              back to the topology's latencies, no jitter

A change applies to the next message on every node, is logged by the coordinator, and shows in
`latency show`. Invalid node ids or values change nothing.

`scale` replaces, it does not compose: every latency it touches (every pair, or with
--remote-only every remote pair) becomes the topology's latency x FACTOR, so an earlier `latency
set` of such a pair is undone, `scale 2` twice is still x2, and `scale 1` restores the topology.
With --remote-only the local latencies keep what they have (an earlier `set` of one stays).
"""
from __future__ import annotations

import argparse
import json

from numa_emu.cli.common import add_json_option, add_name_option, running_cluster
from numa_emu.protocol import limits
from numa_emu.protocol.messages import latency as lm


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
    sc = sub.add_parser("scale", help="latency = the topology's x FACTOR (replaces, does not compose)",
                        description="Every latency (or every remote one) becomes the topology's latency x FACTOR. "
                                    "It replaces, it does not compose: an earlier `latency set` of a pair it "
                                    "touches is undone, `scale 2` twice is still x2, `scale 1` restores the "
                                    "topology. With --remote-only the local latencies keep what they have.")
    sc.add_argument("factor", type=limits.LATENCY_SCALE.argtype())
    sc.add_argument("--remote-only", action="store_true", help="scale the remote pairs only")
    j = sub.add_parser("jitter", help="jitter of every link, or of SRC -> DST; `none` removes it",
                       usage="%(prog)s {uniform,normal,exponential} SPREAD [SRC DST] | none [SRC DST]")
    j.add_argument("distribution", choices=JITTER_CHOICES)
    j.add_argument("rest", nargs="*", metavar="SPREAD [SRC DST]", action=_JitterArguments,
                   help="relative spread, e.g. 0.1 (0 removes the jitter); `none` takes no spread")
    i = sub.add_parser("inject", help="virtual or real injection")
    i.add_argument("mode", choices=("virtual", "real"))
    i.add_argument("--dilation", type=limits.DILATION.argtype())
    sub.add_parser("reset", help="back to the topology's latencies")
    for q in sub.choices.values():
        if q is not show:
            add_json_option(q)


NO_JITTER = "none"
JITTER_CHOICES = ("uniform", "normal", "exponential", NO_JITTER)


def jitter_args(distribution: str, rest: list[str]) -> dict:
    """The jitter change's arguments from `DIST SPREAD [SRC DST]` or `none [SRC DST]` (spread 0,
    which removes the jitter); ArgumentTypeError for anything else."""
    spread_given = distribution != NO_JITTER
    if len(rest) not in ((1, 3) if spread_given else (0, 2)):
        shape = "SPREAD [SRC DST]" if spread_given else "[SRC DST] only"
        raise argparse.ArgumentTypeError(f"{distribution} takes {shape}, not {' '.join(rest) or 'nothing'}")
    try:
        spread = limits.JITTER_SPREAD.argtype()(rest[0]) if spread_given else 0.0
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"argument spread: {exc}") from None
    nodes = rest[1:] if spread_given else rest
    out = {"distribution": distribution if spread_given else "uniform", "spread": spread}
    for name, text in zip(("src", "dst"), nodes):
        try:
            out[name] = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"argument {name}: {text!r} is not a node id") from None
    return out


class _JitterArguments(argparse.Action):
    """Checks what follows the distribution (jitter_args) as argparse checks an argument: a usage
    error from the jitter parser, exit 2."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            namespace.jitter = jitter_args(namespace.distribution, list(values))
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))


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
    elif args.op == "jitter":
        request = lm.LatencyChange(op="jitter", args=args.jitter)  # checked by _JitterArguments
    else:
        fields = {"set": ("src", "dst", "ns", "symmetric"), "scale": ("factor", "remote_only"),
                  "inject": ("mode", "dilation"), "reset": ()}[args.op]
        request = lm.LatencyChange(op=args.op, args={f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    with info.client() as client:
        table = client.call(request).table
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    return 0
