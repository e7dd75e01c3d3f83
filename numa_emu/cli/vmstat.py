"""System-wide memory counters as /proc/vmstat prints them: one "name value" line each.

The sums over the live nodes of every counter they keep, zeros included (scripts grep for
`pgmigrate_success`), under the kernel's names and in the kernel's order (mm/vmstat.c
vmstat_text[]): nr_free_pages, the six NUMA counters (numa_hit, numa_miss, numa_foreign,
numa_interleave, numa_local, numa_other), pgalloc_normal, pgfree, pgfault, ...; then the 2007
replicated page cache's counters and numa-emu's own. --json prints the same counters, in the
same order, as one JSON object.
--repl-lifetimes prints the histogram of replica lifetimes instead (creation to zap, in
power-of-two millisecond buckets, summed over the directory shards), as proposed in the 2007
thread to tell useful replicas from thrashing ones.
The cluster: --name, else $NUMA_EMU_CLUSTER, else the only cluster that is up.
"""
from __future__ import annotations

import argparse
import json

from numa_emu.cli.common import add_json_option, add_name_option
from numa_emu.cli.numastat import cluster_stats, frontend_cluster

# A node's own counter name -> the /proc/vmstat name (nodes/core.py counts "pgalloc"; numa-emu has
# one zone per node, so every allocation is the kernel's pgalloc_normal).
KERNEL_NAMES = {"pgalloc": "pgalloc_normal"}
# Node counters that are not /proc/vmstat lines (a node's size is MemTotal in meminfo).
NOT_IN_VMSTAT = frozenset({"nr_total_pages"})


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    add_json_option(p)
    p.add_argument("--repl-lifetimes", action="store_true", help="the histogram of replica lifetimes")


def lifetime_histogram(stats: dict[int, dict]) -> list[tuple[str, int]]:
    """(bucket, replicas) over every node, buckets in increasing order ("<1ms", "<2ms", ...)."""
    total: dict[str, int] = {}
    for data in stats.values():
        for bucket, n in (data.get("repl_lifetimes") or {}).items():
            total[bucket] = total.get(bucket, 0) + int(n)
    return sorted(total.items(), key=lambda item: int(item[0][1:-2]))


def system_vmstat(stats: dict[int, dict]) -> dict[str, int]:
    """The /proc/vmstat counters of the whole machine from each node's counters."""
    from numa_emu.formats.vmstat import vmstat_from_numastat

    values = vmstat_from_numastat({node: data["numastat"] for node, data in stats.items()})
    for data in stats.values():
        for name, value in data["vmstat"].items():
            if name in NOT_IN_VMSTAT:
                continue
            kernel_name = KERNEL_NAMES.get(name, name)
            values[kernel_name] = values.get(kernel_name, 0) + int(value)
    return values


def run(args: argparse.Namespace) -> int:
    from numa_emu.formats.vmstat import format_vmstat, ordered_names

    stats = cluster_stats(frontend_cluster(args.name))
    if args.repl_lifetimes:
        histogram = lifetime_histogram(stats)
        if args.json:
            print(json.dumps(dict(histogram), indent=2))
            return 0
        count = sum(n for _, n in histogram)
        print(f"replica lifetimes (creation to zap), {count} replicas torn down")
        for bucket, n in histogram:
            print(f"{bucket:>10} {n:>8} {'#' * round(40 * n / max(1, max(c for _, c in histogram)))}")
        return 0
    values = system_vmstat(stats)
    if args.json:
        print(json.dumps({name: values[name] for name in ordered_names(values)}, indent=2))
    else:
        print(format_vmstat(values), end="")
    return 0
