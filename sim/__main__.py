"""numa-emu sim: the memory protocol in one process under a seeded network (docs/simulator.md).

  numa-emu sim list
  numa-emu sim run SCENARIO --seed N [--set KEY=VALUE ...] [--drop P] [--dup P] [--crash] [--partition] [--stop]
  numa-emu sim search SCENARIO --runs N [--from SEED] [--set KEY=VALUE ...] [--drop P] [--dup P] [--crash]
                      [--partition] [--stop]

`run` prints the message trace of one seed and its verdict, the same bytes every time; exit 0
when every invariant held, 1 on a violation. `search` runs seeds FROM, FROM+1, ... and stops at the
first violation: it prints that run's trace, its seed and the command that replays it, exit 1;
exit 0 when none of the N seeds broke an invariant. `--set` sets a tunable of the simulated
cluster as `numa-emu sysctl` does (vm.unsafe_unreplicate=1: the 2007 ordering). `--drop P` and
`--dup P` lose or duplicate each message between two nodes with probability P (the reactor's
retries and deduplication then apply, as they do on real sockets); `--crash` kills one node, chosen
by the seed, at a delivery the seed chooses; `--partition` cuts the nodes into two sides, and
`--stop` pauses one node, at a moment and for a span the seed chooses (calls then time out as on
a real cluster). Bad input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from numa_emu.protocol.errors import NumaEmuError
from numa_emu.sim.run import Result, run
from numa_emu.sim.scenarios import SCENARIOS

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2
HASH_SEED = "0"  # sets of strings iterate in a hash order: fixed, so that a seed replays byte for byte


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        print(f"numa-emu sim: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _seed(text: str) -> int:
    if not text.isdigit() or len(text) > 19:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to 10**19, got {text!r}")
    return int(text)


def _runs(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 10**9:
        raise argparse.ArgumentTypeError(f"--runs takes a whole number from 1 to 10**9, got {text!r}")
    return int(text)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"a probability from 0 to below 1, got {text!r}")
    return value


def _scenario(text: str) -> str:
    if text not in SCENARIOS:
        raise argparse.ArgumentTypeError(f"no scenario {text!r} (see: numa-emu sim list)")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="numa-emu sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("list", help="the shipped scenarios")
    for name, what in (("run", "one seed: its trace and verdict"), ("search", "seeds until one breaks an invariant")):
        p = sub.add_parser(name, help=what)
        p.add_argument("scenario", type=_scenario)
        if name == "run":
            p.add_argument("--seed", type=_seed, required=True)
        else:
            p.add_argument("--runs", type=_runs, required=True)
            p.add_argument("--from", dest="first", type=_seed, default=0, help="the first seed (default 0)")
        p.add_argument("--set", dest="sysctl", metavar="KEY=VALUE", action="append", default=[],
                       help="a tunable of the simulated cluster, as numa-emu sysctl sets it")
        p.add_argument("--drop", type=_probability, default=0.0, metavar="P",
                       help="lose each message between two nodes with probability P (it is sent again)")
        p.add_argument("--dup", type=_probability, default=0.0, metavar="P",
                       help="deliver each message between two nodes twice with probability P")
        p.add_argument("--crash", action="store_true", help="one node dies during the run")
        p.add_argument("--partition", action="store_true",
                       help="the nodes are cut into two sides for a while (numa-emu fault partition)")
        p.add_argument("--stop", action="store_true", help="one node is paused for a while (numa-emu fault stop)")
        p.add_argument("--direct", action="store_true",
                       help="the tasks read and write their home node's pages through the direct path where it allows")
    return parser


def replay_command(result: Result, args: argparse.Namespace) -> str:
    extra = "".join(f" --set {s}" for s in args.sysctl)
    extra += (f" --drop {args.drop:g}" if args.drop else "") + (f" --dup {args.dup:g}" if args.dup else "")
    extra += " --crash" if args.crash else ""
    extra += (" --partition" if args.partition else "") + (" --stop" if args.stop else "")
    extra += " --direct" if args.direct else ""
    return f"numa-emu sim run {result.scenario} --seed {result.seed}{extra}"


def _print_run(result: Result) -> None:
    for line in result.trace:
        print(line)
    print(result.verdict())


def main(argv: list[str]) -> int:
    logging.getLogger().addHandler(logging.NullHandler())  # the nodes' log lines: the trace says it all
    args = build_parser().parse_args(argv)
    if args.command is None:
        print("numa-emu sim: error: a command is needed: list, run or search", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "list":
        for s in SCENARIOS.values():
            print(f"{s.name:18} {s.nodes} nodes, {len(s.tasks)} tasks: {s.about}")
        return EXIT_OK
    scenario = SCENARIOS[args.scenario]
    faults = {"drop": args.drop, "dup": args.dup, "crash": args.crash, "partition": args.partition, "stop": args.stop,
              "direct": args.direct}
    try:
        if args.command == "run":
            result = run(scenario, args.seed, args.sysctl, **faults)
            _print_run(result)
            return EXIT_OK if result.ok else EXIT_VIOLATION
        started, struck = time.monotonic(), 0
        for seed in range(args.first, args.first + args.runs):
            result = run(scenario, seed, args.sysctl, trace=False, **faults)
            struck += bool(result.faults)
            if not result.ok:  # again with its trace: the same run
                _print_run(run(scenario, seed, args.sysctl, **faults))
                print(f"seed {seed} breaks an invariant after {seed - args.first + 1} run(s); replay it with:")
                print(f"  {replay_command(result, args)}")
                return EXIT_VIOLATION
    except NumaEmuError as exc:  # a bad --set
        print(f"numa-emu sim: error: {exc.message.replace('--sysctl', '--set')}", file=sys.stderr)
        return EXIT_USAGE
    elapsed = time.monotonic() - started
    print(f"{scenario.name}: seeds {args.first}..{args.first + args.runs - 1}, no violation "
          f"({args.runs} runs in {elapsed:.1f} s, {args.runs / max(elapsed, 1e-9) * 60:.0f} runs/minute"
          + (f"; a partition or stop in {struck} of them)" if args.partition or args.stop else ")"))
    return EXIT_OK


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, [sys.executable, "-m", "numa_emu.sim", *sys.argv[1:]])
    sys.exit(main(sys.argv[1:]))
