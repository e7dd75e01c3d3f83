"""The node's pure core: its state, the allocation walk every fault uses, and its counters.

No sockets, clocks or processes. Handlers are generators that yield protocol.effects.Call when
they need another node; the server performs the calls (docs/protocol.md#first-touch, steps 2-3).
"""
from __future__ import annotations

import collections
import itertools
import zlib
from dataclasses import dataclass, field
from typing import Callable

from numa_emu.protocol.costmodel import CostModel
from numa_emu.nodes.framepool import USED, FramePool
from numa_emu.nodes.placement import Placement, charge
from numa_emu.nodes.store import FILE_PREFIX
from numa_emu.protocol.counters import NODE_EVENTS, NUMASTAT_COUNTERS
from numa_emu.protocol.effects import Call, Future, Sleep
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.routing import node_dest, node_of
from numa_emu.protocol.timing import PEER_RETRY_MAX_S
from numa_emu.protocol.tracing import Tracer
from numa_emu.protocol.zonelist import fallback_orders

# How long a read of a frame waits for the direct write under way in it (read_local): a page takes
# a microsecond or so to write, but its task may be descheduled in the middle on a loaded host.
_STABLE_WAIT_S = 0.001
_STABLE_WAITS = 200


def directory_home(obj: str, idx: int, n_nodes: int, dead=()) -> int:
    """The node that holds the directory entry of shared page (obj, idx): IVY's fixed distributed
    manager, a hash that every process computes alike (crc32, not Python's salted hash). When
    that node is dead, the same hash picks among the live nodes (docs/protocol.md#a-nodes-death):
    only the dead node's pages change home, and every node that heard of the death agrees."""
    h = zlib.crc32(f"{obj}\0{idx}".encode())
    home = h % n_nodes
    if home in dead:
        live = [n for n in range(n_nodes) if n not in dead]
        home = live[h % len(live)] if live else home
    return home


class NumaStatCounters(dict):
    """The node's numastat counters, which vm.numa_stat can stop: while `enabled` is False,
    updates are dropped, as zone_statistics returns early when numa stats are off
    (mm/page_alloc.c; docs/linux-semantics.md#numastat-counters). Turning them off also clears them (vm.numa_stat=0:
    "disable numa statistics, and clear numa counters")."""

    enabled: bool = True

    def __setitem__(self, key: str, value: int) -> None:
        if self.enabled:
            super().__setitem__(key, value)

    def switch(self, on: bool) -> None:
        if not on:
            for key in self:
                super().__setitem__(key, 0)
        self.enabled = on


ALLOC_TICKETS_KEPT = 16384  # allocations served here that a timed-out requester may still undo


@dataclass(slots=True)
class AllocTicket:
    """An allocation a node served (or was told to undo before it came), by its requester's ticket."""

    requester: int
    frames: list[int] = field(default_factory=list)
    gens: list[int] = field(default_factory=list)
    undone: bool = False
    serving: Future | None = None  # resolved once its frames are taken


class Capture:
    """Frames of this node that a direct reclaim freed, kept for the allocation that reclaimed
    them (Linux's capture_control hands the page compaction freed to the allocation that
    compacted): put back in the pool, they went to whichever allocation came first, and under a
    reader streaming a file through a full node, a page move reclaimed three times and still
    failed with ENOMEM (tests/sim/test_reclaim_moves.py). At most `want` frames are kept."""

    def __init__(self, want: int):
        self.want = want
        self.frames: list[int] = []


class NodeCore:
    def __init__(self, node_id: int, topology: dict, pool: FramePool, clock_ns: Callable[[], int] = lambda: 0,
                 store=None, reclaim=None):
        """`reclaim(want, replicas_only, capture)`: direct reclaim of this node, a generator
        returning the number of this node's frames it freed (nodes.reclaim.Reclaim.shrink), which
        keeps up to `want` of them in `capture` (a Capture); None: none."""
        self.node_id = node_id
        self.clock_ns = clock_ns
        self.trace = Tracer(node_id, clock_ns)
        self.store = store  # nodes.store.Store, or a stand-in
        # This node's page-cache frames, oldest first (reclaim's two lists, nodes/reclaim.py):
        # replicas, and masters of file pages (shm has no store to read it back from: not listed).
        self.replica_frames: collections.OrderedDict[int, tuple[str, int]] = collections.OrderedDict()
        self.cache_frames: collections.OrderedDict[int, tuple[str, int]] = collections.OrderedDict()
        self.shm_frames: dict[int, tuple[str, int]] = {}  # masters of shm pages (not reclaimable: no store)
        self.moving_out: set[int] = set()  # frames a migration is copying away: accesses get ESTALE
        self._reclaim = reclaim
        self.capturing: dict[int, Capture] = {}  # frame being reclaimed -> the allocation it goes to once freed
        self.n_nodes = len(topology["nodes"])
        self.page_size = pool.page_size
        self.pool = pool
        self.possible = frozenset(range(self.n_nodes))
        self.dead: dict[int, str] = {}  # peer reported dead (node.down) -> how it died: fsync passes it by
        # nodes whose directory shard died with them: not a directory home again, even restarted
        self.shardless: set[int] = set()
        # task id -> its private frames on this node, and back: what a task whose home node died
        # held here is freed by task.purge (nodes.frames), not leaked
        self.task_frames: dict[int, set[int]] = {}
        self.frame_task: dict[int, int] = {}
        # node -> {frame: generation} freed here but not confirmed there (free_frames, retry_frees)
        self.unfreed: dict[int, dict[int, int]] = {}
        # frame.alloc calls that timed out, to be undone there (retry_allocs): node -> {ticket:
        # the node the allocation preferred}; and, as a supplier, the allocations served here by
        # ticket (the most recent ALLOC_TICKETS_KEPT)
        self.alloc_seq = itertools.count(1)
        self.allocs_unsure: dict[int, dict[tuple, int]] = {}
        self.alloc_tickets: collections.OrderedDict[tuple, AllocTicket] = collections.OrderedDict()
        # numa_foreign this node owes the nodes its allocations preferred (add_foreign): per node the
        # running total, sent whole, so that a re-send, a duplicate or a late copy counts once; a
        # restarted node starts again at zero under a later incarnation (its start, in ns)
        self.incarnation = clock_ns()
        self.foreign_owed: dict[int, int] = {}
        self.foreign_unsent: set[int] = set()  # nodes that did not confirm their latest total (retry_foreign)
        # sender node -> (its incarnation, the highest total it sent): what take_foreign counted
        self.foreign_seen: dict[int, tuple[int, int]] = {}
        self.master_frames: dict[int, tuple[str, int]] = {}  # frames of this node that are masters of shared pages
        # frame -> (its holder, how to take it back): a shared master a task of this node writes
        # directly (grant_direct_write); one holder a frame, taken back before the node writes it
        self.direct_writers: dict[int, tuple[object, Callable[[], None]]] = {}
        # A forwarded access is a one-way notice that cannot be re-sent: while faults are injected
        # (protocol.faults) a home node calls the owner instead, which a lost message cannot break.
        self.forwarding = True
        self.fallback = fallback_orders([list(r) for r in topology["distances"]],
                                        cpuless_nodes=[n["id"] for n in topology["nodes"] if not n["cpus"]])
        self._zonelists = [list(order) for order in self.fallback]  # as built at start (set_offline)
        self.cost = CostModel(topology["latency_ns"], topology["bandwidth_mib_s"], pool.page_size)
        self.cpu_node = {cpu: n["id"] for n in topology["nodes"] for cpu in n["cpus"]}
        self.numastat = NumaStatCounters(dict.fromkeys(NUMASTAT_COUNTERS, 0))
        # every counter from the start, zeros included: /proc/vmstat lists them on a fresh machine
        self.events: collections.Counter[str] = collections.Counter(dict.fromkeys(NODE_EVENTS, 0))
        self.weights: dict[int, int] | None = None  # weighted-interleave weights, None: all 1
        self.auto_migrate = True  # sysctl vm.auto_migrate: a task moved here takes its pages along lazily

    # ---- settings (the node server's tables, sysctl) ----------------------------------------
    def set_cost(self, latency_ns, bandwidth_mib_s) -> None:
        """The cost model of a latency table pushed by the coordinator (node.latency)."""
        self.cost = CostModel(latency_ns, bandwidth_mib_s, self.page_size)

    def set_forwarding(self, on: bool) -> None:
        """Whether a home node forwards a task's remote access (off while faults are injected)."""
        self.forwarding = on

    def set_weight(self, node: int, weight: int) -> None:
        """Weighted interleave's weight of `node` (sysctl)."""
        # A fresh dict each time: placement caches key on the policy and the target node only,
        # and the target is computed from these weights at every fault, so the next allocation
        # follows the new weights.
        self.weights = {**(self.weights or {}), node: weight}

    def set_auto_migrate(self, on: bool) -> None:
        """sysctl vm.auto_migrate: a task moved here takes its pages along lazily."""
        self.auto_migrate = on

    def set_offline(self, offline: frozenset[int]) -> None:
        """The offline nodes (numa-emu node offline) leave every zonelist, as the kernel rebuilds
        its zonelists without a node whose memory went offline; the start's come back online."""
        self.fallback = [[n for n in order if n not in offline] for order in self._zonelists]

    def switch_numastat(self, on: bool) -> None:
        """sysctl vm.numa_stat: off drops updates and clears the counters."""
        self.numastat.switch(on)

    # ---- peers ----------------------------------------------------------------------------
    def peers_up(self, nodes: list[int], shardless: list[int]) -> None:
        """Peers that are (again) alive, and those that hold no directory shard."""
        for node in nodes:
            self.dead.pop(node, None)
        self.shardless.update(n for n in shardless if 0 <= n < self.n_nodes)

    def node_died(self, node: int, why: str) -> bool:
        """Peer `node` is dead: fsync passes it by, its frames died with it (a restarted node
        starts empty), and it is no directory home again. Whether it held a directory shard."""
        held_shard = node not in self.shardless  # a node that died before and came back held none
        self.dead[node] = why
        self.unfreed.pop(node, None)
        self.foreign_owed.pop(node, None)  # its counters died with it; a restarted one starts at zero
        self.foreign_unsent.discard(node)
        self.allocs_unsure.pop(node, None)
        for entry in self.alloc_tickets.values():
            if entry.requester == node and entry.serving is None:
                self._drop_unused(entry)
        self.shardless.add(node)
        return held_shard

    def _drop_unused(self, entry: AllocTicket) -> None:
        """An allocation whose requester died: free the frames it took that nothing took up since
        (no page, replica or task names them: the requester died before it used them)."""
        if entry.undone:
            return
        entry.undone = True
        roles = (self.master_frames, self.replica_frames, self.cache_frames, self.shm_frames, self.frame_task)
        self.release([f for f, g in zip(entry.frames, entry.gens) if self.pool.state[f] == USED
                      and self.pool.generation[f] == g and not any(f in role for role in roles)])

    # ---- supplying frames (this node is the one that gives the page) --------------------
    def supply(self, count: int, *, preferred: int, task_node: int, interleave: bool, fill: int | None,
               replica_of: tuple[str, int] | None = None, cache_of: tuple[str, int] | None = None,
               owner: int | None = None, master_of: tuple[str, int] | None = None,
               shm_of: tuple[str, int] | None = None, data: bytes | None = None,
               captured: list[int] | None = None) -> list[int]:
        """Up to `count` frames of this node, charged as zone_statistics would (nodes.placement.charge),
        those of `captured` first (taken out of it: a Capture's, in use already and zeroed);
        `data`: written into each at once (a master holds its page before anyone can name it).
        A replica frame, the master of a file page (`cache_of`) or of a shm page (`shm_of`) is
        remembered with its page, for counting (meminfo: FilePages, Shmem; AnonPages are the rest)
        and reclaim; a private frame with its task (`owner`), for task.purge; any shared page's
        master with its page (`master_of`), for the rebuild of its directory entry
        (docs/protocol.md#a-nodes-death)."""
        frames = []
        if captured:
            frames, captured[:count] = captured[:count], []
        try:
            for _ in range(count - len(frames)):
                frames.append(self.pool.alloc())
        except NumaEmuError:
            pass  # short: the caller walks on to the next node of its order
        if not frames:
            return frames
        if fill:
            page = bytes([fill]) * self.page_size
            mem, ps = self.pool.mem, self.page_size
            for f in frames:
                mem[f * ps:(f + 1) * ps] = page
        if data:
            for f in frames:
                self.pool.write(f, 0, data)
        placement = Placement(preferred=preferred, order=(), interleave=interleave)
        for node, name, delta in charge(None, supplier=self.node_id, placement=placement, task_node=task_node,
                                        pages=len(frames)):
            if node == self.node_id:  # numa_foreign belongs to the preferred node: the requester sends it
                self.numastat[name] += delta
        self.events["pgalloc"] += len(frames)
        if replica_of is not None:
            for f in frames:
                self.replica_frames[f] = replica_of
            self.events["pgreplicated"] += len(frames)
        if cache_of is not None:
            for f in frames:
                self.cache_frames[f] = cache_of
        if owner is not None:
            self.task_frames.setdefault(owner, set()).update(frames)
            self.frame_task.update(dict.fromkeys(frames, owner))
        if master_of is not None:
            self.master_frames.update(dict.fromkeys(frames, master_of))
        if shm_of is not None:
            for f in frames:
                self.shm_frames[f] = shm_of
        if self.trace.on:
            self.trace.emit("alloc", frames=frames, preferred=preferred, task_node=task_node,
                            hit=preferred == self.node_id, interleave=interleave)
        return frames

    def release(self, frames: list[int], zap_cause: str | None = None) -> None:
        frame_task, master_frames, direct_writers = self.frame_task, self.master_frames, self.direct_writers
        for f in frames:
            if direct_writers:  # its mappings went before it is freed: the grant's record only
                direct_writers.pop(f, None)
            self.pool.free_frame(f)
            self.cache_frames.pop(f, None)
            if master_frames:
                master_frames.pop(f, None)
            owner = frame_task.pop(f, None) if frame_task else None
            if owner is not None:
                owned = self.task_frames[owner]
                owned.discard(f)
                if not owned:
                    del self.task_frames[owner]
            self.shm_frames.pop(f, None)
            if self.replica_frames.pop(f, None) is not None and zap_cause:
                self.events["pgreplicazap"] += 1
                self.events[f"pgreplicazap_{zap_cause}"] += 1
            capture = self.capturing.pop(f, None) if self.capturing else None
            if capture is not None and len(capture.frames) < capture.want and self.pool.take_back(f):
                capture.frames.append(f)
        self.events["pgfree"] += len(frames)
        if self.trace.on:
            self.trace.emit("free", frames=list(frames))

    # ---- the allocation walk (on the node that faults) ----------------------------------
    def supply_reclaiming(self, count: int, replicas_only: bool = False, **kw):
        """`supply`, and when short, direct reclaim on this node and `supply` again, from the
        frames that reclaim freed (a Capture: a concurrent allocation cannot take them first);
        a few times at most, while reclaim frees something (a frame that a direct write's hold
        keeps from reuse is not captured: it is freed to the pool once let go). A replica only takes the place of other replicas: it
        is optional (the master serves without it), and evicting a master for it would leave
        the cache smaller than memory (`replicas_only`: a frame that is to become a replica
        later, a reader's spare)."""
        frames = self.supply(count, **kw)
        replicas_only = replicas_only or kw.get("replica_of") is not None
        for _ in range(3):
            if len(frames) >= count or self._reclaim is None:
                break
            capture = Capture(count - len(frames))
            try:
                freed = yield from self._reclaim(capture.want, replicas_only, capture)
                frames += self.supply(capture.want, captured=capture.frames, **kw)
            finally:
                for f in capture.frames:  # not used (the reclaim failed): back to the pool
                    self.pool.free_frame(f)
            if not freed:
                break
        return frames

    def master_kwargs(self, obj: str, idx: int) -> dict:
        """What the master frame of shared page (obj, idx) holds, as `supply`'s keywords: a file
        page the store can give back (page cache, reclaimable), or a shm page (shared memory);
        every master is remembered as the master of its page (`master_of`)."""
        kind = ({"cache_of": (obj, idx)} if self.store is not None else {}) if obj.startswith(FILE_PREFIX) \
            else {"shm_of": (obj, idx)}
        return {"master_of": (obj, idx), **kind}

    def allocate(self, placement: Placement, count: int, task_node: int, fill: int | None = None,
                 cache_of: tuple[str, int] | None = None, owner: int | None = None,
                 master_of: tuple[str, int] | None = None, shm_of: tuple[str, int] | None = None,
                 data: bytes | None = None, walks: tuple[bool, ...] = (False, True)):
        """Walk the placement's order, local frames directly, remote ones with frame.alloc, until
        `count` pages are had; when every node of the order is full, walk it again reclaiming
        clean page-cache pages on each node before taking from it (nodes/reclaim.py: fall back
        first, reclaim when all allowed nodes are full). `cache_of`: the frame is the master of
        that file page, `shm_of` of that shm page; `owner`: the private pages' task; `master_of`: the
        shared page whose master it is (each supplier remembers them); `data`: the bytes each frame
        gets on its node at once; `walks`: whether each walk reclaims ((False,): no reclaim,
        (True,): the first walk found nothing already). Returns [(node, frame, generation)], shorter when nothing could be freed."""
        got: list[tuple[int, int, int]] = []
        foreign: collections.Counter[int] = collections.Counter()
        for reclaim in walks:
            for node in placement.order:
                need = count - len(got)
                if need <= 0:
                    break
                preferred = placement.preferred_for(node)
                frames = yield from self.alloc_on(node, need, preferred=preferred, task_node=task_node,
                                                  interleave=placement.interleave, fill=fill, reclaim=reclaim,
                                                  cache_of=cache_of, shm_of=shm_of, owner=owner, master_of=master_of,
                                                  data=data)
                got.extend(frames)
                if frames and node != preferred:
                    foreign[preferred] += len(frames)
        yield from self.add_foreign(foreign)
        return got

    def alloc_on(self, node: int, count: int, *, preferred: int, task_node: int, interleave: bool = False,
                 fill: int | None = None, reclaim: bool = False, replica_of: tuple[str, int] | None = None,
                 cache_of: tuple[str, int] | None = None, owner: int | None = None,
                 master_of: tuple[str, int] | None = None, shm_of: tuple[str, int] | None = None,
                 data: bytes | None = None):
        """Up to `count` frames on node `node` and nowhere else (__GFP_THISNODE), charged there as
        an allocation that preferred `preferred`; `reclaim`: direct reclaim there when short; the
        other keywords as `supply`. [(node, frame, generation)]: shorter when that node is short,
        empty when it is dead or silent."""
        if count <= 0:
            return []
        if node == self.node_id:
            # This node's own frames directly, not with a Call to itself: the allocation walk of
            # every fault comes here (a self Call would add a generator and a future each time).
            kw = dict(preferred=preferred, task_node=task_node, interleave=interleave, fill=fill,
                      replica_of=replica_of, cache_of=cache_of, owner=owner, master_of=master_of, shm_of=shm_of,
                      data=data)
            frames = (yield from self.supply_reclaiming(count, **kw)) if reclaim else self.supply(count, **kw)
            return [(node, f, self.pool.generation[f]) for f in frames]
        wire = {k: list(v) if v is not None else None
                for k, v in (("replica_of", replica_of), ("cache_of", cache_of), ("master_of", master_of),
                             ("shm_of", shm_of))}
        ticket = [self.node_id, self.incarnation, next(self.alloc_seq)]
        try:
            reply = yield Call(node_dest(node), mm.FrameAlloc(count=count, preferred=preferred, task_node=task_node,
                                                              interleave=interleave, fill=fill, reclaim=reclaim,
                                                              task_id=owner, data=data, ticket=ticket, **wire))
        except NumaEmuError as exc:
            if exc.code not in (ErrorCode.ENODEV, ErrorCode.ETIMEDOUT, ErrorCode.EIO):
                raise
            if exc.code == ErrorCode.ETIMEDOUT and node not in self.dead:
                # served or not, nothing here will use it: undone there (retry_allocs), or its
                # frames leak when the reply was lost or came too late (a partition, a stop)
                self.allocs_unsure.setdefault(node, {})[tuple(ticket)] = preferred
            return []  # a dead or silent node supplies nothing
        gens = reply.generations or [0] * len(reply.frames)
        return [(node, f, g) for f, g in zip(reply.frames, gens)]

    def add_foreign(self, foreign: collections.Counter[int]):
        """numa_foreign belongs to the node an allocation preferred (this one too: a Call to itself).
        Each preferred node's running total grows and is sent whole; one that goes unconfirmed (a
        partition, a stopped node) is sent again by retry_foreign until that node answers or dies."""
        live = [node for node in foreign if node not in self.dead]  # a dead node's counters died with it
        for node in live:
            self.foreign_owed[node] = self.foreign_owed.get(node, 0) + foreign[node]
        yield from self._send_foreign(live)

    def _send_foreign(self, nodes: list[int]):
        sent = {node: self.foreign_owed[node] for node in nodes if node in self.foreign_owed}
        if not sent:
            return
        try:
            yield [Call(node_dest(node), mm.StatAdd(counter="numa_foreign", node=self.node_id,
                                                    incarnation=self.incarnation, total=total))
                   for node, total in sent.items()]
        except NumaEmuError:
            # which of the batch failed is not known: all are sent again (a total counts once)
            self.foreign_unsent.update(node for node in sent if node not in self.dead)
        else:
            for node, total in sent.items():  # confirmed, unless the total grew meanwhile
                if self.foreign_owed.get(node, 0) <= total:
                    self.foreign_unsent.discard(node)

    def retry_foreign(self):
        """Send again the numa_foreign totals a node did not confirm (add_foreign); how many
        nodes are left unconfirmed."""
        yield from self._send_foreign(sorted(self.foreign_unsent))
        return len(self.foreign_unsent)

    def take_foreign(self, sender: int, incarnation: int, total: int) -> int:
        """stat.add: `sender`'s running numa_foreign total for this node. What it grew by since
        the highest total seen of that incarnation is added: a duplicate, a late copy or a re-send
        adds nothing. A later incarnation (the sender restarted) starts again from zero; an
        earlier one is a copy from before the restart: ignored. How many pages were added."""
        seen_incarnation, seen = self.foreign_seen.get(sender, (-1, 0))
        if incarnation < seen_incarnation:
            return 0
        if incarnation > seen_incarnation:
            seen = 0
        grew = max(0, total - seen)
        self.foreign_seen[sender] = (incarnation, max(seen, total))
        self.numastat["numa_foreign"] += grew
        return grew

    def unconfirmed(self) -> bool:
        """Whether a free, a numa_foreign total or the undoing of a timed-out allocation waits for
        a peer's confirmation (retry_frees, retry_foreign, retry_allocs: a node's retry timer runs them)."""
        return bool(self.unfreed or self.foreign_unsent or self.allocs_unsure)

    # ---- allocations by ticket (frame.alloc that timed out) ---------------------------------
    def begin_alloc(self, ticket: list | None) -> AllocTicket | None:
        """The record of the allocation `ticket`, which this node is about to serve; None when it
        must take nothing: undone before it came (or served already: a copy the reactor's
        deduplication no longer knows must not allocate twice), or it has no ticket."""
        if ticket is None or tuple(ticket) in self.alloc_tickets:
            return None
        entry = self.alloc_tickets[tuple(ticket)] = AllocTicket(ticket[0], serving=Future())
        while len(self.alloc_tickets) > ALLOC_TICKETS_KEPT:
            self.alloc_tickets.popitem(last=False)
        return entry

    def end_alloc(self, entry: AllocTicket, frames: list[int]) -> None:
        """The allocation `entry` took `frames` (it may be undone now: undo_allocs waited for this)."""
        entry.frames, entry.gens = frames, [self.pool.generation[f] for f in frames]
        serving, entry.serving = entry.serving, None
        serving.set_result(None)
        if entry.requester in self.dead:  # its requester died while it was served
            self._drop_unused(entry)

    def undo_allocs(self, tickets: list):
        """frame.alloc.undo: free what each allocation took here, once (one being served is waited
        for); one not come yet is remembered as undone (begin_alloc refuses it). Per ticket, how
        many frames it had taken."""
        out = []
        for ticket in tickets:
            key = tuple(ticket)
            entry = self.alloc_tickets.get(key)
            if entry is None:
                entry = self.alloc_tickets[key] = AllocTicket(ticket[0])
            elif entry.serving is not None:
                yield entry.serving
            if not entry.undone:
                entry.undone = True
                self.release([f for f, g in zip(entry.frames, entry.gens)
                              if self.pool.state[f] == USED and self.pool.generation[f] == g])
            out.append(len(entry.frames))
        return out

    def retry_allocs(self):
        """Undo the allocations whose frame.alloc timed out (alloc_on), one frame.alloc.undo per
        node, until that node answers or dies; each counts the numa_foreign its numa_miss owes,
        as an allocation freed at once. How many are left."""
        for node in [n for n in self.allocs_unsure if n in self.dead]:
            del self.allocs_unsure[node]
        sent = {n: dict(t) for n, t in self.allocs_unsure.items()}
        if sent:
            try:
                replies = yield [Call(node_dest(n), mm.FrameAllocUndo(tickets=[list(t) for t in tickets]))
                                 for n, tickets in sent.items()]
            except NumaEmuError:
                pass  # the next turn sends them all again: an undo counts once
            else:
                foreign: collections.Counter[int] = collections.Counter()
                for (node, tickets), reply in zip(sent.items(), replies):
                    left = self.allocs_unsure.get(node, {})
                    for (ticket, preferred), taken in zip(tickets.items(), reply.allocated):
                        left.pop(ticket, None)
                        if taken and node != preferred:
                            foreign[preferred] += int(taken)
                    if not left:
                        self.allocs_unsure.pop(node, None)
                yield from self.add_foreign(foreign)
        return sum(len(t) for t in self.allocs_unsure.values())

    def free_allocated(self, got: list[tuple[int, int, int]]):
        """Free frames as alloc_on and allocate return them, [(node, frame, generation)], that
        were not used (each once, by its generation, however often the free is sent)."""
        by_node: dict[int, list[int]] = {}
        gens: dict[int, list[int]] = {}
        for node, frame, gen in got:
            by_node.setdefault(node, []).append(frame)
            gens.setdefault(node, []).append(gen)
        yield from self.free_frames(by_node, generations=gens)

    def free_frames(self, by_node: dict[int, list[int]], zap_cause: str | None = None,
                    generations: dict[int, list[int]] | None = None):
        """Free frames wherever they are (local now, remote with frame.free). With their
        `generations` (per node, one per frame), a remote free that fails (a partition, a node
        too slow) is kept and sent again by `retry_frees` until that node answers or dies: each
        frame is freed once, whichever copy arrives (the generation moved on after the first)."""
        calls = []
        for node, frames in by_node.items():
            if not frames:
                continue
            if node == self.node_id:  # direct: a local free cannot fail, and needs no retry bookkeeping
                self.release(frames, zap_cause)
            else:
                gens = generations.get(node) if generations is not None else None
                calls.append(Call(node_dest(node), mm.FrameFree(frames=frames, zap_cause=zap_cause, generations=gens)))
        if calls:
            try:
                yield calls
            except NumaEmuError:
                # a dead node's frames died with it; the others' are freed later (every free of
                # this batch sent again: those done already are skipped by their generation)
                for call in calls:
                    node, msg = node_of(call.dest), call.request
                    if node not in self.dead and msg.generations is not None:
                        self.unfreed.setdefault(node, {}).update(zip(msg.frames, msg.generations))

    def retry_frees(self):
        """Send again the frees that failed (free_frames), one frame.free per node; those a node
        answered are done, those of a dead node died with it (node_died). How many are left."""
        for node in [n for n in self.unfreed if n in self.dead]:
            del self.unfreed[node]
        sent = {n: dict(frames) for n, frames in self.unfreed.items()}
        if sent:
            try:
                yield [Call(node_dest(n), mm.FrameFree(frames=list(f), generations=list(f.values())))
                       for n, f in sent.items()]
            except NumaEmuError:
                pass  # the next turn sends them all again; those done are skipped by generation
            else:
                for node, frames in sent.items():  # others may have failed meanwhile: kept
                    left = self.unfreed.get(node, {})
                    for f, g in frames.items():
                        if left.get(f) == g:
                            del left[f]
                    if not left:
                        self.unfreed.pop(node, None)
        return sum(len(f) for f in self.unfreed.values())

    def purge_task(self, task_id: int) -> int:
        """Free every frame task `task_id` held here (its home node died); how many."""
        frames = sorted(self.task_frames.get(task_id, ()))
        if frames:
            self.release(frames)
        return len(frames)

    def dead_error(self, node: int, what: str, why: str | None = None) -> NumaEmuError:
        """The error of an access to `what` (a page), whose frame was on dead node `node`."""
        why = why or self.dead.get(node, "gone")
        return NumaEmuError(ErrorCode.EIO, f"node {node} is dead ({why}): {what} was there and is lost")

    # ---- direct writes of shared pages (docs/design.md#direct-access) ----------------------
    def grant_direct_write(self, frame: int, holder: object, revoke: Callable[[], None], take: bool) -> bool:
        """May `holder` (a task's mapping) write `frame`, a shared master here, directly? With
        `take` (it just wrote the page) the frame's grant moves to it from any other holder (taken
        back by its `revoke`: the entry cleared, its write lock tried); without, it keeps the grant
        only if it holds it already. Not granted while an earlier holder may still be inside a
        write (the frame held: its half of the version is its own until it lets go)."""
        current = self.direct_writers.get(frame)
        if current is not None and current[0] != holder:
            if not take:
                return False
            self.revoke_direct_write(frame)
        elif current is None and not take:
            return False
        if self.pool.is_held(frame):
            return False
        self.direct_writers[frame] = (holder, revoke)
        return True

    def revoke_direct_write(self, frame: int) -> None:
        """No task writes `frame` directly from now on (a write still in flight is sent again by
        its task as a message: its entry moved)."""
        current = self.direct_writers.pop(frame, None)
        if current is not None:
            current[1]()

    def write_local(self, frame: int, offset: int, data: bytes) -> None:
        """Write this node's `frame`, its direct writer's grant taken back first: the node and
        a task never write a frame's bytes (or halves of its version) at the same time."""
        if frame in self.direct_writers:
            self.revoke_direct_write(frame)
        self.pool.write(frame, offset, data)

    def read_local(self, frame: int, offset: int = 0, length: int | None = None):
        """Read this node's `frame` (a generator): never the middle of a direct write by the
        task that holds its grant. A write that stays under way (its task descheduled or
        stopped inside it) is waited for a while, then the grant is taken back and the bytes
        read as they are: the write is in flight, and its task sends it again by message."""
        for _ in range(_STABLE_WAITS):
            if frame not in self.direct_writers:
                break
            data = self.pool.read_stable(frame, offset, length)
            if data is not None:
                return data
            yield Sleep(_STABLE_WAIT_S)
        self.revoke_direct_write(frame)
        return self.pool.read(frame, offset, length)

    # ---- frames by reference (node, frame, generation) ---------------------------------
    def read_frame(self, node: int, frame: int, gen: int, offset: int = 0, length: int | None = None):
        """The bytes of a frame anywhere; ESTALE if its generation moved on (freed since; None:
        not checked). This node's frames are read directly: the access path of every task."""
        length = self.page_size - offset if length is None else length
        if node == self.node_id:
            self.check_generation(frame, gen)
            if frame in self.direct_writers:
                return (yield from self.read_local(frame, offset, length))
            return self.pool.read(frame, offset, length)
        reply = yield Call(node_dest(node), mm.FrameRead(frame=frame, offset=offset, length=length, generation=gen))
        return reply.data

    def write_frame(self, node: int, frame: int, gen: int, offset: int, data: bytes,
                    master_of: tuple[str, int] | None = None, directory: int = -1):
        """`master_of`: with these bytes the frame becomes that page's master (a move's target,
        refused once the move's `directory` is known dead: the source keeps the page)."""
        if node == self.node_id:
            self.become_master(frame, gen, master_of, directory)
            self.write_local(frame, offset, data)
            return
        yield Call(node_dest(node), mm.FrameWrite(frame=frame, offset=offset, data=data, generation=gen,
                                                  master_of=list(master_of) if master_of else None,
                                                  directory=directory))

    def become_master(self, frame: int, gen: int | None, master_of: tuple[str, int] | None, directory: int) -> None:
        """Before a write into `frame`: its generation checked, and with `master_of` the frame made
        that page's master (and page cache or shm, as `master_kwargs` says: a frame allocated
        before its page's lock was not, so reclaim never picked it), unless the move's directory
        is known dead: then the frame, allocated for that move alone, is freed, and ESTALE."""
        self.check_generation(frame, gen)
        if master_of is None:
            return
        if directory in self.dead:
            self.release([frame])
            raise NumaEmuError(ErrorCode.ESTALE, f"frame {frame} of node {self.node_id}: the move of "
                                                 f"{master_of[0]}:{master_of[1]} died with node {directory}")
        self.master_frames[frame] = master_of
        kind = self.master_kwargs(*master_of)
        if "cache_of" in kind:
            self.cache_frames[frame] = master_of
        elif "shm_of" in kind:
            self.shm_frames[frame] = master_of

    def copy_frame(self, frame: int, gen: int | None, dst: int, dst_frame: int, dst_gen: int | None,
                   free: bool = False, dst_master_of: tuple[str, int] | None = None, directory: int = -1):
        """The one page-copy path (frame.copy): this node's frame into `dst_frame` on node `dst`,
        read once and sent once. `free`: a migration: from the copy on, an access still in flight
        to the frame gets ESTALE (and faults again, to find the page where the move put it); the
        frame is freed once the copy landed, and serves again if the copy failed (its target died).
        `dst_master_of`: the target becomes that page's master with the bytes, not before: a
        master a directory's survivors announce always holds its page. A move whose `directory`
        died meanwhile keeps the source frame: it was, or will be, announced as the master (the
        new home frees whichever of the two it does not take)."""
        if not 0 <= frame < self.pool.frames or not 0 <= dst < self.n_nodes:
            raise NumaEmuError(ErrorCode.EINVAL, f"frame.copy: no frame {frame} on node {self.node_id} or no node {dst}")
        self.check_generation(frame, gen)
        data = self.pool.read(frame)
        if not free:
            yield from self.write_frame(dst, dst_frame, dst_gen, 0, data, dst_master_of, directory)
            return
        self.moving_out.add(frame)
        try:
            yield from self.write_frame(dst, dst_frame, dst_gen, 0, data, dst_master_of, directory)
        finally:
            self.moving_out.discard(frame)
        if directory not in self.dead:
            self.release([frame])

    def abort_move(self, frame: int, gen: int, master_of: tuple[str, int]) -> bool:
        """frame.move_abort: True if a move's copy landed here (the frame is `master_of`'s master:
        kept); else the frame, still of generation `gen`, is freed now, so that a copy arriving
        later is refused (ESTALE) and its source keeps the page."""
        self.pool.check(frame)
        if self.master_frames.get(frame) == master_of and self.pool.generation[frame] == gen:
            return True
        if self.pool.state[frame] == USED and self.pool.generation[frame] == gen:
            self.release([frame])
        return False

    def move_landed(self, node: int, frame: int, gen: int, master_of: tuple[str, int]):
        """Whether a copy that made `frame` of `node` the master of `master_of` (a move's, or a
        fill's frame.write) landed, its call having failed or gone unanswered: then that node
        keeps the frame as the master; else the frame is freed there. Asked until the node
        answers (found by `numa-emu sim run shm-move-race --seed 233 --partition`: a copy whose
        answer was cut off was taken for a failure, and the entry kept the source frame, freed
        once the copy landed). A dead node: not landed, as far as anyone can tell; its frames
        died with it."""
        if node == self.node_id:
            return self.abort_move(frame, gen, master_of)
        while node not in self.dead:
            try:
                reply = yield Call(node_dest(node), mm.FrameMoveAbort(frame=frame, generation=gen,
                                                                       master_of=list(master_of)))
                return reply.landed
            except NumaEmuError as exc:
                if exc.code not in (ErrorCode.ENODEV, ErrorCode.ETIMEDOUT, ErrorCode.EIO):
                    raise
            yield Sleep(PEER_RETRY_MAX_S)
        return False

    def check_generation(self, frame: int, gen: int | None) -> None:
        if frame in self.moving_out:
            raise NumaEmuError(ErrorCode.ESTALE, f"frame {frame} of node {self.node_id} is being migrated away")
        if gen is not None and self.pool.generation[frame] != gen:
            raise NumaEmuError(ErrorCode.ESTALE, f"frame {frame} of node {self.node_id} was freed since it was mapped")

    def vmstat(self) -> dict[str, int]:
        # The kernel's nr_file_pages counts shmem too (it is page cache); anon pages are the rest
        # of the used frames (a frame being filled for a replica counts there for an instant).
        file_pages = len(self.replica_frames) + len(self.cache_frames) + len(self.shm_frames)
        out = {"nr_free_pages": self.pool.free, "nr_total_pages": self.pool.frames,
               "nr_anon_pages": self.pool.frames - self.pool.free - file_pages - self.pool.held,
               "nr_file_pages": file_pages, "nr_shmem": len(self.shm_frames),
               "nr_repl_pages": len(self.replica_frames),
               "nr_direct_held": self.pool.held}  # freed, kept from reuse while a direct write may reach them
        out.update(self.events)
        return out
