"""The protocol's invariants (docs/protocol.md#invariants), read off the simulated cluster's state.

`after_message` runs after every delivered message: no mapping of a freed frame (1), at most
one writable copy and no replica mapped while it is (2), every mapped replica equal to its master,
and at most one master per page over all directory shards. `at_quiescence` runs when nothing is
in flight: the counters (4) and every used frame accounted for. The no-lost-write check (3) runs
at the end of every read (sim.history).
"""
from __future__ import annotations

from numa_emu.nodes.framepool import USED
from numa_emu.sim.network import Violation


def _frame_ok(cluster, node: int, frame: int, gen: int) -> str | None:
    """Why (node, frame, gen) is not a live frame, or None."""
    if node in cluster.dead:
        return None  # a dead node's copies are unmapped when its death is heard
    pool = cluster.nodes[node].pool
    if pool.state[frame] != USED:
        return "is free"
    if pool.generation[frame] != gen:
        return f"was freed and reused (generation {pool.generation[frame]}, mapped {gen})"
    return None


def after_message(cluster) -> None:
    masters: dict[tuple[str, int], tuple[int, int, int]] = {}
    for home in cluster.nodes:
        if home.node_id in cluster.dead:
            continue
        for key, entry in home.replication.dir.entries.items():
            if entry.node < 0:
                continue
            if key in masters and masters[key][0] != home.node_id:
                raise Violation(f"two masters of {key[0]}:{key[1]}: in the directories of node {masters[key][0]} "
                                f"and node {home.node_id}")
            masters[key] = (home.node_id, entry.node, entry.frame)
    writable: dict[tuple[str, int], tuple[int, int, int]] = {}
    replicas: dict[tuple[str, int], int] = {}
    for node in cluster.nodes:
        if node.node_id in cluster.dead:
            continue
        n = node.node_id
        for key, page in node.pcache.pages.items():
            why = _frame_ok(cluster, page.node, page.frame, page.gen)
            if why:
                raise Violation(f"node {n} maps {key[0]}:{key[1]} in frame {page.frame} of node {page.node}, "
                                f"which {why}")
            if page.writable:
                other = writable.get(key)
                if other is not None and other[1:] != (page.node, page.frame):
                    raise Violation(f"two writable copies of {key[0]}:{key[1]}: node {other[0]} maps frame "
                                    f"{other[2]} of node {other[1]}, node {n} frame {page.frame} of node {page.node}")
                writable[key] = (n, page.node, page.frame)
            if page.replica:
                replicas[key] = n
                master = masters.get(key)
                if master is not None and master[1] not in cluster.dead:
                    mine = node.pool.read(page.frame)
                    theirs = cluster.nodes[master[1]].pool.read(master[2])
                    if mine != theirs:
                        raise Violation(f"the replica of {key[0]}:{key[1]} mapped on node {n} (frame {page.frame}) "
                                        f"differs from its master (node {master[1]} frame {master[2]})")
        for task in node.mm.tasks.values():
            for region in task.space.regions:
                for p, where in region.node.items():
                    if where < 0:
                        continue
                    why = _frame_ok(cluster, where, region.frame[p], region.gen[p])
                    if why:
                        raise Violation(f"task {task.task_id} on node {n} maps page {p} of its region at "
                                        f"{region.start:#x} to frame {region.frame[p]} of node {where}, which {why}")
    for key, n in replicas.items():
        if key in writable:
            w = writable[key]
            raise Violation(f"{key[0]}:{key[1]} is mapped writable on node {w[0]} while node {n} maps a replica")


def at_quiescence(cluster) -> None:
    live = [node for node in cluster.nodes if node.node_id not in cluster.dead]
    miss = sum(node.core.numastat["numa_miss"] for node in live)
    foreign = sum(node.core.numastat["numa_foreign"] for node in live)
    if not cluster.dead and miss != foreign:
        raise Violation(f"counters: sum of numa_miss {miss} != sum of numa_foreign {foreign}")
    for node in live:
        s, v = node.core.numastat, node.vmstat()
        if s["numa_hit"] + s["numa_miss"] != s["local_node"] + s["other_node"]:
            raise Violation(f"counters of node {node.node_id}: numa_hit + numa_miss != local_node + other_node ({s})")
        if v["nr_repl_pages"] != v["pgreplicated"] - v["pgreplicazap"]:
            raise Violation(f"counters of node {node.node_id}: nr_repl_pages {v['nr_repl_pages']} != pgreplicated "
                            f"{v['pgreplicated']} - pgreplicazap {v['pgreplicazap']}")
        core = node.core
        held = set(core.replica_frames) | set(core.cache_frames) | set(core.shm_frames) | set(core.master_frames)
        held.update(core.frame_task)
        if node.pool.used != len(held):
            raise Violation(f"frames of node {node.node_id}: {node.pool.used} in use, {len(held)} held by a task, "
                            "a replica or a page-cache master")
