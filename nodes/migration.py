"""Page migration of a task's pages, on its home node H (docs/protocol.md#migration;
docs/linux-semantics.md#move_pages, #migrate_pages, #mbind, #cpusets): move_pages, migrate_pages, mbind's
MPOL_MF_MOVE / MOVE_ALL / MOVE|LAZY, and cpuset memory_migrate (NodeTaskPolicy.migrate).

- A private page: H holds the task's lock (nodes.mm.locked), allocates on the target only
  (__GFP_THISNODE, a numa_hit there), marks the page MIGRATING (so the lock-free fast path takes
  the slow path and waits), copies the bytes, maps the new frame, and only then frees the old one.
- A shared page (shm, page cache): H asks the page's directory home to move its master
  (nodes.master_move: replicas and every mapping down and acknowledged first), then maps the
  new master for the task at once. MPOL_MF_MOVE moves only pages no other task maps.
- The moves themselves and the migration cache are nodes.pagemove's, which the memory manager's
  faults use too.
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

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.migration_plan import EBUSY, EFAULT, ENOENT, NOT_MOVED, mbind_target
from numa_emu.nodes.mm import MemoryManager, TaskState
from numa_emu.nodes.pagemove import CHUNK_PAGES, Item, MigrationTunables, PageMoves
from numa_emu.nodes.pagetable import ANON, MIGCACHE, ZEROPAGE, Region
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.policy import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, Mode, Policy, migration_pairs


class Migration:
    def __init__(self, core: NodeCore, mmgr: MemoryManager, pcache: PageCacheView, moves: PageMoves,
                 tunables: MigrationTunables):
        self.core = core
        self.mm = mmgr
        self.pcache = pcache
        self.moves = moves
        self.tunables = tunables  # vm.migrate_max_mapcount

    def handlers(self) -> dict:
        return {"mem.move_pages": self.move_pages, "mem.migrate_pages": self.migrate_pages}

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
                    node = self.moves.cache_take(task, region, p)
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
            results = yield from self.moves.move_to(task, [(r, p, src) for _i, r, p in pages], target, "direct", "syscall")
            for (i, _r, _p), s in zip(pages, results):
                status[i] = s
        for i, region, p, target in shared:
            if region.node[p] == MIGCACHE:
                task.away.pop(region.start + p * ps, None)
                region.node[p] = -1
            status[i] = yield from self.moves.move_shared(task, region, p, target, bool(msg.flags & MPOL_MF_MOVE_ALL),
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
                    elif not self.moves.maps_replica(region, p):  # a replica is not a page of the task's own
                        shared.append((region, p))
        statuses: list[int] = []
        if private:
            statuses += yield from self.moves.move_to(task, private, dst, "direct", cause)
        for region, p in shared:
            if region.node[p] == src:  # not shot down by a previous page's move
                statuses.append((yield from self.moves.move_shared(task, region, p, dst, move_all, cause)))
        return statuses

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
                placement, pol, index = self.mm.placement(task, region, p)
                target = mbind_target(pol, node, interleave_index=index, order=placement.order, allowed=task.mems,
                                      weights=c.weights)
                if target is None:
                    continue
                if region.kind == ANON:
                    groups[placement].append((region, p, node))
                elif not self.moves.maps_replica(region, p):
                    shared.append((region, p, target))
        failed = 0
        for placement, items in groups.items():
            for first in range(0, len(items), CHUNK_PAGES):
                chunk = items[first:first + CHUNK_PAGES]
                got = yield from c.allocate(placement, len(chunk), task.node, owner=task.task_id)
                statuses = yield from self.moves.move_private(task, chunk, got, "direct", "mbind")
                failed += sum(1 for s in statuses if s < 0)
        for region, p, target in shared:
            if region.node[p] >= 0:
                s = yield from self.moves.move_shared(task, region, p, target, bool(flags & MPOL_MF_MOVE_ALL), "mbind")
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
                    self.moves.cache_put(task, region, p)
                    count += 1
                else:
                    count += yield from self._lazy_unmap_shared(task, region, p, move_all)
        return count

    def _lazy_unmap_shared(self, task: TaskState, region: Region, p: int, move_all: bool):
        c = self.core
        key = (region.obj, region.obj_offset + p)
        vpage = region.start + p * c.page_size
        sole = all(t == task.task_id for t, _v in self.pcache.rmap.get(key, ()))
        tasks = self.moves.mapper_tasks(key, task)
        if not move_all and tasks > self.tunables.max_mapcount:
            return 0
        msg = mg.DirMigrate(obj=key[0], idx=key[1], target=c.node_id, mapper=c.node_id, task_node=task.node,
                            task_id=task.task_id, sole=sole, move_all=move_all, cause="mbind", mode="lazy",
                            unmap_only=True, mapper_tasks=tasks, max_mapcount=self.tunables.max_mapcount)
        reply = yield from self.moves.ask_directory(key, msg)
        if reply is None or reply.status < 0:
            return 0
        if region.node[p] >= 0:  # the shootdown reached this task's entry: it is unmapped already
            task.unmap_direct([vpage])
            self.pcache.unmap(key, task.task_id, vpage)
        task.away[vpage] = reply.status
        region.node[p] = MIGCACHE
        if c.trace.on:
            c.trace.emit("migcache", task=task.task_id, vns=task.clock_ns, what="in", obj=key[0], idx=key[1],
                         at=reply.status, frame=reply.frame)
        return 1


    # ---- a node going offline -----------------------------------------------------------
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
                    n = self.moves.cache_take(task, region, p, why="offline")
                if n == node:
                    groups[self.mm.placement(task, region, p)[0]].append((region, p, node))
        moved = failed = 0
        for placement, items in groups.items():
            for first in range(0, len(items), CHUNK_PAGES):
                chunk = items[first:first + CHUNK_PAGES]
                got = yield from c.allocate(placement, len(chunk), task.node, owner=task.task_id)
                statuses = yield from self.moves.move_private(task, chunk, got, "direct", "offline")
                ok = sum(1 for s in statuses if s >= 0)
                moved, failed = moved + ok, failed + len(statuses) - ok
        return moved, failed

    def move_master(self, obj: str, idx: int, target: int, cause: str):
        """Move the master of shared page (obj, idx) to `target` whoever maps it (a node going
        offline hands its masters on); the page's status, or EBUSY when its home cannot be reached."""
        c = self.core
        msg = mg.DirMigrate(obj=obj, idx=idx, target=target, mapper=c.node_id, task_node=c.node_id, task_id=0,
                            sole=True, move_all=True, cause=cause)
        reply = yield from self.moves.ask_directory((obj, idx), msg)
        return EBUSY if reply is None else reply.status
