"""Reading recorded traces: `trace show` (a readable, time-ordered story of the events, filtered
by page, task and kind) and `trace stats` (counts per kind and node, the thrashing pages).

Place: the reading end of tracing. protocol/tracing.py names the events, the nodes emit them,
numa_emu/trace_recorder.py writes the JSON-lines file; this package reads it, and imports neither
the daemons nor the CLI's argument parsing. The modules: events (load, link frame events to the
task and page they served, filters), story (one sentence per kind), stats (counts, cycles).

alloc and free events carry frames, not a task: they are told as part of the task (and page)
whose fault mapped those frames, so `show --task PID` and `show --page ...` include them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from numa_emu.traceview.events import Filters, PageFilter, TraceError, load, parse_events
from numa_emu.traceview.stats import stats_lines, summarize
from numa_emu.traceview.story import SENTENCES, sentence, story_lines
from numa_emu.protocol.tracing import EVENTS

__all__ = ["Filters", "PageFilter", "SENTENCES", "TraceError", "load", "parse_events", "sentence", "show",
           "stats", "stats_lines", "story_lines", "summarize"]

EXIT_USAGE, EXIT_ERROR = 2, 3  # numa_emu.cli.main's fixed codes


def _fail(message: str) -> None:
    from numa_emu.cli.main import fail

    fail(message)


def _load(path: Path) -> list[dict] | None:
    try:
        return load(path)
    except TraceError as exc:
        where = f"{path} line {exc.line}" if exc.line else str(path)
        _fail(f"{where}: {exc.what}")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
    return None


def show(path: Path, page: str | None = None, task: int | None = None, event: str | None = None) -> int:
    """Print the story of the trace in `path`; filters combine. Exit code (0, 2 usage, 3 bad file)."""
    try:
        page_filter = PageFilter.parse(page) if page else None
    except ValueError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    events = _load(path)
    if events is None:
        return EXIT_ERROR
    kinds = None
    if event:
        kinds = frozenset(k.strip() for k in event.split(",") if k.strip())
        unknown = sorted(kinds - set(EVENTS) - {e["ev"] for e in events})
        if unknown:
            _fail(f"unknown event kind(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
            return EXIT_USAGE
    shown = 0
    for line in story_lines(events, Filters(page=page_filter, task=task, kinds=kinds)):
        print(line)
        shown += 1
    if not shown:
        what = "no events" if not events else "no event matches the filters"
        print(f"numa-emu: {path}: {what}", file=sys.stderr)
    return 0


def stats(path: Path, top: int = 10, as_json: bool = False) -> int:
    """Print the counts and the thrashing pages of the trace in `path` (as JSON with as_json)."""
    if top < 0:
        _fail(f"--top must be 0 or more, not {top}")
        return EXIT_USAGE
    events = _load(path)
    if events is None:
        return EXIT_ERROR
    summary = summarize(events, top=top)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(stats_lines(summary, source=str(path))))
    return 0
