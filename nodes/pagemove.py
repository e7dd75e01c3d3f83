"""What migration and the memory manager share on a task's home node: the migration cache
(mbind MOVE|LAZY and auto-migration park pages there; the next fault moves or remaps them),
the move of private pages into frames of a target node, and the request to a shared page's
directory home to move its master (docs/protocol.md#migration). nodes.mm faults through it,
nodes.migration drives it for move_pages, migrate_pages and mbind; neither holds the other.

Counters: nr_migcache_pages (gauge), pgmigcache_in / pgmigcache_out, and pgmigrate_success /
pgmigrate_fail for private pages (see nodes.migration).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

from numa_emu.nodes.core import NodeCore, directory_home
from numa_emu.nodes.frames import MAX_FRAMES_READ
from numa_emu.protocol.costmodel import FAULT_OVERHEAD_NS
from numa_emu.nodes.master_move import UNREACHABLE, trace_migrate
from numa_emu.nodes.migration_plan import EBUSY, ENOMEM, reclaims_for
from numa_emu.nodes.mm import TaskState
from numa_emu.nodes.pagetable import ANON, MIGCACHE, MIGRATING, Region
from numa_emu.nodes.pcache import CachedPage, PageCacheView
from numa_emu.nodes.placement import misplaced
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.policy import Policy
from numa_emu.protocol.routing import node_dest

Item = tuple[Region, int, int]  # (region, page index, node the page's frame is on)
# Pages moved per step: a big migration hands the loop back between steps (heartbeats, other
# tasks), and keeps its copies in flight well under a socket's queue of 1000 messages (ZeroMQ's
# default high-water mark; the reactor drops what does not fit, as ENODEV).
CHUNK_PAGES = 256


@dataclass
class MigrationTunables:
    """The 2007 auto-migration knobs (sysctl; set by nodes.sysctl, read by the moves)."""

    max_mapcount: int = 1  # vm.migrate_max_mapcount: most tasks mapping a shared page MOVE still moves
    auto_interval_ns: int = 0  # vm.auto_migrate_interval_ms: a moved task's pages follow after this


class PageMoves:
    def __init__(self, core: NodeCore, pcache: PageCacheView, tunables: MigrationTunables | None = None):
        """`tunables`: the auto-migration knobs sysctl sets (defaults when not given)."""
        self.core = core
        self.pcache = pcache
        self.tunables = tunables if tunables is not None else MigrationTunables()
        self.migcache_pages = 0  # private pages of this node's tasks waiting in the migration cache

    def mapper_tasks(self, key: tuple[str, int], task: TaskState) -> int:
        """The tasks of this node that map shared page `key`, the requester counted."""
        return len({t for t, _v in self.pcache.rmap.get(key, ())} | {task.task_id})

    def maps_replica(self, region: Region, p: int) -> bool:
        """Whether the task's mapping of shared page p is this node's replica (not a page of its own)."""
        page = self.pcache.pages.get((region.obj, region.obj_offset + p))
        return page is not None and page.replica and page.node == region.node[p] and page.frame == region.frame[p]

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


    # ---- auto-migration (a task moved to this node) -----------------------------------
    def auto_follow(self, task: TaskState) -> None:
        """A task adopted here: its remote private pages follow it lazily, at once or once it
        has stayed vm.auto_migrate_interval_ms of its virtual time here (auto_due)."""
        if not self.core.auto_migrate:
            return
        if self.tunables.auto_interval_ns:
            task.auto_due_ns = task.clock_ns + self.tunables.auto_interval_ns
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
        task.unmap_direct([vpage])
        task.away[vpage] = region.node[p]
        if auto:
            task.auto.add(vpage)
        region.node[p] = MIGCACHE
        self.migcache_pages += 1
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
        self.migcache_pages -= 1
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
        for first in range(0, len(items), CHUNK_PAGES):
            chunk = items[first:first + CHUNK_PAGES]
            got = yield from self.core.alloc_on(target, len(chunk), preferred=target, task_node=task.node,
                                                owner=task.task_id, reclaim=reclaims_for(cause))
            statuses += yield from self.move_private(task, chunk, got, mode, cause)
        return statuses

    def move_private(self, task: TaskState, items: list[Item], got: list, mode: str, cause: str):
        """Move private pages into frames allocated already: the i-th item into got[i]; items
        beyond got fail with ENOMEM and stay. While the bytes travel the pages are MIGRATING
        (the fast path cannot write to the old frame); then each is mapped at its new frame, and
        only then are the old frames freed. Call holding the task's lock. Per-item statuses."""
        c, ps = self.core, self.core.page_size
        moving = list(zip(items, got))
        task.unmap_direct([region.start + p * ps for (region, p, _src), _got in moving])  # no write into the old frame
        calls = []
        pulls: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)  # src -> (frame here, old, gen)
        for (region, p, src), (dst, frame, gen) in moving:
            task.away[region.start + p * ps] = src
            region.node[p] = MIGRATING
            if dst == c.node_id and src != c.node_id:
                # toward this node (balancing, auto-migration): one frames.read per owner node
                pulls[src].append((frame, region.frame[p], region.gen[p]))
                continue
            # the owner sends the bytes (this node too: a Call to itself); they travel once
            calls.append(Call(node_dest(src), pc.FrameCopy(frame=region.frame[p], dst=dst, dst_frame=frame,
                                                           dst_generation=gen)))
        reads = [(batch[first:first + MAX_FRAMES_READ], src) for src, batch in pulls.items()
                 for first in range(0, len(batch), MAX_FRAMES_READ)]
        calls += [Call(node_dest(src), mm.FramesRead(frames=[old for _f, old, _g in batch],
                                                     generations=[g for _f, _o, g in batch]))
                  for batch, src in reads]
        failure = None
        if calls:
            try:
                replies = yield calls
            except NumaEmuError as exc:
                failure = exc  # a node died mid-copy: every page stays where it was
            else:
                for (batch, _src), reply in zip(reads, replies[len(replies) - len(reads):]):
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
        c, pcache = self.core, self.pcache
        key = (region.obj, region.obj_offset + p)
        vpage = region.start + p * c.page_size
        sole = all(t == task.task_id for t, _v in pcache.rmap.get(key, ()))
        msg = mg.DirMigrate(obj=key[0], idx=key[1], target=target, mapper=c.node_id, task_node=task.node,
                            task_id=task.task_id, sole=sole, move_all=move_all, cause=cause, mode=mode,
                            mapper_tasks=self.mapper_tasks(key, task), max_mapcount=self.tunables.max_mapcount)
        reply = yield from self.ask_directory(key, msg)
        if reply is None:
            return EBUSY
        task.clock_ns += reply.cost_ns
        if reply.remap and reply.epoch >= pcache.seen_epoch.get(key, -1) and region.node[p] < 0:
            pcache.pages[key] = CachedPage(reply.node, reply.frame, reply.generation, False, False)
            region.node[p], region.frame[p], region.gen[p], region.wr[p] = reply.node, reply.frame, reply.generation, 0
            pcache.map(key, task.task_id, vpage)
        return reply.status

    def ask_directory(self, key: tuple[str, int], msg: mg.DirMigrate):
        """dir.migrate at the page's directory home; None when that node cannot be reached (the
        page is busy, try again)."""
        c = self.core
        home = directory_home(key[0], key[1], c.n_nodes, c.shardless)
        try:
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
