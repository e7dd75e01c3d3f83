"""What every benchmark shares: a private NUMA_EMU_HOME, the bare-pyzmq baselines measured in
the same run, medians, and the rich tables they print.

Benchmarks are scripts run on demand (`make bench`), not tests. The machine they run on is
small and noisy, so every number is a median and is shown beside a baseline taken in the same
run; targets are read as ratios to that baseline first, absolute values second.

The baselines here use the transport numa-emu uses (ZeroMQ DEALER -> ROUTER over ipc, msgpack
envelopes behind the NUMAEMU/1 tag frame), without any of numa-emu's code on the path: an echo
child (one round trip; `read_envelope(n)` asks it for an n-byte reply, the shape of frame.read),
a relay child in front of it (two hops, the floor of a request a home node passes on), and N
bare processes started one after the other.

Puppet (tests/helpers.py, shared with the tests): a task process driven over a pipe that times
each API call inside itself, for benchmarks that need tasks on several nodes.
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgpack
import psutil
import zmq
from rich.console import Console
from rich.table import Table

from numa_emu import processes
from numa_emu.protocol.clusterdir import HOME_ENV
from numa_emu.protocol.version import TAG

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.helpers: shared with the tests
from tests.helpers import kill_left_behind  # noqa: E402

# Wide when piped (reports, `make bench | tee`), the terminal's width otherwise.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
# A baseline child that hears nothing for this long exits by itself (an orphan must not live on);
# a client whose child does not answer for this long fails instead of waiting forever. 120 s: a
# loaded machine took more than 30 s to start a load's 16 workers between two baseline probes.
CHILD_TIMEOUT_S = 120.0


# ---- set-up and clean-up -----------------------------------------------------------------

def setup() -> None:
    """Call first: adopt orphaned daemons (this machine's init does not reap them), and turn
    SIGTERM (e.g. from `timeout`) into SystemExit, so that the finally blocks still stop the
    clusters and remove the temporary home."""
    processes.become_subreaper()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


_ENV_KEYS = (HOME_ENV, "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")


@contextlib.contextmanager
def temp_home(*, bytecode_cache: bool = True) -> Iterator[Path]:
    """A fresh NUMA_EMU_HOME under /tmp (short: ipc socket paths are limited to ~100 bytes).
    On the way out, any process still naming it is reported and stopped by pid.

    `bytecode_cache`: the child processes keep their compiled bytecode in <home>/pycache
    (PYTHONPYCACHEPREFIX), as an ordinary installation keeps __pycache__, even where the
    environment sets PYTHONDONTWRITEBYTECODE (then every process start compiles our modules
    again, ~30-40 ms each here). The source tree is never written to."""
    path = Path(tempfile.mkdtemp(prefix="nb-", dir="/tmp"))
    old = {key: os.environ.get(key) for key in _ENV_KEYS}
    os.environ[HOME_ENV] = str(path)
    if bytecode_cache:
        os.environ["PYTHONPYCACHEPREFIX"] = str(path / "pycache")
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        yield path
    except BaseException:
        _print_log_tails(path)  # the folder goes away below: keep what the daemons said
        raise
    finally:
        leaked = kill_left_behind(path)
        processes.reap_children()
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(path, ignore_errors=True)
        if leaked:
            console.print(f"[red]benchmark left {len(leaked)} process(es) behind; killed: "
                          f"{[p.pid for p in leaked]}[/red]")


def _print_log_tails(path: Path, lines: int = 8) -> None:
    for log in sorted(path.glob("*/*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log.relative_to(path)} (last {len(tail)} lines)", *tail, sep="\n", file=sys.stderr)


def gone(pids: Sequence[int]) -> bool:
    """True when none of `pids` runs any more (a zombie counts as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def _read_line(stream, timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline().decode().strip() if ready else ""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ---- baseline 1: a bare ROUTER echo process (the request/reply floor) ----------------------

# A child that serves one ROUTER on an ipc endpoint: decode the msgpack envelope, encode it back.
# An envelope with "reply_bytes": n gets back a "data" field of n bytes (a small request answered
# with a payload, the shape of frame.read). It exits on "stop", on EOF of its stdin (the parent
# died), or after CHILD_TIMEOUT_S of silence. An envelope with "route" (put there by a forwarding
# child) is answered to that peer of the ROUTER instead of its sender (the bare forwarding chain).
_ECHO_CHILD = r"""
import sys, zmq, msgpack
ctx = zmq.Context()
sock = ctx.socket(zmq.ROUTER); sock.linger = 0; sock.bind(sys.argv[1])
poller = zmq.Poller(); poller.register(sock, zmq.POLLIN); poller.register(sys.stdin.fileno(), zmq.POLLIN)
payloads = {}
print("ready", flush=True)
while True:
    events = dict(poller.poll(float(sys.argv[2]) * 1000))
    if not events or sys.stdin.fileno() in events:
        break
    frames = sock.recv_multipart()
    if frames[-1] == b"stop":
        break
    env = msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
    n = env.get("reply_bytes")
    if n is not None:  # a reply that carries n bytes (a frame.read), to a small request
        env["data"] = payloads.get(n) or payloads.setdefault(n, b"\x5a" * n)
    route = env.pop("route", None)
    sock.send_multipart(([route, frames[-2]] if route else frames[:-1]) + [msgpack.packb(env, use_bin_type=True)])
ctx.destroy(linger=0)
"""


@contextlib.contextmanager
def _bare_child(code: str, what: str, *args: str) -> Iterator[None]:
    """A baseline child (`python -c code *args CHILD_TIMEOUT_S`) for the length of the block:
    it says "ready" first, and exits on EOF of its stdin."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args, str(CHILD_TIMEOUT_S)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    try:
        if _read_line(proc.stdout, 10.0) != "ready":
            raise RuntimeError(f"the {what} child did not start")
        yield
    finally:
        proc.stdin.close()  # EOF: the child exits
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _stop(proc)


@contextlib.contextmanager
def echo_server(run_dir: Path) -> Iterator[str]:
    """A bare pyzmq ROUTER echo in a child process; yields its ipc endpoint."""
    endpoint = f"ipc://{run_dir}/echo-{os.getpid()}.sock"
    with _bare_child(_ECHO_CHILD, "echo", endpoint):
        yield endpoint


# A child in the middle of a two-hop chain, as a home node is between a task and the owner of a
# remote frame: a ROUTER in front, a DEALER to `upstream` behind. Each request is decoded and
# encoded again before it goes on, and so is each reply on its way back (a node decodes what it
# receives and encodes what it sends). One request in flight at a time per peer, FIFO.
_RELAY_CHILD = r"""
import collections, sys, zmq, msgpack
ctx = zmq.Context()
front = ctx.socket(zmq.ROUTER); front.linger = 0; front.bind(sys.argv[1])
back = ctx.socket(zmq.DEALER); back.linger = 0; back.connect(sys.argv[2])
stdin = sys.stdin.fileno()
poller = zmq.Poller()
for s in (front, back, stdin):
    poller.register(s, zmq.POLLIN)
routes = collections.deque()
unpack = lambda b: msgpack.unpackb(b, raw=False, strict_map_key=False)
pack = lambda o: msgpack.packb(o, use_bin_type=True)
print("ready", flush=True)
while True:
    events = dict(poller.poll(float(sys.argv[-1]) * 1000))
    if not events or stdin in events:
        break
    if front in events:
        frames = front.recv_multipart()
        routes.append(frames[:-2])
        back.send_multipart([frames[-2], pack(unpack(frames[-1]))])
    if back in events:
        frames = back.recv_multipart()
        front.send_multipart(routes.popleft() + [frames[-2], pack(unpack(frames[-1]))])
ctx.destroy(linger=0)
"""


@contextlib.contextmanager
def relay_server(run_dir: Path, upstream: str) -> Iterator[str]:
    """A bare two-hop chain: a relay child in front of `upstream` (an echo_server endpoint);
    yields the relay's endpoint. Client -> relay -> echo and back is the bare floor of a request
    that a home node passes on to another node (three processes, two round trips)."""
    endpoint = f"ipc://{run_dir}/relay-{os.getpid()}.sock"
    with _bare_child(_RELAY_CHILD, "relay", endpoint, upstream):
        yield endpoint


# A child that passes each request on with its sender's routing id in the envelope ("route"), so
# that the echo child answers the client directly: decode, add the route, encode, send. The bare
# floor of IVY forwarding (task -> home -> owner -> task: three messages, three processes).
_FORWARD_CHILD = r"""
import sys, zmq, msgpack
ctx = zmq.Context()
front = ctx.socket(zmq.ROUTER); front.linger = 0; front.bind(sys.argv[1])
back = ctx.socket(zmq.DEALER); back.linger = 0; back.connect(sys.argv[2])
stdin = sys.stdin.fileno()
poller = zmq.Poller()
for s in (front, stdin):
    poller.register(s, zmq.POLLIN)
print("ready", flush=True)
while True:
    events = dict(poller.poll(float(sys.argv[-1]) * 1000))
    if not events or stdin in events:
        break
    frames = front.recv_multipart()
    env = msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
    env["route"] = frames[0]
    back.send_multipart([frames[-2], msgpack.packb(env, use_bin_type=True)])
ctx.destroy(linger=0)
"""


@contextlib.contextmanager
def forward_server(run_dir: Path, upstream: str) -> Iterator[str]:
    """A bare forwarding chain: a forwarding child in front of `upstream` (an echo_server
    endpoint), which answers the client directly; yields the forwarder's endpoint. Use it with
    ForwardClient."""
    endpoint = f"ipc://{run_dir}/forward-{os.getpid()}.sock"
    with _bare_child(_FORWARD_CHILD, "forward", endpoint, upstream):
        yield endpoint


class ForwardClient:
    """The client half of the bare forwarding chain: one ROUTER connected to the forwarder and to
    the echo child (as a task's channel is connected to every node); requests go to the
    forwarder, the answer comes from the echo child."""

    def __init__(self, forward_endpoint: str, echo_endpoint: str, *, echo_serverkey: bytes | None = None):
        """`echo_serverkey`: the echo child is a CURVE server with this public key (across hosts);
        the forwarder is reached without CURVE, as a task reaches its home node over ipc."""
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.setsockopt(zmq.ROUTING_ID, b"bare-client")
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for name, endpoint in ((b"forward", forward_endpoint), (b"echo", echo_endpoint)):
            if name == b"echo" and echo_serverkey is not None:  # a connection takes the options set before it
                self.sock.curve_serverkey = echo_serverkey
                self.sock.curve_publickey, self.sock.curve_secretkey = zmq.curve_keypair()
            self.sock.setsockopt(zmq.CONNECT_ROUTING_ID, name)
            self.sock.connect(endpoint)
        self._send(b"echo", {"hello": 1})  # the echo child knows this client before any forward
        self.sock.recv_multipart()

    def _send(self, peer: bytes, envelope: dict) -> None:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while True:
            try:
                self.sock.send_multipart([peer, TAG, msgpack.packb(envelope, use_bin_type=True)], copy=False)
                return
            except zmq.ZMQError:  # EHOSTUNREACH until the connection is up
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)

    def one(self, envelope: dict) -> None:
        self.sock.send_multipart([b"forward", TAG, msgpack.packb(envelope, use_bin_type=True)], copy=False)
        msgpack.unpackb(self.sock.recv_multipart()[-1], raw=False, strict_map_key=False)

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


class EchoClient:
    """The client half of the bare baseline: a DEALER, the version tag frame, a msgpack map."""

    def __init__(self, endpoint: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.rcvtimeo = int(CHILD_TIMEOUT_S * 1000)  # zmq.Again instead of a hang: the child is gone
        self.sock.connect(endpoint)

    def round_trips(self, envelope: dict, count: int) -> list[float]:
        """Seconds per round trip, one per request: encode, send, receive, decode."""
        out = []
        send, recv, clock = self.sock.send_multipart, self.sock.recv_multipart, time.perf_counter
        for i in range(count):
            envelope["id"] = i
            t0 = clock()
            send([TAG, msgpack.packb(envelope, use_bin_type=True)], copy=False)
            msgpack.unpackb(recv()[-1], raw=False, strict_map_key=False)
            out.append(clock() - t0)
        return out

    def warm(self, envelope: dict, count: int = 100) -> None:
        """Round trips untimed, before the first measured one (connection and caches warm)."""
        for _ in range(count):
            self.one(envelope)

    def one(self, envelope: dict) -> None:
        """One round trip, untimed (for callers that time it themselves, e.g. `interleaved`)."""
        self.sock.send_multipart([TAG, msgpack.packb(envelope, use_bin_type=True)], copy=False)
        msgpack.unpackb(self.sock.recv_multipart()[-1], raw=False, strict_map_key=False)

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def read_envelope(nbytes: int) -> dict:
    """A request the size of a frame.read of `nbytes`, answered by echo_server with `nbytes` of
    data: the bare round trip "of the same size" as reading that much of a remote frame."""
    return {"kind": "frame.read", "id": 1, "frame": 12345, "offset": 0, "length": nbytes, "generation": None,
            "reply_bytes": nbytes}


# ---- baseline 2: N bare Python processes that import zmq and answer one ping ---------------

# Connect a DEALER, say "ready", answer "ping" with "pong", exit on "bye" (or when the parent
# has been silent for CHILD_TIMEOUT_S).
_PINGER_CHILD = r"""
import sys, zmq, msgpack
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER); sock.linger = 0; sock.rcvtimeo = int(float(sys.argv[2]) * 1000)
sock.connect(sys.argv[1])
sock.send(b"ready")
try:
    if sock.recv() == b"ping":
        sock.send(b"pong")
        sock.recv()
except zmq.Again:
    pass
ctx.destroy(linger=0)
"""


def bare_processes(n: int, run_dir: Path, *, hold=None, preload: str = "") -> tuple[float, float]:
    """Start `n` bare zmq processes one after the other (as the coordinator starts its nodes),
    until each has answered one ping: (seconds to all pongs, seconds from "bye" to all exited).
    `hold(pids)` is called while they all wait, idle (to measure their memory). `preload`: a
    module each child imports first (e.g. "numa_emu.nodes.server", to isolate the cost of our imports)."""
    code = (f"import {preload}\n" if preload else "") + _PINGER_CHILD
    endpoint = f"ipc://{run_dir}/bare-{os.getpid()}.sock"
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.bind(endpoint)
    procs: list[subprocess.Popen] = []
    try:
        t0 = time.monotonic()
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", code, endpoint, str(CHILD_TIMEOUT_S)],
                                          stdin=subprocess.DEVNULL, start_new_session=True))
        peers = [_expect(router, b"ready") for _ in range(n)]
        if hold is not None:
            hold([p.pid for p in procs])
        for peer in peers:
            router.send_multipart([peer, b"ping"])
        for _ in range(n):
            _expect(router, b"pong")
        up_s = time.monotonic() - t0
        t1 = time.monotonic()
        for peer in peers:
            router.send_multipart([peer, b"bye"])
        for proc in procs:
            proc.wait(timeout=CHILD_TIMEOUT_S)
        return up_s, time.monotonic() - t1
    finally:
        for proc in procs:
            _stop(proc)
        ctx.destroy(linger=0)


def _expect(router: zmq.Socket, word: bytes) -> bytes:
    if not router.poll(int(CHILD_TIMEOUT_S * 1000)):
        raise RuntimeError(f"a bare child did not say {word.decode()!r} within {CHILD_TIMEOUT_S:g} s")
    peer, got = router.recv_multipart()
    if got != word:
        raise RuntimeError(f"a bare child said {got!r}, expected {word!r}")
    return peer


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, USS) of `pid` in MB of 10^6 bytes, the unit of the targets (USS: the pages only this
    process maps, from /proc/PID/smaps)."""
    info = psutil.Process(pid).memory_full_info()
    return info.rss / 1e6, info.uss / 1e6


# ---- asking a running cluster -------------------------------------------------------------

def vmstat_by_node(cluster) -> dict[int, dict]:
    """Every node's vmstat counters (ClusterStats through the coordinator)."""
    from numa_emu.protocol.messages import tasks as tm

    with cluster.client() as client:
        return {int(n): d["vmstat"] for n, d in client.call(tm.ClusterStats()).nodes.items()}


def vmstat_total(cluster, key: str) -> int:
    return sum(v.get(key, 0) for v in vmstat_by_node(cluster).values())


def sysctl_keys(cluster) -> set[str]:
    """The sysctl keys this cluster knows (`numa-emu sysctl -a`)."""
    from numa_emu.protocol.messages import control as cm

    with cluster.client() as client:
        return set(client.call(cm.SysctlGet()).values)


# ---- numbers and tables ------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def timed(fn, count: int) -> list[float]:
    """Seconds of each of `count` calls of fn()."""
    out = []
    clock = time.perf_counter
    for _ in range(count):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def interleaved(ops: dict, count: int, *, blocks: int = 5, warmup: int = 200) -> dict[str, list[float]]:
    """Time each of `ops` (name -> fn) `count` times, in `blocks` rounds that take every op in
    turn, after `warmup` untimed calls of each: noise of a loaded machine hits them all alike."""
    for fn in ops.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in ops}
    per_block = max(1, count // blocks)
    for _ in range(blocks):
        for name, fn in ops.items():
            samples[name] += timed(fn, per_block)
    return samples


SAMPLE_COLUMNS = ["n", "median", "p10", "p99"]


def sample_cells(samples: Sequence[float], unit=None) -> list[object]:
    """n, median, p10, p99 of `samples` (seconds), formatted with `unit` (micros by default)."""
    unit = unit or micros
    return [len(samples), unit(median(samples)), unit(pct(samples, 0.10)), unit(pct(samples, 0.99))]


def seconds(x: float) -> str:
    return f"{x:.3f} s"


def micros(x: float) -> str:
    return f"{x * 1e6:.1f} µs"


def ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}×" if base > 0 else "-"


def verdict(ok: bool | None) -> str:
    if ok is None:
        return ""
    return "[green]met[/green]" if ok else "[red]missed[/red]"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], caption: str | None = None) -> None:
    """Print a table: the first column left-aligned, the others right-aligned."""
    t = Table(title=title, caption=caption, caption_justify="left", title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(str(c) for c in row))
    console.print(t)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def host_info() -> str:
    load = load_average()
    cache = ("warm bytecode cache in the temp home" if os.environ.get("PYTHONPYCACHEPREFIX")
             else "PYTHONDONTWRITEBYTECODE=1: every process compiles our modules" if os.environ.get("PYTHONDONTWRITEBYTECODE")
             else "bytecode cache as the environment has it")
    return (f"host: {os.cpu_count()} CPUs, load average {load}; Python {sys.version.split()[0]}, "
            f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, msgpack {'.'.join(map(str, msgpack.version))}; "
            f"{cache}")

