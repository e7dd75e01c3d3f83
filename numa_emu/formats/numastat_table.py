"""numastat.c's table engine, shared by every numastat(8) layout in numa_emu.formats.numastat.

Place in numa-emu: the formatters in ``numastat.py`` fill a ``Table`` and print it.  It follows
numactl's ``numastat.c`` (v2.0.19) ``vtab``: ``fmt_cell_data`` + ``display_justified_cell``
(format, truncate to the column, justify), ``auto_set_col_width`` (``-c``),
``sort_rows_descending_by_col`` (``-s``) and ``display_table`` (rows and columns with no data,
or only zeros under ``-z``, left out; data columns folded to the screen width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_NO_FOLD_WIDTH = 10_000_000  # numastat.c get_screen_width() when stdout is not a tty


@dataclass(frozen=True)
class Rule:
    """A cell of repeated dashes, one narrower than its column (numastat.c REPCHAR)."""


RULE = Rule()
Cell = str | float | Rule | None


@dataclass
class Column:
    width: int
    right: bool
    decimals: int = 0


def _cell_string(cell: Cell, col: Column) -> str:
    """numastat.c fmt_cell_data() before truncation."""
    if cell is None:
        return ""
    if isinstance(cell, Rule):
        return "-" * (col.width - 1)
    if isinstance(cell, float):
        return f"{cell:.{col.decimals}f}"
    return cell


def _cell_text(cell: Cell, col: Column) -> str:
    """numastat.c fmt_cell_data + display_justified_cell: format, truncate, justify."""
    text = _cell_string(cell, col)[: col.width]
    return text.rjust(col.width) if col.right else text.ljust(col.width)


def _non_zero(cell: Cell) -> bool:
    """numastat.c tests the cell's 64 bits: only +0.0 is zero (a string is never zero)."""
    if isinstance(cell, float):
        return cell != 0.0 or math.copysign(1.0, cell) < 0
    return True


def _screen_width(width: int | None) -> int:
    """numastat.c get_screen_width(): None means a pipe (never fold)."""
    if width is None:
        return _NO_FOLD_WIDTH
    if width < 1 or width > _NO_FOLD_WIDTH:
        width = 80
    return max(width, 32)


class Table:
    """numastat.c's vtab: one header column, ``header_rows`` header rows, data cells below.

    The row order (``-s``), the always-shown rows and the seen / non-zero flags live with the
    table, so a table reused for several PIDs (``-v``) keeps them, as numastat.c's does.
    """

    def __init__(self, columns: list[Column], rows: list[list[Cell]], header_rows: int) -> None:
        self.columns = columns
        self.rows = rows
        self.header_rows = header_rows
        self.order = list(range(len(rows)))
        self.always_rows: set[int] = set()
        self.seen_rows: set[int] = set()
        self.nonzero_rows: set[int] = set()
        self.seen_cols: set[int] = set()
        self.nonzero_cols: set[int] = set()

    def auto_width(self, col: int, low: int, high: int) -> None:
        """numastat.c auto_set_col_width(): widest cell of every row (rules excepted) + 1 gutter."""
        width = low
        for row in self.rows:
            if not isinstance(row[col], Rule):
                width = max(width, len(_cell_string(row[col], self.columns[col])[:high]))
        self.columns[col].width = min(width + 1, high)

    def compress(self) -> None:
        for col in range(len(self.columns)):
            self.auto_width(col, 4, 16)

    def sort(self, first: int, last: int, col: int) -> None:
        """numastat.c sort_rows_descending_by_col(): selection sort by swaps (ties are not stable).
        An empty cell counts as 0 (its bits are zero)."""

        def value(row: int) -> float:
            cell = self.rows[row][col]
            return cell if isinstance(cell, float) else 0.0

        for ix in range(first, last + 1):
            biggest = ix
            for iy in range(ix + 1, last + 1):
                if value(self.order[biggest]) < value(self.order[iy]):
                    biggest = iy
            self.order[ix], self.order[biggest] = self.order[biggest], self.order[ix]

    def _mark(self) -> tuple[bool, bool]:
        seen_any = nonzero_any = False
        for r in range(self.header_rows, len(self.rows)):
            for c in range(1, len(self.columns)):
                cell = self.rows[r][c]
                if cell is None or isinstance(cell, Rule):
                    continue
                seen_any = True
                self.seen_rows.add(r)
                self.seen_cols.add(c)
                if _non_zero(cell):
                    nonzero_any = True
                    self.nonzero_rows.add(r)
                    self.nonzero_cols.add(c)
        return seen_any, nonzero_any

    def display(self, width: int | None, show_zero: bool) -> str:
        """numastat.c display_table(..., show_unseen 0, 0, show_zero, show_zero): hidden rows and
        columns skipped, data columns folded to the screen width, sections after the first
        preceded by a blank line."""
        seen_any, nonzero_any = self._mark()
        if not seen_any:
            return "Table has no data.\n"
        if not nonzero_any and not show_zero:
            return "Table has no non-zero data.\n"

        def col_shown(c: int) -> bool:
            return c in self.seen_cols and (show_zero or c in self.nonzero_cols)

        def row_shown(r: int) -> bool:
            if r < self.header_rows or r in self.always_rows:
                return True
            return r in self.seen_rows and (show_zero or r in self.nonzero_rows)

        screen = _screen_width(width)
        columns = self.columns
        out: list[str] = []
        col, data_col = -1, 1
        while data_col < len(columns):
            if not col_shown(data_col):
                data_col += 1
                continue
            if col > 0:
                out.append("\n")
            for r in self.order:
                if not row_shown(r):
                    continue
                row = self.rows[r]
                parts = [_cell_text(row[0], columns[0])]
                used = columns[0].width
                col = data_col
                while True:
                    if col_shown(col):
                        parts.append(_cell_text(row[col], columns[col]))
                        used += columns[col].width
                    col += 1
                    if col >= len(columns) or used + columns[col].width > screen:
                        break
                out.append("".join(parts) + "\n")
            data_col = col
        return "".join(out)
