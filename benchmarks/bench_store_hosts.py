"""bench_store_hosts (issue 13): a page-cache fill from the one store across hosts, against the
same fill where the node reads the store folder itself, and a bare pyzmq tcp+CURVE round trip, in
the same run; and what the store's generator interface costs the one-host path.

    .venv/bin/python benchmarks/bench_store_hosts.py [--count 1000]

(a) Two clusters full,2 on fake hosts (node 0 on host a, node 1 on host b, as bench_hosts.py makes
    them): in "shared", both hosts' agents run in the coordinator's NUMA_EMU_HOME, so their nodes
    read and write the store folder directly (as on one host); in "own", each host has its own
    NUMA_EMU_HOME, so the nodes use the coordinator's store through it (store.read). A task
    pread()s 8 bytes of pages never read before whose directory home is node 1 (host b): task ->
    node 0 -> node 1, which fills the master from the store; the only difference between the two
    clusters is the store.read round trip to the coordinator. Baseline: the bare tcp+CURVE echo.
(b) In-process: nodes.store.Store.read_page (a generator, driven to its end as a handler's
    `yield from` does) against the plain file read it wraps (protocol.storepages), one page each.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common as bc
from bench_hosts import ADDRESSES, curve_echo, fake_hosts

import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.nodes.core import directory_home
from numa_emu.nodes.store import Store
from numa_emu.protocol.hosts import Host
from numa_emu.protocol.storepages import StorePages
from numa_emu.protocol.topology import build_shape

PAGE = 4096
NAME = "fill"


def _pages_homed_on_node1(count: int) -> tuple[int, list[int]]:
    """The file's page count and, in order, `count` of its pages whose directory home is node 1."""
    pages, n = [], 0
    while len(pages) < count:
        if directory_home(f"file:{NAME}", n, 2) == 1:
            pages.append(n)
        n += 1
    return n, pages


def measure_fills(home: Path, count: int, blocks: int, warmup: int) -> dict[str, list[float]]:
    size, pages = _pages_homed_on_node1(count + warmup)
    data = bytes(range(256)) * (size * PAGE // 256)
    own = fake_hosts(home, 2)
    shared = [Host(h.name, h.address) for h in own]  # no home of their own: the coordinator's folder
    topology = build_shape("full,2,mem=64MiB,cpus=1")
    with curve_echo(ADDRESSES[1]) as curve, \
            Cluster(topology, name="shared", hosts=shared, launcher="local") as c_shared, \
            Cluster(topology, name="own", hosts=own, launcher="local") as c_own:
        ops, tasks = {}, []
        try:
            for key, c in (("shared", c_shared), ("own", c_own)):
                (c.info.dir / "store" / NAME).write_bytes(data)
                task = numa_emu.attach(0, cluster=c.name)
                tasks.append(task)
                f = task.open(NAME)
                first = pages[0] * PAGE  # filled from the one store: its bytes, not zeros
                assert f.pread(first, 8) == data[first:first + 8], key
                offsets = iter([p * PAGE for p in pages])
                ops[f"fill_{key}"] = lambda f=f, offsets=offsets: f.pread(next(offsets), 8)
                ops[f"cached_{key}"] = lambda f=f: f.pread(pages[0] * PAGE, 8)
            ops["curve8"] = lambda: curve.one(bc.read_envelope(8))
            return bc.interleaved(ops, count, blocks=blocks, warmup=warmup)
        finally:
            for task in tasks:
                task.detach()


def _drive(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def measure_generator(count: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / NAME).write_bytes(bytes(16 * PAGE))
        store, plain = Store(Path(tmp), PAGE), StorePages(Path(tmp), PAGE)
        ops = {"plain": lambda: plain.read_page(NAME, 3),
               "store": lambda: _drive(store.read_page(f"file:{NAME}", 3))}
        return bc.interleaved(ops, count, blocks=20, warmup=500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="timed fills per kind")
    parser.add_argument("--per-block", type=int, default=10, help="consecutive calls of one kind per turn")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls of each kind first")
    args = parser.parse_args()
    bc.setup()
    t0 = time.monotonic()
    with bc.temp_home() as home:
        caption = bc.host_info()
        s = measure_fills(home, args.count, max(1, args.count // args.per_block), args.warmup)
    g = measure_generator(20 * args.count)
    med = {k: bc.median(v) for k, v in s.items()}
    p10 = {k: bc.pct(v, 0.10) for k, v in s.items()}

    def row(key, label, base_key):
        return [label, *bc.sample_cells(s[key]), bc.ratio(med[key], med[base_key]), bc.ratio(p10[key], p10[base_key])]

    cols = ["operation", *bc.SAMPLE_COLUMNS, "ratio to bare CURVE RT", "same, of p10s"]
    bc.table("(a) page-cache fills whose directory home is on host b", cols, [
        row("curve8", "bare pyzmq tcp+CURVE round trip, 8 B reply (baseline)", "curve8"),
        row("fill_shared", "pread 8 B of a new page, node 1 reads the store folder itself", "curve8"),
        row("fill_own", "pread 8 B of a new page, node 1 reads the store through the coordinator", "curve8"),
        row("cached_shared", "pread 8 B of a cached page (shared folder)", "curve8"),
        row("cached_own", "pread 8 B of a cached page (own folders)", "curve8"),
    ], caption=f"{caption}; fill through the coordinator / direct: median "
               f"{bc.ratio(med['fill_own'], med['fill_shared'])}, p10 {bc.ratio(p10['fill_own'], p10['fill_shared'])}; "
               f"difference of the p10s {bc.micros(p10['fill_own'] - p10['fill_shared'])}")
    gm = {k: bc.median(v) for k, v in g.items()}
    bc.table("(b) one page from the store folder, in-process", ["operation", *bc.SAMPLE_COLUMNS], [
        ["StorePages.read_page (the file read)", *bc.sample_cells(g["plain"])],
        ["Store.read_page driven as a generator", *bc.sample_cells(g["store"])],
    ], caption=f"generator cost {bc.micros(gm['store'] - gm['plain'])} per page (medians); "
               f"load average at the end {bc.load_average()}; whole benchmark {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
