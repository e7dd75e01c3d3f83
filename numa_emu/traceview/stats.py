"""`trace stats`: counts per event kind and node, the time span, and the thrashing pages.

A page thrashes when it is replicated and its replicas are torn down again and again: each
replicate -> unreplicate pair is one cycle (Lee Schermerhorn's 2007 usex runs had ~98 % of the
replications zapped; Nick Piggin asked for each zap's cause and a histogram of replica lifetimes,
docs/linux-semantics.md#findings-of-the-2007-thread). Pages are keyed by obj:idx. Pure: events in, a
JSON-able dict and text
lines out.
"""
from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass, field
from typing import Any

from numa_emu.traceview.events import page_key, page_name, replica_node
from numa_emu.traceview.story import duration
from numa_emu.protocol.tracing import EVENTS

# Replica lifetimes histogram bins, upper bounds in ns (a replica that lives less than a
# millisecond bought nothing; Lee's stale mapping lived ~1 s).
LIFETIME_BINS_NS = (10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000)


@dataclass
class PageCycles:
    """One page's replication history. A cycle is replicas made, then torn down: a run of
    unreplicate events with no replicate in between is one collapse (the nodes emit one
    event per replica torn down, so zaps count replicas, as pgreplicazap does)."""

    page: str
    replications: int = 0
    zaps: int = 0
    cycles: int = 0
    causes: collections.Counter = field(default_factory=collections.Counter)
    lifetimes_ns: list[int] = field(default_factory=list)
    born_ns: dict = field(default_factory=dict)  # replica node (None: unknown) -> wall ns of its replicate
    collapsing: bool = False

    def replicate(self, e: dict) -> None:
        self.replications += 1
        self.collapsing = False
        self.born_ns.setdefault(replica_node(e), e["wall_ns"])

    def unreplicate(self, e: dict) -> None:
        self.zaps += 1
        self.causes[str(e.get("cause", "unknown"))] += 1
        if not self.collapsing:
            self.cycles += 1
            self.collapsing = True
        node = replica_node(e)
        born = self.born_ns.pop(node, None) if node in self.born_ns else None
        if node is None and self.born_ns:  # one event for every replica: all of them go
            born = min(self.born_ns.values())
            self.born_ns.clear()
        lifetime = e.get("lifetime_ns")
        if lifetime is None and born is not None:
            lifetime = e["wall_ns"] - born
        if isinstance(lifetime, (int, float)):
            self.lifetimes_ns.append(lifetime)

    def to_dict(self) -> dict[str, Any]:
        return {"page": self.page, "cycles": self.cycles, "replications": self.replications, "zaps": self.zaps,
                "causes": dict(self.causes.most_common()),
                "median_lifetime_ns": statistics.median(self.lifetimes_ns) if self.lifetimes_ns else None}


def replication_cycles(events: list[dict]) -> dict[str, PageCycles]:
    """Per page (obj:idx, or an address), in the order of the events."""
    pages: dict[str, PageCycles] = {}
    for e in events:
        if e["ev"] in ("replicate", "unreplicate"):
            name = page_name(page_key(e))
            page = pages.setdefault(name, PageCycles(name))
            (page.replicate if e["ev"] == "replicate" else page.unreplicate)(e)
    return pages


def _kind_order(kinds) -> list[str]:
    known = [k for k in EVENTS if k in kinds]
    return known + sorted(k for k in kinds if k not in EVENTS)


def _node_order(nodes) -> list:
    return sorted(nodes, key=lambda n: (not isinstance(n, int), n if isinstance(n, int) else 0, str(n)))


def summarize(events: list[dict], top: int = 10) -> dict[str, Any]:
    """Everything `trace stats` prints, as a JSON-able dict."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    tasks = set()
    for e in events:
        counts[e["ev"]][e.get("node")] += 1
        if e.get("task") is not None:
            tasks.add(e["task"])
    nodes = _node_order({n for c in counts.values() for n in c})
    pages = replication_cycles(events)
    lifetimes = [t for p in pages.values() for t in p.lifetimes_ns]
    replications = sum(p.replications for p in pages.values())
    zaps = sum(p.zaps for p in pages.values())
    thrashing = sorted((p for p in pages.values() if p.cycles), key=lambda p: (-p.cycles, -p.replications, p.page))
    return {
        "events": len(events),
        "span_ns": events[-1]["wall_ns"] - events[0]["wall_ns"] if events else 0,
        "nodes": nodes,
        "tasks": sorted(tasks),
        "counts": {k: {str(n): counts[k][n] for n in nodes if counts[k][n]} for k in _kind_order(counts)},
        "replication": {
            "replications": replications, "zaps": zaps,
            "zap_ratio": zaps / replications if replications else None,
            "lifetime_histogram": _histogram(lifetimes),
            "thrashing_pages": [p.to_dict() for p in thrashing[:max(top, 0)]],
            "pages_with_cycles": len(thrashing),
        },
    }


def _histogram(lifetimes: list[int]) -> list[dict[str, Any]]:
    bins = [0] * (len(LIFETIME_BINS_NS) + 1)
    for t in lifetimes:
        bins[next((i for i, b in enumerate(LIFETIME_BINS_NS) if t < b), len(LIFETIME_BINS_NS))] += 1
    out = []
    for i, n in enumerate(bins):
        low = LIFETIME_BINS_NS[i - 1] if i else 0
        high = LIFETIME_BINS_NS[i] if i < len(LIFETIME_BINS_NS) else None
        out.append({"from_ns": low, "below_ns": high, "replicas": n})
    return out


# ---- text ----------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """Aligned columns: `align` has one letter per column, l or r (default: the first left,
    the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
    lines = []
    for r in [header] + rows:
        cells = [f"{cell:<{w}}" if a == "l" else f"{cell:>{w}}" for cell, w, a in zip(r, widths, align)]
        lines.append("  ".join(cells).rstrip())
    return lines


def stats_lines(summary: dict[str, Any], source: str = "trace") -> list[str]:
    s = summary
    n_tasks = len(s["tasks"])
    lines = [f"{source}: {s['events']} events over {_span(s['span_ns'])}, "
             f"{_plural(len([n for n in s['nodes'] if isinstance(n, int)]), 'node')}, {_plural(n_tasks, 'task')}"]
    if not s["events"]:
        return lines
    cols = [str(n) for n in s["nodes"]]
    header = ["event"] + [f"node {c}" if c.lstrip("-").isdigit() else str(c) for c in cols] + ["total"]
    rows, totals = [], collections.Counter()
    for kind, per_node in s["counts"].items():
        rows.append([kind] + [str(per_node.get(c, 0) or ".") for c in cols] + [str(sum(per_node.values()))])
        totals.update(per_node)
    rows.append(["total"] + [str(totals[c]) for c in cols] + [str(s["events"])])
    lines += [""] + _table(header, rows) + [""]
    lines += _replication_lines(s["replication"])
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _span(ns: int) -> str:
    return f"{ns / 1e9:.3f} s" if ns >= 1e9 else f"{ns / 1e6:.3f} ms"


def _replication_lines(r: dict[str, Any]) -> list[str]:
    if not r["replications"] and not r["zaps"]:
        return ["no replication events"]
    ratio = f" ({r['zap_ratio']:.0%} of the replications zapped)" if r["zap_ratio"] is not None else ""
    lines = [f"replication: {_plural(r['replications'], 'replica')} created, "
             f"{_plural(r['zaps'], 'replica')} torn down{ratio}"]
    hist = [h for h in r["lifetime_histogram"] if h["replicas"]]
    if hist:
        lines.append("replica lifetimes: " + ", ".join(
            f"{_bin(h)} {h['replicas']}" for h in r["lifetime_histogram"] if h["replicas"]))
    if not r["thrashing_pages"]:
        lines.append("no page went through a replicate -> unreplicate cycle")
        return lines
    shown = len(r["thrashing_pages"])
    more = f" (top {shown} of {r['pages_with_cycles']})" if shown < r["pages_with_cycles"] else ""
    lines += ["", f"thrashing pages{more}: replicate -> unreplicate cycles"]
    rows = []
    for p in r["thrashing_pages"]:
        life = duration(p["median_lifetime_ns"]) if p["median_lifetime_ns"] is not None else "-"
        causes = ", ".join(f"{c} {n}" for c, n in p["causes"].items())
        rows.append([p["page"], str(p["cycles"]), str(p["replications"]), life, causes])
    lines += _table(["page", "cycles", "replicas", "median lifetime", "zap causes"], rows, align="lrrrl")
    return lines


def _bin(h: dict[str, Any]) -> str:
    if h["below_ns"] is None:
        return f">= {duration(h['from_ns'])}:"
    return f"< {duration(h['below_ns'])}:"
