"""What numa01, numa02 and numa02_SMT share (modeled on Andrea Arcangeli's autonuma-benchmark):
the balancing counters summed over the cluster, and the locality samples of a hammering loop.

Locality is the share of a round's accesses that local frames served. A round touches every
page of the task's buffer once, and a page only moves at its own access (a hinting fault moves
it before the access goes on), so where the pages are after the round is where that round's
accesses went: `where()` after each round gives the exact share.
"""
from __future__ import annotations

from numa_emu.protocol.messages import tasks as tm
from numa_emu.workloads import racer

COUNTERS = ("numa_pte_updates", "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
            "pgmigrate_success", "pgmigrate_fail", "numa_task_migrated", "numa_task_swapped")


def counters(name: str) -> dict[str, int]:
    """The cluster's balancing counters, summed over its nodes."""
    from numa_emu import cluster

    with cluster.require(name).client() as client:
        nodes = client.call(tm.ClusterStats()).nodes
    return {k: sum(int(n.get("vmstat", {}).get(k, 0)) for n in nodes.values()) for k in COUNTERS}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS}


def run_team(team, task, cpus: list[int], args, run_id: str, prepare, work) -> dict:
    """The leader's side of numa01 and numa02: spawn a worker on each of `cpus`, `prepare()` the
    leader's region while they start, start everyone at once, `work(region)` the leader's share;
    the team summary, with the balancing counters that moved meanwhile. An unpinned leader's
    workers are unpinned too: the coordinator places them, one after the other (racer.pinned)."""
    options = ["--size", str(args.size), "--iterations", str(args.iterations)]
    pinned = racer.pinned(task)
    for i, cpu in enumerate(cpus, 1):
        if pinned:
            team.spawn(i, cpu, options, run_id)
        else:
            team.spawn_unpinned(i, options, run_id)
    region = prepare()
    team.wait_ready()
    before = counters(team.cluster)
    team.go()
    mine = work(region)
    lines = team.results()
    counted = delta(before, counters(team.cluster))
    return team_summary(task, mine, lines, args.iterations, counted)


def team_summary(task, mine: dict, lines: list[dict], rounds: int, counted: dict[str, int]) -> dict:
    """The JSON line of a team's leader: its own figures (`mine`) and its workers' (`lines`) summed
    or per round, with the balancing counters the run moved (`counted`)."""
    tasks = [{**mine, "node": task.node, "cpu": task.cpu}] + lines
    locality = [round(sum(t["locality_series"][r] for t in tasks) / len(tasks), 4) for r in range(rounds)]
    return {"virtual_ns": max(t["virtual_ns"] for t in tasks), "wall_s": mine["wall_s"],
            "ops": sum(t["ops"] for t in tasks), "bytes": sum(t["bytes"] for t in tasks), "tasks": len(tasks),
            "pages": mine["pages"], "locality": locality[-1], "locality_first": locality[0],
            "locality_series": locality,
            "virtual_series": [max(t["virtual_series"][r] for t in tasks) for r in range(rounds)],
            "converged_round": converged_round(locality),
            **({"verified": all(t["verified"] for t in tasks)} if "verified" in mine else {}),
            "task_virtual_ns": {f"{t['node']}:{t['cpu']}:{k}": t["virtual_ns"] for k, t in enumerate(tasks)},
            "counters": counted, **counted}


def hammer(task, region, rounds: int, stamp: int = 1, verify: bool = True) -> dict:
    """Fill every page of `region` once per round (a memset: whole pages, as the benchmark's
    bzero); after each, the share of its pages on the task's node and the virtual time so far
    (from the first round's start). With `verify` the bytes of the last round are read back
    (`verified`; a buffer another task writes too cannot be checked so)."""
    locality, virtual = [], []
    v0 = task.clock_ns()
    for r in range(rounds):
        region.touch(fill=(stamp + r) % 256)
        where = region.where()
        locality.append(round(sum(1 for n in where if n == task.node) / len(where), 4))
        virtual.append(task.clock_ns() - v0)
    out = {"locality_series": locality, "virtual_series": virtual}
    if verify:
        last = bytes([(stamp + rounds - 1) % 256]) * task.page_size
        out["verified"] = all(region.read(p * task.page_size, task.page_size) == last
                              for p in range(len(region.where())))
    return out


def converged_round(series: list[float], share: float = 0.9) -> int | None:
    """The first round (1-based) from which every round is at least `share` local."""
    first = None
    for i, value in enumerate(series, 1):
        if value >= share:
            first = first or i
        else:
            first = None
    return first
