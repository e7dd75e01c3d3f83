"""The kernel's NUMA allocation counters: their order in the per-node numastat file and their
names in /proc/vmstat. Nodes count under these names; the front ends print them."""
from __future__ import annotations

# /sys/devices/system/node/nodeN/numastat, in its order (docs/linux-semantics.md#numastat-counters).
NUMASTAT_COUNTERS: tuple[str, ...] = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
                                      "other_node")

# Per-node numastat name -> /proc/vmstat name (mm/vmstat.c vmstat_text[]).
NUMASTAT_TO_VMSTAT: dict[str, str] = {
    "numa_hit": "numa_hit",
    "numa_miss": "numa_miss",
    "numa_foreign": "numa_foreign",
    "interleave_hit": "numa_interleave",
    "local_node": "numa_local",
    "other_node": "numa_other",
}
