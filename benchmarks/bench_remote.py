"""bench_remote (issue 4): what a remote access costs, against bare pyzmq round trips of the same
size measured in the same run.

    .venv/bin/python benchmarks/bench_remote.py [--count 4000]

A cluster of two nodes (full,2: node i has CPU i), virtual mode (no injected delay). A task on
CPU 0 maps one private page bound to node 1 (mbind bind 1) and one local page.

(a) Remote 8-byte read: Region.read(off, 8) of the page on node 1. The home node forwards the
    access, the owner answers the task (IVY forwarding): task -> home node 0 (mem.access) ->
    owner node 1 (mem.access.forward) -> task (the AccessReply), three messages. Target: ≤ 2.5×
    the bare 8-byte round trip.
(b) Remote 4 KiB page copy: Region.read(0, 4096) of the page on node 1 (the same three
    messages), and, to isolate the node-to-node path, the frame.read round trip itself: this
    process talks to node 1's ROUTER directly with protocol.client.Client, FrameRead(frame, 0,
    4096) of a frame it allocated there with FrameAlloc (freed with FrameFree at the end); the
    same at 8 bytes. Target: the 4 KiB frame.read ≤ 2× the bare 4 KiB round trip.

Baselines (benchmarks/_common.py), measured taking turns with the above:
- bare round trip, 8 B / 4 KiB: a DEALER -> ROUTER echo child over ipc, NUMAEMU/1 tag frame, a
  msgpack request the size of a frame.read answered with 8 B / 4 KiB of data (the same bytes on
  the wire as frame.read and its reply);
- bare two hops, 8 B / 4 KiB: the same through a relay child (decode, encode, pass on, and back),
  i.e. three processes and two round trips, the floor of a design where the home node asks the
  owner and answers the task itself (four messages: this project's design before forwarding);
- bare forwarding, 8 B / 4 KiB: a forwarding child passes the request on with the client's
  routing id and the echo child answers the client directly (a ROUTER connected to both): three
  processes, three messages, the floor of the forwarding design. With 2 CPUs for three
  processes this is where scheduling shows.
Also shown: the local 8-byte read (task -> home node only), for scale, and the remote read
answered through the home node (mem.access without `direct`, as before forwarding: four messages).

Every kind takes its turn 10 calls at a time (--per-block), so that the load of other processes
hits all alike. Ratios are given of the medians (the targets') and of the p10s: under load the
cheap bare round trip inflates most and the median ratio drops; the p10 ratio is the quiet one.
"""
from __future__ import annotations

import argparse
import time

import _common as bc
import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.topology import build_shape

PAGE = 4096
SHAPE = "full,2,mem=64MiB,cpus=1"
READ8_TARGET = 2.5  # remote 8-byte read / bare 8-byte round trip
FRAME4K_TARGET = 2.0  # node-to-node frame.read of 4 KiB / bare 4 KiB round trip


def measure(home, count: int, blocks: int, warmup: int) -> dict[str, list[float]]:
    with bc.echo_server(home) as echo_ep, bc.relay_server(home, echo_ep) as relay_ep, \
            bc.forward_server(home, echo_ep) as forward_ep, Cluster(build_shape(SHAPE), name="remote") as cluster:
        echo, relay = bc.EchoClient(echo_ep), bc.EchoClient(relay_ep)
        forward = bc.ForwardClient(forward_ep, echo_ep)
        env8, env4k = bc.read_envelope(8), bc.read_envelope(PAGE)
        task = numa_emu.attach(0, cluster="remote")
        node1 = cluster.client(endpoint=cluster.status().nodes[1]["endpoint"])
        frame = None
        try:
            remote = task.mmap(PAGE)
            remote.mbind("bind", [1])
            remote.touch(fill=0x5A)
            local = task.mmap(PAGE)
            local.touch(fill=0x5A)
            assert remote.where() == [1] and local.where() == [0], (remote.where(), local.where())
            frame = node1.call(mm.FrameAlloc(count=1, preferred=1, task_node=1)).frames[0]
            read8 = mm.FrameRead(frame=frame, offset=0, length=8)
            read4k = mm.FrameRead(frame=frame, offset=0, length=PAGE)
            assert len(node1.call(read4k).data) == PAGE and remote.read(0, PAGE) == b"\x5a" * PAGE
            ops = {
                "bare8": lambda: echo.one(env8),
                "bare4k": lambda: echo.one(env4k),
                "hop8": lambda: relay.one(env8),
                "hop4k": lambda: relay.one(env4k),
                "fwd8": lambda: forward.one(env8),
                "fwd4k": lambda: forward.one(env4k),
                "local8": lambda: local.read(PAGE - 8, 8),
                "remote8": lambda: remote.read(PAGE - 8, 8),
                # the same read answered through the home node (no `direct`: four messages), for comparison
                "home8": lambda: task._call(mm.Access(task_id=task.task_id, vaddr=remote.vaddr + PAGE - 8, length=8)),
                "remote4k": lambda: remote.read(0, PAGE),
                "frame8": lambda: node1.call(read8),
                "frame4k": lambda: node1.call(read4k),
            }
            return bc.interleaved(ops, count, blocks=blocks, warmup=warmup)
        finally:
            if frame is not None:
                node1.call(mm.FrameFree(frames=[frame]))
            node1.close()
            task.detach()
            echo.close()
            relay.close()
            forward.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="timed round trips per kind")
    parser.add_argument("--per-block", type=int, default=10,
                        help="consecutive calls of one kind before the next kind takes its turn")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls of each kind first")
    args = parser.parse_args()
    bc.setup()
    t0 = time.monotonic()
    with bc.temp_home() as home:
        caption = bc.host_info()
        s = measure(home, args.count, max(1, args.count // args.per_block), args.warmup)
    med = {k: bc.median(v) for k, v in s.items()}
    p10 = {k: bc.pct(v, 0.10) for k, v in s.items()}

    def row(key, label, base_key, target=None, chains=None):
        ratio = med[key] / med[base_key]
        to_chains = [bc.ratio(med[key], med[c]) for c in chains] if chains else ["", ""]
        return [label, *bc.sample_cells(s[key]), bc.ratio(med[key], med[base_key]),
                bc.ratio(p10[key], p10[base_key]), *to_chains,
                f"≤ {target:g}×" if target else "", bc.verdict(ratio <= target if target else None)]

    cols = ["operation", *bc.SAMPLE_COLUMNS, "ratio to bare RT", "same, of p10s", "ratio to bare 2 hops",
            "ratio to bare forwarding", "target", ""]
    bc.table("(a) 8 bytes: remote read through the home node, against bare round trips of the same size",
             cols, [
                 row("bare8", "bare pyzmq round trip, 8 B reply (baseline)", "bare8"),
                 row("hop8", "bare two hops (client -> relay -> echo and back), 8 B", "bare8"),
                 row("fwd8", "bare forwarding (client -> forwarder -> echo -> client), 8 B", "bare8"),
                 row("local8", "Region.read(off, 8), local page (1 hop)", "bare8"),
                 row("remote8", "(a) Region.read(off, 8), page on node 1 (task -> 0 -> 1 -> task)", "bare8",
                     READ8_TARGET, ("hop8", "fwd8")),
                 row("home8", "the same, answered through the home node (task -> 0 -> 1 -> 0 -> task)", "bare8",
                     None, ("hop8", "fwd8")),
                 row("frame8", "frame.read 8 B, Client -> node 1 directly (1 hop)", "bare8"),
             ], caption=caption)
    bc.table("(b) 4 KiB: remote page copy, against bare round trips of the same size",
             cols, [
                 row("bare4k", "bare pyzmq round trip, 4 KiB reply (baseline)", "bare4k"),
                 row("hop4k", "bare two hops (client -> relay -> echo and back), 4 KiB", "bare4k"),
                 row("fwd4k", "bare forwarding (client -> forwarder -> echo -> client), 4 KiB", "bare4k"),
                 row("frame4k", "(b) frame.read 4 KiB, Client -> node 1 directly (node path)", "bare4k",
                     FRAME4K_TARGET),
                 row("remote4k", "(b) Region.read(0, 4096), page on node 1 (task -> 0 -> 1 -> task)", "bare4k", None,
                     ("hop4k", "fwd4k")),
             ], caption=f"{args.count} round trips per kind, taking turns {args.per_block} at a time, after "
                        f"{args.warmup} warm-up; cluster {SHAPE}, virtual mode; load average at the end "
                        f"{bc.load_average()}; whole benchmark: {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
