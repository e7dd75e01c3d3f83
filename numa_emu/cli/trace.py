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
import subprocess
import sys
import time
from pathlib import Path

from numa_emu.cli.common import add_name_option, running_cluster
from numa_emu.cli.main import EXIT_USAGE, fail
from protocol.tracing import EVENTS


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
    rec.add_argument("--duration", type=float, metavar="S")
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


def _record(args: argparse.Namespace, info) -> int:
    from numa_emu.trace_recorder import record_file

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command and args.duration is not None:
        fail("give either --duration or -- COMMAND, not both")
        return EXIT_USAGE
    if not command and args.duration is None:
        fail("trace record needs --duration S or -- COMMAND ...")
        return EXIT_USAGE
    procs: list[subprocess.Popen] = []
    end = [0.0]

    def started() -> None:  # called once tracing is on everywhere
        if command:
            procs.append(subprocess.Popen(command))
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
