"""vmstat, numactl --hardware/--show, fallback orders and numa_maps: exact text and real parsers."""

from __future__ import annotations

import re
from pathlib import Path
from dataclasses import replace
from typing import Any

import pytest

from numa_emu.formats.hardware import (
    HardwareNode,
    ShowState,
    format_cpulist,
    format_fallback,
    format_hardware,
    format_show,
)
from numa_emu.formats.numa_maps import format_numa_maps_line, mpol_to_str
from numa_emu.cli.vmstat import KERNEL_NAMES
from numa_emu.formats.vmstat import ORDER, format_vmstat, vmstat_from_numastat
from numa_emu.protocol.counters import NODE_EVENTS

# ---------------------------------------------------------------- vmstat


def test_vmstat_kernel_order_then_unknown_names_sorted() -> None:
    values = {"pgfault": 7, "zz_emu": 1, "numa_hit": 3, "nr_free_pages": 100, "aa_emu": 2, "pgfree": 5}
    assert format_vmstat(values) == ("nr_free_pages 100\nnuma_hit 3\npgfree 5\npgfault 7\naa_emu 2\nzz_emu 1\n")


def test_vmstat_order_list_starts_like_the_kernel() -> None:
    assert ORDER[0] == "nr_free_pages"
    numa = ["numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other"]
    start = ORDER.index("numa_hit")
    assert list(ORDER[start : start + 6]) == numa
    assert ORDER.index("pgalloc_normal") < ORDER.index("pgfree") < ORDER.index("pgfault")
    assert ORDER.index("pgreplicated") < ORDER.index("pgreplicazap") < ORDER.index("pgreplicazap_reclaim")
    assert ORDER.index("pgsteal_kswapd") < ORDER.index("pgsteal_direct") < ORDER.index("pgscan_kswapd") \
        < ORDER.index("pgscan_direct")
    assert len(set(ORDER)) == len(ORDER)


def test_vmstat_kernel_names_then_the_2007_names_then_ours() -> None:
    assert ORDER.index("nr_tlb_local_flush_one") + 1 == ORDER.index("nr_repl_pages")
    assert ORDER[ORDER.index("nr_repl_pages"):ORDER.index("nr_repl_pages") + 4] == (
        "nr_repl_pages", "pgreplicated", "pgreplicazap", "pgreplicazap_write")
    assert format_vmstat({"pgreplicated": 0, "pgmigrate_success": 0, "repl_hits": 0}) == (
        "pgmigrate_success 0\npgreplicated 0\nrepl_hits 0\n")


def test_every_counter_a_node_bumps_is_kept_from_the_start_and_printed_in_order() -> None:
    """A node counts only names of NODE_EVENTS (zero from the start, so vmstat lists them on a
    fresh cluster), and each has its place in ORDER (none falls to the alphabetical tail)."""
    bumped = set()
    for path in (Path(__file__).parents[2] / "nodes").glob("*.py"):
        bumped |= set(re.findall(r'events\[(f?"[a-z_{}]+")\]', path.read_text()))
    assert bumped, "no counter found in nodes/*.py"
    for name in bumped:
        if name.startswith("f"):
            prefix = name[2:name.index("{")]
            assert any(event.startswith(prefix) for event in NODE_EVENTS), name
        else:
            assert name.strip('"') in NODE_EVENTS, name
    assert not {KERNEL_NAMES.get(n, n) for n in NODE_EVENTS} - set(ORDER)


def test_vmstat_custom_order_and_negative_values() -> None:
    assert format_vmstat({"b": 1, "a": 2}, order=["b", "a"]) == "b 1\na 2\n"
    with pytest.raises(ValueError):
        format_vmstat({"numa_hit": -1})


def test_vmstat_from_numastat_renames_and_sums() -> None:
    per_node = {
        0: {"numa_hit": 10, "numa_miss": 1, "numa_foreign": 2, "interleave_hit": 3, "local_node": 9, "other_node": 2},
        1: {"numa_hit": 5, "numa_miss": 2, "numa_foreign": 1, "interleave_hit": 1, "local_node": 7},
    }
    assert vmstat_from_numastat(per_node) == {
        "numa_hit": 15, "numa_miss": 3, "numa_foreign": 3,
        "numa_interleave": 4, "numa_local": 16, "numa_other": 2,
    }  # fmt: skip
    assert format_vmstat(vmstat_from_numastat(per_node)).splitlines()[3] == "numa_interleave 4"


# ---------------------------------------------------------------- numactl --hardware

MiB = 1 << 20
F3_NODES: list[HardwareNode] = [
    {"id": 0, "cpus": [0, 1, 2, 3], "size_bytes": 2048 * MiB, "free_bytes": 1900 * MiB + 12345},
    {"id": 1, "cpus": [4, 5, 6, 7], "size_bytes": 2048 * MiB, "free_bytes": 1950 * MiB},
]
F3_DISTANCES = [[10, 20], [20, 10]]
F3_OLD = (
    "available: 2 nodes (0-1)\n"
    "node 0 cpus: 0 1 2 3\n"
    "node 0 size: 2048 MB\n"
    "node 0 free: 1900 MB\n"
    "node 1 cpus: 4 5 6 7\n"
    "node 1 size: 2048 MB\n"
    "node 1 free: 1950 MB\n"
    "node distances:\n"
    "node   0   1 \n"
    "  0:  10  20 \n"
    "  1:  20  10 \n"
)


def test_hardware_v2_0_18_layout_byte_for_byte() -> None:
    assert format_hardware(F3_NODES, F3_DISTANCES) == F3_OLD


def test_hardware_v2_0_19_wide_layout() -> None:
    text = format_hardware(F3_NODES, F3_DISTANCES, wide=True)
    assert text.endswith("node distances:\nnode     0    1 \n   0:   10   20 \n   1:   20   10 \n")
    assert text.startswith(F3_OLD[: F3_OLD.index("node distances")])


def _awk(line: str) -> list[str]:
    return line.split()


def test_hardware_ltp_numa01_test7_parser() -> None:
    first = _awk(F3_OLD.splitlines()[0])
    assert first[0] == "available:" and first[2] == "nodes" and first[1] == "2"


@pytest.mark.parametrize("wide", [False, True])
def test_hardware_regress_probe_hardware_parser(wide: bool) -> None:
    nodes: list[HardwareNode] = [
        {"id": 0, "cpus": [0, 1], "size_bytes": 512 * MiB, "free_bytes": 400 * MiB},
        {"id": 2, "cpus": [], "size_bytes": 512 * MiB, "free_bytes": 300 * MiB},
        {"id": 3, "cpus": [2, 3], "size_bytes": 512 * MiB, "free_bytes": 200 * MiB},
    ]
    text = format_hardware(nodes, [[10, 21, 21], [21, 10, 16], [21, 16, 10]], wide=wide)
    lines = text.splitlines()
    assert [_awk(line)[1] for line in lines if line.startswith("available")] == ["3"]
    nlist = _awk([line for line in lines if line.startswith("node")][-1])[1:]
    assert nlist == ["0", "2", "3"]
    free = {n: _awk(next(line for line in lines if f" {n} free" in line))[3] for n in nlist}
    assert free == {"0": "400", "2": "300", "3": "200"}


def test_hardware_checktopology_and_preproc_parsers() -> None:
    lines = F3_OLD.splitlines()
    assert sum(1 for line in lines if re.search(r"node.*size", line)) == 2
    cpu_words = [re.sub(r"node.*cpus:", "", line).split() for line in lines if "cpus" in line]
    assert sum(len(words) for words in cpu_words) == 8
    # autonuma preproc.awk: `node N cpus: ...` fields 4..NF are the CPUs.
    assert [_awk(line)[3:] for line in lines if re.match(r"node \d+ cpus:", line)][1] == ["4", "5", "6", "7"]


def test_hardware_sparse_cpuless_unknown_size_and_no_distances() -> None:
    nodes: list[HardwareNode] = [
        {"id": 3, "cpus": [5, 4], "size_bytes": None, "free_bytes": -1},
        {"id": 0, "cpus": [0], "size_bytes": 1 * MiB - 1, "free_bytes": 0},
        {"id": 2, "cpus": [], "size_bytes": 3 * MiB, "free_bytes": 2 * MiB},
    ]
    assert format_hardware(nodes, None) == (
        "available: 3 nodes (0,2-3)\n"
        "node 0 cpus: 0\nnode 0 size: 0 MB\nnode 0 free: 0 MB\n"
        "node 2 cpus:\nnode 2 size: 3 MB\nnode 2 free: 2 MB\n"
        "node 3 cpus: 4 5\nnode 3 size: <not available>\nnode 3 free: <not available>\n"
        "No distance information available.\n"
    )


def test_hardware_cpu_compress_and_errors() -> None:
    nodes: list[HardwareNode] = [
        {"id": 0, "cpus": list(range(18)) + list(range(36, 54)), "size_bytes": 0, "free_bytes": 0},
        {"id": 1, "cpus": [], "size_bytes": 0, "free_bytes": 0},
    ]
    text = format_hardware(nodes, [[10, 21], [21, 10]], cpu_compress=True)
    # numactl.c print_node_cpus(): "," before each later range, each range after a space.
    assert text.splitlines()[1] == "node 0 cpus: 0-17, 36-53 (36)"
    assert text.splitlines()[4] == "node 1 cpus: (0)"
    with pytest.raises(ValueError):
        format_hardware([], None)
    with pytest.raises(ValueError):
        format_hardware(nodes, [[10]])


def test_cpulist_format() -> None:
    assert format_cpulist([5, 0, 1, 2, 3, 8, 9]) == "0-3,5,8-9"
    assert format_cpulist([]) == ""


def test_fallback_format() -> None:
    orders = [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]]
    assert format_fallback(orders) == (
        "node 0 fallback: 0 1 2 3\nnode 1 fallback: 1 0 3 2\nnode 2 fallback: 2 3 0 1\nnode 3 fallback: 3 2 1 0\n"
    )
    assert format_fallback({4: [4, 0], 0: [0, 4]}) == "node 0 fallback: 0 4\nnode 4 fallback: 4 0\n"


# ---------------------------------------------------------------- numactl --show

BASE = ShowState("default", cpus=frozenset(range(4)), cpu_nodes=frozenset({0, 1}), mems_allowed=frozenset({0, 1}))


def _show(mode: str, **changes: Any) -> str:
    """numactl --show for a task on CPUs 0-3 (nodes 0 and 1) of a 2-node machine."""
    return format_show(replace(BASE, mode=mode, **changes))


def test_show_default_policy() -> None:
    assert _show("default") == (
        "policy: default\n"
        "preferred node: current\n"
        "physcpubind: 0 1 2 3 \n"
        "cpubind: 0 1 \n"
        "nodebind: 0 1 \n"
        "membind: 0 1 \n"
        "preferred: \n"
    )


def test_show_bind_interleave_weighted() -> None:
    bind = _show("bind", policy_nodes=frozenset({1}))
    assert bind.splitlines()[:2] == ["policy: bind", "preferred node: 1"]
    assert "membind: 1 \n" in bind and bind.endswith("preferred: 1 \n")
    inter = _show("interleave", policy_nodes=frozenset({0, 1}), interleave_next=1)
    assert inter.splitlines()[1:4] == [
        "preferred node: 1 (interleave next)",
        "interleavemask: 0 1 ",
        "interleavenode: 1",
    ]
    weighted = _show("weighted-interleave", policy_nodes=frozenset({0, 1}), weights={0: 5, 1: 2})
    assert weighted.splitlines()[2:5] == ["interleavemask: 0 1 ", "interleaveweights: 5 2", "interleavenode: 0"]


def test_show_preferred_local_preferred_many() -> None:
    pref = _show("preferred", policy_nodes=frozenset({1}))
    assert pref.splitlines()[1] == "preferred node: 1"
    local = _show("local").splitlines()
    # numactl prints no newline after "preferred node: " for local; we keep the line break.
    assert local[1] == "preferred node: " and local[2].startswith("physcpubind:")
    many = _show("preferred-many", policy_nodes=frozenset({0, 1}))
    assert many.splitlines()[1] == "preferred node: 0 (preferred-many)"
    override = _show("default", preferred_node="7")
    assert override.splitlines()[1] == "preferred node: 7"


def test_show_parses_like_ltp_numa01_setup() -> None:
    """`numactl --show | grep nodebind | cut -d ':' -f 2`, then word-split."""
    text = _show("bind", policy_nodes=frozenset({1}))
    nodes_list = [line.split(":")[1] for line in text.splitlines() if "nodebind" in line]
    assert nodes_list[0].split() == ["0", "1"]


# ---------------------------------------------------------------- numa_maps


def test_numa_maps_reference_b8_example() -> None:
    line = format_numa_maps_line(
        0x7F4DC1200000, "default", kind="file", file="/anon_hugepage (deleted)", huge=True,
        anon=1, dirty=1, mapmax=1, per_node_pages={3: 1}, page_size_kb=2048,
    )  # fmt: skip
    assert line == (
        "7f4dc1200000 default file=/anon_hugepage\\040(deleted) huge anon=1 dirty=1 N3=1 kernelpagesize_kB=2048\n"
    )


def test_numa_maps_optional_fields() -> None:
    line = format_numa_maps_line(
        0x400000, "bind:0-1", kind="heap", anon=3, dirty=2, mapped=6, mapmax=4,
        per_node_pages={1: 2, 0: 4, 2: 0}, page_size_kb=4,
    )  # fmt: skip
    assert line == "00400000 bind:0-1 heap anon=3 dirty=2 mapped=6 mapmax=4 N0=4 N1=2 kernelpagesize_kB=4\n"
    file_line = format_numa_maps_line(
        0x1000, "default", kind="file", file="/lib/x.so", anon=0, dirty=0, mapmax=1,
        per_node_pages={0: 2}, page_size_kb=4,
    )  # fmt: skip
    assert file_line == "00001000 default file=/lib/x.so mapped=2 N0=2 kernelpagesize_kB=4\n"


def test_numa_maps_active_after_mapmax_only_below_the_pages_and_never_for_hugetlb() -> None:
    common: dict[str, Any] = {"kind": "file", "file": "/dev/shm/seg", "anon": 0, "dirty": 4, "page_size_kb": 4}
    line = format_numa_maps_line(0x1000, "default", mapmax=2, active=0, per_node_pages={2: 4}, **common)
    assert line == "00001000 default file=/dev/shm/seg dirty=4 mapmax=2 active=0 N2=4 kernelpagesize_kB=4\n"
    assert " active=" not in format_numa_maps_line(0x1000, "default", mapmax=1, active=4, per_node_pages={2: 4},
                                                   **common)
    assert " active=1 " in format_numa_maps_line(0x1000, "default", mapmax=1, active=1, per_node_pages={2: 4},
                                                 **common)
    assert " active=" not in format_numa_maps_line(0x1000, "default", mapmax=1, active=0, per_node_pages={2: 4},
                                                   huge=True, **common)


def test_numa_maps_no_present_page_prints_only_the_head() -> None:
    line = format_numa_maps_line(
        0x7FFC0000, "interleave:0-3", kind="stack", anon=0, dirty=0, mapmax=0, per_node_pages={}, page_size_kb=4
    )
    assert line == "7ffc0000 interleave:0-3 stack\n"
    anon = format_numa_maps_line(
        0x10000, "local", kind="anon", anon=2, dirty=2, mapmax=1, per_node_pages={0: 2}, page_size_kb=4
    )
    assert anon == "00010000 local anon=2 dirty=2 N0=2 kernelpagesize_kB=4\n"


def test_numa_maps_rejects_inconsistent_input() -> None:
    common: dict[str, Any] = {"anon": 0, "dirty": 0, "mapmax": 1, "page_size_kb": 4}
    with pytest.raises(ValueError):
        format_numa_maps_line(0, "default", kind="anon", mapped=3, per_node_pages={0: 2}, **common)
    with pytest.raises(ValueError):
        format_numa_maps_line(0, "default", kind="file", per_node_pages={}, **common)
    with pytest.raises(ValueError):
        format_numa_maps_line(0, "default", kind="shm", per_node_pages={}, **common)


def test_mpol_to_str() -> None:
    assert mpol_to_str("default") == "default"
    assert mpol_to_str("local", {0}) == "local"
    assert mpol_to_str("preferred", {1}) == "prefer:1"
    assert mpol_to_str("bind", {0, 1, 2, 3, 5}) == "bind:0-3,5"
    assert mpol_to_str("interleave", {0, 1}, {"static"}) == "interleave=static:0-1"
    assert mpol_to_str("bind", {0, 1}, {"balancing", "relative"}) == "bind=relative|balancing:0-1"
    assert mpol_to_str("weighted-interleave", {0, 1}) == "weighted interleave:0-1"
    assert mpol_to_str("preferred-many", {2, 3}) == "prefer (many):2-3"
    with pytest.raises(ValueError):
        mpol_to_str("membind", {0})
