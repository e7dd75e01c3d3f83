"""Run experiment files: a parameter grid over real clusters, with CSV, JSON, plots and a table.

  experiment run FILE|NAME [--out DIR] [--quick]   run every configuration of the grid
  experiment check FILE|NAME [--quick] [--json]    validate, and list the configurations
  experiment list [--json]                         the shipped experiments
  experiment replot DIR                            redraw DIR's plots from its results.json

FILE is a TOML experiment file; NAME a shipped one (`experiment list`), e.g. latency-sensitivity.
The file names the topology, the injection mode (and dilation), the grid (latency_scale x
placement x workload, and topology, inject, dilation), each placement's policy (numactl options or
mode and nodes) and CPU, each workload's built-in command and options (or the user's own command,
`{PARAMETER}` placeholders filled from the grid), the repetitions and the main metric; its [quick]
table overrides grid entries for a smoke test (--quick). The format: docs/experiment-format.md.

`run` starts one cluster per (topology, inject, dilation) under $NUMA_EMU_HOME with a unique
name, scales the latency through the coordinator for each configuration, runs each workload as a
task process and records its JSON line, wall time and the numastat and vmstat deltas of every
node. It shows a progress bar (with the time left), then a table; it writes results.csv, results.json and PNG plots
of the metric against each swept parameter to --out (default results/<experiment>-<timestamp>/).
Ctrl-C stops the running workload and the cluster, writes what was measured and exits 130.
`replot` draws the plots of a results folder again from its results.json, without a cluster.

Exit codes: 0 ok, 2 usage, 3 an invalid file (one line naming the file and key) or a failed run.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 3, 130


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    r = sub.add_parser("run", help="run every configuration of an experiment file")
    r.add_argument("file", metavar="FILE|NAME")
    r.add_argument("--out", type=Path, metavar="DIR", help="results folder (default results/<experiment>-<timestamp>)")
    r.add_argument("--quick", action="store_true", help="apply the file's [quick] table (smoke test, demo)")
    c = sub.add_parser("check", help="validate an experiment file and list its configurations")
    c.add_argument("file", metavar="FILE|NAME")
    c.add_argument("--quick", action="store_true", help="apply the file's [quick] table")
    c.add_argument("--json", action="store_true", help="print the resolved spec and configurations as JSON")
    ls = sub.add_parser("list", help="the shipped experiment files")
    ls.add_argument("--json", action="store_true", help='print [{"name", "description", "path"}, ...] as JSON')
    rp = sub.add_parser("replot", help="redraw the plots of a results folder from its results.json")
    rp.add_argument("dir", type=Path, metavar="DIR", help="a folder `experiment run` wrote (--out)")


def _default_out(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path("results") / f"{name}-{stamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path("results") / f"{name}-{stamp}-{n}"
    return out


def _list(as_json: bool) -> int:
    from numa_emu.experiments.spec import load_spec, shipped

    listed = [{"name": name, "description": load_spec(path).description, "path": str(path)}
              for name, path in shipped().items()]
    if as_json:
        print(json.dumps(listed, indent=2))
        return EXIT_OK
    for item in listed:
        print(f"{item['name']:<24} {item['description']}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from numa_emu.experiments.spec import load_spec

    spec = load_spec(args.file, quick=args.quick)
    configs = spec.configurations()
    if args.json:
        print(json.dumps({"spec": spec.to_dict(), "configurations": [c.values for c in configs]}, indent=2))
        return EXIT_OK
    runs = len(configs) * spec.repetitions
    print(f"{spec.path}: experiment {spec.name}{' (quick)' if spec.quick else ''}: {len(configs)} configurations, "
          f"{runs} runs, metric {spec.metric}")
    for k, values in spec.grid.items():
        print(f"  {k:<14} {', '.join(str(v) for v in values)}")
    for w in spec.grid["workload"]:  # the user's commands, placeholders as written
        if spec.workloads[w].script:
            print(f"  command {w}: {shlex.join(spec.workloads[w].script)}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from numa_emu.experiments import output
    from numa_emu.experiments.runner import run_experiment
    from numa_emu.experiments.spec import load_spec

    spec = load_spec(args.file, quick=args.quick)
    out_dir = args.out or _default_out(spec.name)
    try:  # before anything starts: a folder that cannot be written fails fast
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NumaEmuError(ErrorCode.EACCES, f"cannot create the results folder {out_dir}: {exc.strerror}") from None
    err, console = Console(stderr=True), Console(width=None if sys.stdout.isatty() else 120)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        bar = progress.add_task(spec.name, total=len(spec.configurations()) * spec.repetitions)

        def on_run(done: int, total: int, text: str) -> None:
            progress.update(bar, completed=done, total=total, description=f"{spec.name}: {text}")

        outcome = run_experiment(spec, on_run=on_run)
    summary, pngs = output.write_all(outcome, out_dir)
    console.print(output.table(summary, spec, failed=len(outcome.failed)))
    print(f"results: {out_dir}/ (results.csv, results.json" + "".join(f", {p.name}" for p in pngs) + ")")
    if not output.can_plot():
        print(output.PLOTS_HINT.replace("DIR", str(out_dir)))
    if outcome.interrupted:
        print("numa-emu: error: interrupted: the clusters are stopped; partial results written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.failed:
        first = outcome.failed[0]
        print(f"numa-emu: error: {len(outcome.failed)} run(s) failed; first: run {first.run}: {first.status}",
              file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _replot(args: argparse.Namespace) -> int:
    from numa_emu.experiments.output import PLOTS_HINT, can_plot, replot

    pngs = replot(args.dir)
    if not can_plot():
        print(f"numa-emu: error: {PLOTS_HINT.split(' (')[0]}: pip install 'numa-emu[plots]'", file=sys.stderr)
        return EXIT_ERROR
    print(f"plots: {args.dir}/ (" + ", ".join(p.name for p in pngs) + ")")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.op == "list":
        return _list(args.json)
    if args.op == "replot":
        return _replot(args)
    if args.op == "check":
        return _check(args)
    return _run(args)
