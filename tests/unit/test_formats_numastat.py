"""numastat formats: byte-exact layouts (compatibility, -n, -m, -p; -c, -z, -s, -v) and the parsers of
LTP and numactl's test/regress."""

from __future__ import annotations

import re

import pytest

from numa_emu.formats.numastat import (
    NUMASTAT_FIELDS,
    NumastatOptions,
    ProcessMemory,
    format_numastat_compat,
    format_numastat_mb,
    format_numastat_meminfo,
    format_numastat_process,
    format_numastat_processes,
    node_meminfo,
    numastat_json,
)

# docs/linux-semantics.md#numastat: `numastat` on a 2x E5-2695 v4 (bokotomo/RooflineMeasurement README.md).
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
    """LTP numa01.sh (docs/linux-semantics.md#numastat): field index of `Node <n>` in line 3 split on
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


# ---- -c, -z, -s[NODE], -m, -v: expectations written from numastat.c's rules ----------------------

MB_COUNTERS = {0: {"numa_hit": 256, "local_node": 256}, 1: {"numa_hit": 128, "numa_miss": 3, "other_node": 131}}
MB_TITLE = "\nPer-node numastat info (in MBs):\n"
MB_HEADER = (
    "                          Node 0          Node 1           Total\n"
    "                 --------------- --------------- ---------------\n"
)
MB_ROWS = {  # the rows of test_mb_layout_byte_for_byte, by name
    "Numa_Hit": "Numa_Hit                    1.00            0.50            1.50\n",
    "Numa_Miss": "Numa_Miss                   0.00            0.01            0.01\n",
    "Numa_Foreign": "Numa_Foreign                0.00            0.00            0.00\n",
    "Interleave_Hit": "Interleave_Hit              0.00            0.00            0.00\n",
    "Local_Node": "Local_Node                  1.00            0.00            1.00\n",
    "Other_Node": "Other_Node                  0.00            0.51            0.51\n",
}


def _mb(*rows: str) -> str:
    return MB_TITLE + MB_HEADER + "".join(MB_ROWS[r] for r in rows)


def test_c_compresses_every_column_to_its_widest_cell_plus_one() -> None:
    # auto_set_col_width(col, 4, 16): widest formatted cell (rules skipped) + 1 gutter; "%.0f" values
    # (0.5 prints "0": round half to even); label column: "Interleave_Hit" (14) + 1.
    expected = (
        MB_TITLE + "               " + " Node 0" + " Node 1" + " Total\n"
        "               " + " ------" + " ------" + " -----\n"
        "Numa_Hit       " + "      1" + "      0" + "     2\n"
        "Numa_Miss      " + "      0" + "      0" + "     0\n"
        "Numa_Foreign   " + "      0" + "      0" + "     0\n"
        "Interleave_Hit " + "      0" + "      0" + "     0\n"
        "Local_Node     " + "      1" + "      0" + "     1\n"
        "Other_Node     " + "      0" + "      1" + "     1\n"
    )
    assert format_numastat_mb(MB_COUNTERS, 4096, opts=NumastatOptions(compress=True)) == expected


def test_c_minimum_width_is_four_plus_gutter() -> None:
    # a one-node table whose cells are all short: "Node 0" (6) wins for the node column, and the
    # Total column is max(4, len("Total")) + 1 = 6 wide.
    text = format_numastat_mb({0: {}}, 4096, opts=NumastatOptions(compress=True))
    assert text.splitlines()[2] == " " * 15 + " Node 0" + " Total"


def test_z_hides_all_zero_rows_but_not_rows_that_print_zero() -> None:
    # display_table(show_zero_rows=0): a row shows if any data cell is non-zero as a double;
    # Numa_Miss prints 0.00 on node 0 but 0.01 on node 1, so it stays.
    expected = _mb("Numa_Hit", "Numa_Miss", "Local_Node", "Other_Node")
    assert format_numastat_mb(MB_COUNTERS, 4096, opts=NumastatOptions(show_zero=False)) == expected


def test_z_hides_all_zero_columns_with_their_header_and_rule() -> None:
    counters = {0: {"numa_hit": 256}, 1: {}, 2: {"numa_hit": 512}}
    expected = (
        MB_TITLE + " " * 16 + "Node 0".rjust(16) + "Node 2".rjust(16) + "Total".rjust(16) + "\n"
        + " " * 16 + " ---------------" * 3 + "\n"
        "Numa_Hit" + " " * 8 + "1.00".rjust(16) + "2.00".rjust(16) + "3.00".rjust(16) + "\n"
    )
    assert format_numastat_mb(counters, 4096, opts=NumastatOptions(show_zero=False)) == expected


def test_z_on_an_all_zero_table() -> None:
    # numastat.c: no non-zero data and -z: one line instead of the table (the title stays)
    text = format_numastat_mb({0: {}, 1: {}}, 4096, opts=NumastatOptions(show_zero=False))
    assert text == MB_TITLE + "Table has no non-zero data.\n"


def test_s_sorts_by_total_with_numastats_unstable_selection_sort() -> None:
    # Totals 1.5, 0.0117, 0, 0, 1.0, 0.5117: selection sort by swaps moves Interleave_Hit ahead of
    # Numa_Foreign (a tie), which a stable sort would not.
    expected = _mb("Numa_Hit", "Local_Node", "Other_Node", "Numa_Miss", "Interleave_Hit", "Numa_Foreign")
    assert format_numastat_mb(MB_COUNTERS, 4096, opts=NumastatOptions(sort=True)) == expected


def test_s_node_sorts_by_that_nodes_column_and_out_of_range_by_total() -> None:
    # -s0: node 0's values 1, 0, 0, 0, 1, 0 (Numa_Hit stays first: only a strictly bigger value moves)
    by_node0 = _mb("Numa_Hit", "Local_Node", "Numa_Foreign", "Interleave_Hit", "Numa_Miss", "Other_Node")
    assert format_numastat_mb(MB_COUNTERS, 4096, opts=NumastatOptions(sort=True, sort_node=0)) == by_node0
    # -s7 on two nodes: sort_table_node >= num_nodes sorts by Total
    assert format_numastat_mb(MB_COUNTERS, 4096, opts=NumastatOptions(sort=True, sort_node=7)) == \
        format_numastat_mb(MB_COUNTERS, 4096, opts=NumastatOptions(sort=True))


def test_c_z_s_together() -> None:
    # widths come from every row, hidden ones too; -z tests values, not the "0" that -c prints
    expected = (
        MB_TITLE + "               " + " Node 0" + " Node 1" + " Total\n"
        "               " + " ------" + " ------" + " -----\n"
        "Numa_Hit       " + "      1" + "      0" + "     2\n"
        "Local_Node     " + "      1" + "      0" + "     1\n"
        "Other_Node     " + "      0" + "      1" + "     1\n"
        "Numa_Miss      " + "      0" + "      0" + "     0\n"
    )
    opts = NumastatOptions(compress=True, show_zero=False, sort=True)
    assert format_numastat_mb(MB_COUNTERS, 4096, opts=opts) == expected


def test_node_meminfo_is_the_kernels_first_three_lines() -> None:
    # drivers/base/node.c node_read_meminfo(): "Node %d MemTotal:       %8lu kB\n", kB = pages * 4
    assert node_meminfo(1, 131072, 100000, 4096) == (
        "Node 1 MemTotal:         524288 kB\n"
        "Node 1 MemFree:          400000 kB\n"
        "Node 1 MemUsed:          124288 kB\n"
    )


def test_node_meminfo_adds_what_the_frames_hold_in_the_kernels_order() -> None:
    kinds = {"Shmem": 2, "AnonPages": 5, "FilePages": 3}
    assert node_meminfo(0, 16, 8, 4096, kinds).splitlines()[3:] == [
        "Node 0 FilePages:            12 kB", "Node 0 AnonPages:            20 kB", "Node 0 Shmem:                 8 kB"]


M_TITLE = "\nPer-node system memory usage (in MBs):\n"


def test_m_shows_the_meminfo_rows_the_nodes_have() -> None:
    # 400000 kB = 390.625 MB -> "390.62", 124288 kB = 121.375 MB -> "121.38" (printf: half to even)
    meminfo = {0: node_meminfo(0, 131072, 100000, 4096), 1: node_meminfo(1, 131072, 131072, 4096)}
    expected = (
        M_TITLE + MB_HEADER
        + "MemTotal" + " " * 8 + "512.00".rjust(16) + "512.00".rjust(16) + "1024.00".rjust(16) + "\n"
        + "MemFree" + " " * 9 + "390.62".rjust(16) + "512.00".rjust(16) + "902.62".rjust(16) + "\n"
        + "MemUsed" + " " * 9 + "121.38".rjust(16) + "0.00".rjust(16) + "121.38".rjust(16) + "\n"
    )
    assert format_numastat_meminfo(meminfo) == expected


def test_m_rows_follow_numastats_list_and_unknown_tokens_are_reported() -> None:
    # rows in system_meminfo[] order whatever the file order; HugePages_* counts times the huge page
    # size; a name not in the list prints "Token ... not in hash table." before the table; a row one
    # node lacks is blank there but still totals the others.
    meminfo = {
        0: "Node 0 AnonPages:  2048 kB\nNode 0 SwapCached: 0 kB\nNode 0 MemTotal:  4096 kB\n"
           "Node 0 HugePages_Total:     2\n",
        1: "Node 1 MemTotal:  1024 kB\n",
    }
    expected = (
        M_TITLE + "Token SwapCached not in hash table.\n" + MB_HEADER
        + "MemTotal" + " " * 8 + "4.00".rjust(16) + "1.00".rjust(16) + "5.00".rjust(16) + "\n"
        + "AnonPages" + " " * 7 + "2.00".rjust(16) + " " * 16 + "2.00".rjust(16) + "\n"
        + "HugePages_Total" + " " + "4.00".rjust(16) + " " * 16 + "4.00".rjust(16) + "\n"
    )
    assert format_numastat_meminfo(meminfo, huge_page_size=2 << 20) == expected


def test_m_c_measures_the_label_column_over_rows_it_does_not_show() -> None:
    # auto_set_col_width() walks every row: "HugePages_Total" (15) + 1 = 16 though only 3 rows show
    meminfo = {0: node_meminfo(0, 256, 0, 4096)}
    lines = format_numastat_meminfo(meminfo, opts=NumastatOptions(compress=True)).splitlines()
    assert lines[2:] == [
        " " * 16 + " Node 0" + " Total",
        " " * 16 + " ------" + " -----",
        "MemTotal" + " " * 8 + "      1" + "     1",
        "MemFree" + " " * 9 + "      0" + "     0",
        "MemUsed" + " " * 9 + "      1" + "     1",
    ]


PROCESS_TITLE = "\nPer-node process memory usage (in MBs) for PID 4242 (support_numa)\n"


def test_p_c_compresses_the_process_table() -> None:
    # label column: "Private" (7) + 1; the rule row gets width - 1 dashes in every column
    expected = (
        PROCESS_TITLE
        + "        " + " Node 0" + " Node 1" + " Total\n"
        + "        " + " ------" + " ------" + " -----\n"
        + "Huge    " + "      0" + "      2" + "     2\n"
        + "Heap    " + "      0" + "      0" + "     0\n"
        + "Stack   " + "      0" + "      0" + "     0\n"
        + "Private " + "      0" + "      1" + "     1\n"
        + "------- " + " ------" + " ------" + " -----\n"
        + "Total   " + "      0" + "      3" + "     3\n"
    )
    opts = NumastatOptions(compress=True)
    assert format_numastat_process(4242, "support_numa", PROCESS_BYTES, [0, 1], opts=opts) == expected


def test_p_z_keeps_the_rule_and_drops_zero_rows_and_columns() -> None:
    # the rule above Total is ROW_FLAG_ALWAYS_SHOW; Huge/Heap/Stack and Node 0 are all zero
    expected = (
        "\nPer-node process memory usage (in MBs) for PID 7 (memhog)\n"
        + " " * 17 + "Node 1".rjust(16) + "Total".rjust(16) + "\n"
        + " " * 17 + " ---------------" * 2 + "\n"
        + "Private" + " " * 10 + "1.00".rjust(16) + "1.00".rjust(16) + "\n"
        + "-" * 16 + " " + " ---------------" * 2 + "\n"
        + "Total" + " " * 12 + "1.00".rjust(16) + "1.00".rjust(16) + "\n"
    )
    opts = NumastatOptions(show_zero=False)
    assert format_numastat_process(7, "memhog", {"Private": {1: 1 << 20}}, [0, 1], opts=opts) == expected
    empty = format_numastat_process(7, "memhog", {}, [0, 1], opts=opts)
    assert empty == "\nPer-node process memory usage (in MBs) for PID 7 (memhog)\nTable has no non-zero data.\n"


def test_p_s_sorts_the_category_rows_only() -> None:
    # totals Huge 2, Heap 0.25, Stack 0.13, Private 1.02: the rule and Total stay at the bottom
    lines = PROCESS_EXPECTED.splitlines(keepends=True)
    row = {line.split()[0]: line for line in lines[4:8]}
    expected = "".join(lines[:4] + [row["Huge"], row["Private"], row["Heap"], row["Stack"]] + lines[8:])
    opts = NumastatOptions(sort=True)
    assert format_numastat_process(4242, "support_numa", PROCESS_BYTES, [0, 1], opts=opts) == expected


TWO = [ProcessMemory(7, "a", {"Private": {0: 1 << 20}}), ProcessMemory(12, "bb", {"Heap": {1: 1 << 20},
                                                                                   "Private": {1: 1 << 20}})]


def test_several_pids_make_one_table_with_a_row_each() -> None:
    # num_pids > 1 without -v: title without a PID, "PID" and a rule in the label column,
    # one "<pid> (<comm>)" row per process (all its categories summed)
    expected = (
        "\nPer-node process memory usage (in MBs)\n"
        + "PID" + " " * 14 + "Node 0".rjust(16) + "Node 1".rjust(16) + "Total".rjust(16) + "\n"
        + "-" * 16 + " " + " ---------------" * 3 + "\n"
        + "7 (a)" + " " * 12 + "1.00".rjust(16) + "0.00".rjust(16) + "1.00".rjust(16) + "\n"
        + "12 (bb)" + " " * 10 + "0.00".rjust(16) + "2.00".rjust(16) + "2.00".rjust(16) + "\n"
        + "-" * 16 + " " + " ---------------" * 3 + "\n"
        + "Total" + " " * 12 + "1.00".rjust(16) + "2.00".rjust(16) + "3.00".rjust(16) + "\n"
    )
    assert format_numastat_processes(TWO, [0, 1]) == expected
    # -s: by Total, 12 (bb) first
    lines = expected.splitlines(keepends=True)
    sorted_text = "".join(lines[:4] + [lines[5], lines[4]] + lines[6:])
    assert format_numastat_processes(TWO, [0, 1], opts=NumastatOptions(sort=True)) == sorted_text


def test_several_pids_label_column_stops_at_24() -> None:
    # auto_set_col_width(table, 0, 16, 24): a long "<pid> (<comm>)" is cut to 24 with no gutter
    procs = [ProcessMemory(2, "b", {}), ProcessMemory(123456, "a-very-long-command-name", {})]
    lines = format_numastat_processes(procs, [0]).splitlines()
    assert lines[4] == "2 (b)" + " " * 19 + "0.00".rjust(16) + "0.00".rjust(16)
    assert lines[5] == "123456 (a-very-long-comm" + "0.00".rjust(16) + "0.00".rjust(16)


def test_v_gives_one_table_per_pid() -> None:
    text = format_numastat_processes(TWO, [0, 1], opts=NumastatOptions(verbose=True))
    assert text.count("\nPer-node process memory usage (in MBs) for PID ") == 2
    assert text.startswith("\nPer-node process memory usage (in MBs) for PID 7 (a)\n")
    first, second = text.split("\nPer-node process memory usage (in MBs) for PID 12 (bb)\n")
    assert second.splitlines()[3] == "Heap" + " " * 13 + "0.00".rjust(16) + "1.00".rjust(16) + "1.00".rjust(16)


def test_v_z_carries_rows_and_columns_seen_non_zero_to_the_next_pid() -> None:
    # numastat.c reuses one table and never clears ROW/COL_FLAG_NON_ZERO_DATA: after PID 12 (Heap and
    # Private on node 1), PID 7's table still shows the Heap row and the Node 1 column, as zeros.
    procs = [ProcessMemory(7, "a", {"Private": {0: 1 << 20}}), ProcessMemory(12, "bb", {"Heap": {1: 1 << 20}})]
    opts = NumastatOptions(verbose=True, show_zero=False)
    text = format_numastat_processes(list(reversed(procs)), [0, 1], opts=opts)
    second = text.split("for PID 7 (a)\n")[1].splitlines()
    assert second[0] == " " * 17 + "Node 0".rjust(16) + "Node 1".rjust(16) + "Total".rjust(16)
    assert [line.split()[0] for line in second[2:]] == ["Heap", "Private", "-" * 16, "Total"]
    assert second[2] == "Heap" + " " * 13 + "0.00".rjust(16) + "0.00".rjust(16) + "0.00".rjust(16)


def test_v_s_carries_the_row_order_to_the_next_pid() -> None:
    # PID 7 sorts [Huge, Heap, Stack, Private] into [Heap, Private, Stack, Huge]; PID 12's rows are
    # all zero, so the selection sort moves nothing and that order stays (a fresh table would keep
    # Huge, Heap, Stack, Private).
    procs = [ProcessMemory(7, "a", {"Heap": {0: 2 << 20}, "Private": {0: 1 << 20}}), ProcessMemory(12, "bb", {})]
    text = format_numastat_processes(procs, [0], opts=NumastatOptions(verbose=True, sort=True))
    second = text.split("for PID 12 (bb)\n")[1].splitlines()
    assert [line.split()[0] for line in second[2:6]] == ["Heap", "Private", "Stack", "Huge"]
