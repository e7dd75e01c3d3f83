"""The memory manager for the tasks whose home is this node: their address spaces, faults by
policy, reads and writes wherever the page lives, mbind and get_mempolicy, and their clocks.

Every operation of a task comes here (docs/design.md#tasks). A private page's only map is the task's
page table here; a shared page is mapped through its directory entry (nodes.directory).
Handlers are generators when they may need another node; the cost of each operation is added
to the task's virtual clock from the cost model.
"""
from __future__ import annotations

import collections
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.directmap import NOTHING, TaskTable
from numa_emu.nodes.locks import PageLock
from numa_emu.nodes.pagetable import ANON, FILE, MIGCACHE, SHM, ZEROPAGE, AddressSpace, Region
from numa_emu.nodes.pcache import STALE_RETRIES, PageCacheView
from numa_emu.nodes.placement import InterleaveCursor, Placement, interleave_target, next_interleave_index, place
from numa_emu.protocol.effects import Call, Forward, Sleep
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol import limits
from numa_emu.protocol.costmodel import TOUCH_BYTES
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import Mode, Policy
from numa_emu.protocol.routing import node_dest

if TYPE_CHECKING:
    from numa_emu.nodes.balancing import Balancer
    from numa_emu.nodes.filetable import FileTable
    from numa_emu.nodes.pagemove import PageMoves
    from numa_emu.nodes.replication import ReplicationTunables

# A batch hands the loop back after this many pages, so that a long touch never starves the
# heartbeats (docs/conventions.md#heartbeats): 4096 pages take about 20-40 ms here.
_CHUNK_PAGES = 4096


def private_page_name(task_id: int, vaddr: int) -> str:
    """A private page as an error names it (MemoryManager.page_name)."""
    return f"page {vaddr:#x} of task {task_id}"


class _Clock:
    """A task's virtual clock (ns): it saturates at protocol.limits.CLOCK_MAX_NS instead of
    growing past what a reply can carry (msgpack integers end at 64 bits)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = "_" + name

    def __get__(self, obj: object, owner: type | None = None) -> int:
        return 0 if obj is None else obj.__dict__[self.attr]  # None: the dataclass asks the default

    def __set__(self, obj: object, value: int) -> None:
        obj.__dict__[self.attr] = limits.clamp_clock_ns(value)


@dataclass
class TaskState:
    task_id: int
    pid: int
    comm: str
    cpu: int
    node: int
    policy: Policy
    mems: frozenset[int]
    space: AddressSpace
    clock_ns: int = _Clock()  # type: ignore[assignment]
    faults: int = 0
    il_cursor: InterleaveCursor = field(default_factory=InterleaveCursor)
    placements: dict = field(default_factory=dict)  # cache: (policy, target) -> Placement
    replication: bool = True  # the task's cpuset lets it replicate page-cache pages
    # Serialises the task's slow paths (which wait on messages) with migrations of its pages,
    # which may come from another process (migratepages, a cpuset). The fast path never takes it.
    lock: PageLock = field(default_factory=PageLock)
    away: dict = field(default_factory=dict)  # page vaddr -> node of its frame, while MIGRATING or MIGCACHE
    auto: set = field(default_factory=set)  # vaddrs of pages auto-migration put in the migration cache
    # private pages whose frame died with its node: page vaddr -> (that node, how). Every access fails
    # (EIO) until they are unmapped, as a hardware-poisoned page gives SIGBUS (memory_failure).
    lost: dict = field(default_factory=dict)
    table: TaskTable | None = None  # the page table its direct path reads, once it asked (mem.direct)
    direct_reads: int = 0  # accesses its direct path made, folded in from the table
    direct_writes: int = 0
    numa: object = None  # the balancing scanner's state of the task (nodes.balancing.TaskScan)
    cap_sys_nice: bool = True  # may move pages other tasks map (MPOL_MF_MOVE_ALL; else EPERM)
    auto_due_ns: int | None = None  # moved here: its pages follow once its clock passes this (auto-migration)

    def unmap_direct(self, vaddrs: Iterable[int]) -> None:
        """The hook for every change of the task's mapping (migration, the migration cache,
        munmap, NUMA-balancing hinting, ...): the pages leave the task's shared page table, and
        no direct write can land in a frame the node frees or reuses (nodes/directmap.py)."""
        if self.table is not None:
            ps = self.space.page_size
            self.table.unmap([v // ps for v in vaddrs])


class _FaultBatch:
    """The fault events of one allocation run, one event per supplier node (parallel lists):
    tracing a large first touch costs a list append per page, not an event."""

    def __init__(self) -> None:
        self.by_node: dict[int, tuple[list, list, list]] = {}

    def add(self, node: int, addr: int, frame: int, vns: int) -> None:
        addrs, frames, vnss = self.by_node.setdefault(node, ([], [], []))
        addrs.append(addr)
        frames.append(frame)
        vnss.append(vns)

    def emit(self, tracer, task, write: bool) -> None:
        for node, (addrs, frames, vnss) in self.by_node.items():
            tracer.emit("fault", task=task.task_id, vns=vnss[-1], write=write, supplier=node, local=node == task.node,
                        addrs=addrs, frames_mapped=frames, vnss=vnss)


class MemoryManager:
    def __init__(self, core: NodeCore, pcache: PageCacheView, tasks: dict[int, TaskState], moves: PageMoves,
                 files: FileTable, tunables: ReplicationTunables, hinting: Balancer | None = None):
        """`tasks`: this node's tasks by id, shared with the page cache's reverse map (its
        shootdowns unmap task entries); `moves`: the migration cache and page moves its faults use;
        `files` and `tunables`: the file table and the replication switches its faults follow;
        `hinting`: automatic NUMA balancing (`tick(task)` at each access or touch, `hint_faults`
        for the marked pages it touches)."""
        self.core = core
        self.files = files
        self.tunables = tunables
        self.pcache = pcache
        self.tasks = tasks
        self.moved: dict[int, int] = {}  # task id -> the node it moved to (nodes.taskmove)
        self.moves = moves
        self.hinting = hinting
        self.direct_access = True  # vm.direct_access: tasks may read and write their local pages themselves
        # tables of tasks gone from this node that still hold frames (a writer stopped inside a direct write)
        self.closing: list[TaskTable] = []

    def handlers(self) -> dict:
        return {
            "node.task.attach": self.attach, "node.task.detach": self.detach,
            "mem.mmap": self.mmap, "mem.munmap": self.munmap, "mem.access": self.access, "mem.touch": self.touch,
            "mem.where": self.where, "mem.direct": self.direct,
            "mem.maps": self.maps, "mem.mapcounts": self.mapcounts,
        }

    def task(self, task_id: int) -> TaskState:
        try:
            task = self.tasks[task_id]
        except KeyError:
            if task_id in self.moved:
                raise NumaEmuError(ErrorCode.EREMCHG, f"task {task_id} moved to node {self.moved[task_id]}") from None
            raise NumaEmuError(ErrorCode.ESRCH, f"no task {task_id} on node {self.core.node_id}") from None
        if task.table is not None and task.table.held:  # a request: its direct write that held frames may be over
            task.table.settle()
        self.fold_clock(task)
        return task

    # ---- the direct path (nodes/directmap.py) --------------------------------------------
    def fold_clock(self, task: TaskState) -> None:
        """Add what the task's direct accesses charged since the last fold to its clock, and count them."""
        if task.table is not None:
            delta = task.table.take()
            if delta is NOTHING:  # checked on every request: the fast way out
                return
            ns, reads, writes, repl_hits = delta
            if repl_hits:
                self.core.events["repl_hits"] += repl_hits
            task.clock_ns += ns
            task.direct_reads += reads
            task.direct_writes += writes

    def direct(self, msg: mm.DirectMap) -> mm.DirectMapReply:
        """Where the task's direct path finds this node's frame pool and its page table."""
        task = self.task(msg.task_id)
        if task.table is None:
            task.table = TaskTable(task.task_id, self.core.pool, *self.core.cost.local(self.core.node_id),
                                   self.direct_access)
        pool = self.core.pool
        return mm.DirectMapReply(pid=os.getpid(), pool_fd=pool.fd, frames=pool.frames, table_fd=task.table.fd,
                                 node=self.core.node_id)

    def set_direct_access(self, on: bool) -> None:
        """vm.direct_access: off unmaps every entry of every task (and publishes none)."""
        self.direct_access = on
        for task in self.tasks.values():
            if task.table is not None:
                task.table.set_enabled(on)

    def costs_changed(self) -> None:
        """The cost model changed (a latency table): tasks charge by the new one from their next access."""
        for task in self.tasks.values():
            if task.table is not None:
                task.table.set_cost(*self.core.cost.local(self.core.node_id))

    def _publish(self, task: TaskState, region: Region, p: int, wrote: bool = False) -> None:
        """Give the task's direct path a page of this node's pool it just accessed. A private
        page is writable once dirty (the first write is a message, which sets the dirty bit); a
        shared one once its mapping is writable (the directory made this node a writer: no
        replica, dirty) and the task holds the frame's grant (one direct writer a frame): the
        grant goes to a task that `wrote` the page by message, and stays with it while it reads
        (a reader does not take it from the writer)."""
        if task.table is not None and self.direct_access and not region.hinted(p):  # a marked page is not present
            core, frame, vpn = self.core, region.frame[p], region.start // self.core.page_size + p
            if region.kind == ANON:
                task.table.publish(vpn, frame, region.gen[p], region.dirty[p] == 1)
            elif core.pool.generation[frame] == region.gen[p]:  # never a stale mapping
                replica = core.replica_frames.get(frame) is not None
                vaddr = region.start + p * core.page_size
                writable = (region.wr[p] == 1 and not replica
                            and core.grant_direct_write(frame, (task.task_id, vaddr), lambda: task.unmap_direct([vaddr]),
                                                        take=wrote))
                task.table.publish(vpn, frame, region.gen[p], writable, region.wr[p] == 0 and replica, shared=True)

    def close_table(self, task: TaskState) -> None:
        """The task leaves this node: its clock takes the last direct charges, its table goes."""
        if task.table is not None:
            self.fold_clock(task)
            if not task.table.close():
                self.closing.append(task.table)
            task.table = None

    def close_tables(self) -> None:
        """The node ends: every task's page table closes (its memfd released), held frames or not."""
        for task in self.tasks.values():
            if task.table is not None:
                task.table.close()
                task.table.release()
                task.table = None
        for table in self.closing:
            table.release()
        self.closing = []

    def settle_tables(self) -> None:
        """Let go of the frames held for direct writes that have ended since (nodes/directmap.py);
        run from a timer, as a stopped or silent task may never send another request."""
        for task in self.tasks.values():
            if task.table is not None and task.table.held:
                task.table.settle()
        if self.closing:
            self.closing = [table for table in self.closing if not table.settle()]

    def moved_away(self, task: TaskState, node: int) -> None:
        """`task` lives on node `node` now (nodes.taskmove): its later requests here get EREMCHG."""
        del self.tasks[task.task_id]
        self.moved[task.task_id] = node

    def adopt(self, task: TaskState) -> None:
        """`task` moved here (nodes.taskmove); EEXIST if a task of that id lives here already."""
        if task.task_id in self.tasks:
            raise NumaEmuError(ErrorCode.EEXIST, f"task {task.task_id} lives on node {self.core.node_id} already")
        self.tasks[task.task_id] = task
        self.moved.pop(task.task_id, None)  # it may come back to a node it left

    def locked(self, task: TaskState, gen):
        """Run the handler coroutine `gen` holding the task's lock; ESRCH if the task detached
        while this waited for it, EREMCHG if it moved to another node meanwhile (a cpuset change,
        NUMA balancing): nothing of `gen` was done, the client sends it again to the new home."""
        yield from task.lock.acquire()
        try:
            if self.tasks.get(task.task_id) is not task:
                if task.task_id in self.moved or task.task_id in self.tasks:  # away, or away and back
                    raise NumaEmuError(ErrorCode.EREMCHG, f"task {task.task_id} moved while the request waited")
                raise NumaEmuError(ErrorCode.ESRCH, f"task {task.task_id} detached while the request waited")
            return (yield from gen)
        finally:
            task.lock.release()

    # ---- task life cycle ----------------------------------------------------------------
    def attach(self, msg: tm.NodeTaskAttach) -> Ok:
        if msg.task_id in self.tasks:
            raise NumaEmuError(ErrorCode.EEXIST, f"task {msg.task_id} is attached already")
        self.tasks[msg.task_id] = TaskState(msg.task_id, msg.pid, msg.comm, msg.cpu, self.core.node_id,
                                            Policy.from_wire(msg.policy), frozenset(msg.mems_allowed),
                                            AddressSpace(self.core.page_size), replication=msg.replication,
                                            cap_sys_nice=bool(msg.cap_sys_nice))
        if self.core.trace.on:
            self.core.trace.emit("task", task=msg.task_id, vns=0, what="attach", cpu=msg.cpu, comm=msg.comm)
        return Ok()

    def detach(self, msg: tm.NodeTaskDetach):
        task = self.task(msg.task_id)
        return self.locked(task, self._detach(task))

    def _detach(self, task: TaskState):
        freed = yield from self._release(task, list(task.space.regions))
        self.close_table(task)
        del self.tasks[task.task_id]
        if self.core.trace.on:
            self.core.trace.emit("task", task=task.task_id, vns=task.clock_ns, what="detach", pages=freed)
        return tm.NodeTaskDetachReply(pages_freed=freed)

    def node_died(self, node: int) -> int:
        """Node `node` died: the private pages of this node's tasks whose frames were there are
        lost; they are unmapped here (a restarted node reuses the frame numbers) and remembered
        in task.lost. How many."""
        ps, count = self.core.page_size, 0
        for task in self.tasks.values():
            for region in task.space.regions:
                if region.kind != ANON:
                    continue
                for p, n in region.node.items():
                    vpage = region.start + p * ps
                    if n == MIGCACHE and task.away.get(vpage) == node:
                        self.moves.cache_drop(task, region, p)
                        n = node
                    if n == node:
                        region.node[p] = -1
                        task.lost[vpage] = (node, self.core.dead.get(node, "gone"))
                        count += 1
        return count

    def _check_lost(self, task: TaskState, region: Region, pages: list[int]) -> None:
        ps = self.core.page_size
        for p in pages:
            lost = task.lost.get(region.start + p * ps)
            if lost is not None:
                raise self.core.dead_error(lost[0], self.page_name(task, region, p), why=lost[1])

    def _release(self, task: TaskState, regions: list[Region]):
        """Unmap regions: free private frames; shared pages leave the reverse map but stay in the
        page cache (shm objects and file pages outlive their mappings). Returns pages unmapped."""
        private: dict[int, list[int]] = collections.defaultdict(list)
        gens: dict[int, list[int]] = collections.defaultdict(list)  # theirs: a failed free is sent again
        count = 0
        ps = self.core.page_size
        if task.table is not None:
            task.unmap_direct([r.start + i * ps for r in regions for i, node in r.node.items()
                               if node == self.core.node_id])
        for region in regions:
            for i, node in region.node.items():  # the touched pages only: a reservation costs nothing
                if node < 0:
                    # lazily unmapped: a private page still holds its frame (the node of it, to free)
                    node = self.moves.cache_drop(task, region, i) if node == MIGCACHE else -1
                    if node < 0:
                        continue
                count += 1
                if region.kind == ANON:
                    private[node].append(region.frame[i])
                    gens[node].append(region.gen[i])
                else:
                    self.pcache.unmap((region.obj, region.obj_offset + i), task.task_id, region.start + i * ps)
        # Out of the page table before their frames are freed, as Linux unmaps before it frees
        # (invariant 1, docs/protocol.md#invariants; the simulator checks it after every message).
        task.space.remove(regions)
        yield from self.core.free_frames(private, generations=gens)
        if task.lost:
            for region in regions:
                for vpage in [v for v in task.lost if region.start <= v < region.start + region.npages * ps]:
                    del task.lost[vpage]
        left = {r.map_id for r in task.space.regions}
        gone = {r.map_id: r for r in regions if r.kind == FILE and r.map_id not in left}
        for region in gone.values():  # the file table counts writable and executable mappings
            try:
                yield Call("coordinator", pc.FileMapped(name=region.name, writable=region.writable, exec=region.exec,
                                                        delta=-1))
            except NumaEmuError:
                pass
        return count

    # ---- mappings -----------------------------------------------------------------------
    def mmap(self, msg: mm.Mmap) -> mm.MmapReply:
        task = self.task(msg.task_id)
        limits.MAPPING_BYTES.check(msg.length, "mmap length")
        if msg.shared != (msg.name is not None) or (msg.name is not None and not msg.name):
            raise NumaEmuError(ErrorCode.EINVAL, "a shared region needs a name, a private one must not have one")
        npages = -(-msg.length // self.core.page_size)
        region = task.space.map(npages, SHM if msg.shared else ANON, msg.name)
        return mm.MmapReply(vaddr=region.start, length=npages * self.core.page_size, clock_ns=task.clock_ns)

    def munmap(self, msg: mm.Munmap):
        task = self.task(msg.task_id)
        return self.locked(task, self._munmap(task, msg))

    def _munmap(self, task: TaskState, msg: mm.Munmap):
        regions = task.space.isolate(msg.vaddr, msg.length)
        yield from self._release(task, regions)
        return Ok()

    # ---- faults -------------------------------------------------------------------------
    def placement(self, task: TaskState, region: Region, page: int) -> tuple[Placement, Policy, int]:
        """Where page `page` of `region` goes by the policy in force (file, VMA, task): the
        placement, that policy, and the interleave index used."""
        policy = (region.kind == FILE and self.files.policy(region.name)) or region.policy or task.policy
        index = 0
        if policy.mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE):
            if region.policy is not None or region.kind != ANON:
                # VMA interleave by page offset (mm/mempolicy.c interleave_nid): for anonymous
                # memory vm_pgoff is the virtual page number, for shm the object's page index.
                index = (region.start // self.core.page_size + page) if region.kind == ANON else region.obj_offset + page
            else:
                index, task.il_cursor = next_interleave_index(policy, task.il_cursor, allowed=task.mems,
                                                              weights=self.core.weights)
            key = (policy, interleave_target(policy, index, allowed=task.mems, weights=self.core.weights))
        else:
            key = (policy, None)
        placement = task.placements.get(key)
        if placement is None:
            placement = place(policy, task_node=task.node, allowed=task.mems, fallback_orders=self.core.fallback,
                              interleave_index=index, weights=self.core.weights)
            task.placements[key] = placement
        return placement, policy, index

    def fault(self, task: TaskState, region: Region, pages: list[int], write: bool, fill: int | None):
        """Fault in absent pages of one region; costs go to the task's clock."""
        if region.kind != ANON:
            yield from self._fault_shared(task, region, pages, write)
            return
        if task.lost:
            self._check_lost(task, region, pages)
        if task.away:  # pages in the migration cache: migrate-on-fault, or remap where they are
            cached = [p for p in pages if region.node[p] == MIGCACHE]
            if cached:
                yield from self.moves.lazy_fault(task, region, cached, write)
                if fill is not None:
                    yield from self._fill(region, cached, fill)
                pages = [p for p in pages if region.node[p] < 0]
                if task.lost:  # a page whose frame died with its node while it moved: EIO, never zeros
                    self._check_lost(task, region, pages)
                if not pages:
                    return
        if not write:
            self._map_zero_page(task, region, pages)
            return
        groups: dict[Placement, list[int]] = {}
        for p in pages:
            groups.setdefault(self.placement(task, region, p)[0], []).append(p)
        core, cost = self.core, self.core.cost
        for placement, plist in groups.items():
            got = yield from core.allocate(placement, len(plist), task.node, fill, owner=task.task_id)
            batch = _FaultBatch()
            for p, (node, frame, gen) in zip(plist, got):
                region.node[p], region.frame[p], region.gen[p] = node, frame, gen
                task.clock_ns += cost.fault_ns(task.node, node)
                if core.trace.on:
                    batch.add(node, region.start + p * core.page_size, frame, task.clock_ns)
            if core.trace.on:
                batch.emit(core.trace, task, write)
            task.faults += len(got)
            core.events["pgfault"] += len(got)
            if len(got) < len(plist):
                raise NumaEmuError(ErrorCode.ENOMEM,
                                   f"no free frame on the nodes the policy allows ({sorted(placement.order)})")

    def _map_zero_page(self, task: TaskState, region: Region, pages: list[int]) -> None:
        """A read fault of untouched private pages maps the shared zero page (mm/memory.c
        do_anonymous_page): no frame, no numa counter; a fault all the same (pgfault). A page
        mapped to it already does not fault again on a read."""
        core = self.core
        fresh = [p for p in pages if region.node[p] == -1]
        for p in fresh:
            region.node[p] = ZEROPAGE
        task.faults += len(fresh)
        core.events["pgfault"] += len(fresh)  # not traced: a trace's fault is a frame given

    def may_replicate(self, task: TaskState, name: str) -> bool:
        """A reader of file `name` may get a replica: global switch, its cpuset's flag, and the
        mode filter (no-writers: mapping_writably_mapped; exec-only: mapped executable)."""
        t = self.tunables
        if not (t.enabled and task.replication):
            return False
        state = self.files.get(name)
        if t.mode == "no-writers":
            return state is None or not state.writably_mapped
        if t.mode == "exec-only":
            return state is not None and state.exec_mapped
        return True

    def _fault_shared(self, task: TaskState, region: Region, pages: list[int], write: bool):
        core, ps = self.core, self.core.page_size
        if write and not region.writable:
            raise NumaEmuError(ErrorCode.EACCES, f"write to a read-only mapping of {region.obj}")
        replicate = not write and region.kind == FILE and self.may_replicate(task, region.name)
        for p in pages:
            placement, policy, index = self.placement(task, region, p)
            idx = region.obj_offset + p
            if region.node[p] == MIGCACHE:  # lazily unmapped: migrate-on-fault first, if no one maps it
                yield from self.moves.lazy_fault_shared(task, region, p, policy)
            page, cost = yield from self.pcache.lookup(region.obj, idx, write=write, task=task, policy=policy.to_wire(),
                                                       interleave_index=index, replicate=replicate)
            region.node[p], region.frame[p], region.gen[p] = page.node, page.frame, page.gen
            region.wr[p] = 1 if page.writable else 0
            self.pcache.map((region.obj, idx), task.task_id, region.start + p * ps)
            task.clock_ns += core.cost.fault_ns(task.node, page.node) + cost
            task.faults += 1
            core.events["pgfault"] += 1
            if core.trace.on:
                core.trace.emit("fault", task=task.task_id, vns=task.clock_ns, obj=region.obj, idx=idx, write=write,
                                supplier=page.node, frame=page.frame, local=page.node == task.node,
                                replica=page.replica)

    def _stale_check(self, task: TaskState, region: Region, p: int) -> None:
        """A local frame whose generation moved on since it was mapped: the mapping outlived a
        free. Only the unsafe unreplicate ordering allows it; count and trace every such access."""
        core = self.core
        frame = region.frame[p]
        if region.kind != ANON and region.node[p] == core.node_id and core.pool.generation[frame] != region.gen[p]:
            core.events["repl_stale_access"] += 1
            if core.trace.on:
                core.trace.emit("stale", task=task.task_id, vns=task.clock_ns, obj=region.obj,
                                idx=region.obj_offset + p, frame=frame, mapped_gen=region.gen[p],
                                frame_gen=core.pool.generation[frame])

    # ---- access -------------------------------------------------------------------------
    def access(self, msg: mm.Access):
        task = self.task(msg.task_id)
        if task.auto_due_ns is not None:
            self.moves.auto_due(task)
        if self.hinting is not None:
            self.hinting.tick(task)
        fast = self._access_local(task, msg)
        return fast if fast is not None else self.locked(task, self._access(task, msg))

    def _access_local(self, task: TaskState, msg: mm.Access) -> mm.AccessReply | Forward | None:
        """The common case without a coroutine: within one present private page of this node, or
        of another node that answers the task itself (_forward)."""
        data = msg.data
        length = len(data) if data is not None else msg.length
        if length <= 0:
            return None
        region = task.space.find(msg.vaddr)
        core = self.core
        p, offset = divmod(msg.vaddr - region.start, core.page_size)
        if region.kind != ANON or offset + length > core.page_size or region.hinted(p):
            return None
        node = region.node[p]  # read once: each lookup is a Python-level call (nodes.sparsearray)
        if node != core.node_id:
            if node in core.dead:
                raise core.dead_error(node, self.page_name(task, region, p))
            if node == ZEROPAGE and data is None:  # the zero page: zeros at a local access's cost
                task.clock_ns += core.cost.access_ns(task.node, task.node, length)
                return mm.AccessReply(data=bytes(length), clock_ns=task.clock_ns)
            return self._forward(task, region, p, node, offset, length, data) if msg.direct and core.forwarding and node >= 0 else None
        frame = region.frame[p]
        if data is None:
            out = core.pool.read(frame, offset, length)
        else:
            core.pool.write(frame, offset, data)
            region.dirty[p] = 1
            out = None
        if task.table is not None:
            self._publish(task, region, p)
        task.clock_ns += core.cost.access_ns(task.node, task.node, length)
        return mm.AccessReply(data=out, clock_ns=task.clock_ns)

    def _forward(self, task: TaskState, region: Region, p: int, node: int, offset: int, length: int,
                 data: bytes | None) -> Forward:
        """A present private page on another node, for a task connected to every node: that node
        serves the access and answers the task (IVY forwarding; docs/protocol.md#forwarded-access): three messages
        instead of four. The clock, the dirty bit and the trace event are settled here first;
        the task's next request cannot arrive before the answer, so this stays serialised."""
        core, frame = self.core, region.frame[p]
        # the page's name, built only if `node` dies before answering, from values and not from the
        # region (kept with the forward, it must not keep an unmapped region alive)
        task_id, vaddr = task.task_id, region.start + p * core.page_size
        if data is not None:
            region.dirty[p] = 1
        task.clock_ns += core.cost.access_ns(task.node, node, length)
        if core.trace.on:
            core.trace.emit("access", task=task_id, vns=task.clock_ns, addr=vaddr + offset, write=data is not None,
                            bytes=length, to=node, frame=frame)
        return Forward(node_dest(node), mm.AccessForward(route=b"", request_id=0, home=core.node_id, frame=frame,
                                                         offset=offset, length=0 if data is not None else length,
                                                         data=data, clock_ns=task.clock_ns),
                       lambda: private_page_name(task_id, vaddr))

    def _access(self, task: TaskState, msg: mm.Access):
        write = msg.data is not None
        length = len(msg.data) if write else msg.length
        ps, core = self.core.page_size, self.core
        out = bytearray()
        pos = 0
        for region, first, last in task.space.range(msg.vaddr, length):
            yield from self._hint_faults(task, region, first, last)
            shared = region.kind != ANON
            absent = [p for p in range(first, last)
                      if (region.node[p] < 0 and (write or region.node[p] != ZEROPAGE))
                      or (write and shared and not region.wr[p])]
            if absent:
                yield from self.fault(task, region, absent, write, None)
            for p in range(first, last):
                page_addr = region.start + p * ps
                offset = max(msg.vaddr + pos - page_addr, 0)
                n = min(ps - offset, length - pos)
                if shared:
                    self._stale_check(task, region, p)
                    data = yield from self._shared_io(task, region, p, offset, n, msg.data[pos:pos + n] if write else None)
                    if not write:
                        out += data
                    node, frame = region.node[p], region.frame[p]
                    if node == core.node_id and task.table is not None:
                        self._publish(task, region, p, write)  # a write takes the frame's direct-write grant
                else:
                    node, frame = region.node[p], region.frame[p]
                    if node == ZEROPAGE:  # only read so far (a write faulted it in above)
                        node = task.node
                        out += bytes(n)
                    elif node in core.dead:
                        raise core.dead_error(node, self.page_name(task, region, p))
                    elif write:
                        yield from core.write_frame(node, frame, None, offset, msg.data[pos:pos + n])
                    else:
                        out += yield from core.read_frame(node, frame, None, offset, n)
                if write:
                    region.dirty[p] = 1
                if not shared and region.node[p] == core.node_id and task.table is not None:  # never the zero page
                    self._publish(task, region, p)  # after the dirty bit: a dirty page is published writable
                task.clock_ns += core.cost.access_ns(task.node, node, n)
                if core.trace.on and node != task.node:
                    core.trace.emit("access", task=task.task_id, vns=task.clock_ns, addr=page_addr + offset,
                                    write=write, bytes=n, to=node, frame=frame)
                pos += n
        return mm.AccessReply(data=None if write else bytes(out), clock_ns=task.clock_ns)

    def _shared_io(self, task: TaskState, region: Region, p: int, offset: int, n: int, data: bytes | None):
        """Read or write a mapped shared page through the page cache (PageCacheView.access: a
        copy freed since it was mapped, or shot down while an earlier page waited (a migration
        moved it), is faulted again)."""
        me = self.core.node_id

        def locate(again: bool):
            # a page of a longer access may have been shot down (collapse, reclaim) while an
            # earlier page's I/O waited: it faults again, as a freed copy does
            if again or region.node[p] < 0 or (data is not None and not region.wr[p]):
                region.node[p] = -1
                yield from self._fault_shared(task, region, [p], data is not None)
            node = region.node[p]
            # a local frame is used as mapped: its generation was checked (and a stale mapping,
            # which only the unsafe unreplicate ordering makes, counted) by _stale_check
            return node, region.frame[p], None if node == me else region.gen[p]

        return (yield from self.pcache.access((region.obj, region.obj_offset + p), offset, n, data, locate))

    def _hint_faults(self, task: TaskState, region: Region, first: int, last: int):
        """Marked pages of [first, last) take their hinting fault first (nodes.balancing)."""
        if self.hinting is not None:
            marked = region.hinted_pages(first, last)
            if marked:
                yield from self.hinting.hint_faults(task, region, marked)

    def touch(self, msg: mm.Touch):
        task = self.task(msg.task_id)
        if msg.fill is not None and not 0 <= msg.fill <= 255:
            raise NumaEmuError(ErrorCode.EINVAL, f"fill must be a byte value, got {msg.fill}")
        if task.auto_due_ns is not None:
            self.moves.auto_due(task)
        if self.hinting is not None:
            self.hinting.tick(task)
        return self.locked(task, self._touch(task, msg))

    def _touch(self, task: TaskState, msg: mm.Touch):
        faults_before = task.faults
        pages = 0
        for region, first_page, last_page in task.space.range(msg.vaddr, msg.length):
            for first in range(first_page, last_page, _CHUNK_PAGES):
                if pages:
                    yield Sleep(0)  # let heartbeats and other tasks through between chunks
                last = min(last_page, first + _CHUNK_PAGES)
                yield from self._touch_pages(task, region, first, last, msg.write or msg.fill is not None, msg.fill)
                pages += last - first
        return mm.TouchReply(pages=pages, faults=task.faults - faults_before, clock_ns=task.clock_ns)

    def _touch_pages(self, task: TaskState, region: Region, first: int, last: int, write: bool, fill: int | None):
        core, ps = self.core, self.core.page_size
        yield from self._hint_faults(task, region, first, last)
        shared = region.kind != ANON
        absent = [p for p in range(first, last)
                  if (region.node[p] < 0 and (write or region.node[p] != ZEROPAGE))
                  or (write and shared and not region.wr[p])]
        absent_set = set(absent)
        present = [p for p in range(first, last) if region.node[p] >= 0 and p not in absent_set]
        if absent:
            # a fresh private page is filled by its supplier in the same message
            yield from self.fault(task, region, absent, write, None if shared else fill)
            if shared and fill is not None:
                present += absent
        if fill is not None:
            yield from self._fill(region, present, fill, task)
        nbytes = ps if fill is not None else TOUCH_BYTES
        access_ns = core.cost.access_ns
        for p in range(first, last):
            node = region.node[p]
            task.clock_ns += access_ns(task.node, task.node if node == ZEROPAGE else node, nbytes)
        if write:
            region.dirty[first:last] = b"\x01" * (last - first)
        if task.table is not None and not shared and self.direct_access:
            here, run, vpn0 = core.node_id, None, region.start // ps
            for p, node in enumerate(region.node[first:last], first):  # runs of pages on this node, one call each
                if node == here and run is None:
                    run = p
                elif node != here and run is not None:
                    self._publish_run(task, region, vpn0, run, p)
                    run = None
            if run is not None:
                self._publish_run(task, region, vpn0, run, last)

    @staticmethod
    def _publish_run(task: TaskState, region: Region, vpn0: int, first: int, last: int) -> None:
        task.table.publish_run(vpn0 + first, region.frame[first:last], region.gen[first:last],
                               region.dirty[first:last])

    def _fill(self, region: Region, pages: list[int], value: int, task: TaskState | None = None):
        """Every byte of the pages set to `value`, each frame checked against the generation it
        was mapped with (as write_frame does): a shared page whose master moved meanwhile
        (frame.fill ESTALE) is faulted again and filled there; after STALE_RETRIES, ESTALE."""
        core = self.core
        page = bytes([value]) * core.page_size
        for attempt in range(STALE_RETRIES):
            for _ in range(STALE_RETRIES):  # shared pages shot down while the touch waited (moved): fault again
                gone = [p for p in pages if region.node[p] < 0] if task is not None and region.kind != ANON else []
                if not gone:
                    break
                yield from self._fault_shared(task, region, gone, True)
            remote: dict[int, list[int]] = collections.defaultdict(list)
            for p in pages:
                node, frame = region.node[p], region.frame[p]
                if node == core.node_id:
                    core.check_generation(frame, region.gen[p])
                    core.write_local(frame, 0, page)
                elif node in core.dead:
                    raise core.dead_error(node, f"page {region.start + p * core.page_size:#x} of {region.obj or 'a task'}")
                else:
                    remote[node].append(p)
            if not remote:
                return
            try:
                yield [Call(node_dest(n), mm.FrameFill(frames=[region.frame[p] for p in ps], value=value,
                                                       generations=[region.gen[p] for p in ps]))
                       for n, ps in remote.items()]
                return
            except NumaEmuError as exc:
                # a frame is freed only once its mappings are shot down (invariant 1): the nodes
                # that refused are those with a page unmapped here since; the others filled theirs
                pages = [p for ps in remote.values() if any(region.node[p] < 0 for p in ps) for p in ps]
                if exc.code != ErrorCode.ESTALE or attempt == STALE_RETRIES - 1 or not pages:
                    raise

    def page_name(self, task: TaskState, region: Region, p: int) -> str:
        """A page as an error names it: the task's virtual address, or the shared object's page."""
        vaddr = region.start + p * self.core.page_size
        if region.kind == ANON:
            return private_page_name(task.task_id, vaddr)
        return f"page {region.obj_offset + p} of {region.obj} (task {task.task_id} at {vaddr:#x})"

    # ---- queries ------------------------------------------------------------------------
    def where(self, msg: mm.Where) -> mm.WhereReply:
        task = self.task(msg.task_id)
        nodes: list[int] = []
        ps = self.core.page_size
        for region, first, last in task.space.range(msg.vaddr, msg.length):
            part = region.node[first:last].tolist()
            if ZEROPAGE in part:  # the zero page is no page of the task's (move_pages: -EFAULT)
                part = [-1 if n == ZEROPAGE else n for n in part]
            if task.away:  # a page being migrated, or in the migration cache: the node holding it
                for i, n in enumerate(part):
                    if n < -1:
                        part[i] = task.away.get(region.start + (first + i) * ps, -1)
            nodes.extend(part)
        return mm.WhereReply(nodes=nodes)

    def maps(self, msg: mm.Maps):
        task = self.task(msg.task_id)
        return self._maps(task)

    def _maps(self, task: TaskState):
        counts = yield from self._shared_mapcounts(task)
        return mm.MapsReply(regions=[self.region_info(task, r, counts) for r in task.space.regions],
                            clock_ns=task.clock_ns)

    def mapcounts(self, msg: mm.MapCounts) -> mm.MapCountsReply:
        if not all(isinstance(i, list) and all(isinstance(x, int) for x in i) for i in msg.pages.values()):
            raise NumaEmuError(ErrorCode.EINVAL, "mem.mapcounts: pages must map objects to lists of page indices")
        return mm.MapCountsReply(counts=self.pcache.mapcounts(msg.pages))

    def _shared_mapcounts(self, task: TaskState):
        """(object, index) -> how many mappings the task's present shared pages have over the
        cluster (every node's tasks; a node that does not answer counts none)."""
        asked: dict[str, set[int]] = collections.defaultdict(set)
        for r in task.space.regions:
            if r.kind != ANON:
                asked[r.obj].update(r.obj_offset + p for p, node in r.node.items() if node >= 0)
        pages = {obj: sorted(idxs) for obj, idxs in asked.items() if idxs}
        total: collections.Counter[tuple[str, int]] = collections.Counter()
        if not pages:
            return total
        answers = [self.pcache.mapcounts(pages)]
        core = self.core
        peers = [n for n in range(core.n_nodes) if n != core.node_id and n not in core.dead]
        try:
            if peers:
                replies = yield [Call(node_dest(n), mm.MapCounts(pages=pages)) for n in peers]
                answers += [reply.counts for reply in replies]
        except NumaEmuError:
            pass  # a peer gone: numa_maps still answers, with the mappings it could count
        for counts in answers:
            for obj, idxs in pages.items():
                for idx, n in zip(idxs, counts.get(obj, ())):
                    total[(obj, idx)] += int(n)
        return total

    def region_info(self, task: TaskState, r: Region, mapcounts: collections.Counter | None = None) -> dict:
        """What numa_maps shows of a region (fs/proc/task_mmu.c gather_stats): pages per node,
        dirty ones, active ones, and the highest map count of a present page."""
        per_node = {n: r.node.count(n) for n in range(self.core.n_nodes)}
        present = [p for p, node in r.node.items() if node >= 0]
        cached = 0
        if task.away and r.kind == ANON and MIGCACHE in r.node:
            # private pages waiting in the migration cache still hold their frames: counted where they are
            ps = self.core.page_size
            for p, node in r.node.items():
                held = task.away.get(r.start + p * ps, -1) if node == MIGCACHE else -1
                if held >= 0:
                    per_node[held] += 1
                    cached += 1
        if r.kind == ANON:
            mapmax = 1 if present or cached else 0  # no fork: a private page has one mapping
        else:
            mapmax = max((mapcounts or {}).get((r.obj, r.obj_offset + p), 1) for p in present) if present else 0
        # Nothing is on an active list: new anon and shmem pages start inactive (Linux 5.9+), no
        # swap means no anon aging to promote them, and the page cache ages by a clock instead.
        return {"start": r.start, "length": r.npages * self.core.page_size, "kind": r.kind, "name": r.name,
                "policy": (r.policy or task.policy).to_wire(), "vma_policy": r.policy is not None,
                "pages": {n: c for n, c in per_node.items() if c}, "dirty": sum(r.dirty[p] for p in present),
                "active": 0, "mapmax": mapmax, "present": len(present) + cached}

    def task_pages(self) -> dict:
        out = {}
        for task in self.tasks.values():
            pages: collections.Counter[int] = collections.Counter()
            for r in task.space.regions:
                for n in range(self.core.n_nodes):
                    c = r.node.count(n)
                    if c:
                        pages[n] += c
            self.fold_clock(task)
            out[task.task_id] = {"pages": dict(pages), "clock_ns": task.clock_ns, "faults": task.faults,
                                 "direct_reads": task.direct_reads, "direct_writes": task.direct_writes}
        return out
