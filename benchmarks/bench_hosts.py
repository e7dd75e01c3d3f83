"""bench_hosts (issue 13): a cluster on two hosts, against a bare pyzmq TCP+CURVE round trip
measured in the same run; and `up` to ready with nodes spread over hosts.

    .venv/bin/python benchmarks/bench_hosts.py [--count 3000] [--up-reps 2] [--skip-large]

The hosts are fake ones on this machine (loopback 127.0.0.2, 127.0.0.3, ..., each with its own
NUMA_EMU_HOME, agents started by the `local` launcher, as tests/processes/test_hosts.py makes
them): what is measured is the software path (CURVE, the node-to-node tcp links), not a network.

(a) Remote read across hosts: cluster full,2 with node 0 on host a and node 1 on host b. A task
    of host a (attached through host a's connection file: its home node over ipc, node 1 over
    tcp) reads 8 bytes of a page bound to node 1: task -> node 0 (ipc) -> node 1 (tcp) -> task
    (tcp). Baseline: a DEALER -> ROUTER echo over tcp with CURVE (bare pyzmq, no ZAP), 8-byte
    reply. On one host bench_remote's target is 2.5x the bare round trip. Also shown, (a)'s floor:
    the bare forwarding chain of bench_remote across hosts (client -ipc-> forwarder -tcp+CURVE->
    echo -tcp+CURVE-> client: three processes, three messages, no numa-emu code).
(b) 4 KiB page copy across hosts: frame.read of 4 KiB from node 1 directly over tcp+CURVE
    (protocol.client.Client; the node-to-node path), and Region.read(0, 4096) of the remote
    page. Baseline: the bare CURVE round trip with a 4 KiB reply. On one host the target is 2x.
(c) `up` to ready: full,16 on 2 hosts x 8 nodes and full,64 on 4 hosts x 16 nodes, against the
    same machine on one host (one fork server), in the same run.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import time
from pathlib import Path

import _common as bc
import zmq

import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.hosts import CONNECTION_ENV, HOST_ENV, Host
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.topology import build_shape

PAGE = 4096
ADDRESSES = [f"127.0.0.{i}" for i in range(2, 6)]
_KEYS_ENV = ("NE_BENCH_PUBLIC", "NE_BENCH_SECRET")
# The bare echo of benchmarks/_common.py, its ROUTER a CURVE server (keys from the environment)
_CURVE_ECHO = bc._ECHO_CHILD.replace(
    "sock.bind(sys.argv[1])",
    "import os; sock.curve_publickey = os.environb[b'NE_BENCH_PUBLIC']; "
    "sock.curve_secretkey = os.environb[b'NE_BENCH_SECRET']; sock.curve_server = True; sock.bind(sys.argv[1])")
# The bare forwarding chain of benchmarks/_common.py across hosts, the floor of (a)'s three
# messages: the client reaches the forwarder (its own host) over ipc, the forwarder and the client
# reach the CURVE echo (host b) over tcp as CURVE clients; the echo answers the client directly.
_CURVE_FORWARD = bc._FORWARD_CHILD.replace(
    "back.connect(sys.argv[2])",
    "import os; back.curve_serverkey = os.environb[b'NE_BENCH_PUBLIC']; "
    "back.curve_publickey, back.curve_secretkey = zmq.curve_keypair(); back.connect(sys.argv[2])")


def fake_hosts(home: Path, n: int) -> list[Host]:
    return [Host(chr(ord("a") + k), ADDRESSES[k], home=str(home / "hosts" / chr(ord("a") + k))) for k in range(n)]


def _free_port(address: str) -> int:
    s = socket.socket()
    s.bind((address, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def curve_echo(address: str):
    """The bare echo child on tcp with CURVE; yields (endpoint, server public key, client)."""
    public, secret = zmq.curve_keypair()
    os.environ.update(dict(zip(_KEYS_ENV, (public.decode(), secret.decode()))))
    endpoint = f"tcp://{address}:{_free_port(address)}"
    try:
        with bc._bare_child(_CURVE_ECHO, "curve echo", endpoint):
            client = bc.EchoClient.__new__(bc.EchoClient)
            client.ctx = zmq.Context()
            client.sock = client.ctx.socket(zmq.DEALER)
            client.sock.linger = 0
            client.sock.curve_publickey, client.sock.curve_secretkey = zmq.curve_keypair()
            client.sock.curve_serverkey = public
            client.sock.connect(endpoint)
            try:
                yield endpoint, public, client
            finally:
                client.close()
    finally:
        for key in _KEYS_ENV:
            os.environ.pop(key, None)


@contextlib.contextmanager
def curve_forward(home: Path, echo_endpoint: str, echo_public: bytes):
    """The bare forwarding chain across hosts (_CURVE_FORWARD) in front of a curve_echo; yields its client."""
    endpoint = f"ipc://{home}/curve-forward-{os.getpid()}.sock"
    with bc._bare_child(_CURVE_FORWARD, "curve forward", endpoint, echo_endpoint):
        client = bc.ForwardClient(endpoint, echo_endpoint, echo_serverkey=echo_public)
        try:
            yield client
        finally:
            client.close()


def measure_links(home: Path, count: int, blocks: int, warmup: int) -> dict[str, list[float]]:
    hosts = fake_hosts(home, 2)
    with curve_echo(ADDRESSES[1]) as (curve_ep, curve_public, curve), bc.echo_server(home) as echo_ep, \
            curve_forward(home, curve_ep, curve_public) as forward, \
            Cluster(build_shape("full,2,mem=64MiB,cpus=1"), name="hosts", hosts=hosts, launcher="local") as cluster:
        echo = bc.EchoClient(echo_ep)
        env8, env4k = bc.read_envelope(8), bc.read_envelope(PAGE)
        # a task of host a, attached as one there would: through host a's connection file
        os.environ[CONNECTION_ENV] = str(Path(hosts[0].home) / cluster.name / "connection.json")
        os.environ[HOST_ENV] = "a"
        try:
            task = numa_emu.attach(0, cluster="hosts")
        finally:
            os.environ.pop(CONNECTION_ENV, None)
            os.environ.pop(HOST_ENV, None)
        node1 = cluster.client(endpoint=cluster.status().nodes[1]["tcp_endpoint"])
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
                "ipc8": lambda: echo.one(env8),
                "ipc4k": lambda: echo.one(env4k),
                "curve8": lambda: curve.one(env8),
                "fwd8": lambda: forward.one(env8),
                "curve4k": lambda: curve.one(env4k),
                "local8": lambda: local.read(PAGE - 8, 8),
                "remote8": lambda: remote.read(PAGE - 8, 8),
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


def measure_up(home: Path, shape: str, n_hosts: int, reps: int) -> tuple[list, list]:
    """Seconds from `up` to ready: on one host, and spread over n_hosts fake hosts, taking turns.
    A start that fails (a node that could not register in time on an overloaded machine) is
    recorded as its error and the runs go on."""
    one, many = [], []
    topology = build_shape(shape)
    for rep in range(reps):
        for spread in (False, True):
            hosts = fake_hosts(home, n_hosts) if spread else None
            c = Cluster(topology, name=f"up{topology.n_nodes}-{rep}{int(spread)}", hosts=hosts, launcher="local")
            t0 = time.monotonic()
            try:
                c.start()
                (many if spread else one).append(time.monotonic() - t0)
            except NumaEmuError as exc:
                (many if spread else one).append(f"failed ({exc.message[:80]})")
            finally:
                c.stop()
    return one, many


def _up_cells(one: list, many: list) -> list[str]:
    ok_one, ok_many = [x for x in one if isinstance(x, float)], [x for x in many if isinstance(x, float)]
    shown = [" / ".join(bc.seconds(x) if isinstance(x, float) else x for x in runs) for runs in (one, many)]
    return shown + [bc.ratio(bc.median(ok_many), bc.median(ok_one)) if ok_one and ok_many else "-"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="timed round trips per kind")
    parser.add_argument("--per-block", type=int, default=10, help="consecutive calls of one kind per turn")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls of each kind first")
    parser.add_argument("--up-reps", type=int, default=2, help="`up` runs per size and kind")
    parser.add_argument("--skip-large", action="store_true", help="leave out the 64-node `up`")
    args = parser.parse_args()
    bc.setup()
    t0 = time.monotonic()
    with bc.temp_home() as home:
        caption = bc.host_info()
        s = measure_links(home, args.count, max(1, args.count // args.per_block), args.warmup)
        ups = {"2 hosts x 8 nodes (full,16)": measure_up(home, "full,16,mem=64MiB,cpus=1", 2, args.up_reps)}
        if not args.skip_large:
            ups["4 hosts x 16 nodes (full,64)"] = measure_up(home, "full,64,mem=64MiB,cpus=1", 4, args.up_reps)
    med = {k: bc.median(v) for k, v in s.items()}
    p10 = {k: bc.pct(v, 0.10) for k, v in s.items()}

    def row(key, label, base_key, target=None):
        r = med[key] / med[base_key]
        return [label, *bc.sample_cells(s[key]), bc.ratio(med[key], med[base_key]),
                bc.ratio(p10[key], p10[base_key]), f"≤ {target:g}×" if target else "",
                bc.verdict(r <= target if target else None)]

    cols = ["operation", *bc.SAMPLE_COLUMNS, "ratio to bare CURVE RT", "same, of p10s", "one-host target", ""]
    bc.table("(a) 8 bytes across hosts (task of host a, page on node 1 of host b)", cols, [
        row("curve8", "bare pyzmq tcp+CURVE round trip, 8 B reply (baseline)", "curve8"),
        row("ipc8", "bare pyzmq ipc round trip, 8 B (one host's baseline)", "curve8"),
        row("fwd8", "bare forwarding across hosts, 8 B (client -ipc-> forwarder -tcp-> echo -tcp-> client; "
                    "(a)'s floor)", "curve8"),
        row("local8", "Region.read(off, 8), page on the home node (ipc)", "curve8"),
        row("remote8", "(a) Region.read(off, 8), page on host b (task -ipc-> 0 -tcp-> 1 -tcp-> task)", "curve8",
            2.5),
        row("frame8", "frame.read 8 B, Client -> node 1 over tcp+CURVE", "curve8"),
    ], caption=caption)
    bc.table("(b) 4 KiB across hosts", cols, [
        row("curve4k", "bare pyzmq tcp+CURVE round trip, 4 KiB reply (baseline)", "curve4k"),
        row("ipc4k", "bare pyzmq ipc round trip, 4 KiB (one host's baseline)", "curve4k"),
        row("frame4k", "(b) frame.read 4 KiB, Client -> node 1 over tcp+CURVE (node path)", "curve4k", 2.0),
        row("remote4k", "Region.read(0, 4096), page on host b", "curve4k"),
    ], caption=f"{args.count} round trips per kind, taking turns {args.per_block} at a time, after {args.warmup} "
               f"warm-up; fake hosts on loopback; load average at the end {bc.load_average()}")
    bc.table("(c) up to ready, nodes spread over fake hosts vs the same machine on one host",
             ["machine", "one host", "spread", "ratio"],
             [[label, *_up_cells(one, many)] for label, (one, many) in ups.items()],
             caption=f"{args.up_reps} runs each, taking turns; whole benchmark: {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
