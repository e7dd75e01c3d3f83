"""prodcons: a producer task and a consumer task over a shared region, a ring of page-sized chunks.

This process is the producer, on --cpu. It maps a shared anonymous region of --size bytes
(named --shm, default prodcons-<pid>), then starts its partner, `python -m
numa_emu.workloads.prodcons --role consumer`, as a second task on --consumer-cpu (default: the
first CPU of the next node), which maps the same region by name. The producer writes
sequence-numbered records (--record-size bytes: sequence number, a check word derived from it
and --seed, filler) one page-sized chunk at a time, --iterations times around the ring; the
consumer reads each chunk and verifies every record. They hand chunks over through two pipes
(ready, free), a futex-like side channel that costs nothing in the model, so the memory traffic,
and with it each task's virtual time, is the same on every run.

Virtual time of the pair: the two virtual clocks are independent, so the hand-over also carries
each side's pipeline time, the virtual instant its chunk was done. A chunk starts at the later of
its own side's previous finish and the partner's event it waits for (producer: the consumer
freed that slot; consumer: the producer filled it), and ends one chunk's own cost later. The
consumer's last finish is the pair's `virtual_ns`; each task's busy time (its clock's advance)
is reported under "producer" and "consumer".

Result fields besides the common ones: records, record_size, ring_pages, iterations,
records_per_s, mb_s (virtual), verified, producer {...}, consumer {...the consumer's own line}.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import struct
import subprocess
import sys
import time

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

from numa_emu.workloads.runner import main, positive_int

DEFAULTS = {"size": "256KiB", "iterations": 4}
HAND_OVER = struct.Struct("<QQ")  # chunk index, the sender's pipeline time (ns)
HELLO = 2**64 - 1  # consumer -> producer: mapped, ready to go
HEADER = struct.Struct("<QQ")  # sequence number, check word
MASK = 2**64 - 1
GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing constant (Knuth, TAOCP 6.4)
PARTNER_TIMEOUT_S = 60.0
_UNBIND = ("NUMA_EMU_CPU", "NUMA_EMU_CPUNODEBIND", "NUMA_EMU_PHYSCPUBIND")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record-size", type=positive_int, default=64,
                   help="bytes per record, at least 16, dividing the page size (default 64)")
    p.add_argument("--consumer-cpu", type=int, default=None, help="the consumer's CPU (default: first CPU of the next node)")
    p.add_argument("--shm", metavar="NAME", default=None, help="name of the shared region (default prodcons-<pid>)")
    p.add_argument("--role", choices=("producer", "consumer"), default="producer", help=argparse.SUPPRESS)
    p.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--free-fd", type=int, default=None, help=argparse.SUPPRESS)


def record(seq: int, key: int, size: int) -> bytes:
    return HEADER.pack(seq, (seq * GOLDEN ^ key) & MASK) + bytes([(seq ^ key) & 0xFF]) * (size - HEADER.size)


def chunk(first_seq: int, count: int, key: int, size: int) -> bytes:
    return b"".join(record(first_seq + i, key, size) for i in range(count))


def _send(fd: int, index: int, t_ns: int) -> None:
    os.write(fd, HAND_OVER.pack(index, t_ns))


def _recv(fd: int, timeout_s: float = PARTNER_TIMEOUT_S) -> tuple[int, int] | None:
    """One hand-over message, or None at EOF (the partner is gone)."""
    buf, deadline = b"", time.monotonic() + timeout_s
    while len(buf) < HAND_OVER.size:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise NumaEmuError(ErrorCode.ETIMEDOUT, f"prodcons: no word from the partner within {timeout_s:g} s")
        part = os.read(fd, HAND_OVER.size - len(buf))
        if not part:
            return None
        buf += part
    return HAND_OVER.unpack(buf)


def _geometry(task, args: argparse.Namespace) -> tuple[int, int, int]:
    ps = task.page_size
    if args.record_size < HEADER.size or ps % args.record_size:
        raise NumaEmuError(ErrorCode.EINVAL, f"--record-size {args.record_size}: must be at least {HEADER.size} "
                                             f"and divide the page size {ps}")
    ring_pages = max(1, -(-args.size // ps))
    return ring_pages, ps // args.record_size, ring_pages * args.iterations


def _cluster_name(args: argparse.Namespace) -> str:
    from numa_emu import api, cluster

    return args.cluster or os.environ.get(api.ENV_CLUSTER) or cluster.resolve_name(None)


def _partner_cpu(task, cluster_name: str) -> int:
    """The first CPU of the next node that has CPUs (wrapping around); another CPU of this node
    on a one-node machine."""
    from numa_emu import cluster

    topology = cluster.status(cluster.require(cluster_name)).topology
    nodes = sorted((n for n in topology["nodes"] if n["cpus"]), key=lambda n: n["id"])
    others = [n for n in nodes if n["id"] != task.node]
    if not others:
        cpus = sorted(c for n in nodes for c in n["cpus"] if c != task.cpu)
        return cpus[0] if cpus else task.cpu
    after = [n for n in others if n["id"] > task.node] or others
    return min(after[0]["cpus"])


def _spawn_consumer(args, name: str, cluster_name: str, cpu: int, ready_r: int, free_w: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "numa_emu.workloads.prodcons", "--role", "consumer", "--cluster", cluster_name,
            "--cpu", str(cpu), "--shm", name, "--size", str(args.size), "--iterations", str(args.iterations),
            "--record-size", str(args.record_size), "--seed", str(args.seed),
            "--ready-fd", str(ready_r), "--free-fd", str(free_w)]
    env = {k: v for k, v in os.environ.items() if k not in _UNBIND}
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=(ready_r, free_w), env=env, text=True)


def _consumer_line(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=PARTNER_TIMEOUT_S)
    if proc.returncode != 0 or not out.strip():
        why = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise NumaEmuError(ErrorCode.EIO, f"prodcons: the consumer failed: {why}")
    return json.loads(out.strip().splitlines()[-1])


def produce(task, args: argparse.Namespace) -> dict:
    ring_pages, per_chunk, chunks = _geometry(task, args)
    ps, name, cluster_name = task.page_size, args.shm or f"prodcons-{os.getpid()}", _cluster_name(args)
    region = task.mmap(ring_pages * ps, shared=True, name=name)
    cpu = args.consumer_cpu if args.consumer_cpu is not None else _partner_cpu(task, cluster_name)
    ready_r, ready_w = os.pipe()
    free_r, free_w = os.pipe()
    try:
        proc = _spawn_consumer(args, name, cluster_name, cpu, ready_r, free_w)
    finally:
        os.close(ready_r)
        os.close(free_w)
    try:
        if _recv(free_r) is None:
            _consumer_line(proc)  # it exited before mapping: raises with its reason
            raise NumaEmuError(ErrorCode.EIO, "prodcons: the consumer exited before it mapped the ring")
        w0, last = time.perf_counter(), task.clock_ns()
        busy = pipeline = 0
        for k in range(chunks):
            start = pipeline
            if k >= ring_pages:  # the slot must have been consumed
                freed = _recv(free_r)
                if freed is None or freed[0] != k - ring_pages:
                    raise NumaEmuError(ErrorCode.EIO, f"prodcons: lost the consumer at chunk {k}")
                start = max(start, freed[1])
            region.write((k % ring_pages) * ps, chunk(k * per_chunk, per_chunk, args.seed, args.record_size))
            now = task.clock_ns()
            busy, pipeline, last = busy + now - last, start + now - last, now
            _send(ready_w, k, pipeline)
        os.close(ready_w)
        ready_w = -1
        while _recv(free_r) is not None:  # drain, so the consumer never blocks on a full pipe
            pass
        consumer = _consumer_line(proc)
        wall_s = time.perf_counter() - w0
    finally:
        for fd in (ready_w, free_r):
            if fd >= 0:
                os.close(fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = chunks * per_chunk
    virtual_ns = consumer["pipeline_ns"]
    return {"virtual_ns": virtual_ns, "wall_s": wall_s, "ops": records, "bytes": records * args.record_size,
            "records": records, "record_size": args.record_size, "ring_pages": ring_pages,
            "iterations": args.iterations, "records_per_s": records / virtual_ns * 1e9 if virtual_ns else None,
            "mb_s": records * args.record_size / virtual_ns * 1e3 if virtual_ns else None,
            "verified": consumer["records"] == records and consumer["errors"] == 0,
            "producer": {"virtual_ns": busy, "pipeline_ns": pipeline, "node": task.node, "cpu": task.cpu},
            "consumer": consumer}


def consume(task, args: argparse.Namespace) -> dict:
    if args.ready_fd is None or args.free_fd is None or args.shm is None:
        raise NumaEmuError(ErrorCode.EINVAL, "--role consumer is started by the producer (needs --shm and the pipes)")
    ring_pages, per_chunk, chunks = _geometry(task, args)
    ps = task.page_size
    region = task.mmap(ring_pages * ps, shared=True, name=args.shm)
    w0, last = time.perf_counter(), task.clock_ns()
    _send(args.free_fd, HELLO, 0)
    busy = pipeline = records = errors = 0
    for k in range(chunks):
        ready = _recv(args.ready_fd)
        if ready is None or ready[0] != k:
            raise NumaEmuError(ErrorCode.EIO, f"prodcons: lost the producer at chunk {k}")
        start = max(pipeline, ready[1])
        data = region.read((k % ring_pages) * ps, ps)
        expected = chunk(k * per_chunk, per_chunk, args.seed, args.record_size)
        rs = args.record_size
        errors += sum(data[i:i + rs] != expected[i:i + rs] for i in range(0, ps, rs))
        records += per_chunk
        now = task.clock_ns()
        busy, pipeline, last = busy + now - last, start + now - last, now
        _send(args.free_fd, k, pipeline)
    os.close(args.free_fd)
    return {"virtual_ns": busy, "wall_s": time.perf_counter() - w0, "ops": records, "bytes": records * args.record_size,
            "role": "consumer", "pipeline_ns": pipeline, "records": records, "errors": errors}


def run(task, args: argparse.Namespace) -> dict:
    return consume(task, args) if args.role == "consumer" else produce(task, args)


if __name__ == "__main__":
    raise SystemExit(main("prodcons"))
