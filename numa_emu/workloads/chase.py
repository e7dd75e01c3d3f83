"""chase: a random-access pointer chase over one region, the latency probe of lmbench's lat_mem_rd.

The region (--size) is cut into slots of one cache line (64 bytes) or one page (--granularity).
A seeded random cyclic permutation of the slots (Sattolo's algorithm: one cycle through every
slot) is written into the region, each slot holding the byte offset of the next as 8 bytes
little-endian; the set-up writes whole pages in batches and is not measured. The measured phase
follows --hops pointers --iterations times from slot 0, each hop an 8-byte read whose address
depends on the previous one, so no two hops can be batched: a pointer chase is inherently serial,
which is why it measures latency. With --hops equal to the number of slots, one iteration visits
every slot exactly once and comes back to slot 0 (`distinct_slots`, `cycle_closed`).

Result fields besides the common ones: granularity, slot_bytes, slots, hops, distinct_slots,
cycle_closed (null unless hops is a multiple of the slot count), end_offset, ns_per_hop.
"""
from __future__ import annotations

import argparse
import random
import struct

from numa_emu.workloads.runner import Phase, main, positive_int

DEFAULTS = {"size": "4MiB", "iterations": 1}
LINE_BYTES = 64
POINTER = struct.Struct("<Q")
WRITE_BATCH_PAGES = 64  # pages per write message in the set-up


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hops", type=positive_int, default=2000, help="hops per iteration (default 2000)")
    p.add_argument("--granularity", choices=("line", "page"), default="line",
                   help="slot size: a 64-byte cache line or a page (default line)")


def cycle(n_slots: int, seed: int) -> list[int]:
    """next[i] of a random permutation with a single cycle through all slots (Sattolo, 1986)."""
    order = list(range(n_slots))
    rng = random.Random(seed)
    for i in range(n_slots - 1, 0, -1):
        j = rng.randrange(i)  # j < i, never i itself: that is what makes it one cycle
        order[i], order[j] = order[j], order[i]
    nxt = [0] * n_slots
    for i in range(n_slots):
        nxt[order[i]] = order[(i + 1) % n_slots]
    return nxt


def image(nxt: list[int], slot_bytes: int) -> bytearray:
    """The region's bytes: at each slot, the byte offset of the next slot."""
    buf = bytearray(len(nxt) * slot_bytes)
    for i, j in enumerate(nxt):
        POINTER.pack_into(buf, i * slot_bytes, j * slot_bytes)
    return buf


def run(task, args: argparse.Namespace) -> dict:
    ps = task.page_size
    slot_bytes = LINE_BYTES if args.granularity == "line" else ps
    n_pages = max(1, -(-args.size // ps))
    n_slots = n_pages * ps // slot_bytes
    region = task.mmap(n_pages * ps)
    data = image(cycle(n_slots, args.seed), slot_bytes)
    batch = WRITE_BATCH_PAGES * ps
    for off in range(0, len(data), batch):
        region.write(off, bytes(data[off:off + batch]))

    visited: set[int] = set()
    offset, closed = 0, True
    with Phase(task) as phase:
        for _ in range(args.iterations):
            for _ in range(args.hops):
                offset = POINTER.unpack(region.read(offset, POINTER.size))[0]
                visited.add(offset)
            closed = closed and offset == 0
    hops = args.hops * args.iterations
    return {"virtual_ns": phase.virtual_ns, "wall_s": phase.wall_s, "ops": hops, "bytes": hops * POINTER.size,
            "size": n_pages * ps, "granularity": args.granularity, "slot_bytes": slot_bytes, "slots": n_slots,
            "hops": hops, "distinct_slots": len(visited),
            "cycle_closed": closed if args.hops % n_slots == 0 else None, "end_offset": offset,
            "ns_per_hop": phase.virtual_ns / hops}


if __name__ == "__main__":
    raise SystemExit(main("chase"))
