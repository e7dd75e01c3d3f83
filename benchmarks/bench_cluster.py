"""bench_cluster (issue 2): cluster start-up and shut-down, and the memory of an idle node.

    .venv/bin/python benchmarks/bench_cluster.py [--sizes 2,4,8,16,32,64] [--runs 3]

For each size N: the time from `up` (numa_emu.cluster.start on the shape "full,N,mem=64MiB,
cpus=1") to ready, and from `down` (numa_emu.cluster.stop, then waiting for the coordinator's
Popen) to every recorded process gone; median of --runs runs (fewer at 64 nodes). Baseline in
the same run, alternating with the clusters: N bare Python processes started one after the
other, each importing zmq and answering one ping over ipc; and the same N processes importing
nodes.server first, which separates the cost of our imports from the cost of the protocol. Then the resident memory (psutil
RSS and USS) of an idle node of a 1 GiB-per-node cluster, beside an idle bare zmq process.
Targets (issue 2): 8 nodes ready < 1.5 s, 64 nodes < 4 s, idle node RSS < 40 MB.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common as bc
from numa_emu import cluster as cl
from numa_emu.protocol.topology import build_shape

SIZES = (2, 4, 8, 16, 32, 64)
READY_TARGET_S = {8: 1.5, 64: 4.0}
IDLE_RSS_TARGET_MB = 40.0
IDLE_S = 1.0  # how long the memory cluster idles (four heartbeats) before it is measured


def up_down(name: str, n_nodes: int) -> tuple[float, float]:
    """One cluster of `n_nodes`: (seconds from start to ready, seconds from stop to all gone)."""
    topology = build_shape(f"full,{n_nodes},mem=64MiB,cpus=1")
    t0 = time.monotonic()
    started = cl.start(name, topology)
    up_s = time.monotonic() - t0
    pids = started.info.pids
    try:
        t1 = time.monotonic()
        left = cl.stop(started.info)
        started.proc.wait()
        down_s = time.monotonic() - t1
    except BaseException:  # interrupted half-way: still leave nothing behind
        cl.stop(started.info)
        started.proc.wait()
        raise
    if left or not bc.gone(pids) or len(pids) != n_nodes + 2:  # coordinator, nodes, their fork server
        raise RuntimeError(f"cluster {name}: processes left after down: {left or pids}")
    return up_s, down_s


def measure_sizes(home: Path, sizes: list[int], runs: int) -> list[list[object]]:
    rows = []
    for n in sizes:
        k = runs if n < 64 else max(1, min(runs, 2))
        ups, downs, bare_ups, bare_downs, imp_ups = [], [], [], [], []
        for r in range(k):
            b_up, b_down = bc.bare_processes(n, home)
            bare_ups.append(b_up)
            bare_downs.append(b_down)
            up, down = up_down(f"c{n}-{r}", n)
            ups.append(up)
            downs.append(down)
            imp_ups.append(bc.bare_processes(n, home, preload="numa_emu.nodes.server")[0])
        up, b_up, down, b_down, i_up = map(bc.median, (ups, bare_ups, downs, bare_downs, imp_ups))
        target = READY_TARGET_S.get(n)
        rows.append([n, k, f"{bc.seconds(up)} ({min(ups):.2f}–{max(ups):.2f})", bc.seconds(b_up), bc.ratio(up, b_up),
                     bc.seconds(i_up), bc.ratio(up, i_up),
                     f"< {target:g} s" if target else "", bc.verdict(up < target if target else None),
                     bc.seconds(down), bc.seconds(b_down), bc.ratio(down, b_down), (up, b_up, i_up)])
    return rows


def slope_ms(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of seconds against nodes, in ms per node."""
    mx = sum(n for n, _ in points) / len(points)
    my = sum(t for _, t in points) / len(points)
    den = sum((n - mx) ** 2 for n, _ in points)
    return 1000 * sum((n - mx) * (t - my) for n, t in points) / den if den else 0.0


def measure_memory(home: Path) -> list[list[object]]:
    bare: list[tuple[float, float]] = []
    bc.bare_processes(2, home, hold=lambda pids: bare.extend(bc.memory_mb(p) for p in pids))
    started = cl.start("mem", build_shape("full,2,mem=1GiB,cpus=1"))
    try:
        time.sleep(IDLE_S)  # idle on purpose: heartbeats run, nothing else
        nodes = [bc.memory_mb(int(n["pid"])) for n in started.info.data["nodes"]]
        coordinator = bc.memory_mb(started.info.coordinator_pid)
    finally:
        cl.stop(started.info)
        started.proc.wait()
    node_rss, node_uss = bc.median([m[0] for m in nodes]), bc.median([m[1] for m in nodes])
    bare_rss, bare_uss = bc.median([m[0] for m in bare]), bc.median([m[1] for m in bare])
    return [
        ["idle node, 1 GiB pool (median of 2)", f"{node_rss:.1f}", f"{node_uss:.1f}", bc.ratio(node_rss, bare_rss),
         f"< {IDLE_RSS_TARGET_MB:g}", bc.verdict(node_rss < IDLE_RSS_TARGET_MB)],
        ["coordinator of that cluster", f"{coordinator[0]:.1f}", f"{coordinator[1]:.1f}",
         bc.ratio(coordinator[0], bare_rss), "", ""],
        ["baseline: bare python + zmq + msgpack", f"{bare_rss:.1f}", f"{bare_uss:.1f}", "1.00×", "", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="node counts, comma separated")
    parser.add_argument("--runs", type=int, default=3, help="runs per size (at most 2 for 64 nodes)")
    parser.add_argument("--cold-bytecode", action="store_true",
                        help="no bytecode cache in the temp home: keep the environment's PYTHONDONTWRITEBYTECODE")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    bc.setup()
    t0 = time.monotonic()
    with bc.temp_home(bytecode_cache=not args.cold_bytecode) as home:
        caption = bc.host_info()
        # warm-up, not measured: fills the bytecode cache and the page cache
        bc.bare_processes(2, home, preload="numa_emu.nodes.server")
        up_down("warm-up", 2)
        rows = measure_sizes(home, sizes, args.runs)
        memory = measure_memory(home)
    if len(rows) > 1:
        per_node = [slope_ms([(r[0], r[-1][i]) for r in rows]) for i in range(3)]
        caption = (f"start-up cost per extra node (least squares): numa-emu {per_node[0]:.0f} ms, bare zmq process "
                   f"{per_node[1]:.0f} ms, bare process importing nodes.server {per_node[2]:.0f} ms\n{caption}")
    bc.table("up → ready and down → every process gone (medians; shape full,N,mem=64MiB,cpus=1)",
             ["nodes", "runs", "numa-emu ready (min–max)", "bare N procs", "ratio", "N procs + import nodes.server",
              "ratio", "target", "", "numa-emu down", "bare down", "ratio"],
             [r[:-1] for r in rows], caption=caption)
    bc.table(f"resident memory after {IDLE_S:g} s idle (MB = 10^6 bytes)",
             ["process", "RSS MB", "USS MB", "RSS ratio", "target", ""], memory,
             caption=f"whole benchmark: {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
