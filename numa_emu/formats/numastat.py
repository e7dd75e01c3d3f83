"""numastat(8) output, byte for byte: compatibility mode, ``-n`` and ``-p PID``.

Place in numa-emu: ``numa-emu numastat`` collects each node's six counters (or a
task's resident pages by node) and calls these functions.  The layout follows
numactl's ``numastat.c`` (v2.0.19): a table of fixed-width cells (``display_table``,
``display_justified_cell``), a 16-wide left-justified label column, 16-wide
right-justified data columns, no separator character, and line folding only when a
screen width is given (a pipe never folds: ``get_screen_width`` uses 10,000,000).

Units: compatibility mode prints page counts; ``-n`` and ``-p`` print MiB with two
decimals, computed in floating point exactly as numastat.c does
(``pages * page_size / 1048576``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.counters import NUMASTAT_COUNTERS

# Kernel order of /sys/devices/system/node/nodeN/numastat (drivers/base/node.c).
NUMASTAT_FIELDS: tuple[str, ...] = NUMASTAT_COUNTERS

# numastat.c process_meminfo[]: the sub-category rows of ``-p PID``.
PROCESS_ROWS: tuple[str, ...] = ("Huge", "Heap", "Stack", "Private")

MEGABYTE = 1024 * 1024
_CELL_WIDTH = 16  # numastat.c set_col_width(..., 16)
_NO_FOLD_WIDTH = 10_000_000  # numastat.c get_screen_width() when stdout is not a tty


@dataclass(frozen=True)
class _Rule:
    """A cell of repeated dashes, one narrower than its column (numastat.c REPCHAR)."""


_RULE = _Rule()
_Cell = str | float | _Rule | None


@dataclass(frozen=True)
class _Column:
    width: int
    right: bool
    decimals: int = 0


def _cell_text(cell: _Cell, col: _Column) -> str:
    """numastat.c fmt_cell_data + display_justified_cell: format, truncate, justify."""
    if cell is None:
        text = ""
    elif isinstance(cell, _Rule):
        text = "-" * (col.width - 1)
    elif isinstance(cell, float):
        text = f"{cell:.{col.decimals}f}"
    else:
        text = cell
    text = text[: col.width]
    return text.rjust(col.width) if col.right else text.ljust(col.width)


def _screen_width(width: int | None) -> int:
    """numastat.c get_screen_width(): None means a pipe (never fold)."""
    if width is None:
        return _NO_FOLD_WIDTH
    if width < 1 or width > _NO_FOLD_WIDTH:
        width = 80
    return max(width, 32)


def _render(columns: Sequence[_Column], rows: Sequence[Sequence[_Cell]], width: int | None) -> str:
    """numastat.c display_table(): one header column, data columns folded to the width.

    Every row of a section starts with the label column and shows at least one data
    column; sections after the first are preceded by a blank line.
    """
    screen = _screen_width(width)
    out: list[str] = []
    data_col = 1
    while data_col < len(columns):
        if data_col > 1:
            out.append("\n")
        col = data_col
        for row in rows:
            parts = [_cell_text(row[0], columns[0])]
            used = columns[0].width
            col = data_col
            while True:
                parts.append(_cell_text(row[col], columns[col]))
                used += columns[col].width
                col += 1
                if col >= len(columns) or used + columns[col].width > screen:
                    break
            out.append("".join(parts) + "\n")
        data_col = col
    return "".join(out)


def _sorted_nodes(counters: Mapping[int, object]) -> list[int]:
    if not counters:
        # numastat.c init_node_ix_map_and_header() exits when no node is found.
        raise ValueError("numastat needs at least one node")
    return sorted(counters)


def _capitalise(label: str) -> str:
    """numastat.c: capitalise the first letter and each letter after '_'."""
    return "_".join(part[:1].upper() + part[1:] for part in label.split("_"))


def format_numastat_compat(counters: Mapping[int, Mapping[str, int]]) -> str:
    """``numastat`` with no arguments: raw page counts, ``node<N>`` headers, no Total.

    ``counters`` maps node id -> {counter name: pages}; missing counters print 0.
    Never folded (the form a pipe gets, which numactl test/regress and LTP parse).
    """
    nodes = _sorted_nodes(counters)
    columns = [_Column(_CELL_WIDTH, right=False)]
    columns += [_Column(_CELL_WIDTH, right=True) for _ in nodes]
    rows: list[Sequence[_Cell]] = [[None] + [f"node{n}" for n in nodes]]
    for field in NUMASTAT_FIELDS:
        # numastat.c stores every value as a double and prints it with "%.0f".
        rows.append([field] + [float(counters[n].get(field, 0)) for n in nodes])
    return _render(columns, rows, None)


def _mb_columns(count: int, decimals: int = 2) -> list[_Column]:
    return [_Column(_CELL_WIDTH, right=True, decimals=decimals) for _ in range(count)]


def format_numastat_mb(counters: Mapping[int, Mapping[str, int]], page_size: int, *, width: int | None = None) -> str:
    """``numastat -n``: the six counters in MiB, ``Node N`` columns plus ``Total``.

    Starts with a blank line and the title ``Per-node numastat info (in MBs):``
    (numastat.c show_numastat_info).  ``width`` is the screen width in columns
    (``NUMASTAT_WIDTH``); None means a pipe, which never folds.
    """
    nodes = _sorted_nodes(counters)
    columns = [_Column(_CELL_WIDTH, right=False)] + _mb_columns(len(nodes) + 1)
    rows: list[Sequence[_Cell]] = [
        [None] + [f"Node {n}" for n in nodes] + ["Total"],
        [None] + [_RULE] * (len(nodes) + 1),
    ]
    for field in NUMASTAT_FIELDS:
        values = [float(counters[n].get(field, 0)) * float(page_size) / MEGABYTE for n in nodes]
        total = 0.0
        for value in values:
            total += value
        rows.append([_capitalise(field)] + values + [total])
    return "\nPer-node numastat info (in MBs):\n" + _render(columns, rows, width)


def _process_label_width(labels: Sequence[str]) -> int:
    """numastat.c auto_set_col_width(table, 0, 16, 24): longest label + 1 gutter, max 24."""
    return min(max(16, *(len(label) for label in labels)) + 1, 24)


def format_numastat_process(
    pid: int,
    comm: str,
    per_node_bytes: Mapping[str, Mapping[int, int]],
    nodes: Sequence[int],
    *,
    width: int | None = None,
) -> str:
    """``numastat -p PID`` for one process: Huge, Heap, Stack, Private, rule, Total.

    ``per_node_bytes`` maps a row name (``Huge``, ``Heap``, ``Stack``, ``Private``)
    to {node id: resident bytes}; absent rows and nodes are 0.  ``nodes`` are the
    machine's node ids (the columns).  Values are MiB with two decimals.
    """
    unknown = set(per_node_bytes) - set(PROCESS_ROWS)
    if unknown:
        raise ValueError(f"unknown numastat -p rows: {sorted(unknown)}")
    ordered = sorted(nodes)
    for row_name, by_node in per_node_bytes.items():
        stray = set(by_node) - set(ordered)
        if stray:
            raise ValueError(f"row {row_name} has nodes {sorted(stray)} not in {ordered}")
    labels = list(PROCESS_ROWS) + ["Total"]
    columns = [_Column(_process_label_width(labels), right=False)] + _mb_columns(len(ordered) + 1)
    rows: list[Sequence[_Cell]] = [
        [None] + [f"Node {n}" for n in ordered] + ["Total"],
        [None] + [_RULE] * (len(ordered) + 1),
    ]
    node_totals = [0.0] * len(ordered)
    for row_name in PROCESS_ROWS:
        by_node = per_node_bytes.get(row_name, {})
        values = [by_node.get(n, 0) / MEGABYTE for n in ordered]
        node_totals = [t + v for t, v in zip(node_totals, values, strict=True)]
        rows.append([row_name] + values + [sum(values, 0.0)])
    rows.append([_RULE] * (len(ordered) + 2))
    rows.append(["Total"] + node_totals + [sum(node_totals, 0.0)])
    title = f"\nPer-node process memory usage (in MBs) for PID {pid} ({comm})\n"
    return title + _render(columns, rows, width)


def numastat_json(counters: Mapping[int, Mapping[str, int]]) -> dict[str, dict[str, dict[str, int]]]:
    """The ``--json`` shape of the per-node counters (our own format).

    ``{"nodes": {"<id>": {"numa_hit": pages, "numa_miss": ..., "numa_foreign": ...,
    "interleave_hit": ..., "local_node": ..., "other_node": ...}}}`` -- node ids as
    strings (JSON object keys), in ascending numeric order, the six counters in
    kernel order, units pages, missing counters 0.
    """
    return {
        "nodes": {
            str(n): {field: int(counters[n].get(field, 0)) for field in NUMASTAT_FIELDS} for n in sorted(counters)
        }
    }
