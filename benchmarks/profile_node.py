"""profile_node (issue 3): where a node spends its time on the two hot paths of bench_access, a
batched first touch and single-page reads. A profile, not a benchmark: `make bench` does not run
it (its name does not start with bench_).

    .venv/bin/python benchmarks/profile_node.py [--pages 20000] [--reads 10000] [--top 15] [--no-live]

1. In process, under cProfile: the four nodes of default-4n, each a real nodes.server.NodeServer
   whose handler table is served by a protocol.reactor.Reactor with its sockets replaced by
   direct calls, so every request and reply still goes through the codec and the reactor's
   dispatch (_serve, spawn, _reply); only the ZeroMQ syscalls and the poll loop are missing. Workloads: Touch(fill=0xFF) of --pages pages under the local policy
   and under interleave 0-3 (remote frames via frame.alloc to the other in-process nodes), and
   --reads Access reads of 8 bytes of one faulted local page. Top --top functions by cumulative
   and by own (total) time, and the rate without the profiler.
2. Live (skipped with --no-live, or when py-spy is not installed: `pip install py-spy` in the
   venv; it is not a dependency): a real default-4n cluster; py-spy samples node 0 while this
   process, as a task on CPU 0, runs the same workloads; the task side under cProfile. Shows
   what the in-process run cannot: the sockets, the poll loop and the client.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import zmq

import _common as bc
from numa_emu.nodes.server import NodeServer
from numa_emu.catalog import resolve_topology
from numa_emu.protocol.clusterdir import RUN_DIR, TOPOLOGY_FILE, write_json_atomic
from numa_emu.protocol.codec import decode, encode
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.effects import Future
from numa_emu.protocol.messages import ErrorReply
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import DEFAULT_POLICY, Mode, make_policy
from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.reactor import Reactor

PAGE = 4096
TASK = 1


# ---- in process: real handlers and reactor dispatch, no sockets ----------------------------

class _Capture:
    """Stands in for the ROUTER socket: keeps the last reply's frames."""

    def __init__(self) -> None:
        self.frames: list = []
        self._parts: list = []

    def send_multipart(self, frames, flags=0, copy=True) -> None:
        self.frames = frames

    def send(self, frame, flags=0, copy=True) -> None:
        """protocol.link.send_frames sends frame by frame: a message ends without SNDMORE."""
        self._parts.append(frame)
        if not flags & zmq.SNDMORE:
            self.frames, self._parts = self._parts, []


class LoopbackReactor(Reactor):
    """A Reactor whose outgoing calls are served at once by the peer's own dispatch."""

    def __init__(self, name: str, peers: dict[str, "LoopbackReactor"], keys: ClusterKeys):
        super().__init__(name, keys=keys)
        self.peers = peers
        self.router = _Capture()

    def serve(self, frames: list) -> list:
        """One request through this reactor's dispatch; the reply's frames (no routing id)."""
        self._serve([b"peer"] + frames)
        return [bytes(f) for f in self.router.frames[1:]]

    def call_later(self, delay_s, fn) -> None:
        fn()  # no loop in process: a handler's pause (Sleep, between chunks of a touch) ends at once

    def call(self, dest, request, timeout_s=None) -> Future:
        fut = Future()
        request.id = next(self._ids)
        reply = decode(self.peers[dest].serve(encode(request)))
        if isinstance(reply, ErrorReply):
            fut.set_exception(reply.to_exception())
        else:
            fut.set_result(reply)
        return fut


def build_nodes(topology: dict, cdir: Path) -> dict[str, LoopbackReactor]:
    """The nodes of `topology`, each a real nodes.server.NodeServer (built exactly as a node
    process builds itself); its handler table is moved onto a LoopbackReactor."""
    cdir.mkdir(parents=True, exist_ok=True)
    (cdir / RUN_DIR).mkdir(exist_ok=True)
    write_json_atomic(cdir / TOPOLOGY_FILE, topology)
    keys = ClusterKeys.create(cdir)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    peers: dict[str, LoopbackReactor] = {}
    for spec in topology["nodes"]:
        server = NodeServer(cdir, "profile", spec["id"], "ipc:///nonexistent", None, token="")
        server.reactor.close()  # its sockets and signal pipe; the handlers never touch them
        r = LoopbackReactor(server.reactor.name, peers, keys)
        r.handlers = server.reactor.handlers
        r.server = server
        peers[f"node:{spec['id']}"] = r
    for sig, handler in handlers.items():  # NodeServer took SIGINT/SIGTERM for its loop
        signal.signal(sig, handler)
    return peers


def request(node: LoopbackReactor, msg):
    reply = decode(node.serve(encode(msg)))
    if isinstance(reply, ErrorReply):
        raise reply.to_exception()
    return reply


def in_process(home: Path, pages: int, reads: int, top: int) -> None:
    topology = resolve_topology("default-4n").to_dict()
    everyone = list(range(len(topology["nodes"])))
    for name, policy in (("local", DEFAULT_POLICY),
                         ("interleave 0-3", make_policy(Mode.INTERLEAVE, frozenset(everyone), allowed=frozenset(everyone),
                                                        possible=frozenset(everyone)))):
        for profiled in (False, True):  # a fresh set of nodes each time: never-used frames
            nodes = build_nodes(topology, home / "inproc")
            n0 = nodes["node:0"]
            request(n0, tm.NodeTaskAttach(task_id=TASK, pid=os.getpid(), comm="profile", cpu=0,
                                          policy=policy.to_wire(), mems_allowed=everyone))
            vaddr = request(n0, mm.Mmap(task_id=TASK, length=pages * PAGE)).vaddr
            msg = mm.Touch(task_id=TASK, vaddr=vaddr, length=pages * PAGE, fill=0xFF)
            if profiled:
                stats = _profile(lambda: request(n0, msg))
                _print_stats(f"node side, in process: Touch(fill=0xFF) of {pages:,} pages, {name}", stats, top)
            else:
                t0 = time.perf_counter()
                reply = request(n0, msg)
                rate = reply.pages / (time.perf_counter() - t0)
                bc.console.print(f"in process, no profiler: touch of {pages:,} pages, {name}: {rate:,.0f} pages/s")
            _close(nodes)
    nodes = build_nodes(topology, home / "inproc")
    n0 = nodes["node:0"]
    request(n0, tm.NodeTaskAttach(task_id=TASK, pid=os.getpid(), comm="profile", cpu=0,
                                  policy=DEFAULT_POLICY.to_wire(), mems_allowed=everyone))
    vaddr = request(n0, mm.Mmap(task_id=TASK, length=PAGE)).vaddr
    request(n0, mm.Touch(task_id=TASK, vaddr=vaddr, length=PAGE, fill=0))
    read = mm.Access(task_id=TASK, vaddr=vaddr + PAGE - 8, length=8)

    def run_reads() -> None:
        for _ in range(reads):
            request(n0, read)

    t0 = time.perf_counter()
    run_reads()
    per_read = (time.perf_counter() - t0) / reads
    bc.console.print(f"in process, no profiler: one 8-byte read (request + reply through codec and reactor, "
                     f"both ends): {bc.micros(per_read)}")
    _print_stats(f"node side, in process: {reads:,} Access reads of 8 bytes, local page "
                 "(includes encoding the request and decoding the reply, as the task would)", _profile(run_reads), top)
    _close(nodes)


def _close(nodes: dict[str, LoopbackReactor]) -> None:
    for r in nodes.values():
        r.close()
        r.server.pool.close()


def _profile(fn) -> pstats.Stats:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    return pstats.Stats(prof)


_PROFILE_OFF = "<method 'disable' of '_lsprof.Profiler' objects>"


def _label(file: str, line: int, func: str) -> str:
    if file == "~":
        return func
    path = Path(file)
    return f"{path.parent.name}/{path.name}:{line}({func})"


def _print_stats(title: str, stats: pstats.Stats, top: int) -> None:
    entries = [(_label(*key), nc, tt, ct) for key, (_cc, nc, tt, ct, _callers) in stats.stats.items()]
    total = max(e[3] for e in entries)  # the outermost frame: the whole profiled run
    # this script's own frames (the harness) are left out of the tables
    entries = [e for e in entries if not e[0].startswith(f"benchmarks/{Path(__file__).name}") and e[0] != _PROFILE_OFF]
    for order, idx in (("cumulative", 3), ("own (tottime)", 2)):
        rows = sorted(entries, key=lambda e: e[idx], reverse=True)[:top]
        bc.table(f"{title}: top {top} by {order} time (profiled run {total:.3f} s = 100%)",
                 ["function", "calls", "own s", "cumulative s", "cum %"],
                 [[name, f"{nc:,}", f"{tt:.3f}", f"{ct:.3f}", f"{100 * ct / total:.0f}%"] for name, nc, tt, ct in rows])


# ---- live: py-spy on a real node, cProfile on the task ----------------------------------

def live(pages: int, reads: int, top: int, py_spy: str) -> None:
    import numa_emu
    from numa_emu.cluster import Cluster

    with bc.temp_home() as home, Cluster("default-4n", name="prof") as cluster:
        node0 = int(cluster.info.data["nodes"][0]["pid"])
        task = numa_emu.attach(0, cluster="prof")
        try:
            one = task.mmap(PAGE)
            one.touch(fill=0)  # local: the task policy is still the default
            for _ in range(500):  # warm-up
                one.read(PAGE - 8, 8)
            task.set_mempolicy("interleave", "0-3")  # applies at fault time, to `big` only
            big = task.mmap(pages * PAGE)
            for what, fn in ((f"{pages:,}-page touch(fill=0xFF), interleave 0-3", lambda: big.touch(fill=0xFF)),
                             (f"{reads:,} reads of 8 bytes, local page",
                              lambda: [one.read(PAGE - 8, 8) for _ in range(reads)])):
                out = home / "spy.txt"
                # --nonblocking: never pause the node (pausing it at 500 Hz on a loaded 2-core
                # machine can hold a long request past the task's 5 s deadline)
                spy = subprocess.Popen([py_spy, "record", "--pid", str(node0), "--rate", "500", "--format", "raw",
                                        "--function", "--nonblocking", "--output", str(out)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    time.sleep(0.5)  # let py-spy attach before the workload starts
                    t0 = time.perf_counter()
                    stats = _profile(fn)
                    wall = time.perf_counter() - t0
                except NumaEmuError as exc:
                    bc.console.print(f"[red]live {what}: {exc}[/red]")
                    continue
                finally:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=30)
                _print_spy(f"node 0, live (py-spy, active samples only): {what}, {wall:.2f} s with profilers", out, top)
                _print_stats(f"task side, live (cProfile): {what}", stats, min(top, 10))
        finally:
            try:
                task.detach()
            except NumaEmuError as exc:
                bc.console.print(f"[red]detach: {exc}[/red]")


def _print_spy(title: str, path: Path, top: int) -> None:
    own, incl = Counter(), Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    if not total:
        bc.console.print(f"[yellow]{title}: py-spy recorded no samples[/yellow]")
        return
    rows = []
    for (o_name, o_n), (i_name, i_n) in zip(own.most_common(top), incl.most_common(top)):
        rows.append([o_name, f"{100 * o_n / total:.0f}%", i_name, f"{100 * i_n / total:.0f}%"])
    bc.table(f"{title}; {total} samples", ["by own samples", "%", "by inclusive samples", "%"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000, help="pages of the batched touch")
    parser.add_argument("--reads", type=int, default=10_000, help="single-page reads")
    parser.add_argument("--top", type=int, default=15, help="functions per table")
    parser.add_argument("--no-live", action="store_true", help="skip the live py-spy run")
    args = parser.parse_args()
    bc.setup()
    with bc.temp_home() as home:
        bc.console.print(bc.host_info())
        in_process(home, args.pages, args.reads, args.top)
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(os.sys.executable).parent))
    if args.no_live:
        return
    if py_spy is None:
        bc.console.print("[yellow]py-spy not installed (pip install py-spy in the venv): live run skipped[/yellow]")
        return
    live(args.pages, args.reads, args.top, py_spy)


if __name__ == "__main__":
    main()
