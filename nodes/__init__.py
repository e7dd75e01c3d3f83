"""The node process: one per emulated NUMA node.

It owns a frame pool, the page tables of the tasks whose CPU is on this node, one shard of the
shared-page directory, and the memory manager that faults, allocates by policy, replicates,
migrates and reclaims. Imports protocol only, never coordinator.
"""
