"""What every benchmark shares: a private NUMA_EMU_HOME, the bare-pyzmq baselines measured in
the same run, medians, and the rich tables they print.

Benchmarks are scripts run on demand (`make bench`), not tests. The machine they run on is
small and noisy, so every number is a median and is shown beside a baseline taken in the same
run; targets are read as ratios to that baseline first, absolute values second.

The baselines here use the transport numa-emu uses (ZeroMQ DEALER -> ROUTER over ipc, msgpack
envelopes behind the NUMAEMU/1 tag frame), without any of numa-emu's code on the path.
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
from protocol.clusterdir import HOME_ENV
from protocol.version import TAG

# Wide when piped (reports, `make bench | tee`), the terminal's width otherwise.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
CHILD_TIMEOUT_S = 30.0  # a baseline child that hears nothing for this long exits by itself


# ---- set-up and clean-up -----------------------------------------------------------------

def setup() -> None:
    """Call first: adopt orphaned daemons (this machine's init does not reap them), and turn
    SIGTERM (e.g. from `timeout`) into SystemExit, so that the finally blocks still stop the
    clusters and remove the temporary home."""
    processes.become_subreaper()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def _ours_under(path: Path) -> list[psutil.Process]:
    """Live processes whose command line names `path` (only ours can: the folder is fresh)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(path) in " ".join(proc.info["cmdline"] or []):
                out.append(proc)
        except psutil.Error:
            continue
    return out


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
        leaked = _ours_under(path)
        for proc in leaked:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leaked, timeout=5)
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
# It exits on "stop", on EOF of its stdin (the parent died), or after CHILD_TIMEOUT_S of silence.
_ECHO_CHILD = r"""
import sys, zmq, msgpack
ctx = zmq.Context()
sock = ctx.socket(zmq.ROUTER); sock.linger = 0; sock.bind(sys.argv[1])
poller = zmq.Poller(); poller.register(sock, zmq.POLLIN); poller.register(sys.stdin.fileno(), zmq.POLLIN)
print("ready", flush=True)
while True:
    events = dict(poller.poll(float(sys.argv[2]) * 1000))
    if not events or sys.stdin.fileno() in events:
        break
    frames = sock.recv_multipart()
    if frames[-1] == b"stop":
        break
    env = msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
    sock.send_multipart(frames[:-1] + [msgpack.packb(env, use_bin_type=True)])
ctx.destroy(linger=0)
"""


@contextlib.contextmanager
def echo_server(run_dir: Path) -> Iterator[str]:
    """A bare pyzmq ROUTER echo in a child process; yields its ipc endpoint."""
    endpoint = f"ipc://{run_dir}/echo-{os.getpid()}.sock"
    proc = subprocess.Popen([sys.executable, "-c", _ECHO_CHILD, endpoint, str(CHILD_TIMEOUT_S)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    try:
        if _read_line(proc.stdout, 10.0) != "ready":
            raise RuntimeError("the echo child did not start")
        yield endpoint
    finally:
        proc.stdin.close()  # EOF: the child exits
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _stop(proc)


class EchoClient:
    """The client half of the bare baseline: a DEALER, the version tag frame, a msgpack map."""

    def __init__(self, endpoint: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
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

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


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
    module each child imports first (e.g. "nodes.server", to isolate the cost of our imports)."""
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


# ---- numbers and tables ------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    return statistics.median(values)


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


def host_info() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cache = ("warm bytecode cache in the temp home" if os.environ.get("PYTHONPYCACHEPREFIX")
             else "PYTHONDONTWRITEBYTECODE=1: every process compiles our modules" if os.environ.get("PYTHONDONTWRITEBYTECODE")
             else "bytecode cache as the environment has it")
    return (f"host: {os.cpu_count()} CPUs, load average {load}; Python {sys.version.split()[0]}, "
            f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, msgpack {'.'.join(map(str, msgpack.version))}; "
            f"{cache}")
