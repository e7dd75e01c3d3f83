"""`numa-emu top`'s frame at 80x24, through rich with a fixed console size: short headers, every
number whole (never cut, never an ellipsis), 8 nodes and 3 tasks within 24 lines."""
from __future__ import annotations

import io

from rich.console import Console

from numa_emu import topview
from numa_emu.topview import Snapshot

FRAMES = 4_194_304  # a 16 GiB node of 4 KiB pages


def _snapshot(t_s: float, k: int) -> Snapshot:
    stats = {n: {"frames_total": FRAMES, "frames_free": FRAMES - 24_691 * k - n,
                 "vmstat": {"nr_repl_pages": 2469 * k, "pgmigrate_success": 9877 * k, "pgfault": 123_457 * k},
                 "numastat": {"numa_hit": 1_000_000 * k, "numa_miss": 77_778 * k, "local_node": 5, "other_node": 3},
                 "tasks": {str(1000 + n): {"clock_ns": 247_000_000, "faults": 1_234_567,
                                           "pages": {"0": 123_456, "1": 123_456}} for n in range(3)}}
             for n in range(8)}
    tasks = [{"task_id": 1000 + n, "comm": "chase", "cpu": 127, "node": 7, "cpuset": "/"} for n in range(3)]
    return Snapshot(t_s=t_s, cluster="web", state="up", node_states={n: "suspect" for n in range(8)},
                    stats=stats, tasks=tasks)


def _render(width: int, height: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, highlight=False, color_system=None)
    console.print(topview.render(_snapshot(2.0, 2), _snapshot(1.0, 1), 1.0))
    return [line.rstrip() for line in out.getvalue().splitlines()]


def test_the_frame_fits_80_by_24_with_every_number_whole():
    lines = _render(80, 24)
    assert len(lines) <= 24 and max(map(len, lines)) <= 80
    assert "…" not in "\n".join(lines)
    top = lines.index("nodes")
    assert lines[top + 1].split() == list(topview.NODE_COLUMNS)
    for n, line in enumerate(lines[top + 3:top + 11]):  # the node rows, one line each
        assert line.split() == [str(n), "suspect", str(24_691 * 2 + n), str(FRAMES - 24_691 * 2 - n), "1.2", "4938",
                                "9877", "1000000", "77778", "123457", "37.5"]
    task_rows = [line.split() for line in lines if line.startswith("100")]
    assert task_rows == [[str(1000 + n), "chase", "127", "7", "247", "ms", "1234567", "246912", "N0=123456",
                          "N1=123456", "0.0"] for n in range(3)]


def test_a_number_too_wide_folds_rather_than_loses_digits():
    narrow, wide = _render(50, 80), _render(200, 80)
    assert max(map(len, narrow)) <= 50 and max(map(len, wide)) > 100
    assert "…" not in "\n".join(narrow)

    def digits(lines: list[str]) -> list[str]:
        return sorted(ch for line in lines for ch in line if ch.isdigit())

    assert digits(narrow) == digits(wide)  # every digit is still there, some on a second line
