"""bench_flood (issue 10): what another client sees while a node is flooded with garbage, and
while another node dies.

    .venv/bin/python benchmarks/bench_flood.py [--count 2000] [--seconds 3]

A task on CPU 0 of default-4n reads 8 bytes of its local page (Region.read, through its home node
0), --count times per phase, timing each read:
- normal: nothing else happens;
- flood: for --seconds, a child process of the same user (it holds the cluster's keys: a buggy client, not an
  outsider, whom the ZAP check already keeps out) sends node 0 garbage as fast as it can: random
  bytes, the right tag with random bodies, random msgpack maps with real message kinds, wrong
  versions and oversized frames; it never reads the error replies; the reads go on while it floods;
- death: node 3 is killed (SIGKILL) right before the reads; they overlap the coordinator learning
  of the death and telling every node (node.down).
Baseline in the same run: a bare pyzmq round trip (echo child), quiet and during the flood.
Target: the reads' median during the flood and during the death within 2x of normal.
Each phase ends with a check of every node's state (all up after the flood; only node 3 dead after
its death).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time

import msgpack

import _common as bc
import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol import codec
from numa_emu.protocol.clusterdir import endpoint_for
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.version import TAG

PAGE = 4096
TARGET = 2.0
KINDS = ["ping", "node.register", "mem.access", "mem.fault", "frame.read", "frame.alloc", "dir.lookup", "nope", ""]


def garbage(rng: random.Random) -> list[bytes]:
    """One malformed message, of a kind picked at random."""
    pick = rng.randrange(4) if rng.random() > 0.005 else 4  # an oversized one (64 MiB + 1) now and then
    if pick == 0:
        return [rng.randbytes(rng.randrange(1, 64)) for _ in range(rng.randrange(1, 4))]
    if pick == 1:
        return [TAG, rng.randbytes(rng.randrange(0, 64))]
    if pick == 2:
        env = {"kind": rng.choice(KINDS), "id": rng.randrange(2**31), rng.choice("abcxyz"): rng.randbytes(4)}
        return [TAG, msgpack.packb(env, use_bin_type=True)]
    if pick == 3:
        return [b"NUMAEMU/2", codec.pack({"kind": "ping", "id": 1})]
    return [TAG, b"\x00" * (codec.MAX_ENVELOPE_BYTES + 1)]


def flooder_main(name: str, endpoint: str, seconds: float) -> None:
    """The flooding child: sends until the time is up, drains replies it never reads, prints how
    many it sent."""
    from numa_emu import cluster as cl

    rng = random.Random(7)
    info = cl.require(name)
    sent = 0
    with info.client(2.0, endpoint) as client:
        print("ready", flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            client.send_raw(garbage(rng))
            sent += 1
            if sent % 64 == 0:
                while client.recv_raw(0) is not None:
                    pass
    print(sent, flush=True)


def timed_reads(region, count: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(count):
        t0 = clock()
        region.read(PAGE - 8, 8)
        out.append(clock() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=2000, help="reads per phase")
    p.add_argument("--seconds", type=float, default=3.0, help="how long the flooder floods (the reads go on meanwhile)")
    args = p.parse_args()
    bc.setup()
    rows, notes = [], []
    with bc.temp_home() as home, bc.echo_server(home) as echo_endpoint, Cluster("default-4n", name="flood") as c:
        echo = bc.EchoClient(echo_endpoint)
        envelope = bc.read_envelope(8)
        with numa_emu.attach(0, cluster="flood") as task:
            region = task.mmap(PAGE)
            region.touch(fill=0)
            timed_reads(region, 300)  # warm-up
            bare = echo.round_trips(envelope, args.count)
            normal = timed_reads(region, args.count)

            node0 = endpoint_for(c.info.dir, "node-0")
            with c.client(endpoint=node0) as probe:
                bad_before = probe.call(lc.ProcStats()).stats.get("bad_messages", 0)
            flood = subprocess.Popen([sys.executable, __file__, "--flooder", "flood", node0, str(args.seconds)],
                                     stdout=subprocess.PIPE, text=True)
            assert flood.stdout.readline().strip() == "ready"
            t0 = time.monotonic()
            flooded, bare_flooded = [], []
            while flood.poll() is None:  # the reads and the bare probe take turns while the flood lasts
                flooded += timed_reads(region, 100)
                bare_flooded += echo.round_trips(envelope, 25)
            flood_s = time.monotonic() - t0
            sent = int(flood.communicate(timeout=args.seconds + 30)[0].strip().splitlines()[-1])
            with c.client(endpoint=node0) as probe:
                bad = probe.call(lc.ProcStats()).stats.get("bad_messages", 0) - bad_before
            assert [n["state"] for n in c.status().nodes] == ["up"] * 4, "every node must still serve after the flood"
            notes.append(f"flooder sent {sent} garbage messages ({sent / args.seconds:.0f}/s); node 0 counted "
                         f"{bad} bad messages; the reads ran for {flood_s:.2f} s of the flood")

            victim = int(c.status().nodes[3]["pid"])
            os.kill(victim, signal.SIGKILL)
            dying = timed_reads(region, args.count)
            states = [n["state"] for n in c.status().nodes]
            assert states[:3] == ["up"] * 3 and states[3] == "dead", states
        echo.close()
    med = bc.median
    rows = [
        ["bare pyzmq round trip", *bc.sample_cells(bare), "", ""],
        ["bare round trip during the flood", *bc.sample_cells(bare_flooded), bc.ratio(med(bare_flooded), med(bare)), ""],
        ["local 8-byte read, normal", *bc.sample_cells(normal), "1.00×", ""],
        ["local 8-byte read, node 0 flooded", *bc.sample_cells(flooded), bc.ratio(med(flooded), med(normal)),
         bc.verdict(med(flooded) <= TARGET * med(normal))],
        ["local 8-byte read, node 3 dying", *bc.sample_cells(dying), bc.ratio(med(dying), med(normal)),
         bc.verdict(med(dying) <= TARGET * med(normal))],
    ]
    bc.table("Another client's reads during a garbage flood and a node's death",
             ["measure", *bc.SAMPLE_COLUMNS, "ratio to normal", f"≤ {TARGET}×"], rows,
             caption="; ".join(notes) + "\n" + bc.host_info())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--flooder":
        flooder_main(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
