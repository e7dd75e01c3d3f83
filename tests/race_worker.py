"""Worker tasks for the coherence tests: a writer stamping pages with sequence numbers, and
readers reading them through a read-only mapping (replicas), every operation logged with
CLOCK_MONOTONIC (one clock for every process of the host) for the history checker.

    python race_worker.py writer CPU FILE PAGES ROUNDS
    python race_worker.py reader CPU FILE PAGES SECONDS
Prints one JSON object: {"log": [[page, seq, start_ns, end_ns], ...], ...}.
"""
from __future__ import annotations

import json
import sys
import time

import numa_emu

STAMP = 8  # bytes: the sequence number, little endian, at the start of the page
REMAP_EVERY = 8  # reader passes over the pages between two fresh mappings


def writer(cpu: int, name: str, pages: int, rounds: int) -> dict:
    log = []
    with numa_emu.attach(cpu=cpu) as t:
        f = t.open(name)
        for seq in range(1, rounds + 1):
            for page in range(pages):
                start = time.monotonic_ns()
                f.pwrite(page * 4096, seq.to_bytes(STAMP, "little"))
                log.append([page, seq, start, time.monotonic_ns()])
            f.fsync()  # clean again: readers may replicate again, the next write collapses again
    return {"log": log}


def reader(cpu: int, name: str, pages: int, seconds: float) -> dict:
    log = []
    with numa_emu.attach(cpu=cpu) as t:
        f = t.open(name)
        region = t.mmap_file(f, writable=False)
        end = time.monotonic() + seconds
        passes = 0
        while time.monotonic() < end:
            passes += 1
            if passes % REMAP_EVERY == 0:
                # A mapping faults once per page: map afresh now and then, so that replication
                # decisions (taken at faults) keep racing the writer's collapses all run long.
                region.munmap()
                region = t.mmap_file(f, writable=False)
            for page in range(pages):
                start = time.monotonic_ns()
                seq = int.from_bytes(region.read(page * 4096, STAMP), "little")
                log.append([page, seq, start, time.monotonic_ns()])
    return {"log": log}


if __name__ == "__main__":
    role, cpu, name, pages, amount = sys.argv[1:6]
    fn = writer if role == "writer" else reader
    arg = int(amount) if role == "writer" else float(amount)
    print(json.dumps(fn(int(cpu), name, int(pages), arg)))
