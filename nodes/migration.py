"""Page migration of a task's pages, on its home node H (docs/protocol.md#migration;
docs/linux-semantics.md#move_pages, #migrate_pages, #mbind, #cpusets): move_pages, migrate_pages, mbind's
MPOL_MF_MOVE / MOVE_ALL / MOVE|LAZY, and cpuset memory_migrate (NodeTaskPolicy.migrate).

- A private page: H holds the task's lock (nodes.mm.locked), allocates on the target only
  (__GFP_THISNODE, a numa_hit there), marks the page MIGRATING (so the lock-free fast path takes
  the slow path and waits), copies the bytes, maps the new frame, and only then frees the old one.
- A shared page (shm, page cache): H asks the page's directory home to move its master
  (nodes.master_move: replicas and every mapping down and acknowledged first), then maps the
  new master for the task at once. MPOL_MF_MOVE moves only pages no other task maps.
- Lazy (Lee Schermerhorn's migrate-on-fault, 2006): mbind MOVE|LAZY unmaps the range's private
  pages into the migration cache (they keep their frames; MIGCACHE), and shared pages at their
  directory (every mapping and replica gone; the page stays in the page cache). The next fault
  moves each to where the policy wants it (mpol_misplaced) or maps it again where it is; a
  shared page moves only if no one mapped it meanwhile (zero mappings, as in Lee's patch).

Counters: pgmigrate_success / pgmigrate_fail on the node that migrates (H for private pages, the
directory home for shared ones); the new frame is charged as an allocation on the target
(numa_hit, local or other node against the task's node, pgalloc); the old frame only adds
pgfree where it was. nr_migcache_pages (gauge) and pgmigcache_in / pgmigcache_out on H, for
private pages. The copies and the shootdowns are charged to the virtual clock of the task.
"""
from __future__ import annotations

import collections

from nodes.core import NodeCore, directory_home, node_dest
from nodes.costmodel import FAULT_OVERHEAD_NS
from nodes.master_move import UNREACHABLE, MasterMove, alloc_exact, trace_migrate
from nodes.migration_plan import EBUSY, EFAULT, ENOENT, ENOMEM, NOT_MOVED, mbind_target
from nodes.mm import MemoryManager, TaskState
from nodes.pagetable import ANON, MIGCACHE, MIGRATING, ZEROPAGE, Region
from nodes.pcache import CachedPage
from nodes.placement import misplaced
from nodes.replication import Replication
from protocol.effects import Call
from protocol.errors import ErrorCode, NumaEmuError
from protocol.messages import memory as mm
from protocol.messages import migration as mg
from protocol.messages import control as cm
from protocol.messages import pagecache as pc
from protocol.policy import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, Mode, Policy, migration_pairs

Item = tuple[Region, int, int]  # (region, page index, node the page's frame is on)
# Pages moved per step: a big migration hands the loop back between steps (heartbeats, other
# tasks), and keeps its copies in flight well under a socket's queue of 1000 messages (ZeroMQ's
# default high-water mark; the reactor drops what does not fit, as ENODEV).
_CHUNK_PAGES = 256


class Migration:
    def __init__(self, core: NodeCore, mmgr: MemoryManager, replication: Replication):
        self.core = core
        self.mm = mmgr
        self.master = MasterMove(core, replication, mmgr.pcache.mapcounts)
        mmgr.migration = self
        self.max_mapcount = 1  # vm.migrate_max_mapcount
        self.auto_interval_ns = 0  # vm.auto_migrate_interval_ms

    def appliers(self) -> dict:
        """The sysctl keys this service applies (nodes.sysctl.NodeControl): the 2007 auto-migration knobs."""
        return {cm.MIGRATE_MAX_MAPCOUNT_KEY: lambda v: setattr(self, "max_mapcount", int(v)),
                cm.AUTO_MIGRATE_INTERVAL_KEY: lambda v: setattr(self, "auto_interval_ns", int(v) * 1_000_000)}

    def _mapper_tasks(self, key: tuple[str, int], task: TaskState) -> int:
        """The tasks of this node that map shared page `key`, the requester counted."""
        return len({t for t, _v in self.mm.pcache.rmap.get(key, ())} | {task.task_id})

    def handlers(self) -> dict:
        return {"mem.move_pages": self.move_pages, "mem.migrate_pages": self.migrate_pages,
                **self.master.handlers()}

    # ---- move_pages(2) ------------------------------------------------------------------
    def move_pages(self, msg: mg.MovePages):
        task = self.mm.task(msg.task_id)
        c = self.core
        if msg.flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
            raise NumaEmuError(ErrorCode.EINVAL, f"move_pages flags {msg.flags:#x} not valid: use MPOL_MF_MOVE "
                                                 f"({MPOL_MF_MOVE}) or MPOL_MF_MOVE_ALL ({MPOL_MF_MOVE_ALL})")
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in msg.addrs):
            raise NumaEmuError(ErrorCode.EINVAL, "move_pages: every address must be an integer")
        if msg.flags & MPOL_MF_MOVE_ALL:
            self.check_move_all(task, "move_pages")
        if msg.nodes is not None:
            if len(msg.nodes) != len(msg.addrs):
                raise NumaEmuError(ErrorCode.EINVAL, f"move_pages: {len(msg.addrs)} addresses but {len(msg.nodes)} "
                                                     "nodes; give one node per page (or none to query)")
            for n in msg.nodes:
                if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < c.n_nodes:
                    raise NumaEmuError(ErrorCode.ENODEV, f"move_pages: target node {n!r} does not exist "
                                                         f"(nodes 0-{c.n_nodes - 1})")
                if n not in task.mems:
                    raise NumaEmuError(ErrorCode.EACCES, f"move_pages: node {n} is not in the task's cpuset mems "
                                                         f"{sorted(task.mems)}")
        return self.mm.locked(task, self._move_pages(task, msg))

    @staticmethod
    def check_move_all(task: TaskState, call: str) -> None:
        """MPOL_MF_MOVE_ALL needs CAP_SYS_NICE (mm/mempolicy.c, mm/migrate.c): EPERM otherwise."""
        if not task.cap_sys_nice:
            raise NumaEmuError(ErrorCode.EPERM, f"{call}: MPOL_MF_MOVE_ALL needs CAP_SYS_NICE, which task {task.task_id} "
                                                "lacks; use MPOL_MF_MOVE, or attach as root or with cap_sys_nice=True")

    def _move_pages(self, task: TaskState, msg: mg.MovePages):
        ps = self.core.page_size
        status: list[int] = [EFAULT] * len(msg.addrs)
        first_of: dict[int, int] = {}  # page vaddr -> index of its first occurrence
        duplicates: list[tuple[int, int]] = []
        private: dict[tuple[int, int], list[tuple[int, Region, int]]] = collections.defaultdict(list)
        shared: list[tuple[int, Region, int, int]] = []
        for i, addr in enumerate(msg.addrs):
            try:
                region = task.space.find(addr)
            except NumaEmuError:
                continue  # EFAULT: not mapped
            p = (addr - region.start) // ps
            vpage = region.start + p * ps
            if vpage in first_of:
                duplicates.append((i, first_of[vpage]))
                continue
            first_of[vpage] = i
            node = region.node[p]
            if node == MIGCACHE:
                if msg.nodes is None or region.kind != ANON:
                    node = task.away[vpage]  # a lazily unmapped shared page is moved (and mapped) by its directory
                else:
                    node = self.cache_take(task, region, p)
            if node < 0:  # the zero page is no page to move or report (mm/migrate.c since 6.12)
                status[i] = EFAULT if node == ZEROPAGE else ENOENT
                continue
            target = node if msg.nodes is None else msg.nodes[i]
            status[i] = node
            if target == node:
                continue  # a query, or already there
            if region.kind == ANON:
                private[(node, target)].append((i, region, p))
            else:
                shared.append((i, region, p, target))
        for (src, target), pages in private.items():
            results = yield from self.move_to(task, [(r, p, src) for _i, r, p in pages], target, "direct", "syscall")
            for (i, _r, _p), s in zip(pages, results):
                status[i] = s
        for i, region, p, target in shared:
            if region.node[p] == MIGCACHE:
                task.away.pop(region.start + p * ps, None)
                region.node[p] = -1
            status[i] = yield from self.move_shared(task, region, p, target, bool(msg.flags & MPOL_MF_MOVE_ALL),
                                                    "syscall")
        for i, j in duplicates:
            status[i] = status[j]
        not_moved = sum(1 for s in status if s in NOT_MOVED)
        return mg.MovePagesReply(status=status, not_moved=not_moved, clock_ns=task.clock_ns)

    # ---- migrate_pages(2) and cpuset memory_migrate ----------------------------------
    def migrate_pages(self, msg: mg.MigratePages):
        task = self.mm.task(msg.task_id)
        n = self.core.n_nodes
        for name, nodes in (("old_nodes", msg.old_nodes), ("new_nodes", msg.new_nodes)):
            if not nodes:
                raise NumaEmuError(ErrorCode.EINVAL, f"migrate_pages: {name} is empty")
            bad = [x for x in nodes if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x < n]
            if bad:
                raise NumaEmuError(ErrorCode.EINVAL, f"migrate_pages: {name} has nodes that do not exist: {bad} "
                                                     f"(nodes 0-{n - 1})")
        # kernel_migrate_pages: the targets are cut down to the task's cpuset mems
        new = sorted(set(msg.new_nodes) & task.mems)
        if not new:
            raise NumaEmuError(ErrorCode.EINVAL, f"migrate_pages: none of new_nodes {sorted(set(msg.new_nodes))} is in "
                                                 f"the task's cpuset mems {sorted(task.mems)}")
        # kernel_migrate_pages: MPOL_MF_MOVE_ALL only for a caller with CAP_SYS_NICE, no error otherwise
        move_all = bool(msg.move_all) and task.cap_sys_nice
        return self.mm.locked(task, self.migrate_task(task, msg.old_nodes, new, move_all, msg.cause))

    def migrate_task(self, task: TaskState, old_nodes, new_nodes, move_all: bool, cause: str):
        """do_migrate_pages: every page of the task on a node of old_nodes to its relative node of
        new_nodes, pair by pair. Call holding the task's lock. Returns MigratePagesReply."""
        moved = not_moved = 0
        for src, dst in migration_pairs(old_nodes, new_nodes):
            statuses = yield from self._move_node(task, src, dst, move_all, cause)
            moved += sum(1 for s in statuses if s == dst)
            not_moved += sum(1 for s in statuses if s in NOT_MOVED)
        return mg.MigratePagesReply(moved=moved, not_moved=not_moved, clock_ns=task.clock_ns)

    def _move_node(self, task: TaskState, src: int, dst: int, move_all: bool, cause: str):
        private: list[Item] = []
        shared: list[tuple[Region, int]] = []
        for region in list(task.space.regions):
            nodes = region.node
            if src not in nodes:
                continue
            for p, node in nodes.items():
                if node == src:
                    if region.kind == ANON:
                        private.append((region, p, src))
                    elif not self.maps_replica(region, p):  # a replica is not a page of the task's own
                        shared.append((region, p))
        statuses: list[int] = []
        if private:
            statuses += yield from self.move_to(task, private, dst, "direct", cause)
        for region, p in shared:
            if region.node[p] == src:  # not shot down by a previous page's move
                statuses.append((yield from self.move_shared(task, region, p, dst, move_all, cause)))
        return statuses

    def maps_replica(self, region: Region, p: int) -> bool:
        page = self.mm.pcache.pages.get((region.obj, region.obj_offset + p))
        return page is not None and page.replica and page.node == region.node[p] and page.frame == region.frame[p]

    # ---- mbind(2) MPOL_MF_MOVE, MOVE_ALL, MOVE|LAZY -----------------------------------
    def mbind_move(self, task: TaskState, regions: list[Region], policy: Policy, flags: int):
        """After mbind installed `policy` on `regions` (holding the task's lock): move the pages it
        would not have placed where they are, allocating by the policy (alloc_migration_target).
        Returns how many such pages could not be moved (MOVE|STRICT answers EIO then)."""
        if policy.mode in (Mode.DEFAULT, Mode.LOCAL):
            return 0
        c = self.core
        groups: dict = collections.defaultdict(list)  # Placement -> [Item]
        shared: list[tuple[Region, int, int]] = []
        for region in regions:
            for p, node in region.node.items():
                if node < 0:
                    continue  # in the migration cache (its next fault places it)
                placement, pol, index = self.mm._placement(task, region, p)
                target = mbind_target(pol, node, interleave_index=index, order=placement.order, allowed=task.mems,
                                      weights=c.weights)
                if target is None:
                    continue
                if region.kind == ANON:
                    groups[placement].append((region, p, node))
                elif not self.maps_replica(region, p):
                    shared.append((region, p, target))
        failed = 0
        for placement, items in groups.items():
            for first in range(0, len(items), _CHUNK_PAGES):
                chunk = items[first:first + _CHUNK_PAGES]
                got = yield from c.allocate(placement, len(chunk), task.node, owner=task.task_id)
                statuses = yield from self.move_private(task, chunk, got, "direct", "mbind")
                failed += sum(1 for s in statuses if s < 0)
        for region, p, target in shared:
            if region.node[p] >= 0:
                s = yield from self.move_shared(task, region, p, target, bool(flags & MPOL_MF_MOVE_ALL), "mbind")
                failed += s < 0
        return failed

    def mbind_lazy(self, task: TaskState, regions: list[Region], move_all: bool):
        """MOVE|LAZY: unmap the range's eligible pages; the next fault decides where each goes.
        A private page (mapped by this task alone) keeps its frame in the migration cache. A
        shared page mapped by this task alone (any, with MOVE_ALL) loses every mapping and every
        replica at its directory home and stays in the page cache where it is. Returns pages."""
        count = 0
        for region in regions:
            for p, _node in region.node.items():
                if region.node[p] < 0:  # also changed by an earlier page's shootdown
                    continue
                if region.kind == ANON:
                    self.cache_put(task, region, p)
                    count += 1
                else:
                    count += yield from self._lazy_unmap_shared(task, region, p, move_all)
        return count

    def _lazy_unmap_shared(self, task: TaskState, region: Region, p: int, move_all: bool):
        c = self.core
        key = (region.obj, region.obj_offset + p)
        vpage = region.start + p * c.page_size
        sole = all(t == task.task_id for t, _v in self.mm.pcache.rmap.get(key, ()))
        tasks = self._mapper_tasks(key, task)
        if not move_all and tasks > self.max_mapcount:
            return 0
        msg = mg.DirMigrate(obj=key[0], idx=key[1], target=c.node_id, mapper=c.node_id, task_node=task.node,
                            task_id=task.task_id, sole=sole, move_all=move_all, cause="mbind", mode="lazy",
                            unmap_only=True, mapper_tasks=tasks, max_mapcount=self.max_mapcount)
        reply = yield from self._ask_directory(key, msg)
        if reply is None or reply.status < 0:
            return 0
        if region.node[p] >= 0:  # the shootdown reached this task's entry: it is unmapped already
            self.mm.pcache.unmap(key, task.task_id, vpage)
        task.away[vpage] = reply.status
        region.node[p] = MIGCACHE
        if c.trace.on:
            c.trace.emit("migcache", task=task.task_id, vns=task.clock_ns, what="in", obj=key[0], idx=key[1],
                         at=reply.status, frame=reply.frame)
        return 1

    def lazy_fault_shared(self, task: TaskState, region: Region, p: int, policy: Policy):
        """A fault on a lazily unmapped shared page: if the policy wants it elsewhere and no one
        maps it (migrate-on-fault fires only for pages with no mappings), move its master there;
        the caller then faults it in through the directory as usual."""
        c = self.core
        vpage = region.start + p * c.page_size
        src = task.away.pop(vpage, -1)
        region.node[p] = -1
        if c.trace.on:
            c.trace.emit("migcache", task=task.task_id, vns=task.clock_ns, what="out", obj=region.obj,
                         idx=region.obj_offset + p, at=src, why="fault")
        if src < 0:
            return
        # mpol_misplaced: a shared mapping's interleave index is the page's offset in the object
        target = misplaced(policy, src, task_node=task.node, allowed=task.mems, fallback_orders=c.fallback,
                           interleave_index=region.obj_offset + p, weights=c.weights)
        if target is not None:
            yield from self.move_shared(task, region, p, target, False, "fault", mode="lazy")

    # ---- a node going offline -----------------------------------------------------------
    def stuck_on(self, task: TaskState, node: int) -> int:
        """Private pages of the task on `node` that no other node may hold (a bind to it alone)."""
        ps, count = self.core.page_size, 0
        for region in task.space.regions:
            if region.kind != ANON:
                continue
            policy = region.policy or task.policy
            if policy.mode == Mode.BIND and policy.nodes <= {node}:
                count += sum(1 for p, n in region.node.items()
                             if n == node or (n == MIGCACHE and task.away.get(region.start + p * ps) == node))
        return count

    def evacuate_task(self, task: TaskState, node: int):
        """Node `node` is offline (out of every zonelist): each private page of the task there
        moves where its policy now places it, nearest first. Call holding the task's lock.
        Returns (moved, failed)."""
        c, ps = self.core, self.core.page_size
        groups: dict = collections.defaultdict(list)  # Placement -> [Item]
        for region in task.space.regions:
            if region.kind != ANON:
                continue
            for p, n in region.node.items():
                if n == MIGCACHE and task.away.get(region.start + p * ps) == node:
                    n = self.cache_take(task, region, p, why="offline")
                if n == node:
                    groups[self.mm._placement(task, region, p)[0]].append((region, p, node))
        moved = failed = 0
        for placement, items in groups.items():
            for first in range(0, len(items), _CHUNK_PAGES):
                chunk = items[first:first + _CHUNK_PAGES]
                got = yield from c.allocate(placement, len(chunk), task.node, owner=task.task_id)
                statuses = yield from self.move_private(task, chunk, got, "direct", "offline")
                ok = sum(1 for s in statuses if s >= 0)
                moved, failed = moved + ok, failed + len(statuses) - ok
        return moved, failed

    def move_master(self, obj: str, idx: int, target: int, cause: str):
        """Move the master of shared page (obj, idx) to `target` whoever maps it (a node going
        offline hands its masters on); the page's status, or EBUSY when its home cannot be reached."""
        c = self.core
        msg = mg.DirMigrate(obj=obj, idx=idx, target=target, mapper=c.node_id, task_node=c.node_id, task_id=0,
                            sole=True, move_all=True, cause=cause)
        reply = yield from self._ask_directory((obj, idx), msg)
        return EBUSY if reply is None else reply.status

    # ---- auto-migration (a task moved to this node) -----------------------------------
    def auto_follow(self, task: TaskState) -> None:
        """A task adopted here: its remote private pages follow it lazily, at once or once it
        has stayed vm.auto_migrate_interval_ms of its virtual time here (auto_due)."""
        if not self.core.auto_migrate:
            return
        if self.auto_interval_ns:
            task.auto_due_ns = task.clock_ns + self.auto_interval_ns
        else:
            self._auto_unmap(task)

    def auto_due(self, task: TaskState) -> None:
        """At each request of a task whose pages wait for the interval: unmap them once it is over."""
        if task.auto_due_ns is not None and task.clock_ns >= task.auto_due_ns:
            task.auto_due_ns = None
            if self.core.auto_migrate:
                self._auto_unmap(task)

    def _auto_unmap(self, task: TaskState) -> None:
        for region in task.space.regions:
            if region.kind == ANON:
                for p, node in region.node.items():
                    if node >= 0 and node != self.core.node_id:
                        self.cache_put(task, region, p, auto=True)

    # ---- the migration cache ----------------------------------------------------------
    def cache_put(self, task: TaskState, region: Region, p: int, auto: bool = False) -> None:
        """Unmap a private page into the migration cache; `auto`: auto-migration put it there
        (its task moved to this node), so its move is traced as mode "auto"."""
        c = self.core
        vpage = region.start + p * c.page_size
        task.away[vpage] = region.node[p]
        if auto:
            task.auto.add(vpage)
        region.node[p] = MIGCACHE
        c.migcache_pages += 1
        c.events["pgmigcache_in"] += 1
        if c.trace.on:
            c.trace.emit("migcache", task=task.task_id, vns=task.clock_ns, what="in", addr=vpage,
                         at=task.away[vpage], frame=region.frame[p], why="auto" if auto else "mbind")

    def cache_take(self, task: TaskState, region: Region, p: int, why: str = "fault") -> int:
        """Take a page out of the migration cache, mapped again where its frame is; its node."""
        c = self.core
        vpage = region.start + p * c.page_size
        node = task.away.pop(vpage)
        task.auto.discard(vpage)
        region.node[p] = node
        c.migcache_pages -= 1
        c.events["pgmigcache_out"] += 1
        if c.trace.on:
            c.trace.emit("migcache", task=task.task_id, vns=task.clock_ns, what="out", addr=vpage, at=node,
                         frame=region.frame[p], why=why)
        return node

    def cache_drop(self, task: TaskState, region: Region, p: int) -> int:
        """munmap or detach of a lazily unmapped page: the node of a private page's frame (the
        caller frees it); -1 for a shared page (it stays in the page cache, nothing to free)."""
        if region.kind == ANON:
            return self.cache_take(task, region, p, why="unmap")
        task.away.pop(region.start + p * self.core.page_size, None)
        region.node[p] = -1
        return -1

    def lazy_fault(self, task: TaskState, region: Region, pages: list[int], write: bool):
        """Migrate-on-fault (do_swap_page finding the page in the cache, then mpol_misplaced):
        each page moves to where the policy wants it for this task, or is mapped where it is."""
        c, ps = self.core, self.core.page_size
        policy = region.policy or task.policy
        by_target: dict[tuple[int, str], list[Item]] = collections.defaultdict(list)
        for p in pages:
            mode = "auto" if region.start + p * ps in task.auto else "lazy"
            src = self.cache_take(task, region, p)
            task.faults += 1
            c.events["pgfault"] += 1
            task.clock_ns += FAULT_OVERHEAD_NS
            # mpol_misplaced indexes interleave by the page's offset in the VMA (vm_pgoff + offset)
            target = misplaced(policy, src, task_node=task.node, allowed=task.mems, fallback_orders=c.fallback,
                               interleave_index=region.start // ps + p, weights=c.weights)
            if target is not None:
                by_target[target, mode].append((region, p, src))
        for (target, mode), items in by_target.items():
            yield from self.move_to(task, items, target, mode, "fault")

    # ---- private pages ----------------------------------------------------------------
    def move_to(self, task: TaskState, items: list[Item], target: int, mode: str, cause: str):
        """Move private pages to node `target` (allocated there only), a chunk at a time."""
        statuses: list[int] = []
        for first in range(0, len(items), _CHUNK_PAGES):
            chunk = items[first:first + _CHUNK_PAGES]
            got = yield from alloc_exact(self.core, target, len(chunk), task.node, owner=task.task_id)
            statuses += yield from self.move_private(task, chunk, got, mode, cause)
        return statuses

    def move_private(self, task: TaskState, items: list[Item], got: list, mode: str, cause: str):
        """Move private pages into frames allocated already: the i-th item into got[i]; items
        beyond got fail with ENOMEM and stay. While the bytes travel the pages are MIGRATING
        (the fast path cannot write to the old frame); then each is mapped at its new frame, and
        only then are the old frames freed. Call holding the task's lock. Per-item statuses."""
        c, ps = self.core, self.core.page_size
        moving = list(zip(items, got))
        calls = []
        pulls: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)  # src -> (frame here, old, gen)
        for (region, p, src), (dst, frame, gen) in moving:
            task.away[region.start + p * ps] = src
            region.node[p] = MIGRATING
            old = region.frame[p]
            if src == c.node_id:
                data = c.pool.read(old)
                if dst == c.node_id:
                    c.pool.write(frame, 0, data)
                else:
                    calls.append(Call(node_dest(dst), mm.FrameWrite(frame=frame, offset=0, data=data, generation=gen)))
            elif dst == c.node_id:  # toward this node (balancing, auto-migration): one frames.read per node
                pulls[src].append((frame, old, region.gen[p]))
            else:
                calls.append(Call(node_dest(src), pc.FrameCopy(frame=old, dst=dst, dst_frame=frame)))
        calls += [Call(node_dest(src), mm.FramesRead(frames=[old for _f, old, _g in batch],
                                                     generations=[g for _f, _o, g in batch]))
                  for src, batch in pulls.items()]
        failure = None
        if calls:
            try:
                replies = yield calls
            except NumaEmuError as exc:
                failure = exc  # a node died mid-copy: every page stays where it was
            else:
                for batch, reply in zip(pulls.values(), replies[len(replies) - len(pulls):]):
                    for i, (frame, _old, _gen) in enumerate(batch):
                        c.pool.write(frame, 0, reply.data[i * ps:(i + 1) * ps])
        statuses: list[int] = []
        old_frames: dict[int, list[int]] = collections.defaultdict(list)
        unused: dict[int, list[int]] = collections.defaultdict(list)
        # the frames' generations: a free that fails (a partition, a timeout) is sent again (nodes.core)
        old_gens: dict[int, list[int]] = collections.defaultdict(list)
        unused_gens: dict[int, list[int]] = collections.defaultdict(list)
        for (region, p, src), (dst, frame, gen) in moving:
            vpage = region.start + p * ps
            task.away.pop(vpage, None)
            old = region.frame[p]
            if failure is not None:
                region.node[p] = src
                if src in c.dead:  # its frame died with its node meanwhile: lost (nodes.mm node_died)
                    region.node[p] = -1
                    task.lost[vpage] = (src, c.dead[src])
                unused[dst].append(frame)
                unused_gens[dst].append(gen)
                statuses.append(EBUSY)
                self._trace(task, mode, cause, EBUSY, src, old, dst, frame, addr=vpage)
                continue
            old_frames[src].append(old)
            old_gens[src].append(region.gen[p])
            region.node[p], region.frame[p], region.gen[p] = dst, frame, gen
            task.clock_ns += c.cost.copy_ns(src, dst)
            statuses.append(dst)
            self._trace(task, mode, cause, dst, src, old, dst, frame, addr=vpage)
        for region, p, src in items[len(got):]:
            statuses.append(ENOMEM)
            self._trace(task, mode, cause, ENOMEM, src, region.frame[p], None, None, addr=region.start + p * ps)
        yield from c.free_frames(old_frames, generations=old_gens)
        yield from c.free_frames(unused, generations=unused_gens)
        ok = sum(1 for s in statuses if s >= 0)
        c.events["pgmigrate_success"] += ok
        c.events["pgmigrate_fail"] += len(statuses) - ok
        return statuses

    # ---- shared pages, home node side -------------------------------------------------
    def move_shared(self, task: TaskState, region: Region, p: int, target: int, move_all: bool, cause: str,
                    mode: str = "direct"):
        """Ask the page's directory home to move its master to `target`; map the new master for
        this task at once (remove_migration_ptes). The page's status."""
        c, pcache = self.core, self.mm.pcache
        key = (region.obj, region.obj_offset + p)
        vpage = region.start + p * c.page_size
        sole = all(t == task.task_id for t, _v in pcache.rmap.get(key, ()))
        msg = mg.DirMigrate(obj=key[0], idx=key[1], target=target, mapper=c.node_id, task_node=task.node,
                            task_id=task.task_id, sole=sole, move_all=move_all, cause=cause, mode=mode,
                            mapper_tasks=self._mapper_tasks(key, task), max_mapcount=self.max_mapcount)
        reply = yield from self._ask_directory(key, msg)
        if reply is None:
            return EBUSY
        task.clock_ns += reply.cost_ns
        if reply.remap and reply.epoch >= pcache.seen_epoch.get(key, -1) and region.node[p] < 0:
            pcache.pages[key] = CachedPage(reply.node, reply.frame, reply.generation, False, False)
            region.node[p], region.frame[p], region.gen[p], region.wr[p] = reply.node, reply.frame, reply.generation, 0
            pcache.map(key, task.task_id, vpage)
        return reply.status

    def _ask_directory(self, key: tuple[str, int], msg: mg.DirMigrate):
        """dir.migrate at the page's directory home (this node: a direct call); None when that
        node cannot be reached (the page is busy, try again)."""
        c = self.core
        home = directory_home(key[0], key[1], c.n_nodes, c.shardless)
        try:
            if home == c.node_id:
                return (yield from self.master.dir_migrate(msg))
            return (yield Call(node_dest(home), msg))
        except NumaEmuError as exc:
            if exc.code not in UNREACHABLE + (ErrorCode.ESTALE,):
                raise
            return None

    # ---- trace --------------------------------------------------------------------------
    def _trace(self, task: TaskState, mode: str, cause: str, status: int, src: int, src_frame: int,
               dst: int | None, dst_frame: int | None, *, addr: int) -> None:
        if self.core.trace.on:
            trace_migrate(self.core, task.task_id, mode, cause, status, src, src_frame, dst, dst_frame,
                          vns=task.clock_ns, addr=addr)
