"""numastat(8) output, byte for byte: compatibility mode, ``-n``, ``-m``, ``-p PID`` and the
display switches ``-c``, ``-z``, ``-s[NODE]`` and ``-v``.

Place in numa-emu: ``numa-emu numastat`` collects each node's counters, frame pool or a task's
resident pages by node and calls these functions.  The layout follows numactl's ``numastat.c``
(v2.0.19): one table engine (``numastat_table.Table``: ``display_table``,
``display_justified_cell``, ``auto_set_col_width``, ``sort_rows_descending_by_col``), a
16-wide left-justified label column, 16-wide right-justified data columns, no separator
character, and line folding only when a screen width is given (a pipe never folds:
``get_screen_width`` uses 10,000,000).

Units: compatibility mode prints page counts; every other table prints MiB with two decimals
(none with ``-c``), computed in floating point exactly as numastat.c does
(``pages * page_size / 1048576``; meminfo ``kB * 1024 / 1048576``).

The switches, as numastat.c applies them:

- ``-c``: every column as narrow as its widest cell (any row, shown or not) plus one blank,
  at least 4 + 1 and at most 16; values with no decimals.
- ``-z``: hide data rows and data columns whose cells are all zero.  Rows and columns with no
  data at all are hidden with or without ``-z`` (so ``-m`` shows only the meminfo lines the
  nodes report); the header rows and the dashed rule above ``-p``'s Total row always show.
  A table with nothing non-zero prints ``Table has no non-zero data.``
- ``-s[NODE]``: rows sorted by descending Total (or by NODE's column when 0 <= NODE < the
  number of nodes), by numastat.c's selection sort, which does not keep the order of ties.
- ``-v``: with several PIDs, one Huge/Heap/Stack/Private table per PID instead of one table
  with a row per PID.  Those tables reuse one table as numastat.c does: the row order left by
  ``-s`` and the rows and columns once seen non-zero carry over to the next PID's table.

``-m`` reads meminfo text as numastat.c reads ``/sys/devices/system/node/nodeN/meminfo``;
:func:`node_meminfo` writes what an emulated node can state exactly: ``MemTotal``, ``MemFree``
and ``MemUsed`` from its frame pool, and what its used frames hold: ``FilePages`` (page cache:
file pages, their replicas and shm pages), ``AnonPages`` (private pages), ``Shmem`` (shm
pages), so that FilePages + AnonPages = MemUsed.  The rest are absent (as on a kernel whose
meminfo has fewer lines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from numa_emu.protocol.counters import NUMASTAT_COUNTERS

from numa_emu.formats.numastat_table import RULE, Cell, Column, Table

# Kernel order of /sys/devices/system/node/nodeN/numastat (drivers/base/node.c).
NUMASTAT_FIELDS: tuple[str, ...] = NUMASTAT_COUNTERS

# numastat.c process_meminfo[]: the sub-category rows of ``-p PID``.
PROCESS_ROWS: tuple[str, ...] = ("Huge", "Heap", "Stack", "Private")

# numastat.c system_meminfo[]: the rows ``-m`` can show, in its order (not the kernel's).
SYSTEM_MEMINFO_ROWS: tuple[str, ...] = (
    "MemTotal", "MemFree", "MemUsed", "HighTotal", "HighFree", "LowTotal", "LowFree", "Active",
    "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable",
    "Mlocked", "Dirty", "Writeback", "FilePages", "Mapped", "AnonPages", "Shmem", "KernelStack",
    "PageTables", "NFS_Unstable", "Bounce", "WritebackTmp", "Slab", "SReclaimable", "SUnreclaim",
    "AnonHugePages", "ShmemHugePages", "ShmemPmdMapped", "HugePages_Total", "HugePages_Free",
    "HugePages_Surp", "KReclaimable",
)  # fmt: skip

MEGABYTE = 1024 * 1024
KILOBYTE = 1024
_CELL_WIDTH = 16  # numastat.c set_col_width(..., 16)


@dataclass(frozen=True)
class NumastatOptions:
    """numastat's display switches (see the module docstring)."""

    compress: bool = False  # -c
    show_zero: bool = True  # -z clears it
    sort: bool = False  # -s
    sort_node: int = -1  # -sNODE; -1: the Total column
    verbose: bool = False  # -v

    @property
    def decimals(self) -> int:
        return 0 if self.compress else 2


DEFAULT_OPTIONS = NumastatOptions()


def _sorted_nodes(counters: Mapping[int, object]) -> list[int]:
    if not counters:
        # numastat.c init_node_ix_map_and_header() exits when no node is found.
        raise ValueError("numastat needs at least one node")
    return sorted(counters)


def _capitalise(label: str) -> str:
    """numastat.c: capitalise the first letter and each letter after '_'."""
    return "_".join(part[:1].upper() + part[1:] for part in label.split("_"))


def _sort_column(nodes: Sequence[int], opts: NumastatOptions) -> int:
    """numastat.c: -sN with 0 <= N < nodes sorts by column 1 + (the N-th smallest node id), which
    is Node N's column when node ids are 0..n-1 (always so in numa-emu); else by Total.
    (Where that id would point past the table numastat.c reads out of bounds; we use Total.)"""
    total = len(nodes) + 1
    if 0 <= opts.sort_node < len(nodes):
        col = 1 + sorted(nodes)[opts.sort_node]
        if col <= total:
            return col
    return total


def format_numastat_compat(counters: Mapping[int, Mapping[str, int]]) -> str:
    """``numastat`` with no arguments: raw page counts, ``node<N>`` headers, no Total.

    ``counters`` maps node id -> {counter name: pages}; missing counters print 0.
    Never folded (the form a pipe gets, which numactl test/regress and LTP parse).
    """
    nodes = _sorted_nodes(counters)
    columns = [Column(_CELL_WIDTH, right=False)]
    columns += [Column(_CELL_WIDTH, right=True) for _ in nodes]
    rows: list[list[Cell]] = [[None] + [f"node{n}" for n in nodes]]
    for field in NUMASTAT_FIELDS:
        # numastat.c stores every value as a double and prints it with "%.0f".
        rows.append([field] + [float(counters[n].get(field, 0)) for n in nodes])
    return Table(columns, rows, header_rows=1).display(None, show_zero=True)


def _node_table(labels: Sequence[str], values: Mapping[int, Sequence[tuple[int, float]]], nodes: Sequence[int],
                opts: NumastatOptions, width: int | None) -> str:
    """numastat.c show_info_from_system_file() past the reading: ``values`` maps node -> the
    (row index, MiB) pairs its file gave, in file order; rows no node gave stay empty (hidden)."""
    n = len(nodes)
    columns = [Column(_CELL_WIDTH, right=False)]
    columns += [Column(_CELL_WIDTH, right=True, decimals=opts.decimals) for _ in range(n + 1)]
    rows: list[list[Cell]] = [[None] + [f"Node {x}" for x in nodes] + ["Total"], [None] + [RULE] * (n + 1)]
    rows += [[label] + [None] * (n + 1) for label in labels]
    for col, node in enumerate(nodes, start=1):
        for index, value in values.get(node, ()):
            row = rows[2 + index]
            row[col] = value
            row[n + 1] = (row[n + 1] or 0.0) + value
    table = Table(columns, rows, header_rows=2)
    if opts.compress:
        table.compress()
    if opts.sort:
        table.sort(2, 2 + len(labels) - 1, _sort_column(nodes, opts))
    return table.display(width, opts.show_zero)


def format_numastat_mb(counters: Mapping[int, Mapping[str, int]], page_size: int, *, width: int | None = None,
                       opts: NumastatOptions = DEFAULT_OPTIONS) -> str:
    """``numastat -n`` (and any arguments without -p or -m): the six counters in MiB, ``Node N``
    columns plus ``Total``.

    Starts with a blank line and the title ``Per-node numastat info (in MBs):``
    (numastat.c show_numastat_info).  ``width`` is the screen width in columns
    (``NUMASTAT_WIDTH``); None means a pipe, which never folds.
    """
    nodes = _sorted_nodes(counters)
    values = {n: [(i, float(counters[n].get(field, 0)) * float(page_size) / MEGABYTE)
                  for i, field in enumerate(NUMASTAT_FIELDS)] for n in nodes}
    labels = [_capitalise(field) for field in NUMASTAT_FIELDS]
    return "\nPer-node numastat info (in MBs):\n" + _node_table(labels, values, nodes, opts, width)


# The kinds of used frames a node counts, in node_read_meminfo()'s order (FilePages includes
# Shmem, as the kernel's NR_FILE_PAGES does: shmem is page cache).
FRAME_KIND_ROWS: tuple[str, ...] = ("FilePages", "AnonPages", "Shmem")


def node_meminfo(node: int, frames_total: int, frames_free: int, page_size: int,
                 kinds: Mapping[str, int] | None = None) -> str:
    """An emulated node's ``/sys/devices/system/node/nodeN/meminfo``: the lines of the kernel's
    node_read_meminfo() the node can state, in its format and order: MemTotal, MemFree and
    MemUsed from the frame pool, then ``kinds`` (pages by :data:`FRAME_KIND_ROWS` name: what the
    used frames hold).  Sizes are kB (``pages * page_size / 1024``, rounded down for 512-byte
    pages, as the kernel's K() would)."""
    used = frames_total - frames_free
    lines = [("MemTotal", frames_total), ("MemFree", frames_free), ("MemUsed", used)]
    lines += [(name, int(kinds[name])) for name in FRAME_KIND_ROWS if kinds and name in kinds]
    return "".join(f"Node {node} {(name + ':').ljust(15)} {pages * page_size // KILOBYTE:8d} kB\n"
                   for name, pages in lines)


def format_numastat_meminfo(meminfo: Mapping[int, str], *, width: int | None = None,
                            opts: NumastatOptions = DEFAULT_OPTIONS, huge_page_size: int = 0) -> str:
    """``numastat -m``: each node's meminfo text (node id -> file contents) read as numastat.c
    reads it, shown in MiB with the rows of its system_meminfo[] list the files have.

    A line whose name is not in that list prints ``Token NAME not in hash table.`` before the
    table, as numastat does.  Values in kB are scaled by 1024, HugePages_* counts by
    ``huge_page_size`` bytes, other values are taken as bytes.  Lines of fewer than four words
    (never written by numa-emu's nodes) are skipped.
    """
    nodes = _sorted_nodes(meminfo)
    index_of = {name: i for i, name in enumerate(SYSTEM_MEMINFO_ROWS)}
    notes: list[str] = []
    values: dict[int, list[tuple[int, float]]] = {}
    for node in nodes:
        got = values.setdefault(node, [])
        for line in meminfo[node].splitlines():
            tokens = line.replace(":", " ").split()  # strtok(" \t\r\n:")
            if len(tokens) < 4:
                continue  # blank or malformed: numastat.c skips blank lines
            if tokens[2] not in index_of:
                notes.append(f"Token {tokens[2]} not in hash table.\n")
                continue
            multiplier = 1.0
            if tokens[2].startswith("HugePages"):
                multiplier = float(huge_page_size)
            elif len(tokens) > 4 and tokens[4].startswith("kB"):
                multiplier = float(KILOBYTE)
            got.append((index_of[tokens[2]], _c_atol(tokens[3]) * multiplier / MEGABYTE))
    table = _node_table(SYSTEM_MEMINFO_ROWS, values, nodes, opts, width)
    return "\nPer-node system memory usage (in MBs):\n" + "".join(notes) + table


def _c_atol(text: str) -> float:
    """atol(): an optional sign and leading digits, 0 when there are none."""
    number = re.match(r"[+-]?[0-9]+", text)
    return float(int(number.group())) if number else 0.0


@dataclass(frozen=True)
class ProcessMemory:
    """One process for ``-p``: its resident bytes by row (Huge, Heap, Stack, Private) and node."""

    pid: int
    comm: str
    per_node_bytes: Mapping[str, Mapping[int, int]]


def _check_process(proc: ProcessMemory, nodes: Sequence[int]) -> None:
    unknown = set(proc.per_node_bytes) - set(PROCESS_ROWS)
    if unknown:
        raise ValueError(f"unknown numastat -p rows: {sorted(unknown)}")
    for row_name, by_node in proc.per_node_bytes.items():
        stray = set(by_node) - set(nodes)
        if stray:
            raise ValueError(f"row {row_name} has nodes {sorted(stray)} not in {sorted(nodes)}")


def _process_table(nodes: Sequence[int], labels: Sequence[str], opts: NumastatOptions, sub: bool) -> Table:
    n = len(nodes)
    columns = [Column(_CELL_WIDTH, right=False)]
    columns += [Column(_CELL_WIDTH, right=True, decimals=opts.decimals) for _ in range(n + 1)]
    rows: list[list[Cell]] = [[None if sub else "PID"] + [f"Node {x}" for x in nodes] + ["Total"],
                               [None if sub else RULE] + [RULE] * (n + 1)]
    rows += [[label] + [0.0] * (n + 1) for label in labels]
    rows += [[None] + [0.0] * (n + 1), ["Total"] + [0.0] * (n + 1)]
    return Table(columns, rows, header_rows=2)


def _add_process(table: Table, proc: ProcessMemory, nodes: Sequence[int], row_of: Mapping[str, int]) -> None:
    """numastat.c's reading of numa_maps: each value into its row, the Total column and row."""
    total_row, total_col = len(table.rows) - 1, len(nodes) + 1
    for name in PROCESS_ROWS:
        by_node = proc.per_node_bytes.get(name, {})
        for col, node in enumerate(nodes, start=1):
            if node not in by_node:
                continue
            value = by_node[node] / MEGABYTE
            for r, c in ((row_of[name], col), (row_of[name], total_col), (total_row, col), (total_row, total_col)):
                table.rows[r][c] += value  # type: ignore[operator]


def _show_process_table(table: Table, nodes: Sequence[int], data_rows: int, opts: NumastatOptions,
                        width: int | None) -> str:
    if opts.compress:
        table.compress()
    else:
        table.auto_width(0, 16, 24)  # a wider label column, so command names are not cut short
    rule = len(table.rows) - 2
    table.always_rows.add(rule)
    table.rows[rule] = [RULE] * len(table.columns)
    if opts.sort:
        table.sort(2, 2 + data_rows - 1, _sort_column(nodes, opts))
    return table.display(width, opts.show_zero)


def format_numastat_processes(procs: Sequence[ProcessMemory], nodes: Sequence[int], *, width: int | None = None,
                              opts: NumastatOptions = DEFAULT_OPTIONS) -> str:
    """``numastat -p PID...``: ``procs`` in the order numastat lists them (ascending PID).

    One process, or ``-v``: a Huge/Heap/Stack/Private table per process, each after the title
    ``Per-node process memory usage (in MBs) for PID <pid> (<comm>)``.  Several processes: the
    title ``Per-node process memory usage (in MBs)`` and one table with a ``<pid> (<comm>)`` row
    per process.  ``nodes`` are the machine's node ids (the columns); values are MiB.
    """
    ordered = sorted(nodes)
    for proc in procs:
        _check_process(proc, ordered)
    if not procs:
        return ""
    sub = opts.verbose or len(procs) == 1
    n = len(ordered)
    if sub:
        table = _process_table(ordered, PROCESS_ROWS, opts, sub=True)
        row_of = {name: 2 + i for i, name in enumerate(PROCESS_ROWS)}
        out = []
        for proc in procs:
            out.append(f"\nPer-node process memory usage (in MBs) for PID {proc.pid} ({proc.comm})\n")
            for r in range(2, len(table.rows)):  # numastat.c zero_table_data(): flags and order stay
                table.rows[r][1:] = [0.0] * (n + 1)
            _add_process(table, proc, ordered, row_of)
            out.append(_show_process_table(table, ordered, len(PROCESS_ROWS), opts, width))
        return "".join(out)
    # numastat.c: snprintf into 64 bytes
    table = _process_table(ordered, [f"{p.pid} ({p.comm})"[:63] for p in procs], opts, sub=False)
    for i, proc in enumerate(procs):
        _add_process(table, proc, ordered, dict.fromkeys(PROCESS_ROWS, 2 + i))
    text = _show_process_table(table, ordered, len(procs), opts, width)
    return "\nPer-node process memory usage (in MBs)\n" + text


def format_numastat_process(
    pid: int,
    comm: str,
    per_node_bytes: Mapping[str, Mapping[int, int]],
    nodes: Sequence[int],
    *,
    width: int | None = None,
    opts: NumastatOptions = DEFAULT_OPTIONS,
) -> str:
    """``numastat -p PID`` for one process: Huge, Heap, Stack, Private, rule, Total.

    ``per_node_bytes`` maps a row name (``Huge``, ``Heap``, ``Stack``, ``Private``)
    to {node id: resident bytes}; absent rows and nodes are 0.  ``nodes`` are the
    machine's node ids (the columns).  Values are MiB with two decimals.
    """
    return format_numastat_processes([ProcessMemory(pid, comm, per_node_bytes)], nodes, width=width, opts=opts)


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
