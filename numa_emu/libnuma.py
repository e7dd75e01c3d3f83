"""libnuma's calls (numa(3)) under their own names, with libnuma's semantics, for numa-emu tasks.

    from numa_emu import libnuma
    if libnuma.numa_available() < 0:
        sys.exit("no numa-emu cluster is up")
    buf = libnuma.numa_alloc_onnode(1 << 20, 1)     # a Region, bound to node 1 (MPOL_BIND)
    buf.touch(write=True)                            # first touch: the pages land on node 1
    libnuma.numa_free(buf, 1 << 20)

libnuma acts on the calling process and keeps process-wide state, so these are module
functions, not methods: each acts on the process's task, the one `numa_emu.attach()` (or
`numa_available()`, or the first call) attached. A process that holds several tasks names one
with the keyword `task=`. Module variable `numa_fail_alloc_on_error` is libnuma's global of
that name.

Sources: numactl/numactl libnuma.c (numa_max_node, numa_num_configured_nodes, numa_node_size64,
numa_node_of_cpu, numa_run_on_node, numa_alloc_onnode/_local/_interleaved_subset_v2, dombind,
dombind_or_free, numa_free, numa_error), distance.c (numa_distance) and numa(3). How each call
differs from C: docs/client-api.md#libnuma.

Errors: where C returns -1 or NULL with errno set, the call raises NumaEmuError, an OSError whose
`errno` is that errno (as Python's os module does for system calls). Results that are not errors
in C stay results: numa_distance() returns 0 for a node it does not know.
"""
from __future__ import annotations

import os
import sys

from numa_emu import api
from numa_emu.api import Region, Task
from numa_emu.frontends.libnuma import NODEMASK_BITS
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import Mode

__all__ = ["numa_available", "numa_max_node", "numa_num_configured_nodes", "numa_distance", "numa_node_size",
           "numa_node_size64", "numa_node_of_cpu", "numa_run_on_node", "numa_alloc_onnode", "numa_alloc_local",
           "numa_alloc_interleaved", "numa_free", "numa_fail_alloc_on_error"]

# libnuma.c: 1 makes numa_alloc_* fail (NULL, here NumaEmuError) when the policy cannot be set;
# 0, the default, reports the mbind error on stderr and returns the memory without that policy.
numa_fail_alloc_on_error = 0


def _task(task: Task | None) -> Task:
    """The task a call acts on: `task`, else the process's one attached task, else a new one
    (libnuma initialises itself when it is loaded)."""
    if task is not None:
        return task
    live = api.attached_tasks()
    if len(live) > 1:
        raise NumaEmuError(ErrorCode.EINVAL, f"this process holds {len(live)} tasks; "
                                             "name the one libnuma acts on with task=")
    return live[0] if live else api.attach()


def _topology(task: Task | None) -> dict:
    return _task(task).topology()


def numa_available(*, task: Task | None = None) -> int:
    """0 if NUMA calls work (a task is attached, attaching one if needed), -1 if no cluster can be
    reached. numa(3): call it before any other function; the others are undefined after -1."""
    try:
        _task(task)
    except NumaEmuError:
        return -1
    return 0


def numa_max_node(*, task: Task | None = None) -> int:
    """The highest node number of the machine (libnuma: the highest /sys/devices/system/node/nodeN)."""
    return max(n["id"] for n in _topology(task)["nodes"])


def numa_num_configured_nodes(*, task: Task | None = None) -> int:
    """The number of nodes of the machine (libnuma counts every nodeN folder, memoryless ones too)."""
    return len(_topology(task)["nodes"])


def numa_distance(node1: int, node2: int, *, task: Task | None = None) -> int:
    """The SLIT distance between two nodes (10 to itself); 0 when either node does not exist."""
    topology = _topology(task)
    ids = [n["id"] for n in topology["nodes"]]
    if node1 not in ids or node2 not in ids:
        return 0  # distance.c: "(unsigned)a >= distance_numnodes" -> 0, no errno
    return int(topology["distances"][ids.index(node1)][ids.index(node2)])


def numa_node_size64(node: int, *, task: Task | None = None) -> tuple[int, int]:
    """(size, free) of a node in bytes: its node meminfo MemTotal and MemFree, as numastat -m
    shows them. C returns the size and writes the free bytes through `freep`; Python returns both.
    A node that does not exist: ENOENT (C: -1, the meminfo file cannot be opened)."""
    t = _task(task)
    frames = t.node_frames().get(node)
    if frames is None:
        raise NumaEmuError(ErrorCode.ENOENT, f"no node {node} in this machine, or it is down")
    return frames[0] * t.page_size, frames[1] * t.page_size


numa_node_size = numa_node_size64  # C's long variant; Python ints do not overflow


def numa_node_of_cpu(cpu: int, *, task: Task | None = None) -> int:
    """The node of `cpu`; EINVAL for a CPU the machine does not have (C: -1, errno EINVAL)."""
    for n in _topology(task)["nodes"]:
        if cpu in n["cpus"]:
            return int(n["id"])
    raise NumaEmuError(ErrorCode.EINVAL, f"no cpu {cpu} in this machine")


def numa_run_on_node(node: int, *, task: Task | None = None) -> int:
    """Run the task on the CPUs of `node` (-1: on every CPU again), by sched_setaffinity(2); 0.
    A task whose CPU is not on `node` moves there (its pages stay). Errors as libnuma's: a node
    beyond numa_num_possible_nodes() (1024) is EINVAL; one beyond numa_max_node() is ERANGE after
    libnuma's warning; a node without CPUs, or none in the task's cpuset, is EINVAL."""
    t = _task(task)
    if node >= NODEMASK_BITS or node < -1:
        raise NumaEmuError(ErrorCode.EINVAL, f"node {node} is beyond the {NODEMASK_BITS} nodes libnuma knows")
    nodes = {int(n["id"]): n["cpus"] for n in t.topology()["nodes"]}
    if node == -1:
        cpus = sorted(c for cpus in nodes.values() for c in cpus)
    elif node in nodes:
        cpus = list(nodes[node])
    else:  # numa_node_to_cpus(): ERANGE; numa_run_on_node warns and fails
        sys.stderr.write("libnuma: Warning: Cannot read node cpumask from sysfs\n")
        raise NumaEmuError(ErrorCode.ERANGE, f"no node {node} in this machine (numa_max_node() is {max(nodes)})")
    if not cpus:
        raise NumaEmuError(ErrorCode.EINVAL, f"node {node} has no CPU to run on (memory only)")
    t.sched_setaffinity(cpus)
    return 0


def _numa_error(where: str, exc: NumaEmuError) -> None:
    """libnuma.c numa_error(): perror(where)."""
    sys.stderr.write(f"{where}: {os.strerror(exc.errno)}\n")


def _alloc(task: Task | None, size: int, mode: Mode, nodes: list[int]) -> Region:
    """libnuma.c: mmap(MAP_PRIVATE|MAP_ANONYMOUS), then dombind_or_free(): nothing is allocated
    until the first touch, which places the pages by the region's policy."""
    region = _task(task).mmap(size)
    try:
        region.mbind(mode, nodes)
    except NumaEmuError as exc:
        _numa_error("mbind", exc)
        if numa_fail_alloc_on_error:
            region.munmap()
            raise
    return region


def numa_alloc_onnode(size: int, node: int, *, task: Task | None = None) -> Region:
    """`size` bytes (rounded up to pages) bound to `node` with MPOL_BIND (libnuma's default bind
    policy): a touch fails rather than fall back to another node."""
    return _alloc(task, size, Mode.BIND, [node])


def numa_alloc_local(size: int, *, task: Task | None = None) -> Region:
    """`size` bytes with MPOL_LOCAL: each page on the node of the CPU that first touches it."""
    return _alloc(task, size, Mode.LOCAL, [])


def numa_alloc_interleaved(size: int, *, task: Task | None = None) -> Region:
    """`size` bytes interleaved page by page over the nodes the task may allocate from
    (numa_all_nodes_ptr: its cpuset's mems), by page offset as the kernel does for a VMA policy."""
    t = _task(task)
    return _alloc(t, size, Mode.INTERLEAVE, sorted(t.info()["mems_allowed"]))


def numa_free(mem: Region | int, size: int, *, task: Task | None = None) -> None:
    """munmap(2) `size` bytes at `mem` (a Region of numa_alloc_* or an address): its frames are
    freed. Returns nothing and ignores munmap's complaint, as libnuma does: freeing twice is harmless."""
    t = mem.task if isinstance(mem, Region) else _task(task)
    try:
        t.munmap(mem.vaddr if isinstance(mem, Region) else int(mem), size)
    except NumaEmuError as exc:
        if exc.code not in (ErrorCode.EFAULT, ErrorCode.EINVAL):  # a cluster that went away still raises
            raise
