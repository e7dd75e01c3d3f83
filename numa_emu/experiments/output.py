"""What an experiment leaves behind: results.csv (one row per run), results.json (the spec and
every raw figure), PNG plots of the main metric (and of the file's `plots` figures) against each
swept parameter, and the terminal table (the mean over repetitions of each configuration).

Replication figures: a workload that reports the cluster's counters over its own measured phase
(kbuild, writeshare: `counters` in its line) is judged by those; any other by the vmstat deltas
of the whole run. zap_ratio is replicas zapped per replica made (the 2007 thread's "zaps"),
remote_reads and stale_reads come from the workload's line.

A user's command reports figures of its own (numa_emu.report): every key of its JSON line that is
not a column already becomes one, after the others, in the order first seen; numeric ones are
summarised and can be the metric, reported and plotted like the built-in ones.

Plots are drawn on matplotlib Figure objects with the Agg canvas, never through pyplot's global
state. One plot per swept parameter: x is that parameter, one line per combination of the other
swept parameters, one panel per workload when the workload is swept too (their metrics differ
by orders of magnitude). A numeric parameter (latency_scale, dilation) also gets a `-relative`
plot, each line divided by its value at the first x: the slowdown. Axes, lines and legends follow
the grid's order; axis labels are words (PARAMETER_LABELS, METRIC_LABELS), not column names.
`replot` draws them again from a results.json.
"""
from __future__ import annotations

import csv
import itertools
import json
import time
from pathlib import Path
from statistics import mean

from numa_emu.experiments.runner import Outcome, RunRecord
from numa_emu.experiments.settings import short_name
from numa_emu.experiments.spec import FIGURES, NUMASTAT, PARAMETERS, REPLICATION_FIGURES, Spec

CSV_FIELDS = ("run", "repetition", *PARAMETERS, "status", "virtual_ns", "ns_per_op", "virtual_mb_s", "wall_s",
              "process_wall_s", "ops", "bytes", "node", "cpu", "remote_pages", "pages_by_node", *NUMASTAT,
              *REPLICATION_FIGURES)
NUMERIC_PARAMETERS = ("latency_scale", "dilation")
COUNTERS = ("repl_hits", "repl_fetch_bytes", "pgreplicated", "pgreplicazap", "pgreplicazap_write", "pgreplicabackoff",
            "repl_backoff_skips", "repl_stale_access")
FROM_RESULT = ("reads", "remote_reads", "stale_reads")
METRIC_LABELS = {"virtual_ns": "virtual time (ns)", "ns_per_op": "virtual ns per operation",
                 "virtual_mb_s": "MB/s in virtual time", "wall_s": "wall time of the measured phase (s)",
                 "process_wall_s": "wall time of the process (s)", "remote_pages": "pages off the task's node",
                 "reads": "reads", "remote_reads": "reads served by a remote master",
                 "repl_hits": "reads served by a local replica", "repl_fetch_bytes": "bytes copied to make replicas",
                 "pgreplicated": "replicas made", "pgreplicazap": "replicas zapped",
                 "pgreplicazap_write": "replicas zapped by writes", "zap_ratio": "replicas zapped per replica made",
                 "pgreplicabackoff": "thrash back-offs", "repl_backoff_skips": "replications skipped (back-off)",
                 "repl_stale_access": "stale accesses (nodes' count)", "stale_reads": "stale reads (history check)"}
# figure -> (table header, digits (-1: a percentage), shown divided by)
COLUMNS = {"virtual_ns": ("virtual ns", 0, 1), "ns_per_op": ("ns/op", 1, 1), "virtual_mb_s": ("MB/s", 0, 1),
           "wall_s": ("wall s", 3, 1), "process_wall_s": ("process wall s", 3, 1),
           "remote_pages": ("remote pages", 0, 1), "reads": ("reads", 0, 1), "remote_reads": ("remote reads", 0, 1),
           "repl_hits": ("replica hits", 0, 1), "repl_fetch_bytes": ("fetched KiB", 0, 1024),
           "pgreplicated": ("made", 0, 1), "pgreplicazap": ("zapped", 0, 1),
           "pgreplicazap_write": ("zapped by writes", 0, 1), "zap_ratio": ("zap %", -1, 1),
           "pgreplicabackoff": ("backoff starts", 0, 1), "repl_backoff_skips": ("skips", 0, 1),
           "repl_stale_access": ("stale accesses", 0, 1), "stale_reads": ("stale reads", 0, 1),
           **{n: (n, 0, 1) for n in NUMASTAT}}
WIDE = 10  # columns from which the table drops its vertical rules, to fit 120 characters
PARAMETER_LABELS = {"latency_scale": "latency scale (x the topology's latencies)", "placement": "placement",
                    "workload": "workload", "topology": "topology", "inject": "latency injection",
                    "dilation": "dilation (real ns per virtual ns)"}
DEFAULT_REPORT = ("virtual_ns", "ns_per_op", "virtual_mb_s", "wall_s", "remote_pages")


def csv_fields(spec: Spec, rows: list[dict] = ()) -> tuple[str, ...]:
    """CSV_FIELDS with the spec's own parameters and swept sysctl keys after the parameters, then
    the figures the rows' commands reported that are no column yet."""
    cut = CSV_FIELDS.index("status")
    fields = CSV_FIELDS[:cut] + spec.user_parameters + spec.sysctl_keys + CSV_FIELDS[cut:]
    return fields + tuple(dict.fromkeys(k for r in rows for k in r if k not in fields))


def parameter_label(name: str) -> str:
    return PARAMETER_LABELS.get(name, name)


def _replication(record: RunRecord) -> dict:
    r = record.result or {}
    counters = r.get("counters") if isinstance(r.get("counters"), dict) else None
    if counters is not None:
        out = {k: counters.get(k, 0) for k in COUNTERS}
    else:
        out = {k: sum(node.get(k, 0) for node in record.vmstat.values()) for k in COUNTERS}
    out.update({k: r.get(k) for k in FROM_RESULT})
    out["zap_ratio"] = round(out["pgreplicazap"] / out["pgreplicated"], 4) if out["pgreplicated"] else None
    return out


def row(record: RunRecord) -> dict:
    """The flat CSV row of one run; figures the run did not produce are empty."""
    r = record.result or {}
    out = {"run": record.run, "repetition": record.repetition, **record.config.values,
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
    out.update(_replication(record))
    for k, v in r.items() if record.script else ():  # the user's command's own figures (numa_emu.report)
        if k not in out:
            out[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...] = CSV_FIELDS) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in fields})


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
    params = spec.parameters
    known = set(csv_fields(spec))
    own = [k for k in dict.fromkeys(k for r in rows for k in r if k not in known)
           if all(isinstance(r[k], (int, float)) and not isinstance(r[k], bool) for r in rows if r.get(k) is not None)]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault(tuple(r[p] for p in params), []).append(r)
    order = {tuple(c.values[p] for p in params): c.index for c in spec.configurations()}
    out = []
    for key in sorted(groups, key=lambda k: order.get(k, 0)):
        rs = groups[key]
        s = {**dict(zip(params, key)), "runs": len(rs)}
        for fig in FIGURES + tuple(own):
            values = [r[fig] for r in rs if r.get(fig) is not None]
            s[fig] = mean(values) if values else None
        replicated = s["pgreplicated"]  # the ratio of the means, not the mean of the ratios
        s["zap_ratio"] = s["pgreplicazap"] / replicated if replicated and s["pgreplicazap"] is not None else None
        s["metric"] = s.get(spec.metric)
        out.append(s)
    first = spec.grid["latency_scale"][0]
    others = [p for p in params if p != "latency_scale"]
    base = {tuple(s[p] for p in others): s["metric"] for s in out if s["latency_scale"] == first}
    for s in out:
        b = base.get(tuple(s[p] for p in others))
        s["relative"] = s["metric"] / b if b and s["metric"] is not None else None
    return out


def _lines(summary: list[dict], spec: Spec, x: str, panel: str | None, figure: str) -> dict:
    """panel value -> line label -> [(x, figure)] in grid order; a line per combination of the
    other swept parameters that vary in the panel. Rows without x or the figure are left out."""
    rows = [s for s in summary if s.get(figure) is not None and s[x] is not None]
    out: dict = {}
    for name in dict.fromkeys(s[panel] if panel else None for s in rows):
        mine = [s for s in rows if not panel or s[panel] == name]
        others = [p for p in spec.swept if p not in (x, panel) and len({s[p] for s in mine}) > 1]
        for s in mine:
            label = (", ".join(f"{_HEADERS.get(p) or short_name(p)}={_fmt(s[p])}" for p in others)
                     or METRIC_LABELS.get(figure, figure))
            out.setdefault(name, {}).setdefault(label, []).append((s[x], s[figure]))
    return out


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plotted(spec: Spec) -> list[str]:
    """The swept parameters to plot against: not the workload when workloads sweep sysctl keys of
    their own (their configurations are not comparable)."""
    own = any(spec.workloads[w].sysctl for w in spec.grid["workload"])
    return [x for x in spec.swept if not (x == "workload" and own)]


# matplotlib is an optional extra (about half of an installation's size): without it, runs
# write their CSV and JSON, and the CLI says how to get the plots.
PLOTS_HINT = "no plots: matplotlib is not installed (pip install 'numa-emu[plots]', then numa-emu experiment replot DIR)"


def can_plot() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(summary: list[dict], spec: Spec, out_dir: Path) -> list[Path]:
    """One PNG per plotted figure (the metric, then the file's `plots`) and swept parameter, and a
    relative one of the metric for numeric parameters; with `plots`, an overview per swept
    parameter too (every plotted figure side by side, a row per workload); their paths. None
    without matplotlib (PLOTS_HINT)."""
    if not can_plot():
        return []
    paths = []
    figures = list(dict.fromkeys((spec.metric, *spec.plots)))
    for figure in figures:
        for x in _plotted(spec):
            relatives = (False, True) if x in NUMERIC_PARAMETERS and figure == spec.metric else (False,)
            for relative in relatives:
                path = out_dir / f"{figure}-vs-{x}{'-relative' if relative else ''}.png"
                fig = figure_of(summary, spec, figure, x, relative)
                if fig is not None:
                    fig.savefig(path, dpi=100)
                    paths.append(path)
    for x in _plotted(spec) if len(figures) > 1 else []:
        path = out_dir / f"overview-vs-{x}.png"
        if _overview(summary, spec, figures, x, path):
            paths.append(path)
    return paths


def _overview(summary: list[dict], spec: Spec, figures: list[str], x: str, path: Path) -> bool:
    """Every figure against x side by side (columns), a row per workload that has x."""
    from matplotlib.figure import Figure

    panel = "workload" if "workload" in spec.swept and x != "workload" else None
    rows = {figure: _lines(summary, spec, x, panel, figure) for figure in figures}
    names = list(dict.fromkeys(name for lines in rows.values() for name in lines))
    if not names:
        return False
    xs = spec.values_of(x)
    fig = Figure(figsize=(4.2 * len(figures), 3.6 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), len(figures), squeeze=False)
    for i, name in enumerate(names):
        for j, figure in enumerate(figures):
            ax, lines = axes[i][j], rows[figure].get(name, {})
            if x in NUMERIC_PARAMETERS:
                _draw_lines(ax, lines, xs, False, proportional=False)
            else:
                _draw_bars(ax, lines, xs)
            ax.set_xlabel(parameter_label(x), fontsize="small")
            ax.set_title(f"{METRIC_LABELS.get(figure, figure)}" + (f"\nworkload={name}" if panel else ""),
                         fontsize="small")
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
            if lines and len(lines) > 1:
                ax.legend(fontsize="x-small")
    fig.suptitle(f"{spec.name}: {', '.join(METRIC_LABELS.get(f, f) for f in figures)} vs {parameter_label(x)}",
                 wrap=True)
    fig.savefig(path, dpi=100)
    return True


def figure_of(summary: list[dict], spec: Spec, figure: str, x: str, relative: bool = False):
    """The matplotlib Figure of `figure` against parameter `x`; None when no row has both."""
    from matplotlib.figure import Figure

    panel = "workload" if "workload" in spec.swept and x != "workload" else None
    panels = _lines(summary, spec, x, panel, figure)
    if not panels:
        return None
    xs = spec.values_of(x)
    fig = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    label = METRIC_LABELS.get(figure, figure)
    for ax, (name, lines) in zip(axes, panels.items()):
        if x in NUMERIC_PARAMETERS:
            _draw_lines(ax, lines, xs, relative, proportional=relative and x == "latency_scale")
        else:
            _draw_bars(ax, lines, xs)
        ax.set_xlabel(parameter_label(x))
        ax.set_ylabel(f"{label}, relative to {short_name(x)}={_fmt(xs[0])}" if relative else label)
        ax.set_title(f"workload={name}" if panel else spec.name, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
    fig.suptitle(f"{spec.name}: {label}" + (" (relative)" if relative else ""), wrap=True)  # x: the axis label
    return fig


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


def _cell(figure: str, value) -> str:
    if value is None:
        return "-"
    if figure not in COLUMNS:  # a command's own figure
        return f"{value:,.6g}" if isinstance(value, (int, float)) else str(value)
    _, digits, unit = COLUMNS[figure]
    return f"{value:.1%}" if digits < 0 else f"{value / unit:,.{digits}f}"


_HEADERS = {"latency_scale": "scale"}
_CAPTIONS = {"ns_per_op": "ns/op, MB/s: virtual time", "wall_s": "wall s: measured phase",
             "remote_pages": "remote pages: off the task's node",
             "remote_reads": "remote reads: served by a master on another node",
             "pgreplicated": "made, zapped: replicas", "zap_ratio": "zap %: replicas zapped per replica made",
             "stale_reads": "stale reads: older than a completed write (history check)"}


def table(summary: list[dict], spec: Spec, failed: int = 0):
    """The rich Table of the summary: the swept parameters, then the report's figures."""
    from rich import box
    from rich.table import Table

    params = list(spec.swept) or ["workload", "placement"]
    figures = list(spec.report) or [*DEFAULT_REPORT, *(["process_wall_s"] if spec.metric == "process_wall_s" else [])]
    title = f"{spec.name}{' (quick)' if spec.quick else ''}: mean of {spec.repetitions} run(s) per configuration"
    caption = "; ".join(text for f, text in _CAPTIONS.items() if f in figures)
    wide = len(params) + len(figures) >= WIDE
    t = Table(title=title, caption=caption + (f"; {failed} run(s) failed, see results.csv" if failed else ""),
              box=box.SIMPLE_HEAD if wide else box.HEAVY_HEAD, collapse_padding=wide, pad_edge=not wide)
    for p in params:
        t.add_column(_HEADERS.get(p) or short_name(p), justify="right" if p in NUMERIC_PARAMETERS else "left",
                     no_wrap=True)
    for f in figures:
        t.add_column(COLUMNS[f][0] if f in COLUMNS else f, justify="right")
    scaled = "latency_scale" in spec.swept
    if scaled:
        t.add_column(f"vs scale {_fmt(spec.grid['latency_scale'][0])}", justify="right")
    for s in summary:
        cells = [_fmt(s[p]) for p in params] + [_cell(f, s[f]) for f in figures]
        if scaled:
            cells.append("-" if s["relative"] is None else f"{s['relative']:.3f}")
        t.add_row(*cells)
    return t


def write_all(outcome: Outcome, out_dir: Path) -> tuple[list[dict], list[Path]]:
    """results.csv, results.json and the plots in `out_dir`; returns (summary, png paths)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [row(r) for r in outcome.records]
    summary = summarize(rows, outcome.spec)
    write_csv(out_dir / "results.csv", rows, csv_fields(outcome.spec, rows))
    write_json(out_dir / "results.json", outcome, summary)
    return summary, plot(summary, outcome.spec, out_dir)


def replot(out_dir: Path) -> list[Path]:
    """Draw the plots of `out_dir` again from its results.json (no cluster); their paths."""
    from numa_emu.protocol.errors import ErrorCode, NumaEmuError

    from numa_emu.experiments.spec import Spec as SpecType

    path = out_dir / "results.json"
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise NumaEmuError(ErrorCode.ENOENT, f"cannot read {path}: {exc.strerror}: give the folder an "
                                             f"experiment run wrote (--out)") from None
    except ValueError as exc:
        raise NumaEmuError(ErrorCode.EINVAL, f"{path} is not JSON ({exc}): rerun the experiment") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict) or not isinstance(doc.get("summary"), list):
        raise NumaEmuError(ErrorCode.EINVAL, f"{path} has no spec and summary: it was not written by experiment run")
    return plot(doc["summary"], SpecType.from_dict(doc["spec"]), out_dir)
