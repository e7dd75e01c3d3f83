"""The client API for workload scripts (docs/client-api.md): attach to a running cluster as a task and
touch memory.

    import numa_emu
    with numa_emu.attach() as task:               # a CPU chosen by the launcher or the coordinator
        task.set_mempolicy("interleave", "0-3")
        buf = task.mmap(64 << 20)                   # private anonymous
        buf.touch(fill=0xFF)                        # batched first touch: memhog's memset
        buf.write(0, b"hello")
        print(buf.read(0, 5), buf.where()[:4], task.clock_ns())

Every memory operation goes to the task's home node, the node of its CPU. Errors raise
numa_emu.NumaEmuError, an OSError with the errno (EFAULT, EINVAL, ENOMEM, ...), and leave the
cluster and the other tasks undisturbed. libnuma's calls: numa_emu.libnuma. The launcher (`numa-emu numactl`, `cpuset exec`) passes the
CPU, policy and cpuset through the environment variables below, so they survive exec.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable

from numa_emu import taskwatch
from numa_emu.protocol.directpath import DirectPath
from numa_emu.protocol import delaylink
from numa_emu.protocol.client import Client, TaskChannel
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.nodemask import parse_nodelist
from numa_emu.protocol.policy import MPOL_F_ADDR, MPOL_F_NODE, MPOL_MF_MOVE, Mode, parse_mode_name
from numa_emu.protocol.timing import SILENCE_PROBE_MAX_S

ENV_CLUSTER = "NUMA_EMU_CLUSTER"
ENV_CPU = "NUMA_EMU_CPU"
ENV_POLICY = "NUMA_EMU_POLICY"  # JSON of Policy.to_wire(), set by numactl
# node list: the effective mems NUMA_EMU_POLICY was made against (the kernel's
# pol->w.cpuset_mems_allowed); a task inheriting it gets it rebound to its own effective mems,
# as a child gets its parent's policy after a node offline or online rebound it
ENV_POLICY_MEMS = "NUMA_EMU_POLICY_MEMS"
ENV_CPUSET = "NUMA_EMU_CPUSET"
ENV_NODEBIND = "NUMA_EMU_CPUNODEBIND"  # node list, set by numactl --cpunodebind
ENV_CPUBIND = "NUMA_EMU_PHYSCPUBIND"  # cpu list, set by numactl --physcpubind
ENV_VTIME = "NUMA_EMU_VTIME"  # "1": print the task's virtual time on stderr when it detaches
MAX_MOVES_PER_CALL = 3  # EREMCHG answers a request may meet in a row before it gives up (each: the task moved again)

_attached: list["Task"] = []  # this process's tasks, oldest first: libnuma's calls act on "the process"


_MODE_VALUES = frozenset(int(m) for m in Mode)


def _mode(mode: Mode | int | str) -> int:
    return int(parse_mode_name(mode)) if isinstance(mode, str) else int(mode)


def _nodes(nodes: Iterable[int] | str | None) -> list[int]:
    if nodes is None:
        return []
    if isinstance(nodes, str):
        return sorted(parse_nodelist(nodes))
    return sorted(int(n) for n in nodes)


class Region:
    """A mapped region of a task: offsets are relative to its start."""

    def __init__(self, task: "Task", vaddr: int, length: int, shared: bool, name: str | None):
        self.task, self.vaddr, self.length, self.shared, self.name = task, vaddr, length, shared, name

    def addr(self, offset: int = 0) -> int:
        """The task address of byte `offset` of the region."""
        return self.vaddr + offset

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (a page never written reads as zeros: the zero page)."""
        return self.task.read(self.vaddr + offset, length)

    def write(self, offset: int, data: bytes) -> None:
        """Write `data` at `offset`; the first write to a page allocates it by the policy in force."""
        self.task.write(self.vaddr + offset, data)

    def touch(self, offset: int = 0, length: int | None = None, *, write: bool = False, fill: int | None = None) -> mm.TouchReply:
        """Fault `length` bytes from `offset` (all: None) in one request; see Task.touch."""
        return self.task.touch(self.vaddr + offset, self.length - offset if length is None else length, write=write, fill=fill)

    def mbind(self, mode: Mode | int | str, nodes: Iterable[int] | str | None = None, *, offset: int = 0,
              length: int | None = None, flags: int = 0) -> None:
        """mbind(2) on `length` bytes from `offset` (all: None)."""
        self.task.mbind(self.vaddr + offset, self.length - offset if length is None else length, mode, nodes, flags)

    def move_pages(self, nodes: Iterable[int] | None = None, *, offset: int = 0, pages: int | None = None,
                   flags: int = MPOL_MF_MOVE) -> list[int]:
        """move_pages(2) on `pages` pages from `offset` (all: None); `nodes` one per page, None queries."""
        count = (self.length - offset) // self.task.page_size if pages is None else pages
        addrs = [self.vaddr + offset + i * self.task.page_size for i in range(count)]
        return self.task.move_pages(addrs, nodes, flags)

    def where(self, offset: int = 0, length: int | None = None) -> list[int | None]:
        """The node of each page from `offset` (None: no page of its own yet)."""
        return self.task.where(self.vaddr + offset, self.length - offset if length is None else length)

    def munmap(self) -> None:
        """Unmap the whole region; its frames are freed."""
        self.task.munmap(self.vaddr, self.length)

    def __repr__(self) -> str:
        kind = f"shared {self.name!r}" if self.shared else "private"
        return f"<Region {kind} {self.vaddr:#x}+{self.length:#x}>"


class File:
    """A file of the cluster's backing store, accessed through the page cache."""

    def __init__(self, task: "Task", name: str, size: int):
        self.task, self.name, self._size = task, name, size

    @property
    def size(self) -> int:
        """The file's size in bytes, as this handle last saw it."""
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        """read(2) at `offset` through the page cache (a read may create a replica)."""
        return self.task._call(pc.FileRead(task_id=self.task.task_id, name=self.name, offset=offset, length=length)).data

    def pwrite(self, offset: int, data: bytes) -> int:
        """write(2) at `offset` through the page cache (collapses replicas); the bytes written."""
        written = self.task._call(pc.FileWrite(task_id=self.task.task_id, name=self.name, offset=offset,
                                               data=bytes(data))).written
        self._size = max(self._size, offset + written)
        return written

    def fsync(self) -> None:
        """Write the file's dirty pages back to the store."""
        self.task._call(pc.FileSync(task_id=self.task.task_id, name=self.name))

    def truncate(self, size: int) -> None:
        """Set the file's size (ftruncate(2)): pages beyond it are dropped, growth reads as zeros."""
        self._size = self.task._coordinator.call(pc.FileResize(name=self.name, size=size)).file["size"]

    def set_policy(self, mode: Mode | int | str, nodes: Iterable[int] | str | None = None, flags: int = 0) -> None:
        """The file's shared policy: its pages are allocated by it, whoever faults them first
        (mode "default" clears it). Pages already in the page cache stay where they are."""
        self.task._coordinator.call(pc.FileSetPolicy(name=self.name, mode=_mode(mode) | flags, nodes=_nodes(nodes)))

    def mmap(self, *, offset: int = 0, length: int | None = None, writable: bool = True, exec: bool = False) -> Region:
        """Map the file shared into the task; see Task.mmap_file."""
        return self.task.mmap_file(self, offset=offset, length=length, writable=writable, exec=exec)

    def __repr__(self) -> str:
        return f"<File {self.name!r} {self._size} bytes>"


class Task:
    """A process of the cluster (`attach()` makes one): its CPU, home node, policy and memory."""

    def __init__(self, reply: tm.TaskRegisterReply, coordinator: Client, home: Client | TaskChannel,
                 keys: ClusterKeys, watcher: subprocess.Popen | None = None):
        self.task_id = reply.task_id
        self._keys = keys  # the cluster's CURVE keys, for a client of a new home node
        self.pid = os.getpid()
        self.cpu = reply.cpu
        self.node = reply.node
        self.page_size = reply.page_size
        self.n_nodes = reply.n_nodes
        self.cpuset = reply.cpuset
        self.mems_allowed = list(reply.mems_allowed)
        self._coordinator = coordinator
        self._home = home
        self._watcher = watcher  # numa_emu.taskwatch, when no agent watches this host's tasks
        # connected to every node: the owner of a remote private page answers the access itself
        self._direct = isinstance(home, TaskChannel)
        self._clock = 0
        self.last_not_moved = 0
        self.attached = True
        self._home_lost: NumaEmuError | None = None  # the coordinator's EIO once the home node died
        # reads and writes of pages on the home node through shared memory (protocol/directpath.py);
        # asked for at the first access, and again after a move to another node
        self._dpath: DirectPath | None = None
        self._dpath_ask = True
        self._direct_seen = 0  # the table's direct charges when the last request left (in self._clock)

    # ---- memory -------------------------------------------------------------------------
    def _call(self, request):
        if not self.attached:
            raise NumaEmuError(ErrorCode.ESRCH, "the task is detached")
        if self._home_lost is not None:
            raise self._home_lost
        if self._dpath is not None:  # the node folds the direct charges made so far into the reply's clock
            self._direct_seen = self._dpath.charged()
        for moves in range(MAX_MOVES_PER_CALL + 1):
            try:
                reply = self._home.call(request, on_silence=self._probe_home)
                break
            except NumaEmuError as exc:
                if exc.code in (ErrorCode.ETIMEDOUT, ErrorCode.ECONNREFUSED, ErrorCode.ESRCH):  # gone, or restarted
                    self._home_dead(exc)
                if exc.code != ErrorCode.EREMCHG or moves == MAX_MOVES_PER_CALL:
                    raise
                # moved to another node (a cpuset change, NUMA balancing): the old home did nothing
                self._where_now()
        clock = getattr(reply, "clock_ns", None)
        if clock is not None:
            self._clock = clock
        return reply

    def mmap(self, length: int, *, shared: bool = False, name: str | None = None) -> Region:
        """Anonymous memory (mmap(2)); `shared` with a `name`: shared with every task mapping that name."""
        reply = self._call(mm.Mmap(task_id=self.task_id, length=length, shared=shared, name=name))
        return Region(self, reply.vaddr, reply.length, shared, name)

    def open(self, name: str, *, create: bool = False, size: int | None = None) -> File:
        """A file of the backing store (`create`: make it, `size` bytes of zeros, if absent)."""
        info = self._coordinator.call(pc.FileOpen(name=name, create=create, size=size)).file
        return File(self, name, info["size"])

    def import_file(self, path: str, name: str) -> File:
        """Copy host file `path` (read with this process's rights) into the store as `name`, and open it."""
        from numa_emu.fileimport import import_file

        return File(self, name, import_file(self._coordinator, path, name)["size"])

    def mmap_file(self, f: File, *, offset: int = 0, length: int | None = None, shared: bool = True,
                  writable: bool = True, exec: bool = False) -> Region:
        """Map a file (MAP_SHARED): reads may be served by replicas, writes collapse them."""
        if not shared:
            raise NumaEmuError(ErrorCode.EINVAL, "private file mappings (MAP_PRIVATE) are not supported; map shared")
        reply = self._call(pc.FileMmap(task_id=self.task_id, name=f.name, offset=offset, length=length,
                                       writable=writable, exec=exec))
        return Region(self, reply.vaddr, reply.length, True, f.name)

    def munmap(self, vaddr: int, length: int) -> None:
        """munmap(2): unmap `length` bytes at `vaddr`; their frames are freed."""
        self._call(mm.Munmap(task_id=self.task_id, vaddr=vaddr, length=length))

    def read(self, vaddr: int, length: int) -> bytes:
        """`length` bytes at `vaddr`; an untouched private page reads as zeros (the zero page)."""
        dpath = self._dpath or self._direct_path()
        if dpath is not None:
            data = dpath.read(vaddr, length)
            if data is not None:
                return data
            if dpath.closed:
                self._drop_direct_path()
        return self._call(mm.Access(task_id=self.task_id, vaddr=vaddr, length=length, direct=self._direct)).data

    def write(self, vaddr: int, data: bytes) -> None:
        """Write `data` at `vaddr`; the first write to a page allocates it by the policy in force."""
        dpath = self._dpath or self._direct_path()
        if dpath is not None:
            if dpath.write(vaddr, data):
                return
            if dpath.closed:
                self._drop_direct_path()
        self._call(mm.Access(task_id=self.task_id, vaddr=vaddr, data=bytes(data), direct=self._direct))

    def _direct_path(self) -> DirectPath | None:
        """The direct path, once the home node told where its memory is; None: messages only
        (not asked yet, or the node's memory cannot be mapped from here)."""
        if not self._dpath_ask or not self.attached or self._home_lost is not None:
            return self._dpath
        self._dpath_ask = False
        try:
            reply = self._call(mm.DirectMap(task_id=self.task_id))
            self._dpath = DirectPath(reply.pid, reply.pool_fd, reply.frames, reply.table_fd, self.page_size)
            self._direct_seen = 0
        except (OSError, ValueError):  # NumaEmuError is an OSError: an old node, a /proc we may not open
            self._dpath = None
        return self._dpath

    def _drop_direct_path(self, ask_again: bool = True) -> None:
        if self._dpath is not None:
            ask_again = ask_again and not self._dpath.dead
            self._dpath.close()
            self._dpath = None
        self._dpath_ask = ask_again

    def touch(self, vaddr: int, length: int, *, write: bool = False, fill: int | None = None) -> mm.TouchReply:
        """Fault a range in one request: a read (the zero page) unless `write` or `fill` (memset)."""
        dpath = self._dpath or self._direct_path()  # asked first: the pages this faults in become direct at once
        if dpath is not None and (fill is None or 0 <= fill <= 255):
            pages = dpath.touch(vaddr, length, write, fill)
            if pages is not None:  # every page present here: the clock as the node would answer it
                return mm.TouchReply(pages=pages, faults=0, clock_ns=self._clock + dpath.charged() - self._direct_seen)
        return self._call(mm.Touch(task_id=self.task_id, vaddr=vaddr, length=length, write=write, fill=fill))

    def where(self, vaddr: int, length: int) -> list[int | None]:
        """The node of each page of the range; None where it has no page (untouched, or only read)."""
        nodes = self._call(mm.Where(task_id=self.task_id, vaddr=vaddr, length=length)).nodes
        return [None if n < 0 else n for n in nodes]

    def maps(self) -> list[dict]:
        """The task's regions, as numa_maps shows them."""
        return self._call(mm.Maps(task_id=self.task_id)).regions

    # ---- migration ----------------------------------------------------------------------
    def move_pages(self, addrs: Iterable[int], nodes: Iterable[int] | None = None, flags: int = MPOL_MF_MOVE) -> list[int]:
        """move_pages(2) on this task: per page the node it is on afterwards, or a negative errno
        (-ENOENT not present, -EFAULT not mapped, -EACCES shared without MPOL_MF_MOVE_ALL, -ENOMEM
        target full, -EBUSY). `nodes` None only queries. The count of pages not moved for
        non-fatal reasons (the syscall's positive return) is kept in `last_not_moved`."""
        reply = self._call(mg.MovePages(task_id=self.task_id, addrs=[int(a) for a in addrs],
                                        nodes=None if nodes is None else [int(n) for n in nodes], flags=flags))
        self.last_not_moved = reply.not_moved
        return list(reply.status)

    def migrate_pages(self, old_nodes: Iterable[int] | str, new_nodes: Iterable[int] | str, *,
                      move_all: bool = False) -> int:
        """migrate_pages(2) on this task: pages on old_nodes move to new_nodes by the relative rule;
        returns the number of pages that could not be moved (0: all moved)."""
        return self._call(mg.MigratePages(task_id=self.task_id, old_nodes=_nodes(old_nodes), new_nodes=_nodes(new_nodes),
                                          move_all=move_all)).not_moved

    # ---- policy -------------------------------------------------------------------------
    def set_mempolicy(self, mode: Mode | int | str, nodes: Iterable[int] | str | None = None, flags: int = 0) -> None:
        """set_mempolicy(2): the task policy; `flags` are the mode flags (MPOL_F_STATIC_NODES, ...)."""
        self._coordinator.call(tm.SetMempolicy(task_id=self.task_id, mode=_mode(mode) | flags, nodes=_nodes(nodes)))

    def get_mempolicy(self, flags: int = 0, addr: int | None = None) -> tuple[Mode | int, list[int]] | int:
        """get_mempolicy(2): (mode, nodes), the mode a `Mode`; with MPOL_F_NODE a node id instead
        (of the page at addr with MPOL_F_ADDR). A policy set with mode flags (MPOL_F_STATIC_NODES,
        ...) reports them OR'ed into the mode as the kernel does: a plain int then."""
        reply = self._call(mm.GetMempolicy(task_id=self.task_id, flags=flags, addr=addr))
        if flags & MPOL_F_NODE:
            return reply.node
        return (Mode(reply.mode) if reply.mode in _MODE_VALUES else reply.mode), list(reply.nodes)

    def node_of(self, vaddr: int) -> int:
        """The node of the page at `vaddr`, faulting it in if needed (get_mempolicy MPOL_F_NODE|MPOL_F_ADDR)."""
        return self.get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR, vaddr)

    def mbind(self, vaddr: int, length: int, mode: Mode | int | str, nodes: Iterable[int] | str | None = None,
              flags: int = 0) -> None:
        """mbind(2) on a range, with MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_LAZY."""
        self._call(mm.Mbind(task_id=self.task_id, vaddr=vaddr, length=length, mode=_mode(mode), nodes=_nodes(nodes),
                            flags=flags))

    def sched_setaffinity(self, cpus: Iterable[int] | str) -> tuple[int, int]:
        """sched_setaffinity(2): run on one of `cpus` (those of the task's cpuset; none is EINVAL).
        The task keeps its CPU if allowed, else moves, to another node if need be (its pages stay
        where they are). Returns (cpu, node) afterwards. A later cpuset change does not know it."""
        self._coordinator.call(tm.TaskSetAffinity(task_id=self.task_id, cpus=_nodes(cpus)))
        return self.getcpu()

    def getcpu(self) -> tuple[int, int]:
        """(cpu, node) as they are now: a cpuset change may have moved the task."""
        self._where_now()
        return self.cpu, self.node

    def _home_dead(self, error: NumaEmuError | None = None, timeout_s: float | None = None) -> None:
        """The home node did not answer, or does not know this task: the coordinator's EIO if
        that node died (the task's memory with it), else nothing. The EIO is kept: every later
        request fails with it at once."""
        try:
            self._coordinator.call(tm.TaskHome(task_id=self.task_id), timeout_s)
        except NumaEmuError as exc:
            if exc.code == ErrorCode.EIO:
                self._home_lost = exc
                raise exc from error

    def _probe_home(self) -> None:
        """A request to the home node has had no reply for a while: EIO now if that node died
        (docs/protocol.md#a-nodes-death), instead of at the request's deadline."""
        self._home_dead(timeout_s=SILENCE_PROBE_MAX_S)  # a slow coordinator: the request's deadline settles it

    def _where_now(self) -> None:
        """Ask the coordinator where this task runs; follow it to a new home node."""
        home = self._coordinator.call(tm.TaskHome(task_id=self.task_id))
        self.cpu = home.cpu
        if home.node != self.node:
            self._drop_direct_path()
            if isinstance(self._home, TaskChannel):  # connected to every node: it only re-aims
                self._home.rehome(home.node)
            else:
                self._home.close()
                self._home = Client(home.endpoint, keys=self._keys)
            self.node = home.node

    def clock_ns(self) -> int:
        """The task's virtual clock, read from its home node."""
        return self._call(mm.Maps(task_id=self.task_id)).clock_ns

    def topology(self) -> dict:
        """The machine the cluster emulates (Topology.to_dict(): nodes with cpus and mem_bytes, distances)."""
        return self._coordinator.call(lc.ClusterStatus()).topology

    def node_frames(self) -> dict[int, tuple[int, int]]:
        """Each live node's frames now, as its meminfo counts them: node -> (total, free)."""
        nodes = self._coordinator.call(tm.ClusterStats()).nodes
        return {int(n): (int(s["frames_total"]), int(s["frames_free"])) for n, s in nodes.items()}

    def info(self) -> dict:
        """The coordinator's record of the task (cpu, node, cpuset, policy, ...)."""
        return self._coordinator.call(tm.TaskInfo(task_id=self.task_id)).task

    # ---- life cycle ---------------------------------------------------------------------
    def detach(self) -> int:
        """Release every page; idempotent. Also runs at interpreter exit. Returns the final
        virtual time (ns), and prints it on stderr when $NUMA_EMU_VTIME is 1."""
        if not self.attached:
            return self._clock
        try:
            try:
                clock = self.clock_ns()
            except NumaEmuError as exc:
                if exc.code not in (ErrorCode.EIO, ErrorCode.ETIMEDOUT, ErrorCode.ECONNREFUSED, ErrorCode.ESRCH):
                    raise
                clock = self._clock  # the home node died: the coordinator frees what the task held elsewhere
            if os.environ.get(ENV_VTIME) == "1":
                print(f"numa-emu: task {self.task_id} on cpu {self.cpu} (node {self.node}): virtual time {clock} ns",
                      file=sys.stderr)
            self._coordinator.call(tm.TaskExit(task_id=self.task_id))
        except NumaEmuError as exc:
            if exc.code != ErrorCode.ESRCH:
                raise
        finally:
            self.attached = False
            self._drop_direct_path(ask_again=False)
            if self in _attached:
                _attached.remove(self)
            self._home.close()
            self._coordinator.close()
            self._end_watcher()
            atexit.unregister(self.detach)
        return self._clock

    def _end_watcher(self) -> None:
        if self._watcher is None:
            return
        try:
            self._watcher.stdin.write(taskwatch.DETACHED)
            self._watcher.stdin.close()
            self._watcher.wait(timeout=5.0)
        except (OSError, subprocess.TimeoutExpired):
            self._watcher.kill()  # it must not report a detached task as dead later
        self._watcher = None

    def __enter__(self) -> "Task":
        """A task is a context manager: it detaches at the end of the `with` block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Detach (see detach)."""
        self.detach()


def attach(cpu: int | None = None, *, cluster: str | None = None, comm: str | None = None,
           cap_sys_nice: bool | None = None) -> Task:
    """Join the running cluster as a task. The cluster: `cluster`, else $NUMA_EMU_CLUSTER, else the
    only one that is up, else 'default'. The CPU: `cpu`, else $NUMA_EMU_CPU, else the coordinator's pick.
    `cap_sys_nice`: the task may move pages other tasks map (MPOL_MF_MOVE_ALL, else EPERM);
    None: as Linux gives CAP_SYS_NICE, when the process runs as root."""
    from numa_emu import cluster as cl

    name = cluster or os.environ.get(ENV_CLUSTER) or cl.resolve_name(None)
    info = cl.connect(name)
    if cpu is None and os.environ.get(ENV_CPU):
        cpu = int(os.environ[ENV_CPU])
    policy = json.loads(os.environ[ENV_POLICY]) if os.environ.get(ENV_POLICY) else None
    policy_mems = (_nodes(os.environ.get(ENV_POLICY_MEMS)) or None) if policy else None
    nodes_bound = _nodes(os.environ.get(ENV_NODEBIND)) or None
    cpus_bound = _nodes(os.environ.get(ENV_CPUBIND)) or None
    coordinator = info.client()
    try:
        reply = coordinator.call(tm.TaskRegister(
            pid=os.getpid(), comm=comm or os.path.basename(sys.argv[0] or "python"), cpu=cpu, policy=policy,
            policy_mems=policy_mems,
            cpuset=os.environ.get(ENV_CPUSET) or None, nodes_bound=nodes_bound, cpus_bound=cpus_bound,
            host=info.host or None, clock_key=delaylink.HOST_KEY,
            cap_sys_nice=os.geteuid() == 0 if cap_sys_nice is None else bool(cap_sys_nice)))
    except BaseException:
        coordinator.close()
        raise
    endpoints = reply.node_endpoints or {}
    offsets, within = {int(k): int(off) for k, off in reply.clocks or ()}, 0
    if reply.coordinator_clocks and reply.node in endpoints:
        with contextlib.suppress(NumaEmuError):  # unmeasured: other hosts' replies hold from their arrival
            offsets, within = _own_clock_offsets(coordinator, reply.coordinator_clocks)
    home = (TaskChannel(reply.node, {int(n): ep for n, ep in endpoints.items()}, keys=info.keys,
                        clock_offsets=offsets, clock_within_ns=within)
            if reply.node in endpoints else Client(reply.node_endpoint, keys=info.keys))
    watcher = None
    if reply.watch_yourself:  # no agent on this host to see the process die
        watcher = subprocess.Popen([sys.executable, "-m", "numa_emu.taskwatch", name, str(reply.task_id), str(os.getpid())],
                                   stdin=subprocess.PIPE, start_new_session=True, close_fds=True)
    task = Task(reply, coordinator, home, info.keys, watcher)
    atexit.register(task.detach)
    _attached.append(task)
    return task


def _own_clock_offsets(coordinator: Client, clocks: list) -> tuple[dict[int, int], int]:
    """A task of a host whose clock the coordinator did not measure (no nodes there): every host's
    clock minus ours (ns), from `clocks` (each against the coordinator's) and our own offset to the
    coordinator, the fastest of a few pings (as the coordinator measures its agents'), and how far
    off that may be (half that round trip). Without them, real-mode replies from other hosts would
    be held from their arrival."""
    samples = []
    for _ in range(delaylink.CLOCK_ROUNDS):
        t0 = time.monotonic_ns()
        theirs = coordinator.call(lc.Ping()).monotonic_ns
        if theirs is None:  # a coordinator that does not tell its clock
            return {}, 0
        samples.append((t0, theirs, time.monotonic_ns()))
    offset, rtt = delaylink.estimate_offset(samples)  # the coordinator's clock minus ours
    return {int(k): int(off) + offset for k, off in clocks}, rtt // 2


def attached_tasks() -> list[Task]:
    """The tasks this process has attached and not detached yet, oldest first."""
    return [t for t in _attached if t.attached]
