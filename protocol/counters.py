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

# Every event counter a node keeps (nodes/core.py NodeCore.events), under the node's own names.
# They start at zero, so /proc/vmstat lists each of them on a fresh cluster as the kernel does.
# "pgalloc" is the kernel's pgalloc_normal (one zone per node); the pgscan_/pgsteal_ pairs are
# kswapd's and direct reclaim's.
NODE_EVENTS: tuple[str, ...] = (
    # the kernel's names (mm/vmstat.c vmstat_text[])
    "pgpgin", "pgalloc", "pgfree", "pgfault", "pgsteal_kswapd", "pgsteal_direct", "pgscan_kswapd",
    "pgscan_direct", "nr_vmscan_write", "pgmigrate_success", "pgmigrate_fail",
    # automatic NUMA balancing (CONFIG_NUMA_BALANCING; nodes/balancing.py): counted on the task's home node
    "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
    # the 2007 replicated page cache's names (Piggin, mm/replication.c)
    "pgreplicated", "pgreplicazap",
    # numa-emu's own: zap causes, the migration cache, replication's diagnostics
    "pgreplicazap_write", "pgreplicazap_truncate", "pgreplicazap_migration", "pgreplicazap_reclaim",
    "pgreplicazap_copyfail", "pgreplicazap_nodedeath", "pgreplicabackoff", "pgmigcache_in", "pgmigcache_out", "pgwriteback",
    "repl_hits", "repl_stale_access", "repl_backoff_skips", "repl_copy_failed", "repl_fill_refused",
    "repl_fetch_bytes", "repl_fault_wall_ns",
    # a node's death (docs/protocol.md#a-nodes-death)
    "pglost_master", "pglost_dirty", "dir_rebuilt",
    # NUMA balancing's task moves, counted on the home that asked (the names of Linux 6.16-rc's
    # vmstat items, reverted before the release: the kernel shows only tracepoints, sched_move_numa
    # and sched_swap_numa); a swap counts both tasks, as __migrate_swap_task does
    "numa_task_migrated", "numa_task_swapped",
)
