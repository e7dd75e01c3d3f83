"""bench_replication (issue 5): what one replication and one collapse (unreplication) cost,
against bare pyzmq round trips measured in the same run.

    .venv/bin/python benchmarks/bench_replication.py [--pages 300] [--collapses 60]

Every task is a puppet process (benchmarks/_common.py Puppet) that times its own API call inside
itself; the pipe that drives it is never part of a timing. Every measurement uses a fresh page.

(a) One replication, default-4n. A writer task on CPU 0 (node 0) creates files of N pages,
    writes and fsyncs them, so each page is clean with its master on node 0. Then, page by page,
    taking turns:
    - replicated: a reader on CPU 3 (node 3) that mapped file `repl` read-only reads one byte of
      page i: the read fault offers a frame of node 3 to the page's directory home D, which has
      the page's bytes put there and node 3 maps the replica; the same reader reads the byte
      again (a replica hit, local);
    - replication off: the same on node 3, by a reader in a cpuset whose replication flag is off
      (the per-cpuset switch of the 2007 series): the fault maps the master on node 0 and the
      byte comes back with a frame.read; and likewise by a reader on node 3 of a fourth file with
      the global switch `sysctl vm.pagecache_replication=0`, set just before its read and set back
      to 1 right after (when the key exists: checked with SysctlGet, `numa-emu sysctl -a`);
    - on the master's node (the fallback the issue names): a reader on CPU 0 reads page i of a
      third file; no replica, the fault maps the local master.
    Target: a replication ≤ 3× the bare 4 KiB round trip. The replicated reads are also broken
    down by where the page's directory entry lives (D = reader's node, master's node, or a
    third node), which changes how many node-to-node messages the fault waits for: 2 (D, the
    reader's node, pulls the page from the master's node), 2 (the bytes ride on D's answer), 3
    (D has the master's node send them straight to the reader, repl.fill). Two timings of the
    same fault: end to end in the task (its request to its home node and back included), and on
    the home node, from asking the directory to the replica in hand (node 3's vmstat
    repl_fault_wall_ns, read before and after each sample through ClusterStats, outside the
    task's timing).
(b) Unreplication with R replicas, R = 0, 1, 3, 7, on full,8 (node i has CPU i). A writer on
    node 0 creates and fsyncs file `c`; readers on nodes 1..7 map it read-only. For each
    measurement, readers on nodes 1..R read one byte of a fresh page (R replicas; checked with
    ClusterStats: nr_repl_pages == R over the cluster), then the writer's pwrite of 8 bytes to
    that page is timed: the collapse (shootdowns to R nodes, all acknowledgements, frees of R
    frames) and the write (nr_repl_pages == 0 checked after). Only pages whose directory entry
    lives on the writer's node (crc32 of (object, index) mod 8 == 0, one page in eight) are used,
    so that every replica is on a node other than the directory's and every shootdown is a
    message; the other pages are skipped. R values take turns. Reported: median per R, the
    increment per replica over R = 0, the least-squares slope over R, and their ratio to the
    bare 8-byte round trip (shootdown, ack and free are small messages). Target: linear in R, at
    most one bare round trip per replica. vm.pagecache_replication_backoff=0 is set when the key
    exists; with a fresh page per measurement back-off never applies anyway (it is per page).

Baselines: the bare pyzmq round trip with 8 B and 4 KiB replies (a frame.read-sized request to an
echo child), measured from this process in short blocks between the measurements above; for (b)
also the bare fan-out, R 8 B round trips at once to R echo children (one per replica node): the
floor of R parallel shootdowns on this machine, where every receiver must wake.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import msgpack
import zmq

import _common as bc
from tests.helpers import Puppet  # noqa: E402  (after _common, which puts the repository on sys.path)
from numa_emu.nodes.core import directory_home
from numa_emu.cluster import Cluster
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.topology import build_shape
from numa_emu.protocol.version import TAG

PAGE = 4096
REPL_TARGET = 3.0  # one replication / bare 4 KiB round trip
PER_REPLICA_TARGET = 1.0  # collapse increment per replica / bare round trip
R_VALUES = (0, 1, 3, 7)
SWITCH_KEY = "vm.pagecache_replication"
BACKOFF_KEY = "vm.pagecache_replication_backoff"
BARE_BLOCK = 20


class Bare:
    """The bare round trips, taken a block at a time between the cluster measurements."""

    def __init__(self, endpoint: str):
        self.client = bc.EchoClient(endpoint)
        self.env8, self.env4k = bc.read_envelope(8), bc.read_envelope(PAGE)
        self.s8: list[float] = []
        self.s4k: list[float] = []
        self.client.warm(self.env8)

    def block(self) -> None:
        self.s8 += bc.timed(lambda: self.client.one(self.env8), BARE_BLOCK)
        self.s4k += bc.timed(lambda: self.client.one(self.env4k), BARE_BLOCK)

    def close(self) -> None:
        self.client.close()


class FanOut:
    """The bare floor of a collapse: R 8 B round trips at once, one to each of R bare echo
    children, answered in any order (every child wakes, as every replica's node does), taken a
    block at a time between the cluster measurements."""

    def __init__(self, endpoints: list[str]):
        self.ctx = zmq.Context()
        self.socks = []
        for ep in endpoints:
            sock = self.ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(ep)
            self.socks.append(sock)
        self.frames = [TAG, msgpack.packb(bc.read_envelope(8), use_bin_type=True)]
        self.s: dict[int, list[float]] = {r: [] for r in R_VALUES if r}
        for _ in range(20):
            self.one(len(self.socks))

    def one(self, r: int) -> float:
        t0 = time.perf_counter()
        for sock in self.socks[:r]:
            sock.send_multipart(self.frames, copy=False)
        for sock in self.socks[:r]:
            msgpack.unpackb(sock.recv_multipart()[-1], raw=False, strict_map_key=False)
        return time.perf_counter() - t0

    def block(self) -> None:
        for _ in range(BARE_BLOCK // 4):
            for r in self.s:
                self.s[r].append(self.one(r))

    def close(self) -> None:
        for sock in self.socks:
            sock.close(linger=0)
        self.ctx.term()


def seed_file(writer: Puppet, name: str, pages: int) -> None:
    """A file of `pages` pages written by `writer` and written back: clean, master on its node."""
    writer.do("open", name=name, create=True, size=pages * PAGE)
    chunk = 256
    for first in range(0, pages, chunk):
        n = min(chunk, pages - first)
        writer.do("pwrite", name=name, offset=first * PAGE, byte=0x41, length=n * PAGE)
    writer.do("fsync", name=name, timeout_s=120.0)


def reader(cpu: int, cluster: Cluster, home, name: str, cpuset: str | None = None) -> Puppet:
    p = Puppet(cpu, cluster=cluster.name, home=home, cpuset=cpuset)
    p.do("open", name=name)
    p.do("map", name=name, writable=False, **{"as": "m"})
    return p


# ---- (a) one replication ------------------------------------------------------------------

def replication_cost(home, echo_ep: str, pages: int, notes: list[str]) -> dict:
    s: dict[str, list[float]] = {k: [] for k in ("repl", "hit", "off", "local", "sysoff", "at_home")}
    by_home: dict[str, list[float]] = {"D = reader's node (3)": [], "D = master's node (0)": [], "D = a third node": []}
    at_home_by: dict[str, list[float]] = {k: [] for k in by_home}
    with Cluster("default-4n", name="repl") as cluster, contextlib.ExitStack() as stack:
        keys = bc.sysctl_keys(cluster)
        switch = SWITCH_KEY in keys
        notes.append(f"sysctl {SWITCH_KEY}: {'present' if switch else 'absent'} (keys: {', '.join(sorted(keys))})")
        with cluster.client() as client:
            client.call(cm.CpusetCreate(name="norepl", cpus=[3], mems=[0, 1, 2, 3], replication=False))
        writer = stack.enter_context(Puppet(0, cluster=cluster.name, home=home))
        files = ("repl", "norepl", "local") + (("sysoff",) if switch else ())
        for name in files:
            seed_file(writer, name, pages)
        r_repl = stack.enter_context(reader(3, cluster, home, "repl"))
        r_off = stack.enter_context(reader(3, cluster, home, "norepl", cpuset="norepl"))
        r_local = stack.enter_context(reader(0, cluster, home, "local"))
        r_sys = stack.enter_context(reader(3, cluster, home, "sysoff")) if switch else None
        assert (r_repl.node, r_off.node, r_local.node) == (3, 3, 0)
        bare = stack.enter_context(contextlib.closing(Bare(echo_ep)))
        coordinator = stack.enter_context(cluster.client())
        def home_wall_ns() -> int:  # node 3's wall time spent from asking to a replica mapped, summed
            return coordinator.call(tm.ClusterStats()).nodes[3]["vmstat"].get("repl_fault_wall_ns", 0)

        for i in range(pages):
            off = i * PAGE
            before = home_wall_ns()
            data, dt = r_repl.timed("read", offset=off, length=1, **{"as": "m"})
            assert data == "41", data
            at_home = (home_wall_ns() - before) / 1e9
            s["repl"].append(dt)
            s["at_home"].append(at_home)
            d = directory_home("file:repl", i, 4)
            where_d = list(by_home)[0 if d == 3 else 1 if d == 0 else 2]
            by_home[where_d].append(dt)
            at_home_by[where_d].append(at_home)
            s["hit"].append(r_repl.timed("read", offset=off, length=1, **{"as": "m"})[1])
            s["off"].append(r_off.timed("read", offset=off, length=1, **{"as": "m"})[1])
            s["local"].append(r_local.timed("read", offset=off, length=1, **{"as": "m"})[1])
            if r_sys is not None:  # the global switch, off for this one read only
                coordinator.call(cm.SysctlSet(values={SWITCH_KEY: "0"}))
                s["sysoff"].append(r_sys.timed("read", offset=off, length=1, **{"as": "m"})[1])
                coordinator.call(cm.SysctlSet(values={SWITCH_KEY: "1"}))
            if i % 5 == 4:
                bare.block()
        where = (r_repl.do("where", **{"as": "m"}), r_off.do("where", **{"as": "m"}), r_local.do("where", **{"as": "m"}))
        vm = bc.vmstat_by_node(cluster)
        if where[0] != [3] * pages or where[1] != [0] * pages or where[2] != [0] * pages:
            notes.append(f"[red]unexpected placement: replicated reader sees {sorted(set(where[0]))}, "
                         f"replication-off reader {sorted(set(where[1]))}, local reader {sorted(set(where[2]))}[/red]")
        if r_sys is not None and r_sys.do("where", **{"as": "m"}) != [0] * pages:
            notes.append(f"[red]with {SWITCH_KEY}=0 a reader on node 3 got replicas[/red]")
        if vm[3].get("pgreplicated", 0) != pages or vm[3].get("nr_repl_pages", 0) != pages:
            notes.append(f"[red]node 3 has pgreplicated {vm[3].get('pgreplicated', 0)}, nr_repl_pages "
                         f"{vm[3].get('nr_repl_pages', 0)}; expected {pages} each[/red]")
    return {"s": s, "by_home": by_home, "at_home_by": at_home_by, "bare8": bare.s8, "bare4k": bare.s4k, "switch": switch}


# ---- (b) collapse with R replicas ---------------------------------------------------------

def collapse_cost(home, echo_ep: str, fan_eps: list[str], per_r: int, notes: list[str]) -> dict:
    n_nodes = 8
    obj = "file:c"
    wanted = per_r * len(R_VALUES)
    candidates = []
    idx = 0
    while len(candidates) < wanted:
        if directory_home(obj, idx, n_nodes) == 0:
            candidates.append(idx)
        idx += 1
    file_pages = candidates[-1] + 1
    s: dict[int, list[float]] = {r: [] for r in R_VALUES}
    bad: list[str] = []
    with Cluster(build_shape(f"full,{n_nodes},mem=64MiB,cpus=1"), name="collapse") as cluster, \
            contextlib.ExitStack() as stack:
        keys = bc.sysctl_keys(cluster)
        if BACKOFF_KEY in keys:
            with cluster.client() as client:
                client.call(cm.SysctlSet(values={BACKOFF_KEY: "0"}))
            notes.append(f"{BACKOFF_KEY}=0 set")
        else:
            notes.append(f"{BACKOFF_KEY} absent (back-off is per page; fresh pages never meet it)")
        writer = stack.enter_context(Puppet(0, cluster=cluster.name, home=home))
        seed_file(writer, "c", file_pages)
        readers = [stack.enter_context(reader(cpu, cluster, home, "c")) for cpu in range(1, n_nodes)]
        assert [r.node for r in readers] == list(range(1, n_nodes))
        bare = stack.enter_context(contextlib.closing(Bare(echo_ep)))
        fan = stack.enter_context(contextlib.closing(FanOut(fan_eps)))
        zaps0 = bc.vmstat_total(cluster, "pgreplicazap_write")
        pages = iter(candidates)
        for k in range(per_r):
            for r in R_VALUES:
                page = next(pages)
                for rd in readers[:r]:
                    assert rd.do("read", offset=page * PAGE, length=1, **{"as": "m"}) == "41"
                have = bc.vmstat_total(cluster, "nr_repl_pages")
                if have != r:
                    bad.append(f"page {page}: {have} replicas before the write, expected {r}")
                _, dt = writer.timed("pwrite", name="c", offset=page * PAGE, byte=k % 256, length=8)
                s[r].append(dt)
                left = bc.vmstat_total(cluster, "nr_repl_pages")
                if left:
                    bad.append(f"page {page}: {left} replicas left after the write")
            bare.block()
            fan.block()
        zaps = bc.vmstat_total(cluster, "pgreplicazap_write") - zaps0
        if zaps != per_r * sum(R_VALUES):
            bad.append(f"pgreplicazap_write grew by {zaps}, expected {per_r * sum(R_VALUES)}")
    for b in bad[:5]:
        notes.append(f"[red]{b}[/red]")
    if len(bad) > 5:
        notes.append(f"[red]... and {len(bad) - 5} more[/red]")
    return {"s": s, "bare8": bare.s8, "bare4k": bare.s4k, "fan": fan.s, "file_pages": file_pages, "bad": len(bad)}


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300, help="(a): replications measured (fresh pages)")
    parser.add_argument("--collapses", type=int, default=60, help="(b): collapses measured per R (fresh pages)")
    args = parser.parse_args()
    bc.setup()
    t0 = time.monotonic()
    notes_a: list[str] = []
    notes_b: list[str] = []
    with bc.temp_home() as home:
        caption = bc.host_info()
        with bc.echo_server(home) as echo_ep:
            a = replication_cost(home, echo_ep, args.pages, notes_a)
            t_a = time.monotonic() - t0
            with contextlib.ExitStack() as echoes:
                fan_eps = []
                for i in range(1, 8):  # one bare echo child per replica node
                    (home / f"fan{i}").mkdir()
                    fan_eps.append(echoes.enter_context(bc.echo_server(home / f"fan{i}")))
                b = collapse_cost(home, echo_ep, fan_eps, args.collapses, notes_b)

    # (a)
    s, b4k, p4k = a["s"], bc.median(a["bare4k"]), bc.pct(a["bare4k"], 0.10)

    def row(label, v, target=None):
        return [label, *bc.sample_cells(v), bc.ratio(bc.median(v), b4k), bc.ratio(bc.pct(v, 0.10), p4k),
                f"≤ {target:g}×" if target else "", bc.verdict(bc.median(v) / b4k <= target if target else None)]

    rows = [row("bare pyzmq round trip, 4 KiB reply (baseline)", a["bare4k"]),
            row("bare pyzmq round trip, 8 B reply", a["bare8"]),
            row("(a) read fault making a replica, end to end in the task (node 3, master on 0)", s["repl"],
                REPL_TARGET)]
    rows += [row(f"    of which {label}", v) for label, v in a["by_home"].items() if v]
    rows.append(row("(a) the same fault on the home node 3: asking D to replica mapped", s["at_home"], REPL_TARGET))
    rows += [row(f"    of which {label}", v) for label, v in a["at_home_by"].items() if v]
    rows += [row("second read of it (replica hit, local)", s["hit"]),
             row("read fault, replication off (cpuset flag): master on 0", s["off"])]
    if s["sysoff"]:
        rows.append(row(f"read fault, {SWITCH_KEY}=0: master on 0", s["sysoff"]))
    rows.append(row("read fault on the master's node (no replica)", s["local"]))
    extra = bc.median(s["repl"]) - bc.median(s["off"])
    bc.table("(a) one replication: first read of 1 byte of a clean file page whose master is on another node",
             ["operation", *bc.SAMPLE_COLUMNS, "ratio to bare 4 KiB RT", "same, of p10s", "target", ""], rows,
             caption="\n".join([caption, *notes_a,
                                f"replication's own cost (replicated − replication off, medians): {bc.micros(extra)} "
                                f"= {extra / b4k:.2f} bare 4 KiB round trips (with the global switch off: "
                                f"{bc.micros(bc.median(s['repl']) - bc.median(s['sysoff'])) if s['sysoff'] else '-'}); "
                                f"default-4n, {args.pages} fresh pages "
                                f"per row; (a) took {t_a:.0f} s"]))

    # (b)
    s, b8, b4k = b["s"], bc.median(b["bare8"]), bc.median(b["bare4k"])
    med = {r: bc.median(v) for r, v in s.items()}
    k = slope(list(R_VALUES), [med[r] for r in R_VALUES])
    rows = [["bare pyzmq round trip, 8 B reply (baseline)", *bc.sample_cells(b["bare8"]), "", "", "", ""],
            ["bare pyzmq round trip, 4 KiB reply", *bc.sample_cells(b["bare4k"]), "", "", "", ""]]
    for r in R_VALUES:
        if r == 0:
            rows.append(["writer pwrite 8 B, no replica (R = 0)", *bc.sample_cells(s[r]), "", "", "", ""])
            continue
        inc = (med[r] - med[0]) / r
        rows.append([f"writer pwrite 8 B collapsing R = {r}", *bc.sample_cells(s[r]), bc.micros(inc),
                     bc.ratio(inc, b8), f"≤ {PER_REPLICA_TARGET:g}×", bc.verdict(inc / b8 <= PER_REPLICA_TARGET)])
    fan = {r: bc.median(v) for r, v in b["fan"].items()}
    for r in R_VALUES[1:]:
        inc = (fan[r] - fan[1]) / (r - 1) if r > 1 else 0.0
        rows.append([f"bare fan-out: {r} parallel 8 B round trips to {r} echo children", *bc.sample_cells(b["fan"][r]),
                     bc.micros(inc) if r > 1 else "", bc.ratio(inc, b8) if r > 1 else "", "", ""])
    kf = slope([1, 3, 7], [fan[r] for r in (1, 3, 7)])
    rows.append(["bare fan-out, least-squares slope over R = 1, 3, 7", "", "", "", "", bc.micros(kf), bc.ratio(kf, b8),
                 "", ""])
    rows.append(["least-squares slope over R = 0, 1, 3, 7 (medians)", "", "", "", "", bc.micros(k), bc.ratio(k, b8),
                 f"≤ {PER_REPLICA_TARGET:g}×", bc.verdict(k / b8 <= PER_REPLICA_TARGET)])
    steps = [f"{a_}→{b_}: {bc.micros((med[b_] - med[a_]) / (b_ - a_))}/replica"
             for a_, b_ in zip(R_VALUES, R_VALUES[1:])]
    bc.table("(b) unreplication: the writer's pwrite of 8 bytes to a page with R replicas (shootdowns, acks, frees)",
             ["operation", *bc.SAMPLE_COLUMNS, "increment per replica over R = 0", "ratio to bare 8 B RT", "target",
              ""], rows,
             caption="\n".join([*notes_b, f"linearity, step by step: {'; '.join(steps)}",
                                f"full,8 (mem=64MiB, cpus=1), file of {b['file_pages']} pages of which "
                                f"{args.collapses * len(R_VALUES)} used (directory entry on the writer's node); "
                                f"{b['bad']} verification failure(s); load average at the end {bc.load_average()}; "
                                f"whole benchmark: {time.monotonic() - t0:.0f} s"]))


if __name__ == "__main__":
    main()
