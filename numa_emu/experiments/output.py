"""What an experiment leaves behind: results.csv (one row per run), results.json (the spec and
every raw figure), PNG plots of the main metric against each swept parameter, and the terminal
table (the mean over repetitions of each configuration).

Plots are drawn on matplotlib Figure objects with the Agg canvas, never through pyplot's global
state. One plot per swept parameter: x is that parameter, one line per combination of the other
swept parameters, one panel per workload when the workload is swept too (their metrics differ
by orders of magnitude). A numeric parameter (latency_scale, dilation) also gets a `-relative`
plot, each line divided by its value at the first x: the slowdown.
"""
from __future__ import annotations

import csv
import itertools
import json
import time
from pathlib import Path
from statistics import mean

from numa_emu.experiments.runner import Outcome, RunRecord
from numa_emu.experiments.spec import PARAMETERS, Spec

NUMASTAT = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node")
CSV_FIELDS = ("run", "repetition", *PARAMETERS, "status", "virtual_ns", "ns_per_op", "virtual_mb_s", "wall_s",
              "process_wall_s", "ops", "bytes", "node", "cpu", "remote_pages", "pages_by_node", *NUMASTAT)
NUMERIC_PARAMETERS = ("latency_scale", "dilation")
METRIC_LABELS = {"virtual_ns": "virtual time (ns)", "ns_per_op": "virtual ns per operation",
                 "virtual_mb_s": "MB/s in virtual time", "wall_s": "wall time of the measured phase (s)",
                 "process_wall_s": "wall time of the process (s)"}


def row(record: RunRecord) -> dict:
    """The flat CSV row of one run; figures the run did not produce are empty."""
    r = record.result or {}
    out = {"run": record.run, "repetition": record.repetition, **{p: record.config.values[p] for p in PARAMETERS},
           "status": record.status, "process_wall_s": round(record.process_wall_s, 4)}
    vns, ops, nbytes = r.get("virtual_ns"), r.get("ops"), r.get("bytes")
    pages = r.get("pages_by_node") or {}
    out.update({"virtual_ns": vns, "ns_per_op": round(vns / ops, 3) if vns is not None and ops else None,
                "virtual_mb_s": round(nbytes / vns * 1e3, 3) if vns and nbytes is not None else None,
                "wall_s": round(r["wall_s"], 4) if "wall_s" in r else None, "ops": ops, "bytes": nbytes,
                "node": r.get("node"), "cpu": r.get("cpu"),
                "remote_pages": sum(n for k, n in pages.items() if int(k) != r.get("node")) if pages else None,
                "pages_by_node": " ".join(f"N{k}={n}" for k, n in pages.items())})
    for counter in NUMASTAT:
        out[counter] = sum(node.get(counter, 0) for node in record.numastat.values())
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in CSV_FIELDS})


def write_json(path: Path, outcome: Outcome, summary: list[dict]) -> None:
    doc = {"experiment": outcome.spec.name, "spec": outcome.spec.to_dict(),
           "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(outcome.started_at)),
           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(outcome.finished_at or time.time())),
           "interrupted": outcome.interrupted, "clusters": outcome.clusters,
           "runs": [r.to_dict() for r in outcome.records], "summary": summary}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def summarize(rows: list[dict], spec: Spec) -> list[dict]:
    """Mean of each figure over the repetitions of a configuration (successful runs only), in
    grid order, with the metric's ratio to the first latency scale of the same configuration."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault(tuple(r[p] for p in PARAMETERS), []).append(r)
    order = {tuple(c.values[p] for p in PARAMETERS): c.index for c in spec.configurations()}
    out = []
    for key in sorted(groups, key=lambda k: order.get(k, 0)):
        rs = groups[key]
        s = {**dict(zip(PARAMETERS, key)), "runs": len(rs)}
        for fig in ("virtual_ns", "ns_per_op", "virtual_mb_s", "wall_s", "process_wall_s", "remote_pages"):
            values = [r[fig] for r in rs if r.get(fig) is not None]
            s[fig] = mean(values) if values else None
        s["metric"] = s.get(spec.metric)
        out.append(s)
    first = spec.grid["latency_scale"][0]
    base = {tuple(s[p] for p in PARAMETERS if p != "latency_scale"): s["metric"] for s in out
            if s["latency_scale"] == first}
    for s in out:
        b = base.get(tuple(s[p] for p in PARAMETERS if p != "latency_scale"))
        s["relative"] = s["metric"] / b if b and s["metric"] is not None else None
    return out


def _lines(summary: list[dict], spec: Spec, x: str, panel: str | None) -> dict:
    """panel value -> line label -> [(x, metric)] in grid order."""
    others = [p for p in spec.swept if p not in (x, panel)]
    out: dict = {}
    for s in summary:
        if s["metric"] is None:
            continue
        label = ", ".join(f"{p}={_fmt(s[p])}" for p in others) or spec.metric
        out.setdefault(s[panel] if panel else None, {}).setdefault(label, []).append((s[x], s["metric"]))
    return out


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot(summary: list[dict], spec: Spec, out_dir: Path) -> list[Path]:
    """One PNG per swept parameter (and a relative one for numeric ones); their paths."""
    paths = []
    for x in spec.swept:
        relatives = (False, True) if x in NUMERIC_PARAMETERS else (False,)
        for relative in relatives:
            path = out_dir / f"{spec.metric}-vs-{x}{'-relative' if relative else ''}.png"
            if _figure(summary, spec, x, relative, path):
                paths.append(path)
    return paths


def _figure(summary: list[dict], spec: Spec, x: str, relative: bool, path: Path) -> bool:
    from matplotlib.figure import Figure

    panel = "workload" if "workload" in spec.swept and x != "workload" else None
    panels = _lines(summary, spec, x, panel)
    if not panels:
        return False
    fig = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, lines) in zip(axes, panels.items()):
        if x in NUMERIC_PARAMETERS:
            _draw_lines(ax, lines, list(spec.grid[x]), relative, proportional=relative and x == "latency_scale")
        else:
            _draw_bars(ax, lines, list(spec.grid[x]))
        ax.set_xlabel(x)
        ax.set_ylabel(f"{METRIC_LABELS[spec.metric]}, relative to {x}={_fmt(spec.grid[x][0])}" if relative
                      else METRIC_LABELS[spec.metric])
        ax.set_title(f"workload={name}" if panel else spec.name, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
    fig.suptitle(f"{spec.name}: {spec.metric} vs {x}" + (" (relative)" if relative else ""))
    fig.savefig(path, dpi=100)
    return True


def _draw_lines(ax, lines: dict, xs: list, relative: bool, proportional: bool) -> None:
    """A numeric parameter: one line per combination; with `proportional`, the line y = x / x0."""
    markers = itertools.cycle("osD^v<>p*h")
    for label, points in lines.items():
        y0 = points[0][1]
        ax.plot([p[0] for p in points], [p[1] / y0 if relative and y0 else p[1] for p in points],
                marker=next(markers), label=label)
    if proportional:
        ax.plot(xs, [v / xs[0] for v in xs], "k--", linewidth=0.8, label="in proportion to the latency")
    ax.set_xticks(xs, [_fmt(v) for v in xs])


def _draw_bars(ax, lines: dict, xs: list) -> None:
    """A categorical parameter: grouped bars, one bar per combination in each group."""
    width = 0.8 / max(1, len(lines))
    for k, (label, points) in enumerate(lines.items()):
        ax.bar([xs.index(p[0]) - 0.4 + width * (k + 0.5) for p in points], [p[1] for p in points], width,
               label=label)
    ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])


def _num(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


_HEADERS = {"latency_scale": "scale"}


def table(summary: list[dict], spec: Spec, failed: int = 0):
    """The rich Table of the summary."""
    from rich.table import Table

    params = list(spec.swept) or ["workload", "placement"]
    title = f"{spec.name}{' (quick)' if spec.quick else ''}: mean of {spec.repetitions} run(s) per configuration"
    caption = "ns/op, MB/s: virtual time; wall s: measured phase; remote pages: off the task's node"
    t = Table(title=title, caption=caption + (f"; {failed} run(s) failed, see results.csv" if failed else ""))
    for p in params:
        t.add_column(_HEADERS.get(p, p), justify="right" if p in NUMERIC_PARAMETERS else "left", no_wrap=True)
    columns = [("virtual ns", "virtual_ns", 0), ("ns/op", "ns_per_op", 1), ("MB/s", "virtual_mb_s", 0),
               ("wall s", "wall_s", 3), ("remote pages", "remote_pages", 0)]
    if spec.metric == "process_wall_s":
        columns.append(("process wall s", "process_wall_s", 3))
    for header, _, _ in columns:
        t.add_column(header, justify="right")
    scaled = "latency_scale" in spec.swept
    if scaled:
        t.add_column(f"vs scale {_fmt(spec.grid['latency_scale'][0])}", justify="right")
    for s in summary:
        cells = [_fmt(s[p]) for p in params] + [_num(s[f], d) for _, f, d in columns]
        if scaled:
            cells.append("-" if s["relative"] is None else f"{s['relative']:.3f}")
        t.add_row(*cells)
    return t


def write_all(outcome: Outcome, out_dir: Path) -> tuple[list[dict], list[Path]]:
    """results.csv, results.json and the plots in `out_dir`; returns (summary, png paths)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [row(r) for r in outcome.records]
    summary = summarize(rows, outcome.spec)
    write_csv(out_dir / "results.csv", rows)
    write_json(out_dir / "results.json", outcome, summary)
    return summary, plot(summary, outcome.spec, out_dir)
