"""bench_task_placement: how long NUMA balancing takes to move a task to its memory, from the
task's first hinting fault to the coordinator's record of it on the new node, against the bare
pyzmq 4 KiB round trip measured in the same run.

    .venv/bin/python benchmarks/bench_task_placement.py [--pages 64] [--moves 10]

Cluster: 2 nodes, two CPUs each (from_cli(2, 2, ...)): node 1 always has an idle CPU, so the
coordinator's answer is a move (task.numa_migrate "migrated"), never "stay".

One move: a new task attaches unpinned (the coordinator puts it on CPU 0, node 0), maps --pages
pages and writes them under `preferred` node 1, keeping that policy: balancing counts hinting
faults on them but never moves them (only pages under the default policy move), so the task
must go to its memory. With kernel.numa_balancing=1, scan delay and periods 0 and a window
larger than the region, every request starts a scan window. Timed from this process: the start
of the touch that takes the region's first hinting faults, then the task touches one page and
asks the coordinator where it runs (getcpu) until it is on node 1. In between: the next window
makes node 1 the preferred node (task_numa_placement), the next hinting fault asks the
coordinator (task.numa_migrate, without waiting), which moves the task (node.task.move: page
table and scanner state to node 1). Checked: numa_task_migrated counts one more, the pages
stayed on node 1, the task's pid is on CPU 2 or 3.

Reported beside it: the first touch alone (its hinting faults), the touches it took, and the same touch-and-getcpu step of a task already
home (the floor of the loop's own steps).
"""
from __future__ import annotations

import argparse
import time

import _common as bc
import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.topology_shapes import from_cli

PAGE = 4096
BARE_BLOCK = 50
MOVE_TIMEOUT_S = 30.0


def sysctl(cluster, values: dict) -> None:
    with cluster.client() as client:
        client.call(cm.SysctlSet(values=values))


def one_move(cluster, pages: int) -> tuple[float, float, int, float]:
    """(seconds from the first hinting fault to the move, of them the touch that took the first
    hinting faults, touches it took, seconds of one touch-and-getcpu step once home)."""
    before = bc.vmstat_total(cluster, "numa_task_migrated")
    with numa_emu.attach(None, cluster=cluster.name, comm="bench-placement") as task:
        if task.node != 0:
            raise SystemExit(f"the coordinator placed the task on node {task.node}, expected 0")
        region = task.mmap(pages * PAGE)
        task.set_mempolicy("preferred", [1])
        region.touch(write=True)  # first touch: every page on node 1; the scan marks them at the next request
        touches, deadline = 1, time.monotonic() + MOVE_TIMEOUT_S
        t0 = time.perf_counter()
        region.touch()  # the first hinting fault of every page
        first_s = time.perf_counter() - t0
        while task.getcpu()[1] != 1:
            if time.monotonic() > deadline:
                raise SystemExit(f"the task did not move to node 1 within {MOVE_TIMEOUT_S:g} s")
            region.touch(0, PAGE)
            touches += 1
        moved_s = time.perf_counter() - t0
        if region.where() != [1] * pages:
            raise SystemExit(f"pages moved: {region.where()}")
        if bc.vmstat_total(cluster, "numa_task_migrated") != before + 1 or task.cpu not in (2, 3):
            raise SystemExit(f"expected one task move to CPU 2 or 3, the task is on CPU {task.cpu}")
        steps = []
        for _ in range(5):
            t0 = time.perf_counter()
            region.touch(0, PAGE)
            task.getcpu()
            steps.append(time.perf_counter() - t0)
    return moved_s, first_s, touches, bc.median(steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=64)
    p.add_argument("--moves", type=int, default=10)
    args = p.parse_args()
    bc.setup()
    with bc.temp_home() as home, bc.echo_server(home) as endpoint:
        bare = bc.EchoClient(endpoint)
        env = bc.read_envelope(PAGE)
        bare.warm(env)
        rtt: list[float] = []
        cluster = Cluster(from_cli(2, 2, "64MiB"), name="tpl", base=home)
        cluster.start()
        try:
            sysctl(cluster, {cm.NUMA_BALANCING_KEY: "1", cm.SCAN_DELAY_KEY: "0", cm.SCAN_PERIOD_MIN_KEY: "0",
                             cm.SCAN_PERIOD_MAX_KEY: "0",
                             cm.SCAN_SIZE_KEY: str(max(1, -(-args.pages * PAGE // (1 << 20)) + 1))})
            moves, firsts, touches, steps = [], [], [], []
            for _ in range(args.moves):
                rtt += bc.timed(lambda: bare.one(env), BARE_BLOCK)
                m, f, t, s = one_move(cluster, args.pages)
                moves.append(m)
                firsts.append(f)
                touches.append(t)
                steps.append(s)
            rtt += bc.timed(lambda: bare.one(env), BARE_BLOCK)
        finally:
            cluster.stop()
            bare.close()
    base, move = bc.median(rtt), bc.median(moves)
    bc.table(f"bench_task_placement: first hinting fault to the task's move (median of {args.moves}, "
             f"{args.pages} pages)", ["measure", "value", "× bare 4 KiB RTT"], [
        ["bare pyzmq 4 KiB round trip", bc.micros(base), "1.00×"],
        ["first hinting fault -> task on node 1", bc.micros(move), bc.ratio(move, base)],
        [f"  slowest of {args.moves}", bc.micros(max(moves)), bc.ratio(max(moves), base)],
        [f"  of it, the touch taking the first {args.pages} hinting faults", bc.micros(bc.median(firsts)),
         bc.ratio(bc.median(firsts), base)],
        ["  touches it took (median, max)", f"{bc.median(touches):g}, {max(touches)}", ""],
        ["  one touch-and-getcpu step, home", bc.micros(bc.median(steps)), bc.ratio(bc.median(steps), base)],
    ], caption=bc.host_info())


if __name__ == "__main__":
    main()
