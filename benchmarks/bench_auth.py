"""bench_auth (issue 10): what checking every peer costs a round trip (protocol.keys).

    .venv/bin/python benchmarks/bench_auth.py [--count 4000] [--reps 4]

An echo child (a ROUTER) and this process (a DEALER) exchange the NUMAEMU/1 tag frame and a
body of 100 B (a small request) or 4200 B (a page and its envelope): with bare sockets (the
baseline) and with the sockets as numa-emu sets them up (protocol.reactor.bind_endpoint and
connect_endpoint, the child's ZAP handler running): over ipc the peer's uid is checked once per
connection, over tcp every message is CURVE. Each kind runs `--reps` times, interleaved, each
time a fresh child and connection; the table shows the median of the per-run medians.
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import _common as bc
import zmq

from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.reactor import bind_endpoint, connect_endpoint
from numa_emu.protocol.version import TAG

SIZES = (100, 4200)
WARMUP = 500


def _echo(endpoint: str, checked: bool, keys_dir: str, ready) -> None:
    ctx = zmq.Context()
    keys = ClusterKeys.load(Path(keys_dir))
    auth = keys.authenticator(ctx) if checked else None
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    if checked:
        bind_endpoint(sock, endpoint, keys)
    else:
        sock.bind(endpoint)
    ready.send(endpoint)
    while True:
        frames = sock.recv_multipart()
        if frames[-1] == b"quit":
            break
        sock.send_multipart(frames)
    if auth is not None:
        auth.stop()
    ctx.destroy(linger=0)


def one_run(endpoint: str, checked: bool, keys: ClusterKeys, size: int, count: int) -> float:
    """The median round trip of one fresh connection, in seconds."""
    mp = multiprocessing.get_context("spawn")  # no zmq context crosses a fork
    parent, child = mp.Pipe()
    proc = mp.Process(target=_echo, args=(endpoint, checked, str(keys.folder.parent), child))
    proc.start()
    try:
        if not parent.poll(bc.CHILD_TIMEOUT_S):
            raise SystemExit(f"the echo child on {endpoint} did not start")
        bound = parent.recv()
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        connect_endpoint(sock, bound, keys) if checked else sock.connect(bound)
        msg = [TAG, b"x" * size]
        for _ in range(WARMUP):
            sock.send_multipart(msg)
            sock.recv_multipart()
        samples = []
        for _ in range(count):
            t0 = time.perf_counter()
            sock.send_multipart(msg)
            sock.recv_multipart()
            samples.append(time.perf_counter() - t0)
        sock.send_multipart([b"quit"])
        ctx.destroy(linger=0)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return bc.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="timed round trips per run")
    parser.add_argument("--reps", type=int, default=4, help="runs per kind (fresh child each)")
    args = parser.parse_args()
    bc.setup()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ne-auth-", dir="/tmp") as tmp:
        keys = ClusterKeys.create(Path(tmp))
        port = 47000 + multiprocessing.current_process().pid % 2000
        kinds = {
            "ipc, bare sockets (baseline)": (f"ipc://{tmp}/bare.sock", False),
            "ipc, peer uid checked (numa-emu)": (f"ipc://{tmp}/uid.sock", True),
            "tcp, bare sockets (baseline)": (f"tcp://127.0.0.1:{port}", False),
            "tcp, CURVE (numa-emu)": (f"tcp://127.0.0.1:{port + 1}", True),
        }
        rows = []
        for size in SIZES:
            runs: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(args.reps):
                for label, (endpoint, checked) in kinds.items():
                    runs[label].append(one_run(endpoint, checked, keys, size, args.count))
            for label in kinds:
                base = bc.median(runs[label.split(",")[0] + ", bare sockets (baseline)"])
                med = bc.median(runs[label])
                rows.append([f"{size} B", label, bc.micros(med), bc.ratio(med, base)])
    bc.table("one round trip, DEALER -> echo ROUTER, by transport and check (median of run medians)",
             ["body", "sockets", "median", "ratio to bare"], rows,
             caption=f"{bc.host_info()}; {args.reps} runs of {args.count}; "
                     f"whole benchmark: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
