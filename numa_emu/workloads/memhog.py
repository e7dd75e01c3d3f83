"""memhog(8) as a workload: map private anonymous memory, mbind it, memset it to 0xff.

Follows numactl/numactl memhog.c: one mmap of the whole size, one mbind of the region with the
given policy (a VMA policy; "default" leaves the task policy in charge, which is how
`numactl --interleave=all memhog 64m` interleaves), then the memset in 10 MiB chunks with a
'.' printed and flushed before each chunk and a newline after each pass (LTP numa01 waits for
the first dot). The memset is the batched first touch of the client API,
`Region.touch(offset, length, fill=0xFF)`.

Errors are NumaEmuError from the node: ENOMEM when a bind cannot be met (a real kernel would
OOM-kill memhog instead), EINVAL for a policy the kernel refuses.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

import numa_emu
from numa_emu.api import Task

CHUNK_BYTES = 10 * 1024 * 1024  # memhog.c UNIT
FILL = 0xFF


class MemhogError(numa_emu.NumaEmuError):
    """A step of memhog failed: `step` is "mmap", "mbind" or "memset"; code and message are the node's."""

    def __init__(self, step: str, cause: numa_emu.NumaEmuError):
        super().__init__(cause.code, cause.message)
        self.step = step


def hog(task: Task, size_bytes: int, policy: str = "default", nodes: Iterable[int] | None = None, *,
        repeat: int = 1, out: TextIO | None = None) -> None:
    """Run memhog on an attached task: mmap, mbind, then `repeat` passes of the memset.

    `policy` is a policy word (default, local, bind, interleave, preferred, preferred-many,
    weighted-interleave); `nodes` its node set. The dots go to `out` (default stdout).
    Raises MemhogError, which names the step that failed.
    """
    stream = sys.stdout if out is None else out
    step = "mmap"
    try:
        region = task.mmap(size_bytes)
        step = "mbind"
        region.mbind(policy, sorted(nodes or ()))
        step = "memset"
        for _ in range(repeat):
            for offset in range(0, size_bytes, CHUNK_BYTES):
                stream.write(".")
                stream.flush()
                region.touch(offset, min(CHUNK_BYTES, size_bytes - offset), fill=FILL)
            stream.write("\n")
            stream.flush()
    except numa_emu.NumaEmuError as exc:
        raise MemhogError(step, exc) from exc


def memhog(size_bytes: int, policy: str = "default", nodes: Iterable[int] | None = None, *, repeat: int = 1,
           out: TextIO | None = None, cluster: str | None = None) -> None:
    """Attach this process as a task named memhog, run `hog`, detach (freeing its pages)."""
    with numa_emu.attach(cluster=cluster, comm="memhog") as task:
        hog(task, size_bytes, policy, nodes, repeat=repeat, out=out)
