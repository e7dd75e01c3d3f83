"""Automatic NUMA balancing (sysctl kernel.numa_balancing; Linux 3.8+, kernel/sched/fair.c
task_numa_work, mm/memory.c do_numa_page; docs/linux-semantics.md#automatic-numa-balancing), for
the tasks whose home is this node.

- The scanner: each task, when its scan is due (scan_delay after its first access, then every
  scan period), marks the next window of its present pages (scan_size MB) for a hinting fault
  (nodes.pagetable Region.mark_hint; vmstat numa_pte_updates). As change_prot_numa does for a
  single-threaded process, a private page already on the task's node is not marked; read-only
  file mappings are not scanned (shared libraries, task_numa_work). The period adapts: it doubles
  (up to the max) after a window whose hinting faults were mostly local or absent, and halves
  (down to the min) after one with mostly remote faults (update_task_scan_period, simplified).
- A hinting fault: the next access to a marked page clears the mark through the message path
  (numa_hint_faults, numa_hint_faults_local when the page is on the task's node). The two-stage
  filter (should_numa_migrate_memory): the page moves to the faulting task's node only when the
  previous hinting fault on it came from that node too; a page's first hinting fault never moves
  it. Only pages under the default policy move (MPOL_F_MOF: an explicit policy keeps its pages),
  or under bind / preferred-many with MPOL_F_NUMA_BALANCING (`numactl --balancing`) when the
  task's node is one of the policy's; and only to a node of the task's cpuset.
- Shared pages (shm, files) are marked per mapping and moved by their directory home like any
  migration of a shared page, with the kernel's limits: a page-cache replica is never moved, nor
  an executable file page another task maps too (migrate_misplaced_folio: shared libraries). The
  filter's last node of a shared page is kept per page on this node (the kernel keeps it in the
  page); tasks of two nodes hammering one page therefore move it back and forth (numa01).

- Task placement: hinting faults count per node (where the page is afterwards); at each new
  window the counts decay by half and the node with the most is the task's preferred node. A
  task away from it asks the coordinator, at most once per retry interval and without waiting,
  to run there (task.numa_migrate: an idle CPU of that node, or a swap; coordinator.tasks
  TaskTable.numa_migrate); the move itself is an ordinary task move (nodes.taskmove), which
  carries this scanner state along.

Time: each task's virtual clock in `virtual` mode (deterministic: the same accesses give the
same scans), the wall clock in `real` mode (the node server says which, use_wall_clock).
Moves are traced as "migrate" with mode "balancing" and counted in numa_pages_migrated.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.pagemove import PageMoves
from numa_emu.nodes.pagetable import ANON, FILE, Region
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.protocol.costmodel import FAULT_OVERHEAD_NS
from numa_emu.protocol.effects import Call, Spawn
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import MPOL_F_NUMA_BALANCING, Mode
from numa_emu.protocol.routing import COORDINATOR

log = logging.getLogger(__name__)

_MS = 1_000_000
JIFFY_NS = _MS  # HZ=1000: the kernel's retry intervals are whole jiffies, never 0


@dataclass
class TaskScan:
    """One task's scanner state (the kernel's numa_next_scan, numa_scan_period, numa_scan_offset)."""

    next_scan_ns: int
    period_ns: int
    offset: int = 0  # virtual address where the next window starts
    windows: int = 0  # scan windows so far
    local: int = 0  # hinting faults since the last window, on pages of the task's node
    remote: int = 0
    last_node: dict = field(default_factory=dict)  # private page vaddr -> node of its last hinting fault
    # task placement (task_numa_placement): hinting faults by the node the page is on after the
    # fault, this window and decayed over earlier ones (p->numa_faults[NUMA_MEM]); the node with
    # the most is the task's preferred node, where it asks to run (numa_migrate_preferred)
    window_faults: dict = field(default_factory=dict)
    numa_faults: dict = field(default_factory=dict)
    preferred: int = -1
    migrate_retry_ns: int = 0
    asking: bool = False  # a task.numa_migrate of the task is on its way

    def to_wire(self) -> list:
        """What a task move carries to the new home: the kernel keeps all of it in the task."""
        return [self.next_scan_ns, self.period_ns, self.offset, self.windows, self.local, self.remote,
                sorted(self.last_node.items()), sorted(self.window_faults.items()), sorted(self.numa_faults.items()),
                self.preferred, self.migrate_retry_ns]

    @classmethod
    def from_wire(cls, data: list) -> TaskScan:
        (next_scan, period, offset, windows, local, remote, last_node, window_faults, numa_faults, preferred,
         retry) = data
        return cls(int(next_scan), int(period), int(offset), int(windows), int(local), int(remote),
                   {int(v): int(n) for v, n in last_node}, {int(n): int(f) for n, f in window_faults},
                   {int(n): int(f) for n, f in numa_faults}, int(preferred), int(retry))


class Balancer:
    def __init__(self, core: NodeCore, moves: PageMoves, pcache: PageCacheView):
        self.core = core
        self.moves = moves  # moves private pages and shared masters (nodes.pagemove)
        self.pcache = pcache  # who maps a shared page here
        self.enabled = False
        self.scan_delay_ns = 1000 * _MS
        self.period_min_ns = 1000 * _MS
        self.period_max_ns = 60000 * _MS
        self.scan_pages = (256 << 20) // core.page_size
        self.wall_clock = False
        self.shared_last: dict[tuple[str, int], int] = {}  # shared page -> node of its last hinting fault here

    def appliers(self) -> dict[str, Callable[[int | str], None]]:
        """The sysctl keys this service applies (nodes.sysctl.NodeControl)."""
        return {cm.NUMA_BALANCING_KEY: self._switch,
                cm.SCAN_DELAY_KEY: functools.partial(self._set_ms, "scan_delay_ns"),
                cm.SCAN_PERIOD_MIN_KEY: functools.partial(self._set_ms, "period_min_ns"),
                cm.SCAN_PERIOD_MAX_KEY: functools.partial(self._set_ms, "period_max_ns"),
                cm.SCAN_SIZE_KEY: self._set_size}

    def _switch(self, value: int | str) -> None:
        self.enabled = bool(value)

    def _set_ms(self, attr: str, value: int | str) -> None:
        setattr(self, attr, int(value) * _MS)

    def _set_size(self, value: int | str) -> None:
        self.scan_pages = max(1, (int(value) << 20) // self.core.page_size)

    def use_wall_clock(self, real: bool) -> None:
        """`real` injection mode: scan periods in wall time; `virtual`: in each task's virtual time."""
        self.wall_clock = real

    def _now(self, task) -> int:
        return self.core.clock_ns() if self.wall_clock else task.clock_ns

    # ---- the scanner (task_numa_work) -----------------------------------------------------
    def tick(self, task) -> None:
        """Called at each request of the task: scans a window when one is due."""
        if not self.enabled:
            return
        now = self._now(task)
        scan = task.numa
        if scan is None:
            task.numa = TaskScan(now + self.scan_delay_ns, self.period_min_ns)
            return
        if now < scan.next_scan_ns:
            return
        if scan.windows:
            self._adapt(scan)
            self._placement(task, scan)
        scan.windows += 1
        scan.next_scan_ns = now + scan.period_ns
        self._scan_window(task, scan)

    def _adapt(self, scan: TaskScan) -> None:
        if scan.remote > scan.local:
            scan.period_ns = max(self.period_min_ns, scan.period_ns // 2)
        else:  # mostly local, or no hinting fault at all: scan slower
            scan.period_ns = min(self.period_max_ns, scan.period_ns * 2)
        scan.period_ns = max(scan.period_ns, self.period_min_ns)
        scan.local = scan.remote = 0

    def _placement(self, task, scan: TaskScan) -> None:
        """task_numa_placement at a new scan sequence: each node's faults decay by half and gain
        the window's; the node with the most (the lowest id of a tie) is preferred."""
        for node in set(scan.numa_faults) | set(scan.window_faults):
            old = scan.numa_faults.get(node, 0)
            scan.numa_faults[node] = old - old // 2 + scan.window_faults.get(node, 0)
        scan.window_faults.clear()
        best = max(sorted(scan.numa_faults), key=lambda n: scan.numa_faults[n], default=-1)
        if best >= 0 and scan.numa_faults[best] > 0 and best != scan.preferred:
            scan.preferred = best
            if self.core.trace.on:
                self.core.trace.emit("task", task=task.task_id, vns=task.clock_ns, what="numa_preferred", node=best)

    def migrate_preferred(self, task):
        """numa_migrate_preferred, after a hinting fault: at most once per retry interval
        (min(1 s, scan period / 16), at least a jiffy), a task away from its preferred node asks the coordinator to
        run it there (task_numa_migrate); the answer comes later, the access goes on at once. The
        interval starts only once the task has a preferred node, as the kernel returns before
        setting numa_migrate_retry without one: the first hinting faults do not delay the first ask."""
        scan = task.numa
        now = self._now(task)
        if scan is None or scan.asking or now < scan.migrate_retry_ns or scan.preferred < 0:
            return
        scan.migrate_retry_ns = now + max(JIFFY_NS, min(1000 * _MS, scan.period_ns // 16))
        if scan.preferred == task.node:
            return
        scan.asking = True
        yield Spawn(self._ask_to_move(task.task_id, scan))

    def _ask_to_move(self, task_id: int, scan: TaskScan):
        c = self.core
        try:
            reply = yield Call(COORDINATOR, tm.TaskNumaMigrate(task_id=task_id, node=scan.preferred))
        except NumaEmuError as exc:  # the task detached meanwhile, or the coordinator is away: ask later
            log.debug("task %d: task.numa_migrate to node %d: %s", task_id, scan.preferred, exc)
            return
        finally:
            scan.asking = False
        if reply.outcome == "migrated":
            c.events["numa_task_migrated"] += 1
        elif reply.outcome == "swapped":  # __migrate_swap_task counts each of the two tasks
            c.events["numa_task_swapped"] += 2

    def _scan_window(self, task, scan: TaskScan) -> None:
        """Mark up to scan_pages present pages from the scan offset; at the end of the address
        space the offset goes back to its start (the window ends there)."""
        ps, budget, marked = self.core.page_size, self.scan_pages, []
        for region in task.space.regions:
            if budget <= 0:
                break
            end = region.end(ps)
            if end <= scan.offset or (region.kind == FILE and not region.writable):
                continue
            first = max(0, (scan.offset - region.start) // ps)
            for p, node in region.node.items(first):
                if node < 0 or region.hinted(p):
                    continue
                if region.kind == ANON and node == task.node:
                    continue  # change_prot_numa: a single-threaded task's local private page stays mapped
                marked.append((region, p))
                budget -= 1
                if budget <= 0:
                    scan.offset = region.start + (p + 1) * ps
                    break
        if budget > 0:
            scan.offset = 0
        # out of the direct path's table first: a marked page is not present, the task faults via the node
        task.unmap_direct([region.start + p * ps for region, p in marked])
        for region, p in marked:
            region.mark_hint(p)
        self.core.events["numa_pte_updates"] += len(marked)
        # numa_huge_pte_updates stays 0: numa-emu has no huge pages

    # ---- hinting faults (do_numa_page) -----------------------------------------------------
    def hint_faults(self, task, region: Region, pages: list[int]):
        """Marked pages of `region` the task touched: clear each mark, count the fault, and move
        the page to the task's node when the two-stage filter says so. Call holding the task's lock."""
        c, ps = self.core, self.core.page_size
        scan = task.numa
        movable = self._policy_moves(region.policy or task.policy, task.node) and task.node in task.mems
        private_moves = []
        shared_moves = []
        fault_at = {}  # page -> the node it is on after the fault (task_numa_fault's mem node)
        for p in pages:
            region.clear_hint(p)
            src = region.node[p]
            if src < 0:
                continue  # unmapped since it was marked: an ordinary fault follows
            local = src == task.node
            fault_at[p] = src
            c.events["numa_hint_faults"] += 1
            c.events["pgfault"] += 1
            task.faults += 1
            task.clock_ns += FAULT_OVERHEAD_NS
            if local:
                c.events["numa_hint_faults_local"] += 1
            if scan is not None:
                if local:
                    scan.local += 1
                else:
                    scan.remote += 1
            vpage = region.start + p * ps
            if region.kind == ANON:
                last = scan.last_node if scan is not None else {}
                previous = last.get(vpage)
                last[vpage] = task.node
            else:
                key = (region.obj, region.obj_offset + p)
                previous = self.shared_last.get(key)
                self.shared_last[key] = task.node
            target = task.node if movable and not local and previous == task.node else None
            if region.kind != ANON and target is not None and not self._shared_may_move(task, region, p):
                target = None
            if c.trace.on:
                c.trace.emit("numa_hint", task=task.task_id, vns=task.clock_ns, addr=vpage, at=src, local=local,
                             last=previous, to=target)
            if target is None:
                continue
            if region.kind == ANON:
                private_moves.append((region, p, src))
            else:
                shared_moves.append(p)
        if private_moves:
            statuses = yield from self.moves.move_to(task, private_moves, task.node, "balancing", "fault")
            c.events["numa_pages_migrated"] += sum(1 for s in statuses if s == task.node)
            fault_at.update((p, task.node) for (_r, p, _src), s in zip(private_moves, statuses) if s == task.node)
        for p in shared_moves:
            if region.node[p] < 0:
                continue  # shot down by an earlier page's move: its next fault maps it where it is
            status = yield from self.moves.move_shared(task, region, p, task.node, True, "fault", mode="balancing")
            if status == task.node:
                c.events["numa_pages_migrated"] += 1
                fault_at[p] = task.node
        if scan is not None and fault_at:
            for node in fault_at.values():
                scan.window_faults[node] = scan.window_faults.get(node, 0) + 1
            yield from self.migrate_preferred(task)

    @staticmethod
    def _policy_moves(policy, node: int) -> bool:
        """mpol_misplaced: the default policy (MPOL_F_MOF) moves pages to the faulting node; bind
        and preferred-many with MPOL_F_NUMA_BALANCING move them there when it is one of theirs."""
        if policy.mode == Mode.DEFAULT:
            return True
        return (bool(policy.flags & MPOL_F_NUMA_BALANCING) and policy.mode in (Mode.BIND, Mode.PREFERRED_MANY)
                and node in policy.nodes)

    def _shared_may_move(self, task, region: Region, p: int) -> bool:
        """The kernel's limits on shared pages: a replica is never moved (the master serves
        others); an executable file page mapped by another task too is a shared library."""
        if self.moves.maps_replica(region, p):
            return False
        if region.kind == FILE and region.exec:
            key = (region.obj, region.obj_offset + p)
            return all(t == task.task_id for t, _v in self.pcache.rmap.get(key, ()))
        return True
