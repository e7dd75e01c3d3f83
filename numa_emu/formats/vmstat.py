"""``/proc/vmstat`` text: one ``name value`` line per counter, in the kernel's order.

Place in numa-emu: ``numa-emu vmstat`` sums the nodes' counters into system-wide
values and prints them with :func:`format_vmstat`.  The order and names follow
``vmstat_text[]`` in torvalds/linux ``mm/vmstat.c`` (zone stats, NUMA events, node
stats, writeback thresholds, VM events; ``vmstat_show`` prints ``"%s %lu\\n"``).
Every counter numa-emu keeps is printed, zeros included (scripts grep for the line);
counters it does not model are absent.  The kernel's names come first in the kernel's order,
then the 2007 replicated page cache's (``nr_repl_pages``, ``pgreplicated``, ``pgreplicazap``),
then numa-emu's own (docs/linux-semantics.md#vmstat).  Reclaim counts as the kernel does: ``pgscan_direct`` / ``pgsteal_direct``
(in an allocation), ``pgscan_kswapd`` / ``pgsteal_kswapd`` (in the background),
``nr_vmscan_write`` (dirty pages reclaim wrote back), ``pgpgin`` (KiB read from the store);
``nr_file_pages`` is the page-cache pages (files, replicas and shm: the kernel counts shmem
there), ``nr_shmem`` the shm pages, ``nr_anon_pages`` the private ones.

The six numastat counters have different names system-wide (docs/linux-semantics.md#numastat-counters):
``interleave_hit`` -> ``numa_interleave``, ``local_node`` -> ``numa_local``,
``other_node`` -> ``numa_other``; :func:`vmstat_from_numastat` does the renaming.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from numa_emu.protocol.counters import NUMASTAT_TO_VMSTAT  # one table for nodes and front ends

# mm/vmstat.c vmstat_text[] (Linux 6.x), CONFIG_NUMA, CONFIG_NUMA_BALANCING,
# CONFIG_MIGRATION and CONFIG_COMPACTION on; zone-suffixed events only for ZONE_NORMAL
# (numa-emu has one zone per node).
KERNEL_ORDER: tuple[str, ...] = (
    # enum zone_stat_item
    "nr_free_pages",
    "nr_zone_inactive_anon",
    "nr_zone_active_anon",
    "nr_zone_inactive_file",
    "nr_zone_active_file",
    "nr_zone_unevictable",
    "nr_zone_write_pending",
    "nr_mlock",
    "nr_free_cma",
    # enum numa_stat_item
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "numa_interleave",
    "numa_local",
    "numa_other",
    # enum node_stat_item
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_inactive_file",
    "nr_active_file",
    "nr_unevictable",
    "nr_slab_reclaimable",
    "nr_slab_unreclaimable",
    "nr_isolated_anon",
    "nr_isolated_file",
    "workingset_nodes",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "nr_anon_pages",
    "nr_mapped",
    "nr_file_pages",
    "nr_dirty",
    "nr_writeback",
    "nr_writeback_temp",
    "nr_shmem",
    "nr_shmem_hugepages",
    "nr_shmem_pmdmapped",
    "nr_file_hugepages",
    "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages",
    "nr_vmscan_write",
    "nr_vmscan_immediate_reclaim",
    "nr_dirtied",
    "nr_written",
    "nr_throttled_written",
    "nr_kernel_misc_reclaimable",
    "nr_foll_pin_acquired",
    "nr_foll_pin_released",
    "nr_kernel_stack",
    "nr_page_table_pages",
    "nr_swapcached",
    "pgpromote_success",
    "pgpromote_candidate",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
    "pgdemote_proactive",
    # enum writeback_stat_item
    "nr_dirty_threshold",
    "nr_dirty_background_threshold",
    # enum vm_event_item
    "pgpgin",
    "pgpgout",
    "pswpin",
    "pswpout",
    "pgalloc_normal",
    "allocstall_normal",
    "pgskip_normal",
    "pgfree",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pgfault",
    "pgmajfault",
    "pglazyfreed",
    "pgrefill",
    "pgreuse",
    "pgsteal_kswapd",
    "pgsteal_direct",
    "pgscan_kswapd",
    "pgscan_direct",
    "pgscan_direct_throttle",
    "pgscan_anon",
    "pgscan_file",
    "pgsteal_anon",
    "pgsteal_file",
    "zone_reclaim_success",
    "zone_reclaim_failed",
    "pginodesteal",
    "slabs_scanned",
    "kswapd_inodesteal",
    "kswapd_low_wmark_hit_quickly",
    "kswapd_high_wmark_hit_quickly",
    "pageoutrun",
    "pgrotated",
    "drop_pagecache",
    "drop_slab",
    "oom_kill",
    "numa_pte_updates",
    "numa_huge_pte_updates",
    "numa_hint_faults",
    "numa_hint_faults_local",
    "numa_pages_migrated",
    "pgmigrate_success",
    "pgmigrate_fail",
    "thp_migration_success",
    "thp_migration_fail",
    "thp_migration_split",
    "compact_migrate_scanned",
    "compact_free_scanned",
    "compact_isolated",
    "compact_stall",
    "compact_fail",
    "compact_success",
    "compact_daemon_wake",
    "compact_daemon_migrate_scanned",
    "compact_daemon_free_scanned",
    "unevictable_pgs_culled",
    "unevictable_pgs_scanned",
    "unevictable_pgs_rescued",
    "unevictable_pgs_mlocked",
    "unevictable_pgs_munlocked",
    "unevictable_pgs_cleared",
    "unevictable_pgs_stranded",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "thp_collapse_alloc",
    "thp_collapse_alloc_failed",
    "thp_split_page",
    "thp_split_page_failed",
    "thp_split_pmd",
    "nr_tlb_remote_flush",
    "nr_tlb_remote_flush_received",
    "nr_tlb_local_flush_all",
    "nr_tlb_local_flush_one",
)

# The 2007 replicated page cache's counters (Piggin, "mm: NUMA replicated pagecache", mm/replication.c).
REPLICATION_2007: tuple[str, ...] = ("nr_repl_pages", "pgreplicated", "pgreplicazap")

# numa-emu's own counters (docs/linux-semantics.md#vmstat): the causes of replica zaps, the
# migration cache (Schermerhorn's lazy migration), replication's diagnostics.
NUMA_EMU: tuple[str, ...] = (
    "pgreplicazap_write",  # a write collapsed the replicas
    "pgreplicazap_truncate",  # the file was truncated
    "pgreplicazap_migration",  # the master moved
    "pgreplicazap_reclaim",  # reclaim dropped it (direct reclaim, or kswapd)
    "pgreplicazap_copyfail",  # its copy failed on the way
    "pgreplicazap_nodedeath",  # its master's node died (the store is the one source again)
    "pgreplicabackoff",  # a file's replication backed off after thrashing
    "nr_migcache_pages",  # gauge: lazily migrated pages waiting in the migration cache
    "pgmigcache_in",  # a page unmapped into the migration cache (mbind MOVE|LAZY)
    "pgmigcache_out",  # a page left the migration cache (next touch, or unmap)
    "pgwriteback",  # a dirty shared page written back to its file
    "repl_hits",  # a read served by a replica on the reader's node
    "repl_stale_access",  # unsafe mode: an access through a replica already freed
    "repl_backoff_skips",  # a replica not made because its file backs off
    "repl_copy_failed",  # a replica whose copy failed
    "repl_fill_refused",  # a replica copy that arrived for a read no longer waiting for it
    "repl_fetch_bytes",  # bytes copied to make replicas
    "repl_fault_wall_ns",  # wall time spent in replicating faults
    "pglost_master",  # a shared page's master died with its node (read again from the store)
    "pglost_dirty",  # ... and it was dirty: the write since the last fsync is lost (reported once)
    "dir_rebuilt",  # directory entries rebuilt here from the survivors' reports
    "nr_direct_held",  # gauge: freed frames kept from reuse while a task's direct write may still reach them
    "numa_task_migrated",  # NUMA balancing moved a task to its preferred node (Linux 6.16-rc's name)
    "numa_task_swapped",  # ... swapped it with a task there (each of the two counts)
)

# Every name in print order: the kernel's (vmstat_text[] order), then the 2007 names, then ours.
ORDER: tuple[str, ...] = KERNEL_ORDER + REPLICATION_2007 + NUMA_EMU


def ordered_names(values: Mapping[str, int], order: Iterable[str] | None = None) -> list[str]:
    """The names of ``values`` in print order: those in ``order`` (default :data:`ORDER`) in
    that order, then any other names alphabetically so nothing is silently dropped."""
    sequence = tuple(ORDER if order is None else order)
    known = set(sequence)
    return [n for n in sequence if n in values] + sorted(n for n in values if n not in known)


def format_vmstat(values: Mapping[str, int], order: Iterable[str] | None = None) -> str:
    """``/proc/vmstat`` lines ``"<name> <value>\\n"`` in :func:`ordered_names` order, zeros
    included.  Values are printed as unsigned decimal integers."""
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"vmstat counter {name} is negative: {value}")
    return "".join(f"{name} {int(values[name])}\n" for name in ordered_names(values, order))


def vmstat_from_numastat(per_node_counters: Mapping[int, Mapping[str, int]]) -> dict[str, int]:
    """Sum the per-node numastat counters into the six system-wide vmstat counters.

    Returns ``{"numa_hit": .., "numa_miss": .., "numa_foreign": ..,
    "numa_interleave": .., "numa_local": .., "numa_other": ..}`` (pages), in that
    order; missing per-node counters count as 0.
    """
    totals = {vm_name: 0 for vm_name in NUMASTAT_TO_VMSTAT.values()}
    for counters in per_node_counters.values():
        for node_name, vm_name in NUMASTAT_TO_VMSTAT.items():
            totals[vm_name] += int(counters.get(node_name, 0))
    return totals
