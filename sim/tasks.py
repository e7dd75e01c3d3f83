"""A scenario's task: the requests numa_emu.api sends, as generators a task script yields from.

Each method sends what the client API's method of the same name sends (to the task's home node,
or to the coordinator), follows the task to its new home on EREMCHG as the API does, and records
its reads and writes of the scenario's registers in the history (sim.history): a register is 8
bytes, so only reads and writes of 8 bytes are recorded; a write of another size leaves its object
unchecked from then on (a test may read and write any size).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from numa_emu.protocol.directpath import DirectPath
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import MPOL_MF_MOVE, Mode

REGISTER = 8  # bytes of a register of the history (sim.history)


@dataclass
class Mapping:
    """A region of the task: its address, and the register prefix of its bytes ("f" for a file
    mapped at offset 0, "t3" for private memory of task 3)."""

    vaddr: int
    length: int
    prefix: str


class SimTask:
    def __init__(self, cluster, task_id: int, cpu: int, direct: bool = False):
        """`direct`: reads and writes of 8 bytes go through the direct path first, as the client
        API's do (protocol/directpath.py: the home node's frame pool and the task's page table, in this
        process's own memfds): one atomic step of the task, between two deliveries."""
        self.cluster = cluster
        self.history = cluster.history
        self.task_id = task_id
        self.cpu = cpu
        self.home = cluster.coordinator.cpu_node[cpu]
        self.name = f"task:{task_id}"
        self.direct = direct
        self.dpath: DirectPath | None = None
        self.dpath_home = -1  # the node whose memory dpath maps
        self.dropped = (0, 0)  # (reads, writes) of the direct paths dropped since (a move, a death)
        cluster.net.add(self.name, {})

    def direct_counts(self) -> tuple[int, int]:
        """(reads, writes) its direct paths served so far."""
        now = self.dpath.counts() if self.dpath is not None else (0, 0)
        return self.dropped[0] + now[0], self.dropped[1] + now[1]

    def close(self) -> None:
        self._drop_dpath()

    def _drop_dpath(self) -> None:
        if self.dpath is not None:
            self.dropped = self.direct_counts()
            self.dpath.close()
            self.dpath = None

    def _direct_path(self):
        """The direct path to the task's home node (asked for once per home), or None: messages.
        A home that died or that the task left has its mapping dropped, as the client drops it."""
        if not self.direct:
            return None
        if self.dpath is not None and (self.dpath_home != self.home or self.dpath.closed
                                       or self.home in self.cluster.dead):
            self._drop_dpath()
        if self.dpath is None and self.home not in self.cluster.dead and self.dpath_home != self.home:
            reply = yield from self.call(mm.DirectMap(task_id=self.task_id))
            self.dpath_home = self.home
            self.dpath = DirectPath(os.getpid(), reply.pool_fd, reply.frames, reply.table_fd, 4096)
        return self.dpath

    def call(self, request):
        """`request` to the task's home node; after EREMCHG (the task moved), asked again of its new home."""
        while True:
            try:
                return (yield Call(f"node:{self.home}", request))
            except NumaEmuError as exc:
                if exc.code != ErrorCode.EREMCHG:
                    raise
                reply = yield Call("coordinator", tm.TaskHome(task_id=self.task_id))
                self.home = reply.node

    def _write_begins(self, prefix: str, offset: int, data: bytes):
        if len(data) == REGISTER:
            return self.history.write_begins(f"{prefix}@{offset}", data)
        self.history.untrack(prefix)
        return None

    # ---- files (pread, pwrite, fsync) ----------------------------------------------------
    def pread(self, name: str, offset: int, length: int = REGISTER):
        start = self.history.now()
        reply = yield from self.call(pc.FileRead(task_id=self.task_id, name=name, offset=offset, length=length))
        if length == REGISTER:
            self.history.read_ends(f"{name}@{offset}", start, reply.data, self.name)
        return reply.data

    def pwrite(self, name: str, offset: int, data: bytes):
        w = self._write_begins(name, offset, data)
        yield from self.call(pc.FileWrite(task_id=self.task_id, name=name, offset=offset, data=data))
        if w is not None:
            self.history.write_ends(w)

    def fsync(self, name: str):
        yield from self.call(pc.FileSync(task_id=self.task_id, name=name))

    def truncate(self, name: str, size: int):
        """File.truncate: the coordinator, the size authority, drops the pages past the end everywhere."""
        self.history.untrack(name)
        yield Call("coordinator", pc.FileResize(name=name, size=size))

    # ---- memory ---------------------------------------------------------------------------
    def mmap(self, pages: int, shared: str | None = None):
        """Private memory, or the shm object `shared`."""
        reply = yield from self.call(mm.Mmap(task_id=self.task_id, length=pages * 4096, shared=shared is not None,
                                             name=shared))
        if shared:
            return Mapping(reply.vaddr, reply.length, f"shm:{shared}")
        self.history.private.add(f"t{self.task_id}")
        return Mapping(reply.vaddr, reply.length, f"t{self.task_id}")

    def mmap_file(self, name: str, pages: int, writable: bool = False):
        reply = yield from self.call(pc.FileMmap(task_id=self.task_id, name=name, length=pages * 4096,
                                                 writable=writable))
        return Mapping(reply.vaddr, reply.length, name)

    def munmap(self, m: Mapping):
        yield from self.call(mm.Munmap(task_id=self.task_id, vaddr=m.vaddr, length=m.length))

    def load(self, m: Mapping, offset: int, length: int = REGISTER):
        dpath = yield from self._direct_path()
        start = self.history.now()
        data = dpath.read(m.vaddr + offset, length) if dpath is not None else None
        if data is None:
            data = (yield from self.call(mm.Access(task_id=self.task_id, vaddr=m.vaddr + offset, length=length,
                                                   direct=True))).data
        if length == REGISTER:
            self.history.read_ends(f"{m.prefix}@{offset}", start, data, self.name)
        return data

    def store(self, m: Mapping, offset: int, data: bytes):
        dpath = yield from self._direct_path()
        w = self._write_begins(m.prefix, offset, data)
        if dpath is None or not dpath.write(m.vaddr + offset, data):
            yield from self.call(mm.Access(task_id=self.task_id, vaddr=m.vaddr + offset, data=data, direct=True))
        if w is not None:
            self.history.write_ends(w)

    def touch(self, m: Mapping, write: bool = True):
        return (yield from self.call(mm.Touch(task_id=self.task_id, vaddr=m.vaddr, length=m.length, write=write)))

    def fill(self, m: Mapping, value: int, register: int):
        """Touch the mapping with `fill` (every byte of its pages set to `value`, a memset); the
        history records the write of the register at offset `register`, the one the script reads."""
        w = self._write_begins(m.prefix, register, bytes([value]) * REGISTER)
        yield from self.call(mm.Touch(task_id=self.task_id, vaddr=m.vaddr, length=m.length, write=True, fill=value))
        if w is not None:
            self.history.write_ends(w)

    def mbind(self, m: Mapping, nodes: list[int], flags: int = MPOL_MF_MOVE, mode: Mode = Mode.BIND):
        yield from self.call(mm.Mbind(task_id=self.task_id, vaddr=m.vaddr, length=m.length, mode=int(mode),
                                      nodes=nodes, flags=flags))

    def migrate_pages(self, old: list[int], new: list[int], move_all: bool = False):
        return (yield from self.call(mg.MigratePages(task_id=self.task_id, old_nodes=old, new_nodes=new,
                                                     move_all=move_all)))

    def move_pages(self, m: Mapping, pages: list[int], nodes: list[int] | None, flags: int = MPOL_MF_MOVE):
        """move_pages(2) of pages of `m` (their indices); `nodes` None queries. The reply: status, not_moved."""
        return (yield from self.call(mg.MovePages(task_id=self.task_id, addrs=[m.vaddr + p * 4096 for p in pages],
                                                  nodes=nodes, flags=flags)))

    def migrate_pages_of(self, pid: int, old: list[int], new: list[int]):
        """migratepages PID OLD NEW from this process: the coordinator has the task's home move them."""
        return (yield Call("coordinator", mg.TaskMigratePages(pid=pid, old_nodes=old, new_nodes=new)))

    def get_mempolicy(self, flags: int = 0, addr: int | None = None):
        return (yield from self.call(mm.GetMempolicy(task_id=self.task_id, flags=flags, addr=addr)))

    def clock_ns(self):
        """The task's virtual clock (the client API reads it from mem.maps)."""
        return (yield from self.call(mm.Maps(task_id=self.task_id))).clock_ns

    def where(self, m: Mapping) -> list[int]:
        reply = yield from self.call(mm.Where(task_id=self.task_id, vaddr=m.vaddr, length=m.length))
        return reply.nodes

    def move_to(self, cpu: int):
        """sched_setaffinity to one CPU: a CPU of another node moves the task there."""
        reply = yield Call("coordinator", tm.TaskSetAffinity(task_id=self.task_id, cpus=[cpu]))
        self.home, self.cpu = reply.node, cpu
