"""numastat formats: byte-exact layouts and the parsers of LTP and numactl's test/regress."""

from __future__ import annotations

import re

import pytest

from numa_emu.formats.numastat import (
    NUMASTAT_FIELDS,
    format_numastat_compat,
    format_numastat_mb,
    format_numastat_process,
    numastat_json,
)

# REFERENCE b6: `numastat` on a 2x E5-2695 v4 (bokotomo/RooflineMeasurement README.md).
B6_COUNTERS = {
    0: {"numa_hit": 67798958, "numa_miss": 0, "numa_foreign": 0, "interleave_hit": 5451975,
        "local_node": 67791294, "other_node": 7664},
    1: {"numa_hit": 57342158, "numa_miss": 0, "numa_foreign": 0, "interleave_hit": 5605664,
        "local_node": 51731637, "other_node": 5610521},
}  # fmt: skip
B6_OUTPUT = (
    "                           node0           node1\n"
    "numa_hit                67798958        57342158\n"
    "numa_miss                      0               0\n"
    "numa_foreign                   0               0\n"
    "interleave_hit           5451975         5605664\n"
    "local_node              67791294        51731637\n"
    "other_node                  7664         5610521\n"
)


def test_compat_matches_reference_example_byte_for_byte() -> None:
    assert format_numastat_compat(B6_COUNTERS) == B6_OUTPUT


def test_compat_never_folds_and_has_no_total_column() -> None:
    counters = {n: {f: n for f in NUMASTAT_FIELDS} for n in range(8)}
    lines = format_numastat_compat(counters).splitlines()
    assert len(lines) == 7  # one header and six rows, however many nodes
    assert lines[0].split() == [f"node{n}" for n in range(8)]
    assert all(len(line) == 16 * 9 for line in lines)
    assert "Total" not in lines[0]


def test_compat_sparse_node_ids_and_missing_counters() -> None:
    text = format_numastat_compat({2: {"numa_hit": 5}, 0: {}})
    assert text.splitlines()[0] == " " * 27 + "node0" + " " * 11 + "node2"
    assert text.splitlines()[1] == "numa_hit" + " " * 23 + "0" + " " * 15 + "5"


def _regress_nstat(output: str, stat: str, node: int) -> list[str]:
    """numactl test/regress nstat(): column of `node<N>` in line 1, value from `grep stat`."""
    header = output.splitlines()[0].split()
    index = header.index(f"node{node}") + 1  # awk's $i is 1-based
    return [line.split()[index] for line in output.splitlines() if stat in line]


def test_regress_nstat_parser_reads_each_node() -> None:
    assert _regress_nstat(B6_OUTPUT, "interleave_hit", 1) == ["5605664"]
    assert _regress_nstat(B6_OUTPUT, "numa_hit", 0) == ["67798958"]
    assert _regress_nstat(B6_OUTPUT, "other_node", 1) == ["5610521"]


def test_ltp_legacy_line_number_parser() -> None:
    """LTP-legacy: numa_hit is line 2 ... other_node line 7, $1 is the name, $2 node 0."""
    lines = B6_OUTPUT.splitlines()
    for number, field in enumerate(NUMASTAT_FIELDS, start=2):
        words = lines[number - 1].split()
        assert words[0] == field
        assert int(words[1]) == B6_COUNTERS[0][field]


def test_mb_layout_byte_for_byte() -> None:
    counters = {0: {"numa_hit": 256, "local_node": 256}, 1: {"numa_hit": 128, "numa_miss": 3, "other_node": 131}}
    expected = (
        "\n"
        "Per-node numastat info (in MBs):\n"
        "                          Node 0          Node 1           Total\n"
        "                 --------------- --------------- ---------------\n"
        "Numa_Hit                    1.00            0.50            1.50\n"
        "Numa_Miss                   0.00            0.01            0.01\n"
        "Numa_Foreign                0.00            0.00            0.00\n"
        "Interleave_Hit              0.00            0.00            0.00\n"
        "Local_Node                  1.00            0.00            1.00\n"
        "Other_Node                  0.00            0.51            0.51\n"
    )
    assert format_numastat_mb(counters, 4096) == expected


def test_mb_folds_only_for_a_screen_width() -> None:
    counters = {n: {"numa_hit": 256 * (n + 1)} for n in range(4)}
    unfolded = format_numastat_mb(counters, 4096).splitlines()
    assert unfolded[2].split() == ["Node", "0", "Node", "1", "Node", "2", "Node", "3", "Total"]
    folded = format_numastat_mb(counters, 4096, width=80).splitlines()
    # 16 + 4 * 16 = 80 columns fit; Total moves to a second section after a blank line.
    assert folded[2] == " " * 16 + "".join(f"Node {n}".rjust(16) for n in range(4))
    assert folded[10] == ""
    assert folded[11] == " " * 16 + "Total".rjust(16)
    assert folded[13] == "Numa_Hit" + " " * 8 + "10.00".rjust(16)
    assert len(folded) == 2 + 8 + 1 + 8


def test_mb_width_is_clamped_like_numastat() -> None:
    counters = {0: {"numa_hit": 1}}
    assert format_numastat_mb(counters, 4096, width=5) == format_numastat_mb(counters, 4096, width=32)
    assert format_numastat_mb(counters, 4096, width=0) == format_numastat_mb(counters, 4096, width=80)


# Stack 132 KiB = 0.12890625 MiB, Private 16 KiB = 0.015625 MiB: node 0 totals 0.14453125.
PROCESS_EXPECTED = (
    "\n"
    "Per-node process memory usage (in MBs) for PID 4242 (support_numa)\n"
    "                           Node 0          Node 1           Total\n"
    "                  --------------- --------------- ---------------\n"
    "Huge                         0.00            2.00            2.00\n"
    "Heap                         0.00            0.25            0.25\n"
    "Stack                        0.13            0.00            0.13\n"
    "Private                      0.02            1.00            1.02\n"
    "----------------  --------------- --------------- ---------------\n"
    "Total                        0.14            3.25            3.39\n"
)
PROCESS_BYTES = {
    "Huge": {1: 2 << 20},
    "Heap": {1: 256 << 10},
    "Stack": {0: 132 << 10},
    "Private": {0: 16 << 10, 1: 1 << 20},
}


def test_process_layout_byte_for_byte() -> None:
    assert format_numastat_process(4242, "support_numa", PROCESS_BYTES, [0, 1]) == PROCESS_EXPECTED


def _ltp_numa01_value(output: str, node: int) -> str:
    """LTP numa01.sh (REFERENCE f2): field index of `Node <n>` in line 3 split on
    [[:space:]][[:space:]]+, then that field of the ^Total row split awk's default way."""
    lines = output.split("\n")
    header_fields = re.split(r"[ \t\n][ \t\n]+", lines[2])
    index = header_fields.index(f"Node {node}")  # 0-based: field 1 is the empty one
    total_row = next(line for line in lines if line.startswith("Total"))
    return total_row.split()[index]


def _ltp_numa01_legacy_value(output: str, node: int) -> str:
    """Older LTP numa01.sh: `awk '/^Total/ {print $(node+2)}'`."""
    total_row = next(line for line in output.split("\n") if line.startswith("Total"))
    return total_row.split()[node + 2 - 1]


def test_process_output_parses_like_ltp_numa01() -> None:
    assert _ltp_numa01_value(PROCESS_EXPECTED, 0) == "0.14"
    assert _ltp_numa01_value(PROCESS_EXPECTED, 1) == "3.25"
    assert _ltp_numa01_legacy_value(PROCESS_EXPECTED, 1) == "3.25"
    assert PROCESS_EXPECTED.split("\n")[0] == ""  # line 1 is blank


def test_process_sparse_nodes_parse_by_header_index() -> None:
    text = format_numastat_process(7, "memhog", {"Private": {3: 5 << 20}}, [0, 3])
    assert _ltp_numa01_value(text, 3) == "5.00"
    assert _ltp_numa01_value(text, 0) == "0.00"


def test_process_rejects_unknown_rows_and_nodes() -> None:
    with pytest.raises(ValueError):
        format_numastat_process(1, "x", {"Shared": {0: 1}}, [0])
    with pytest.raises(ValueError):
        format_numastat_process(1, "x", {"Heap": {5: 1}}, [0])


def test_no_nodes_is_an_error() -> None:
    with pytest.raises(ValueError):
        format_numastat_compat({})


def test_json_shape() -> None:
    data = numastat_json({1: {"numa_hit": 3}, 0: B6_COUNTERS[0]})
    assert list(data) == ["nodes"]
    assert list(data["nodes"]) == ["0", "1"]
    assert list(data["nodes"]["1"]) == list(NUMASTAT_FIELDS)
    assert data["nodes"]["1"] == {"numa_hit": 3, "numa_miss": 0, "numa_foreign": 0,
                                  "interleave_hit": 0, "local_node": 0, "other_node": 0}  # fmt: skip
    assert data["nodes"]["0"]["other_node"] == 7664
