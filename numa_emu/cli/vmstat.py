"""System-wide memory counters as /proc/vmstat prints them: one "name value" line each.

The sums over the live nodes of their counters, under the kernel's names and in the kernel's
order (mm/vmstat.c vmstat_text[]): nr_free_pages, the six NUMA counters (numa_hit, numa_miss,
numa_foreign, numa_interleave, numa_local, numa_other), pgalloc_normal, pgfree, pgfault and
whatever else the nodes count. --json prints the same counters as one JSON object.
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
    from numa_emu.formats.vmstat import ORDER, format_vmstat

    values = system_vmstat(cluster_stats(frontend_cluster(args.name)))
    if args.json:
        rank = {name: i for i, name in enumerate(ORDER)}
        ordered = sorted(values, key=lambda n: (rank.get(n, len(rank)), n))
        print(json.dumps({name: values[name] for name in ordered}, indent=2))
    else:
        print(format_vmstat(values), end="")
    return 0
