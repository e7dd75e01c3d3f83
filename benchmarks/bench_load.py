"""Load and soak: many tasks on many nodes doing mixed work at once, checked for consistency.

    .venv/bin/python benchmarks/bench_load.py                    # 64 tasks, 8 nodes, 20 s
    .venv/bin/python benchmarks/bench_load.py --seconds 5 --json # the short form the tests run
    .venv/bin/python benchmarks/bench_load.py --minutes 30       # soak: also fails on growth

A cluster of --nodes nodes (shape full,N) gets --tasks tasks, one process each (numa-emu attaches
one task per process), spread over every CPU. Every task, until the time is
up, picks at random:
- a write of an 8-byte stamp to one of its private pages, or a read of one that it checks against
  the last stamp it wrote there (a bad read is counted);
- a move_pages of one of its private pages to a random node (migration), after which the page's
  bytes must still be its last stamp;
- a read, through a read-only mapping, of a page of one of the shared files (replicas are made on
  remote reads), logged for the history checker;
- a pwrite of the next sequence number to the one file page it alone writes (collapse), logged;
  an fsync now and then makes the pages clean, so that readers replicate them again.
At the end every task checks all its private pages, a fresh task reads every file page and
finds the last completed write there, the history checker (tests/history.py's rule: no read
older than a write that completed before it began) runs over every read, and after every task has
detached the frames in use are back to what the files and their replicas hold.

Soak (--minutes): the same for N minutes, while every daemon's resident memory and open file
descriptors are sampled; after a warm-up third, growth between the first and the last samples
beyond --rss-growth-mib or --fd-growth fails the run.

Faults (--fault "drop 0.05", repeatable): `numa-emu fault ARGS` is run on the cluster before the
tasks attach and `fault clear` once they are done (before the final checks), so the load runs
with messages between nodes lost, duplicated or delayed; the same checks must hold.

Baseline in the same run: a bare pyzmq round trip (echo child), idle and under the same load.
Exit status: 0 when everything was consistent and nothing leaked or grew, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.history: the one history checker
import _common as common  # noqa: E402
from tests.history import violations  # noqa: E402

PAGE = 4096
STAMP = 8
PRIVATE_PAGES = 16
FSYNC_EVERY = 8  # writes of a writer between two fsyncs
WORKER_TIMEOUT_S = 120.0  # beyond the run's own seconds
LEAK_SETTLE_S = 5.0  # how long frames in use may take to come back after the last detach
# weights of the operations a task picks from
OPS = {"private_write": 30, "private_read": 30, "migrate": 5, "shared_read": 30, "shared_write": 5}


# ---- one worker process: several tasks in threads ----------------------------------------

def _task_loop(cluster: str, cpu: int, slot: int, files: list[str], nodes: int, seconds: float, seed: int,
               wait_go: Callable[[], None], out: dict) -> None:
    import numa_emu

    rng = random.Random(seed)
    lat: dict[str, list[int]] = {op: [] for op in OPS}
    log_w, log_r = [], []  # [file, page, seq, start_ns, end_ns]
    bad, errors = [], []
    with numa_emu.attach(cpu=cpu, cluster=cluster) as task:
        region = task.mmap(PRIVATE_PAGES * PAGE)
        region.touch(write=True)
        expected = [0] * PRIVATE_PAGES
        handles = [task.open(name) for name in files]
        maps = [task.mmap_file(f, writable=False) for f in handles]
        mine = handles[slot % len(files)] if files else None
        my_page = slot // len(files) if files else 0
        seq = 0
        names, weights = list(OPS), list(OPS.values())
        wait_go()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            op = rng.choices(names, weights)[0]
            t0 = time.monotonic_ns()
            try:
                if op == "private_write":
                    page = rng.randrange(PRIVATE_PAGES)
                    value = rng.getrandbits(63) | 1
                    region.write(page * PAGE, value.to_bytes(STAMP, "little"))
                    expected[page] = value
                elif op == "private_read":
                    page = rng.randrange(PRIVATE_PAGES)
                    got = int.from_bytes(region.read(page * PAGE, STAMP), "little")
                    if got != expected[page]:
                        bad.append(f"cpu {cpu} private page {page}: read {got:#x}, wrote {expected[page]:#x}")
                elif op == "migrate":
                    page = rng.randrange(PRIVATE_PAGES)
                    status = region.move_pages([rng.randrange(nodes)], offset=page * PAGE, pages=1)
                    if status[0] < 0 and status[0] not in (-12, -16):  # ENOMEM, EBUSY: the kernel's answers under load
                        bad.append(f"cpu {cpu} move_pages of page {page}: status {status[0]}")
                elif op == "shared_read":
                    f = rng.randrange(len(maps))
                    page = rng.randrange(maps[f].length // PAGE)
                    got = int.from_bytes(maps[f].read(page * PAGE, STAMP), "little")
                    log_r.append([f, page, got, t0, time.monotonic_ns()])
                elif op == "shared_write" and mine is not None:
                    seq += 1
                    mine.pwrite(my_page * PAGE, seq.to_bytes(STAMP, "little"))
                    log_w.append([slot % len(files), my_page, seq, t0, time.monotonic_ns()])
                    if seq % FSYNC_EVERY == 0:
                        mine.fsync()
            except Exception as exc:  # counted and reported: a load run must see every failure
                errors.append(f"cpu {cpu} {op}: {type(exc).__name__}: {exc}")
            lat[op].append(time.monotonic_ns() - t0)
        for page in range(PRIVATE_PAGES):
            got = int.from_bytes(region.read(page * PAGE, STAMP), "little")
            if got != expected[page]:
                bad.append(f"cpu {cpu} private page {page} at the end: read {got:#x}, wrote {expected[page]:#x}")
    out.update(lat=lat, writes=log_w, reads=log_r, bad=bad, errors=errors)


def worker_main(args: argparse.Namespace) -> None:
    """One task (numa-emu attaches one task per process): attach and map, say ready, wait for
    go on stdin, run, print one JSON object."""
    files = args.file_names.split(",") if args.file_names else []
    out: dict = {}

    def wait_go() -> None:
        print("ready", flush=True)
        sys.stdin.readline()

    _task_loop(args.cluster, args.cpu, args.slot, files, args.nodes, args.seconds, args.seed * 1000 + args.slot,
               wait_go, out)
    print(json.dumps(out), flush=True)


# ---- the run ----------------------------------------------------------------------------

def history_violations(writes: list[list[int]], reads: list[list[int]], file_pages: int) -> list[str]:
    """tests/history.py's rule over every file page (file f's page p is page f * file_pages + p)."""
    flat = lambda log: [[f * file_pages + page, *rest] for f, page, *rest in log]  # noqa: E731
    return violations(flat(writes), flat(reads))


def fault(cluster: str, args: list[str]) -> None:
    """`numa-emu fault ARGS --name CLUSTER`, through the CLI as a user would; raises on failure."""
    cli = Path(sys.executable).with_name("numa-emu")
    done = subprocess.run([str(cli), "fault", "--name", cluster, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"numa-emu fault {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


def daemons(info) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid in info.pids]


def sample(procs: list[psutil.Process]) -> tuple[int, int]:
    """Resident bytes and open descriptors of the cluster's daemons, summed."""
    rss = fds = 0
    for p in procs:
        with p.oneshot():
            rss += p.memory_info().rss
            fds += p.num_fds()
    return rss, fds


def frames_used(cluster) -> int:
    from numa_emu.protocol.messages import tasks as tm

    with cluster.client() as client:
        nodes = client.call(tm.ClusterStats()).nodes
    return sum(d["frames_total"] - d["frames_free"] for d in nodes.values())


def run(args: argparse.Namespace) -> dict:
    from numa_emu import attach
    from numa_emu.cluster import Cluster

    seconds = args.minutes * 60 if args.minutes else args.seconds
    cpus_per_node = max(1, -(-args.tasks // args.nodes // 8))
    shape = f"full,{args.nodes},mem={args.mem_per_node},cpus={cpus_per_node}"
    ncpus = args.nodes * cpus_per_node
    files = [f"load-{i}" for i in range(args.files)]
    file_pages = -(-args.tasks // args.files)
    result: dict = {"tasks": args.tasks, "nodes": args.nodes, "files": args.files, "seconds": seconds,
                    "faults": args.fault}
    with common.echo_server(common.Path(os.environ["NUMA_EMU_HOME"])) as echo_ep, \
            Cluster(shape, name="load") as cluster:
        with attach(cpu=0, cluster="load") as t:  # the files, written once and clean
            for name in files:
                f = t.open(name, create=True, size=file_pages * PAGE)
                for page in range(file_pages):
                    f.pwrite(page * PAGE, bytes(STAMP))
                f.fsync()
        used_before = frames_used(cluster)
        repl_before = common.vmstat_total(cluster, "nr_repl_pages")
        echo = common.EchoClient(echo_ep)
        envelope = common.read_envelope(STAMP)
        idle = echo.round_trips(envelope, 500)
        for spec in args.fault:
            fault("load", shlex.split(spec))
        procs = []
        for slot in range(args.tasks):
            argv = [sys.executable, __file__, "--worker", "--cluster", "load", "--seconds", str(seconds),
                    "--seed", str(args.seed), "--file-names", ",".join(files), "--nodes", str(args.nodes),
                    "--cpu", str(slot % ncpus), "--slot", str(slot)]
            procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for slot, p in enumerate(procs):  # bounded: a worker stuck before its load is named, not waited on forever
            line = p.stdout.readline().strip() if select.select([p.stdout], [], [], WORKER_TIMEOUT_S)[0] else ""
            if line != "ready":
                raise RuntimeError(f"worker {slot} (pid {p.pid}) did not attach its task within {WORKER_TIMEOUT_S:g} s "
                                   f"(said {line!r}, exit {p.poll()})")
        watched = daemons(cluster.info)
        samples = [sample(watched)]
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        t0 = time.monotonic()
        loaded = []
        next_sample = t0 + args.sample_every
        while time.monotonic() < t0 + seconds:
            loaded += echo.round_trips(envelope, 20)
            if time.monotonic() >= next_sample:
                samples.append(sample(watched))
                next_sample += args.sample_every
            time.sleep(0.05)  # pacing of the baseline probe, not a wait for a condition
        outs = []
        for slot, p in enumerate(procs):
            try:
                out, _ = p.communicate(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"worker {slot} (pid {p.pid}) is not done {WORKER_TIMEOUT_S:g} s after the load") from None
            if p.returncode != 0 or not out.strip():
                raise RuntimeError(f"worker {slot} exited {p.returncode} without its result")
            outs.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.monotonic() - t0
        if args.fault:
            fault("load", ["clear"])
        samples.append(sample(watched))
        echo.close()
        writes = [w for o in outs for w in o["writes"]]
        reads = [r for o in outs for r in o["reads"]]
        lat = {op: [v for o in outs for v in o["lat"][op]] for op in OPS}
        # the last completed write of every page is what a fresh reader finds
        last: dict[tuple[int, int], int] = {}
        for f, page, seq, _s, _e in writes:
            last[(f, page)] = max(seq, last.get((f, page), 0))
        lost = []
        with attach(cpu=0, cluster="load") as t:
            for i, name in enumerate(files):
                f = t.open(name)
                for page in range(file_pages):
                    got = int.from_bytes(f.pread(page * PAGE, STAMP), "little")
                    if got != last.get((i, page), 0):
                        lost.append(f"file {i} page {page}: {got}, last completed write {last.get((i, page), 0)}")
        # frees a node sends again (a peer that missed one under load or faults, nodes.core
        # retry_frees) land within a second or so: a frame still in use after that is leaked
        settle_by = time.monotonic() + LEAK_SETTLE_S
        unsettled = None  # frames in use beyond the files' at the first look, when some came back later
        while True:
            repl_after = common.vmstat_total(cluster, "nr_repl_pages")
            leaked = frames_used(cluster) - used_before - (repl_after - repl_before)
            unsettled = leaked if unsettled is None else unsettled
            if leaked == 0 or time.monotonic() > settle_by:
                break
            time.sleep(0.1)  # polling for the late frees, bounded by settle_by
        access = lat["private_read"] + lat["private_write"] + lat["shared_read"] + lat["shared_write"]
        ops = sum(len(v) for v in lat.values())
        result.update(
            wall_s=round(wall, 2), ops=ops, ops_per_s=round(ops / wall),
            counts={op: len(v) for op, v in lat.items()},
            access_p50_us=round(common.pct(access, 0.5) / 1e3, 1), access_p99_us=round(common.pct(access, 0.99) / 1e3, 1),
            migrate_p50_us=round(common.pct(lat["migrate"], 0.5) / 1e3, 1) if lat["migrate"] else None,
            bare_idle_p50_us=round(common.pct(idle, 0.5) * 1e6, 1), bare_loaded_p50_us=round(common.pct(loaded, 0.5) * 1e6, 1),
            bare_loaded_p99_us=round(common.pct(loaded, 0.99) * 1e6, 1),
            bad_reads=[b for o in outs for b in o["bad"]], errors=[e for o in outs for e in o["errors"]],
            history_violations=history_violations(writes, reads, file_pages), lost_writes=lost, leaked_frames=leaked,
            frames_settling=unsettled,
            replicas_left=repl_after, rss_mib=[round(s[0] / 2**20, 1) for s in samples], fds=[s[1] for s in samples],
        )
        result["growth"] = growth(samples[:-1], args) if args.minutes else []  # while loaded
        pids = cluster.info.pids + [p.pid for p in procs]
    # after `down`: the cluster's daemons and every task process are gone
    result["processes_left"] = [pid for pid in pids if not common.gone([pid])]
    return result


def growth(samples: list[tuple[int, int]], args: argparse.Namespace) -> list[str]:
    """Growth of the daemons' memory or descriptors after the first third (warm-up) of a soak."""
    steady = samples[len(samples) // 3:]
    if len(steady) < 2:
        return []
    out = []
    rss_grew = (steady[-1][0] - steady[0][0]) / 2**20
    if rss_grew > args.rss_growth_mib:
        out.append(f"resident memory grew {rss_grew:.1f} MiB after warm-up (limit {args.rss_growth_mib} MiB)")
    if steady[-1][1] - steady[0][1] > args.fd_growth:
        out.append(f"open descriptors grew from {steady[0][1]} to {steady[-1][1]} (limit +{args.fd_growth})")
    return out


def failures(result: dict) -> list[str]:
    out = []
    for key in ("bad_reads", "errors", "history_violations", "lost_writes", "growth"):
        out += [f"{key}: {x}" for x in result[key][:5]]
    if result["processes_left"]:
        out.append(f"processes_left: {result['processes_left']}")
    if result["leaked_frames"]:
        out.append(f"leaked_frames: {result['leaked_frames']}")
    return out


def report(result: dict) -> None:
    base = result["bare_loaded_p50_us"]
    common.table(
        f"Load: {result['tasks']} tasks on {result['nodes']} nodes, {result['wall_s']} s"
        + (f", faults: {'; '.join(result['faults'])}" if result["faults"] else ""),
        ["measure", "value", "bare pyzmq round trip (same run)", "ratio"],
        [["operations per second (all tasks)", result["ops_per_s"], "", ""],
         ["access p50 (read/write 8 B, private and shared)", f"{result['access_p50_us']} µs", f"{base} µs (loaded)",
          common.ratio(result["access_p50_us"], base)],
         ["access p99", f"{result['access_p99_us']} µs", f"{result['bare_loaded_p99_us']} µs (loaded)",
          common.ratio(result["access_p99_us"], result["bare_loaded_p99_us"])],
         ["move_pages of one page, p50", f"{result['migrate_p50_us']} µs", "", ""],
         ["bare round trip idle / under load, p50", f"{result['bare_idle_p50_us']} / {base} µs", "", ""],
         ["operations by kind", json.dumps(result["counts"]), "", ""],
         ["bad reads, errors, history violations, lost writes, leaked frames",
          f"{len(result['bad_reads'])}, {len(result['errors'])}, {len(result['history_violations'])}, "
          f"{len(result['lost_writes'])}, {result['leaked_frames']}", "", ""],
         ["daemons' RSS MiB first/last, fds first/last",
          f"{result['rss_mib'][0]}/{result['rss_mib'][-1]}, {result['fds'][0]}/{result['fds'][-1]}", "", ""]],
        caption=common.host_info())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=64)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--files", type=int, default=8, help="shared files (each task writes one page of one)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--minutes", type=float, default=0.0, help="soak: run this long and fail on growth")
    p.add_argument("--mem-per-node", default="32MiB")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between daemon samples")
    p.add_argument("--rss-growth-mib", type=float, default=16.0)
    p.add_argument("--fd-growth", type=int, default=4)
    p.add_argument("--fault", action="append", default=[], metavar="ARGS",
                   help='`numa-emu fault ARGS` in force during the load, e.g. "drop 0.05" (repeatable)')
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cluster", help=argparse.SUPPRESS)
    p.add_argument("--file-names", help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    p.add_argument("--slot", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker_main(args)
        return 0
    if not (1 <= args.tasks <= 512 and 1 <= args.nodes <= 64 and args.seconds > 0 and args.minutes >= 0):
        p.error("--tasks 1..512, --nodes 1..64, --seconds > 0, --minutes >= 0")
    common.setup()
    with common.temp_home():
        result = run(args)
    bad = failures(result)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
        for line in bad:
            common.console.print(f"[red]{line}[/red]")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
