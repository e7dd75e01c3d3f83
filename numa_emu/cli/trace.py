"""Memory-management tracing: switch trace points, record them, read the record.

  trace on [--events LIST] [--tasks PIDS]     switch trace points on (events: see `trace events`)
  trace off
  trace events                                 the event kinds and what each marks
  trace record -o FILE.jsonl [--events LIST] [--tasks PIDS] [--duration S | -- COMMAND ...]
                                               collect every node's events, in timestamp order
  trace show FILE [--page OBJ:IDX] [--task PID] [--event KIND]   a readable, time-ordered story
  trace stats FILE                             counts per event and node; the thrashing pages

Each event is one JSON line with "ev", "wall_ns", "node" and its fields (task, vns: the task's
virtual clock, addr or obj/idx, frame, supplier, to, ...).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from numa_emu.protocol import limits
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.tracing import EVENTS

from numa_emu.cli.common import add_name_option, running_cluster
from numa_emu.cli.main import EXIT_USAGE, fail


def _list(text: str | None) -> list[str] | None:
    return [t for t in text.split(",") if t] if text else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    on = sub.add_parser("on", help="switch trace points on")
    sub.add_parser("off", help="switch trace points off")
    sub.add_parser("events", help="the event kinds")
    rec = sub.add_parser("record", help="record events into a JSON-lines file")
    rec.add_argument("-o", "--output", required=True, type=Path)
    rec.add_argument("--duration", type=limits.DURATION_S.argtype(), metavar="S")
    rec.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...: record while it runs")
    for q in (on, rec):
        q.add_argument("--events", help="comma-separated event kinds (default: all)")
        q.add_argument("--tasks", help="comma-separated pids (default: all)")
    show = sub.add_parser("show", help="a readable story of a recorded trace")
    show.add_argument("file", type=Path)
    show.add_argument("--page", metavar="OBJ:IDX", help="one shared page (or an address of a task: 0x7f...)")
    show.add_argument("--task", type=int, metavar="PID")
    show.add_argument("--event", metavar="KIND")
    stats = sub.add_parser("stats", help="counts per event and node, and the thrashing pages")
    stats.add_argument("file", type=Path)
    stats.add_argument("--top", type=int, default=10, help="how many thrashing pages to list")
    stats.add_argument("--json", action="store_true", help="print JSON for scripts")


def _tasks(text: str | None) -> list[int] | None:
    try:
        return [int(t) for t in _list(text)] if text else None
    except ValueError:
        raise SystemExit(fail(f"--tasks takes comma-separated pids, not {text!r}") or EXIT_USAGE) from None


def run(args: argparse.Namespace) -> int:
    if args.op == "events":
        for name, what in EVENTS.items():
            print(f"{name:<12} {what}")
        return 0
    if args.op in ("show", "stats"):
        from numa_emu import traceview

        if not args.file.is_file():
            fail(f"no trace file {args.file}")
            return 3
        if args.op == "show":
            return traceview.show(args.file, page=args.page, task=args.task, event=args.event)
        return traceview.stats(args.file, top=args.top, as_json=args.json)
    if args.op == "record" and (problem := _record_problem(args)):
        fail(problem)
        return EXIT_USAGE
    info = running_cluster(args)
    if args.op in ("on", "off"):
        from numa_emu.trace_recorder import Recorder

        recorder = Recorder(info, sys.stdout)
        try:
            if args.op == "on":
                recorder.configure(True, _list(args.events), _tasks(args.tasks))
            else:
                recorder.configure(False)
        finally:
            recorder.close()
        print(f"tracing {args.op}")
        return 0
    return _record(args, info)


def _command(args: argparse.Namespace) -> list[str]:
    return args.command[1:] if args.command[:1] == ["--"] else args.command


def _record_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with a `trace record` command line, checked before the cluster is asked
    anything: nothing is switched on for a command or a file that cannot be."""
    command = _command(args)
    if command and args.duration is not None:
        return "give either --duration or -- COMMAND, not both"
    if not command and args.duration is None:
        return "trace record needs --duration S or -- COMMAND ..."
    if command and shutil.which(command[0]) is None:
        return f"trace record: cannot run {command[0]!r}: no such command (or not executable)"
    if not args.output.parent.is_dir():
        return f"trace record -o {args.output}: folder {args.output.parent} does not exist"
    return None


def _record(args: argparse.Namespace, info) -> int:
    from numa_emu.trace_recorder import record_file

    command = _command(args)
    procs: list[subprocess.Popen] = []
    end = [0.0]

    def started() -> None:  # called once tracing is on everywhere
        if command:
            try:
                procs.append(subprocess.Popen(command))
            except OSError as exc:
                raise NumaEmuError(ErrorCode.ENOENT, f"trace record: cannot run {command[0]!r}: {exc.strerror}") from None
        else:
            end[0] = time.monotonic() + args.duration

    def until() -> bool:
        return procs[0].poll() is not None if command else time.monotonic() >= end[0]

    status = 0
    try:
        written, dropped = record_file(info, args.output, until, _list(args.events), _tasks(args.tasks), started)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            status = proc.wait()
    print(f"recorded {written} events to {args.output}" + (f" ({dropped} dropped)" if dropped else ""), file=sys.stderr)
    return status
