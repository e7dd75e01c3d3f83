"""bench_access (issue 3): what one memory operation of a task costs, against a bare pyzmq round
trip, and how fast a batched first touch goes, against the host's own first touch.

    .venv/bin/python benchmarks/bench_access.py [--count 5000] [--reps 3]

(a) Baseline: a bare pyzmq round trip between two processes over numa-emu's transport (DEALER
    -> ROUTER over ipc, the NUMAEMU/1 tag frame and a msgpack map the size of a mem.access
    request; the child decodes and re-encodes it).
(b) A task on CPU 0 of default-4n, through its home node 0: Region.read(offset, 8) and
    Region.write(offset, 8 bytes) on an already-faulted local page, and a bare `ping` of the
    node through protocol.client (the framework without the memory manager). Measured in
    interleaved blocks with (a), so that noise hits all alike; medians. Target: ≤ 1.5× (a).
(c) Batched first touch, Region.touch(fill=0xFF), on fresh 64, 128 and 256 MiB regions under
    the local policy and under interleave over all four nodes (remote frames via frame.alloc),
    in pages/s. Rep 1 gets frames never used before (the node's mmap faults them in), later
    reps frames recycled by munmap. One fresh cluster per policy. Target: ≥ 100,000 pages/s.
    Baseline: the host's first touch of fresh anonymous memory, measured right before each
    touch of the same size (mmap, then a whole-page fill, the analogue of fill=0xFF; and one
    byte written per page from a Python loop).
"""
from __future__ import annotations

import argparse
import mmap
import time

import _common as bc
import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.clusterdir import endpoint_for
from numa_emu.protocol.messages import lifecycle as lc

PAGE = 4096
READ_RATIO_TARGET = 1.5
TOUCH_TARGET_PAGES_S = 100_000
SIZES_MIB = (64, 128, 256)
BLOCKS = 5  # (a) and (b) alternate in this many blocks
WARMUP = 500
# What a task sends for an 8-byte read (protocol.messages.memory.Access.to_wire()).
ACCESS_ENVELOPE = {"kind": "mem.access", "id": 0, "task_id": 1, "vaddr": 0x7F0000000000 + 4088, "length": 8,
                   "data": None}


def single_ops(home, count: int) -> list[list[object]]:
    """(a) and (b), interleaved in blocks; one table row each."""
    samples: dict[str, list[float]] = {k: [] for k in ("bare", "ping", "read", "write")}
    per_block = max(1, count // BLOCKS)
    with bc.echo_server(home) as echo_endpoint, Cluster("default-4n", name="ops") as cluster:
        echo = EchoRunner(echo_endpoint)
        task = numa_emu.attach(0, cluster="ops")
        node = cluster.client(endpoint=endpoint_for(cluster.info.dir, "node-0"))
        try:
            region = task.mmap(PAGE)
            region.touch(fill=0)
            assert region.where() == [task.node], "the page must be local to the task"
            data = b"\x01" * 8
            ops = {"bare": echo.one, "ping": lambda: node.call(lc.Ping()),
                   "read": lambda: region.read(PAGE - 8, 8), "write": lambda: region.write(PAGE - 8, data)}
            for fn in ops.values():
                bc.timed(fn, WARMUP)
            for _ in range(BLOCKS):
                for kind, fn in ops.items():
                    samples[kind] += bc.timed(fn, per_block)
            assert region.read(PAGE - 8, 8) == data
        finally:
            node.close()
            task.detach()
            echo.close()
    base = bc.median(samples["bare"])
    rows = []
    for kind, label, target in (("bare", "(a) bare pyzmq round trip (baseline)", None),
                                ("ping", "node ping via protocol.client", None),
                                ("read", "(b) Region.read(off, 8), local page", READ_RATIO_TARGET),
                                ("write", "(b) Region.write(off, 8 bytes), local page", READ_RATIO_TARGET)):
        s = sorted(samples[kind])
        med = bc.median(s)
        rows.append([label, len(s), bc.micros(med), bc.micros(s[len(s) // 10]), bc.micros(s[len(s) * 9 // 10]),
                     bc.ratio(med, base), f"≤ {target:g}×" if target else "",
                     bc.verdict(med / base <= target if target else None)])
    return rows


class EchoRunner:
    def __init__(self, endpoint: str):
        self.client = bc.EchoClient(endpoint)
        self.envelope = dict(ACCESS_ENVELOPE)

    def one(self) -> None:
        self.client.round_trips(self.envelope, 1)

    def close(self) -> None:
        self.client.close()


def touch_rates(policy: str, reps: int, host: dict, notes: list[str]) -> dict[int, tuple[float, list[float]]]:
    """pages/s of Region.touch(fill=0xFF) per size: (rep 1 on never-used frames, later reps).
    Right before each, the host's own first touch of the same size goes to `host[mib]`, so that
    the baseline sees the same moment of a noisy machine. Whatever goes wrong (a node declared suspect or dead by the coordinator meanwhile, an error
    reply) goes to `notes`; an error ends this policy's measurements, with what was had so far."""
    first: dict[int, float] = {}
    again: dict[int, list[float]] = {mib: [] for mib in SIZES_MIB}
    with Cluster("default-4n", name=f"touch-{policy}") as cluster:
        task = numa_emu.attach(0, cluster=f"touch-{policy}")
        try:
            if policy == "interleave":
                task.set_mempolicy("interleave", "0-3")
            regions = []
            for mib in SIZES_MIB:  # 448 MiB in all: fits every node's 512 MiB, so frames are fresh
                region = task.mmap(mib << 20)
                first[mib] = _touch(region, cluster, f"{policy} {mib} MiB rep 1", host, notes)
                regions.append(region)
            if policy == "interleave":
                spread = regions[0].where()
                assert all(spread.count(n) == len(spread) // 4 for n in range(4)), "interleave did not spread"
            for region in regions:
                region.munmap()
            for mib in SIZES_MIB:
                for rep in range(2, reps + 1):
                    region = task.mmap(mib << 20)
                    again[mib].append(_touch(region, cluster, f"{policy} {mib} MiB rep {rep}", host, notes))
                    region.munmap()
        except NumaEmuError as exc:
            notes.append(f"{policy}: {exc} — measurements of this policy stopped here")
        finally:
            try:
                task.detach()
            except NumaEmuError:
                pass  # its home node is gone (noted above); the cluster stop below cleans up
    return {mib: (first[mib], again[mib]) for mib in SIZES_MIB if mib in first}


def _touch(region, cluster: Cluster, what: str, host: dict, notes: list[str]) -> float:
    host.setdefault(region.length >> 20, []).append(host_first_touch(region.length >> 20))
    t0 = time.perf_counter()
    reply = region.touch(fill=0xFF)
    dt = time.perf_counter() - t0
    assert reply.pages == reply.faults == region.length // PAGE
    # A node busy in one long request sends no heartbeat: tell whether the coordinator noticed.
    late = [f"node {n['id']} {n['state']}" for n in cluster.status().nodes if n["state"] != "up"]
    if late:
        notes.append(f"{what}: took {dt:.2f} s; the coordinator now has {', '.join(late)}")
    return reply.pages / dt


def host_first_touch(mib: int) -> tuple[float, float]:
    """pages/s of the host's own first touch: (one byte per page from Python, whole-page fill)."""
    length = mib << 20
    rates = []
    for whole_page in (False, True):
        with mmap.mmap(-1, length) as m:
            t0 = time.perf_counter()
            if whole_page:
                chunk = b"\xff" * (2 << 20)
                for off in range(0, length, len(chunk)):
                    m[off:off + len(chunk)] = chunk
            else:
                for off in range(0, length, PAGE):
                    m[off] = 0xFF
            rates.append(length // PAGE / (time.perf_counter() - t0))
    return rates[0], rates[1]


def touch_rows(reps: int, notes: list[str]) -> list[list[object]]:
    host: dict[int, list[tuple[float, float]]] = {}
    results = {policy: touch_rates(policy, reps, host, notes) for policy in ("local", "interleave")}
    for mib in SIZES_MIB:
        host.setdefault(mib, [host_first_touch(mib)])
    host_byte = {mib: bc.median([h[0] for h in v]) for mib, v in host.items()}
    host_fill = {mib: bc.median([h[1] for h in v]) for mib, v in host.items()}
    rows = []
    for policy, label in (("local", "local (node 0)"), ("interleave", "interleave 0-3")):
        rates = results[policy]
        rows += [[f"touch, {label}", mib, "[red]failed[/red]", "", "", "", "", ""] for mib in SIZES_MIB if mib not in rates]
        for mib, (first, again) in rates.items():
            med = bc.median([first] + again)
            rows.append([f"touch, {label}", mib, f"{med:,.0f}", f"{first:,.0f}",
                         f"{bc.median(again):,.0f}" if again else "-", f"{med / host_fill[mib]:.2f}×",
                         f"≥ {TOUCH_TARGET_PAGES_S:,}", bc.verdict(med >= TOUCH_TARGET_PAGES_S)])
    for mib in SIZES_MIB:
        rows.append(["host: mmap + page fill (baseline)", mib, f"{host_fill[mib]:,.0f}", f"(of {len(host[mib])})", "", "1.00×",
                     "", ""])
    for mib in SIZES_MIB:
        rows.append(["host: mmap + 1 byte/page", mib, f"{host_byte[mib]:,.0f}", "", "",
                     f"{host_byte[mib] / host_fill[mib]:.2f}×", "", ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="timed round trips per kind in (a) and (b)")
    parser.add_argument("--reps", type=int, default=3, help="touches per size and policy in (c)")
    args = parser.parse_args()
    bc.setup()
    t0 = time.monotonic()
    with bc.temp_home() as home:
        caption = bc.host_info()
        ops = single_ops(home, args.count)
        notes: list[str] = []
        touches = touch_rows(max(1, args.reps), notes)
    bc.table(f"(a)+(b) one small request, round trip seen by the task (interleaved blocks, after {WARMUP} warm-up)",
             ["operation", "n", "median", "p10", "p90", "ratio to (a)", "target", ""], ops, caption=caption)
    bc.table("(c) batched first touch Region.touch(fill=0xFF), pages/s (4 KiB pages; default-4n, task on CPU 0)",
             ["operation", "MiB", f"median of {max(1, args.reps)}", "rep 1: never-used frames",
              "later reps: recycled frames", "ratio to host fill", "target", ""], touches,
             caption="\n".join([f"[red]{n}[/red]" for n in notes] + [f"whole benchmark: {time.monotonic() - t0:.0f} s"]))


if __name__ == "__main__":
    main()
