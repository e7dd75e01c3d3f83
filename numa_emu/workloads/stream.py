"""stream: the triad of McCalpin's STREAM, a[i] = b[i] + scalar * c[i], page by page.

Three regions of --size bytes each (rounded up to whole pages) hold 8-byte doubles. The set-up
(not measured) writes b[i] = i and c[i] = 2i and touches a, so every page is resident where the
task's policy put it. Each measured iteration then walks the pages in order: it reads the page of
b and the page of c (two messages), computes the page of a here, and writes it (one message).
STREAM counts the triad's bytes as 3 x 8 bytes per element, so one iteration moves exactly
3 x size bytes, and `mb_s` is that over the virtual time (10^6 bytes per second, as STREAM).
After the measured phase every page of a is read back and checked (`verified`).

Result fields besides the common ones: size, pages, elements, scalar, iterations, mb_s,
verified.
"""
from __future__ import annotations

import argparse
from array import array

from numa_emu.workloads.runner import Phase, main

DEFAULTS = {"size": "1MiB", "iterations": 2}
DOUBLE = 8
BATCH_PAGES = 64  # pages per message in the set-up and the check


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scalar", type=float, default=3.0, help="the triad's scalar (default 3.0)")


def _page(first: int, count: int, factor: float) -> bytes:
    return array("d", [factor * i for i in range(first, first + count)]).tobytes()


def _triad(b: bytes, c: bytes, scalar: float) -> bytes:
    bb, cc = array("d"), array("d")
    bb.frombytes(b)
    cc.frombytes(c)
    return array("d", [x + scalar * y for x, y in zip(bb, cc)]).tobytes()


def _fill(region, n_pages: int, per_page: int, factor: float, ps: int) -> None:
    for first in range(0, n_pages, BATCH_PAGES):
        count = min(BATCH_PAGES, n_pages - first)
        region.write(first * ps, _page(first * per_page, count * per_page, factor))


def _check(region, n_pages: int, per_page: int, scalar: float, ps: int) -> bool:
    for first in range(0, n_pages, BATCH_PAGES):
        count = min(BATCH_PAGES, n_pages - first)
        got = array("d")
        got.frombytes(region.read(first * ps, count * ps))
        base = first * per_page
        if any(v != 1.0 * (base + k) + scalar * (2.0 * (base + k)) for k, v in enumerate(got)):
            return False
    return True


def run(task, args: argparse.Namespace) -> dict:
    ps = task.page_size
    n_pages = max(1, -(-args.size // ps))
    size = n_pages * ps
    per_page = ps // DOUBLE
    a, b, c = task.mmap(size), task.mmap(size), task.mmap(size)
    _fill(b, n_pages, per_page, 1.0, ps)
    _fill(c, n_pages, per_page, 2.0, ps)
    a.touch(write=True)
    with Phase(task) as phase:
        for _ in range(args.iterations):
            for p in range(n_pages):
                off = p * ps
                a.write(off, _triad(b.read(off, ps), c.read(off, ps), args.scalar))
    moved = 3 * size * args.iterations
    return {"virtual_ns": phase.virtual_ns, "wall_s": phase.wall_s, "ops": 3 * n_pages * args.iterations,
            "bytes": moved, "size": size, "pages": n_pages, "elements": size // DOUBLE, "scalar": args.scalar,
            "iterations": args.iterations, "mb_s": moved / phase.virtual_ns * 1e3 if phase.virtual_ns else None,
            "verified": _check(a, n_pages, per_page, args.scalar, ps)}


if __name__ == "__main__":
    raise SystemExit(main("stream"))
