"""bench_balancing (issue 14): pages migrated per second by automatic NUMA balancing, and by the
evacuation of a node holding 64 MiB, against the bare pyzmq 4 KiB round trip measured in the same run.

    .venv/bin/python benchmarks/bench_balancing.py [--pages 1000] [--batches 5] [--bulk-mib 64]

Cluster: 2 nodes, one CPU each (from_cli(2, 1, ...)); the task runs on CPU 0 (node 0).

(a) The balancer, a batch of --pages pages: the task maps a fresh region and writes it with
    `preferred` node 1 (first touch puts every page on node 1), then sets its policy back to
    default. With kernel.numa_balancing=1, scan delay and periods 0 and a scan window larger than
    the batch, every request scans: the first touch of the region after that takes the first
    hinting fault of each page (none moves: the two-stage filter), the next one the second, and
    every page moves to node 0 inside that one request (`numa_pages_migrated` checked: exactly
    --pages more). That request is timed end to end in the task; per page = time / pages.
    A touch of the same pages with nothing to move (all local, nothing marked) is timed too and
    reported beside it (the part of the request that is not migration).
(b) The evacuation of a node holding --bulk-mib MiB: the task writes that much on node 1 (as
    above), then `numa-emu node offline 1` (NodeOffline to the coordinator) is timed from this
    process: every check, the zonelists, and every page moved to node 0 (the reply's count is
    checked, and node 1 holds nothing afterwards).

Baseline: the bare pyzmq round trip of a frame.read-sized request answered with 4 KiB (an echo
child), measured from this process in blocks between the batches. Target: per page at most 1.5
bare 4 KiB round trips in a batch of 1,000.
"""
from __future__ import annotations

import argparse
import time

import _common as bc
import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.topology_shapes import from_cli

PAGE = 4096
TARGET = 1.5  # bare 4 KiB round trips per page migrated, in a batch of 1,000
BARE_BLOCK = 50


def sysctl(cluster, values: dict) -> None:
    with cluster.client() as client:
        client.call(cm.SysctlSet(values=values))


def remote_region(task, pages: int):
    region = task.mmap(pages * PAGE)
    task.set_mempolicy("preferred", [1])
    region.touch(fill=0x5A)
    task.set_mempolicy("default")
    return region


def balancer_batch(cluster, task, pages: int) -> tuple[float, float, int]:
    """(seconds of the request that moved the pages, seconds of the same touch afterwards, pages
    moved: fewer than `pages` when a copy timed out on a loaded machine, reported as such)."""
    region = remote_region(task, pages)
    region.touch()  # the first hinting faults: nothing moves yet
    before = bc.vmstat_total(cluster, "numa_pages_migrated")
    t0 = time.perf_counter()
    region.touch()  # the second: every page moves to node 0
    moved_s = time.perf_counter() - t0
    moved = bc.vmstat_total(cluster, "numa_pages_migrated") - before
    if moved != region.where().count(0):
        raise SystemExit(f"numa_pages_migrated says {moved}, where() says {region.where().count(0)} on node 0")
    t0 = time.perf_counter()
    region.touch()
    local_s = time.perf_counter() - t0
    region.munmap()
    return moved_s, local_s, moved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=1000)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--bulk-mib", type=int, default=64)
    args = p.parse_args()
    bc.setup()
    bulk_pages = args.bulk_mib * (1 << 20) // PAGE
    mem = f"{max(args.bulk_mib + 16, 4 * args.pages * PAGE >> 20)}MiB"
    with bc.temp_home() as home, bc.echo_server(home) as endpoint:
        bare = bc.EchoClient(endpoint)
        env = bc.read_envelope(PAGE)
        bare.warm(env)
        rtt: list[float] = []
        cluster = Cluster(from_cli(2, 1, mem), name="bal", base=home)
        cluster.start()
        try:
            with numa_emu.attach(0, cluster=cluster.name) as task:
                scan_mb = max(1, -(-args.pages * PAGE // (1 << 20)) + 1)
                sysctl(cluster, {cm.NUMA_BALANCING_KEY: "1", cm.SCAN_DELAY_KEY: "0", cm.SCAN_PERIOD_MIN_KEY: "0",
                                 cm.SCAN_PERIOD_MAX_KEY: "0", cm.SCAN_SIZE_KEY: str(scan_mb)})
                moved, local, short = [], [], []
                for _ in range(args.batches):
                    rtt += bc.timed(lambda: bare.one(env), BARE_BLOCK)
                    m, loc, count = balancer_batch(cluster, task, args.pages)
                    if count == args.pages:
                        moved.append(m)
                        local.append(loc)
                    else:
                        short.append(count)
                if not moved:
                    raise SystemExit(f"no batch moved all its pages (moved: {short}); the machine is too loaded")
                sysctl(cluster, {cm.NUMA_BALANCING_KEY: "0"})
                rtt += bc.timed(lambda: bare.one(env), BARE_BLOCK)
                region = remote_region(task, bulk_pages)
                with cluster.client(timeout_s=600) as client:
                    t0 = time.perf_counter()
                    reply = client.call(ns.NodeOffline(node_id=1))
                    bulk_s = time.perf_counter() - t0
                bulk_moved = reply.pages_moved
                if region.where() != [0] * bulk_pages or bulk_moved != bulk_pages:
                    raise SystemExit(f"the evacuation moved {bulk_moved} of {bulk_pages} pages")
                rtt += bc.timed(lambda: bare.one(env), BARE_BLOCK)
        finally:
            cluster.stop()
            bare.close()
    base = bc.median(rtt)
    per_page = bc.median(moved) / args.pages
    bulk_per_page = bulk_s / max(1, bulk_moved)
    bc.table(f"bench_balancing: pages migrated, {args.pages}-page batches (median of {args.batches}), "
             f"and the evacuation of a node holding {args.bulk_mib} MiB", ["measure", "value", "pages/s", "× bare 4 KiB RTT", "target"], [
        ["bare pyzmq 4 KiB round trip", bc.micros(base), "", "1.00×", ""],
        [f"balancer: the request that moves {args.pages} pages, per page", bc.micros(per_page),
         f"{1 / per_page:,.0f}", bc.ratio(per_page, base), f"≤ {TARGET}× {bc.verdict(per_page / base <= TARGET)}"],
        ["  the same touch, nothing to move, per page", bc.micros(bc.median(local) / args.pages), "",
         bc.ratio(bc.median(local) / args.pages, base), ""],
        [f"node offline: evacuating {args.bulk_mib} MiB ({bulk_moved} pages), per page",
         bc.micros(bulk_per_page),
         f"{1 / bulk_per_page:,.0f}", bc.ratio(bulk_per_page, base), ""],
    ], caption=bc.host_info() + (f"; batches that could not move every page (a copy timed out), left out: "
                                 f"{short}" if short else ""))


if __name__ == "__main__":
    main()
