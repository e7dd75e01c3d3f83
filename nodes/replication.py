"""The replicated page cache, directory side: how a shared page's entry changes under its lock
(docs/protocol.md#replication, #collapse; docs/linux-semantics.md#replication-state-machine, the 2007 patch's).

- read: the master is allocated by the reader's policy on first touch (file pages are loaded from
  the store); a clean page-cache page whose master is on another node gets a replica on the
  reader's node (allocated there only, copied owner -> reader once), unless the page is dirty,
  backing off, or the reader's node has no free frame (then the master is used, no error).
  When the reader offered a frame, its bytes reach it in as few messages as the directory's place
  allows (_replicate): on the directory's answer when the directory owns the master, pulled by
  the directory when it is the reader's node, else sent by the owner straight to the reader as
  the answer to its read (repl.copy -> repl.fill, a forwarded reply), the acknowledgements coming
  back here off the reader's path with the entry locked until then. A copy that fails is shot
  down on the reader, which may have mapped it already (cause "copyfail"), and the master is used.
- write (the collapse): every home node mapping a replica gets a shootdown, and only after every
  acknowledgement are the replicas freed; then the writer maps the master writable.
- Writeback write-protects the writers first (page_mkclean), so the next write faults and dirties
  the page again; replication of a clean page write-protects any writer left likewise.
- A replica zapped younger than the thrash window backs replication of that page off for a
  cooldown that doubles on every repeat. Replica lifetimes feed a histogram.
- Unsafe mode (--unsafe-unreplicate) replays the 2007 ordering on purpose: the replicas are
  cleared from the entry without the lock, freed at once, and the unmaps are sent later without
  waiting, so a task can still read through its stale mapping (caught by the frame generation).

Every copy change bumps the entry's epoch; shootdowns carry it, so a home node can discard an
answer that a shootdown overtook (replies and shootdowns travel on different sockets).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

from numa_emu.nodes.core import NodeCore, directory_home
from numa_emu.nodes.directory import DirEntry, Directory
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.placement import place
from numa_emu.nodes.store import FILE_PREFIX, store_name
from numa_emu.protocol.costmodel import SHOOTDOWN_NS
from numa_emu.protocol.effects import Call, Future, Sleep, Spawn
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.policy import Policy
from numa_emu.protocol.routing import node_dest, node_of
from numa_emu.protocol.timing import PEER_CALL_TIMEOUT_S, PEER_RETRY_MAX_S

SHOOTDOWN_RETRY_S = PEER_RETRY_MAX_S  # a silent node's shootdown is sent again after this pause


@dataclass
class ReplicationTunables:
    """The replicated page cache's switches (sysctl vm.pagecache_replication*)."""

    enabled: bool = True
    mode: str = "all"  # all | no-writers | exec-only (the filters proposed in the 2007 thread)
    backoff: bool = True
    thrash_window_ns: int = 1_000_000_000  # a replica zapped younger than this was thrashing
    cooldown_ns: int = 1_000_000_000  # first back-off; doubles on every repeat
    unsafe_unreplicate: bool = False  # the 2007 ordering: no lock, free at once, unmap later
    unsafe_unmap_delay_ns: int = 100_000_000


def lifetime_bucket(ns: int) -> str:
    """Histogram bucket of a replica lifetime: powers of two of milliseconds."""
    ms = ns / 1e6
    edge = 1
    while ms >= edge and edge < 2 ** 20:
        edge *= 2
    return f"<{edge}ms"


class Replication:
    def __init__(self, core: NodeCore, directory: Directory, files: FileTable, tunables: ReplicationTunables):
        """`files`: the file table (writeback writes up to a file's size); `tunables`: the
        switches sysctl sets, shared with the memory manager's replication filters."""
        self.core = core
        self.dir = directory
        self.files = files
        self.tunables = tunables
        self.lifetimes: collections.Counter[str] = collections.Counter()  # replica lifetimes, by lifetime_bucket
        # The rebuild of a dead node's entries (docs/protocol.md#a-nodes-death, 3.): the dead node
        # -> the live nodes whose dir.rebuild has not come yet; the senders of those that came
        # before this node heard of the death; and what waiting accesses wait for (any change).
        self.rebuilding: dict[int, set[int]] = {}
        self.announced: dict[int, set[int]] = {}
        self._changed = Future()

    def handlers(self) -> dict:
        return {"dir.read": self.read, "dir.write": self.write, "dir.writeback": self.writeback,
                "dir.truncate": self.truncate, "dir.reclaim": self.reclaim, "dir.rebuild": self.rebuild}

    def _check(self, msg) -> None:
        n = self.core.n_nodes
        if not (0 <= msg.mapper < n and 0 <= msg.task_node < n) or msg.idx < 0 or not msg.obj:
            raise NumaEmuError(ErrorCode.EINVAL, f"{msg.kind}: bad node, page index or object")

    def lock_entry(self, obj: str, idx: int):
        """The entry of (obj, idx), locked; a fresh one if a truncate dropped it while we waited."""
        while True:
            entry = self.dir.entry(obj, idx)
            yield from entry.lock.acquire()
            if self.dir.entries.get((obj, idx)) is entry:
                return entry
            entry.lock.release()

    # ---- the two accesses ---------------------------------------------------------------
    def read(self, msg: pc.DirRead):
        self._check(msg)
        yield from self.settled(msg.obj, msg.idx)
        return (yield from self._with_new_frame(self._read, msg))

    def _with_new_frame(self, access, msg):
        """`access(msg, entry)` under the page's lock, its master in place (_lock_with_master:
        a frame that had to be reclaimed for is allocated with the lock let go, as Linux
        allocates a folio before it adds it to the page cache locked, so a reclaim's round
        trips do not hold the page's other accesses up); that frame is freed once the lock is
        let go if the page had its master meanwhile."""
        early: list = []
        try:
            entry = yield from self._lock_with_master(msg, early)
            try:
                reply = yield from access(msg, entry)
            finally:
                entry.lock.release()
        except NumaEmuError:
            yield from self._free_unused(early)
            raise
        yield from self._free_unused(early)
        return reply

    def _free_unused(self, early: list):
        yield from self.core.free_allocated(early)
        early.clear()

    def _read(self, msg: pc.DirRead, entry: DirEntry):
        cost, data, short = 0, None, False
        h = msg.mapper
        if (msg.replicate and msg.obj.startswith(FILE_PREFIX) and entry.node != h and h not in entry.replicas):
            spare = (msg.frame, msg.generation) if msg.frame is not None else None
            if spare is None:  # wanted, if the page may have one: h reclaims first, without this lock
                short = self._may_replicate(entry)
            else:
                cost, data = yield from self._replicate(msg.obj, msg.idx, entry, h, spare)
        node, frame, gen, replica = entry.copy_of(h)
        entry.mappers[h] = node
        return pc.DirPageReply(node=node, frame=frame, generation=gen, replica=replica, epoch=entry.epoch,
                               cost_ns=cost, data=data, short=short)

    def write(self, msg: pc.DirWrite):
        self._check(msg)
        yield from self.settled(msg.obj, msg.idx)
        entry = self.dir.entry(msg.obj, msg.idx)
        if self.tunables.unsafe_unreplicate and entry.replicas:
            yield from self._collapse_unsafe(msg.obj, msg.idx, entry, "write")  # before (without) the lock
        return (yield from self._with_new_frame(self._write, msg))

    def _write(self, msg: pc.DirWrite, entry: DirEntry):
        cost = 0
        if entry.replicas:
            cost = yield from self.collapse(msg.obj, msg.idx, entry, "write")
        entry.writers.add(msg.mapper)
        entry.mappers[msg.mapper] = entry.node
        entry.dirty = True
        entry.version += 1
        return pc.DirPageReply(node=entry.node, frame=entry.frame, generation=entry.gen, replica=False,
                               epoch=entry.epoch, cost_ns=cost)

    def _lock_with_master(self, msg, early: list):
        """The entry of msg's page, locked, after bury, with its master. When every node the
        policy allows is full, the lock is let go while a frame is allocated with reclaim (into
        `early`), then taken again: the page may have its master by then (the frame is left in
        `early`, to be freed), else the frame becomes it."""
        allocated = False
        while True:
            entry = yield from self.lock_entry(msg.obj, msg.idx)
            try:
                yield from self._survive(msg.obj, msg.idx, entry)
                if entry.node >= 0 or (yield from self._ensure_master(msg, entry, early, allocated)):
                    return entry
            except BaseException:
                entry.lock.release()
                raise
            entry.lock.release()
            early += yield from self._master_frame(msg, reclaim=True)
            allocated = True

    def _master_frame(self, msg, reclaim: bool, data: bytes | None = None, master: bool = False):
        """A frame for the master of msg's page on the first node of its policy's order that has
        one, `reclaim`ing there if all are full: [(node, frame, generation)] or []. Without
        `master`, a plain frame, not yet the page's master nor page cache (_ensure_master makes it
        so with the bytes): the survivors of this directory announce a node's masters, and must
        never announce one allocated while the page's lock was let go, and reclaim must not pick
        it (it would find its page elsewhere, or absent, and free nothing)."""
        c = self.core
        placement = place(Policy.from_wire(msg.policy), task_node=msg.task_node,
                          allowed=frozenset(msg.allowed) & c.possible, fallback_orders=c.fallback,
                          interleave_index=msg.interleave_index, weights=c.weights)
        kind = c.master_kwargs(msg.obj, msg.idx) if master else {}
        return (yield from c.allocate(placement, 1, msg.task_node, data=data, walks=(reclaim,), **kind))

    def _ensure_master(self, msg, entry: DirEntry, early: list, allocated: bool):
        """Under the lock, the page absent: its master, holding the page's bytes (from the store
        for a file page) before anyone can name it. A frame without reclaim (a reclaim's round
        trips would hold the page's other accesses up: Linux allocates a folio before it locks
        it in the page cache), or the one `early` holds, allocated with reclaim while the lock
        was let go. False: none without reclaim, and none allocated yet."""
        c = self.core
        data = None
        if msg.obj.startswith(FILE_PREFIX) and c.store is not None:  # reclaimable: the store has it
            # before any frame is taken: a read through the coordinator (a node of another host) may fail
            data = yield from c.store.read_page(msg.obj, msg.idx)
        data = data if data is not None and any(data) else None
        if early:
            got = yield from self._fill_early(msg, early.pop(), data)
        else:
            # The bytes ride on the allocation: a frame its node counts as the page's master holds
            # the page from the start, so the survivors of this directory never announce an empty one.
            got = yield from self._master_frame(msg, reclaim=False, data=data, master=True)
            if not got and not allocated:
                return False
        if not got:
            raise NumaEmuError(ErrorCode.ENOMEM, f"no node the policy allows has a free frame for {msg.obj}:{msg.idx}")
        if msg.obj.startswith(FILE_PREFIX) and c.store is not None:
            c.events["pgpgin"] += c.page_size // 1024  # KiB read in, as the kernel counts it
        entry.node, entry.frame, entry.gen = got[0]
        return True

    def _fill_early(self, msg, early: tuple[int, int, int], data: bytes | None):
        """The frame allocated with the lock let go made the page's master, with its bytes at
        once on its node (frame.write master_of): [(node, frame, generation)]. If its node died or
        did not answer, whether the write landed decides (asked until it answers); if it did not,
        another frame is allocated, without reclaim, the lock held: [] if none."""
        c = self.core
        node, frame, gen = early
        master_of = (msg.obj, msg.idx)
        try:
            yield from c.write_frame(node, frame, gen, 0, data or b"", master_of, c.node_id)
        except NumaEmuError as exc:
            if exc.code not in (ErrorCode.ENODEV, ErrorCode.ETIMEDOUT, ErrorCode.EIO):
                raise
            if not (yield from c.move_landed(node, frame, gen, master_of)):
                return (yield from self._master_frame(msg, reclaim=False, data=data, master=True))
        return [early]

    # ---- a node's death (docs/protocol.md#a-nodes-death) --------------------------------
    def bury(self, obj: str, idx: int, entry: DirEntry):
        """Under the entry's lock: forget the copies and mappings on dead nodes. A master that
        died leaves the page absent (its next access reads the store); if it was dirty, the
        entry remembers the loss for the next access to report (lost_with)."""
        c = self.core
        dead = c.dead
        if not dead:
            return
        for r in [r for r in entry.replicas if r in dead]:
            del entry.replicas[r]
            entry.born_ns.pop(r, None)
        for h in [h for h in entry.mappers if h in dead]:
            del entry.mappers[h]
        entry.writers.difference_update(dead)
        if entry.node < 0 or entry.node not in dead:
            return
        if entry.dirty:
            entry.lost_with = entry.node
            c.events["pglost_dirty"] += 1
        c.events["pglost_master"] += 1
        if entry.replicas:  # copies of a clean page: dropped too, the store is the one source again
            yield from self.collapse(obj, idx, entry, "nodedeath")
        targets = [(h, node, entry.frame) for h, node in entry.mappers.items() if node == entry.node]
        if targets:  # mappings of the dead frame: they fault again
            yield from self.shootdown(obj, idx, entry, targets, False, "nodedeath")
        entry.node, entry.dirty = -1, False
        entry.writers.clear()
        entry.mappers.clear()

    def _survive(self, obj: str, idx: int, entry: DirEntry):
        """Before an access: bury dead copies, and report a dirty page lost with its node, once
        (as Linux reports a writeback error once); afterwards the page reads the store."""
        yield from self.bury(obj, idx, entry)
        if entry.lost_with >= 0:
            node, entry.lost_with = entry.lost_with, -1
            what = f"file {store_name(obj)!r}" if obj.startswith(FILE_PREFIX) else obj
            raise NumaEmuError(ErrorCode.EIO, f"page {idx} of {what} was written and not synced when node {node} "
                                              f"died ({self.core.dead.get(node, 'gone')}); it is lost, and reads "
                                              "now give the stored bytes")

    def node_died(self, node: int):
        """Bury every entry of this shard that had a copy or a mapping on `node` (dead now)."""
        for (obj, idx), entry in list(self.dir.entries.items()):
            if entry.node != node and node not in entry.replicas and node not in entry.mappers:
                continue
            if (obj, idx) not in self.dir.entries:
                continue  # truncated while an earlier one was buried
            entry = yield from self.lock_entry(obj, idx)
            try:
                yield from self.bury(obj, idx, entry)
            finally:
                entry.lock.release()

    def expect_rebuild(self, node: int, held_shard: bool) -> None:
        """`node` is dead (core.dead holds it): if it held a directory shard and this node can
        inherit some of its pages, wait for every live node's announcement (dir.rebuild) before
        serving them; a node that died cannot announce any more."""
        c = self.core
        for waiting in self.rebuilding.values():
            waiting.discard(node)
        early = self.announced.pop(node, set())
        if held_shard and c.node_id not in c.shardless:
            self.rebuilding[node] = {n for n in range(c.n_nodes) if n not in c.dead} - early
        self._wake()

    def rebuild_deadline(self, node: int):
        """An announcement that has not come a peer call's deadline after this node heard of
        `node`'s death never will (its call failed): the pages are served with what came."""
        yield Sleep(PEER_CALL_TIMEOUT_S)
        if self.rebuilding.pop(node, None):
            self._wake()

    def _wake(self) -> None:
        for node in [n for n, waiting in self.rebuilding.items() if not waiting]:
            del self.rebuilding[node]
        changed, self._changed = self._changed, Future()
        changed.set_result(None)

    def settled(self, obj: str, idx: int):
        """Before an access to (obj, idx): wait while its entry may be half rebuilt. A page whose
        home died is served here once every survivor announced what it holds of it (else a
        copy not yet announced would miss the next collapse, and a write would leave it stale);
        a page whose home is another node by what this node knows, and would be this one were
        that node dead, comes from a node that heard of that death first: wait to hear of it too."""
        c = self.core
        while True:
            pending = {n for n, waiting in self.rebuilding.items() if waiting}
            home = directory_home(obj, idx, c.n_nodes, c.shardless)
            if home != c.node_id:
                heard_first = directory_home(obj, idx, c.n_nodes, c.shardless | {home}) == c.node_id
            else:
                heard_first = False
            if not heard_first and not (pending and directory_home(obj, idx, c.n_nodes, c.shardless - pending)
                                        in pending):
                return
            yield self._changed

    def rebuild(self, msg: pc.DirRebuild):
        """The survivors' announcements of the pages whose directory home died and is now this
        node: each sender's mapping (the master or its replica), and the replica and master
        frames it holds. The master is the copy held or mapped; dirty if any sender maps it
        writable (writeback write-protects, so a writable mapping means a write since) or if
        only its own node announced it (unknown: written back again). An entry made meanwhile
        by a fresh access wins: announced copies that differ from it are unmapped and freed."""
        c = self.core
        sender = msg.sender
        records = [self._record(rec) for rec in msg.records]  # all checked before any is applied
        if not 0 <= sender < c.n_nodes:
            raise NumaEmuError(ErrorCode.EINVAL, f"dir.rebuild: no node {sender}")
        for rec in records:
            obj, idx, node, frame, gen = rec["obj"], rec["idx"], rec["node"], rec["frame"], rec["gen"]
            entry = yield from self.lock_entry(obj, idx)
            try:
                if entry.node < 0 and not entry.replicas:
                    entry.rebuilt = True
                if node in c.dead and rec["writable"] and not rec["replica"] and entry.node < 0:
                    if entry.lost_with < 0:  # a master written since its last writeback died with its directory
                        c.events["pglost_dirty"] += 1
                    entry.lost_with = node
                if not entry.rebuilt or node in c.dead:
                    if node not in c.dead and (node, frame) != (entry.node, entry.frame):
                        yield from self.shootdown(obj, idx, entry, [(sender, node, frame)], False, "rebuild",
                                                   free=rec["replica"])
                        if not rec["replica"] and node == sender:  # a master the fresh entry replaced
                            yield from c.free_frames({node: [frame]})
                    continue
                if rec["replica"]:
                    entry.replicas[node] = (frame, gen)
                    entry.born_ns[node] = c.clock_ns()
                elif entry.node < 0:
                    entry.node, entry.frame, entry.gen = node, frame, gen
                elif node == sender and not rec["mapped"] and (node, frame) != (entry.node, entry.frame):
                    # the other end of a move that died with the directory (both hold the bytes)
                    yield from c.free_frames({node: [frame]})
                    continue
                if rec["mapped"]:
                    entry.mappers[sender] = node
                    if rec["writable"] and not rec["replica"]:
                        entry.writers.add(sender)
                        entry.dirty = True
                elif not rec["replica"]:  # a master its own node announced: whether it was written since
                    entry.dirty = True  # its last writeback died with the directory; written back again
                c.events["dir_rebuilt"] += 1
            finally:
                entry.lock.release()
        if 0 <= msg.dead < c.n_nodes:  # this survivor's copies are all in: the pages may be served
            if msg.dead in self.rebuilding:
                self.rebuilding[msg.dead].discard(sender)
            elif msg.dead not in c.dead:  # came before this node heard of the death
                self.announced.setdefault(msg.dead, set()).add(sender)
            self._wake()
        return Ok()

    def _record(self, rec) -> dict:
        """One dir.rebuild record, checked: EINVAL for anything else."""
        ints = ("idx", "node", "frame", "gen")
        if (not isinstance(rec, dict) or not isinstance(rec.get("obj"), str) or not rec["obj"]
                or not all(isinstance(rec.get(k), int) and not isinstance(rec.get(k), bool) for k in ints)
                or not all(isinstance(rec.get(k), bool) for k in ("replica", "mapped", "writable"))
                or rec["idx"] < 0 or not 0 <= rec["node"] < self.core.n_nodes or rec["frame"] < 0):
            raise NumaEmuError(ErrorCode.EINVAL, "dir.rebuild: a record needs obj, idx, node, frame, gen, replica, "
                                                 f"mapped and writable, got {str(rec)[:100]}")
        return rec

    # ---- replicate ----------------------------------------------------------------------
    def _may_replicate(self, entry: DirEntry) -> bool:
        """Whether the page may get a replica now: clean, and not backing off (counted)."""
        if entry.dirty:
            return False
        if self.tunables.backoff and self.core.clock_ns() < entry.backoff_until_ns:
            self.core.events["repl_backoff_skips"] += 1
            return False
        return True

    def _replicate(self, obj: str, idx: int, entry: DirEntry, h: int, spare: tuple[int, int]):
        """A replica of the master on node h, in the frame h offered (`spare`: h allocates it
        before it asks, reclaiming there if full, so no reclaim runs with this page's lock held).
        Returns (its cost in ns, the page's bytes when they are to ride on the answer): (0, None)
        when none was made.

        How the bytes travel (the reader's path, in messages):
        - this node owns the master: on the answer to h's read (h -> D -> h; no other message);
        - this node is h: pulled from the owner with frame.read, the lock held (h -> O -> h);
        - else the owner sends them straight to h (repl.copy, repl.fill: h -> D -> O -> h), and
          the acknowledgements come back here off h's path, the lock held until then."""
        c = self.core
        now = c.clock_ns()
        if not self._may_replicate(entry):
            return 0, None
        cost, ride = 0, None
        if entry.writers:  # a clean page still writably mapped: write-protect it first
            cost += yield from self._write_protect(obj, idx, entry, "replicate")
        frame, gen = spare
        cost += c.cost.copy_ns(entry.node, h)
        try:
            if entry.node == c.node_id:
                ride = c.pool.read(entry.frame)
            elif h == c.node_id:
                data = yield from c.read_frame(entry.node, entry.frame, entry.gen)
                c.check_generation(frame, gen)
                c.pool.write(frame, 0, data)
            else:
                yield from self._forward_copy(obj, idx, entry, h, frame, gen, cost)
        except NumaEmuError:
            # h may hold the bytes and even map them (the fill came, its ack did not): take the
            # mapping and the frame away on h, acknowledged, and use the master.
            yield from self.shootdown(obj, idx, entry, [(h, h, frame)], False, "copyfail", free=True)
            c.events["repl_copy_failed"] += 1
            return cost, None
        # Recorded once the copy is in place (or, riding on the answer, once it is sent), the lock
        # held since the decision: nothing that waits for the lock can see a replica half made.
        # An answer a shootdown overtakes is discarded by h (epochs; its frame is freed there).
        entry.replicas[h] = (frame, gen)
        entry.born_ns[h] = now
        c.events["repl_fetch_bytes"] += c.page_size
        if c.trace.on:
            c.trace.emit("replicate", obj=obj, idx=idx, replica_node=h, frame=frame, master=entry.node)
        return cost, ride

    def _forward_copy(self, obj: str, idx: int, entry: DirEntry, h: int, frame: int, gen: int, cost: int):
        """The bytes go from the master's node straight to h as the answer to h's read (repl.fill;
        h maps the replica on receipt), and come back acknowledged here, the lock held throughout:
        h's path is h -> D -> owner -> h, the acknowledgements are off it."""
        yield Call(node_dest(entry.node), pc.ReplicaCopy(frame=entry.frame, generation=entry.gen, dst=h, obj=obj,
                                                         idx=idx, dst_frame=frame, dst_generation=gen,
                                                         epoch=entry.epoch, cost_ns=cost))

    # ---- shootdowns ---------------------------------------------------------------------
    def shootdown(self, obj: str, idx: int, entry: DirEntry, targets: list[tuple[int, int, int]],
                   write_protect: bool, cause: str, free: bool = False):
        """Drop (or write-protect) the mappings (home node, copy node, copy frame) and wait for
        every acknowledgement; with `free`, each target frees its replica once unmapped. All are
        sent at once; a dead node cannot access anything: its silence counts as an ack, and so
        does the EIO its death gives the call (a replica freed by a target that answered must
        not stay in the entry). A node that is only silent (stopped, cut off by a partition) may
        still map the page: it is asked again until it answers or its death is known, as a TLB
        shootdown waits for every CPU. Returns the cost in ns charged to the access that caused it."""
        c = self.core
        entry.epoch += 1
        calls = []
        for home, node, frame in targets:
            msg = pc.PteShootdown(obj=obj, idx=idx, node=node, frame=frame, write_protect=write_protect,
                                  free=free, cause=cause, epoch=entry.epoch, directory=c.node_id)
            if c.trace.on:
                c.trace.emit("shootdown", obj=obj, idx=idx, target=home, copy_node=node, frame=frame,
                             write_protect=write_protect, cause=cause, phase="sent")
            calls.append(Call(node_dest(home), msg))
        while calls:
            try:
                yield calls  # in parallel; the gather settles every call before it reports a failure
                break
            except NumaEmuError as exc:
                if exc.code not in (ErrorCode.ENODEV, ErrorCode.ETIMEDOUT, ErrorCode.EIO):
                    raise
            # Every target again (a shootdown is idempotent), but for those now known dead (EIO: a
            # death, known here once node.down is served). Found by `numa-emu sim run replication
            # --seed 69 --stop`: a timeout taken for an ack left a writable mapping beside a replica.
            yield Sleep(SHOOTDOWN_RETRY_S)
            calls = [call for call in calls if node_of(call.dest) not in c.dead]
        if c.trace.on:
            c.trace.emit("shootdown", obj=obj, idx=idx, targets=[t[0] for t in targets], cause=cause, phase="acked")
        return SHOOTDOWN_NS * len(targets)

    def _write_protect(self, obj: str, idx: int, entry: DirEntry, cause: str):
        """Downgrade every writable mapping of the master to read-only, acknowledged; its cost."""
        cost = yield from self.shootdown(obj, idx, entry, [(w, entry.node, entry.frame) for w in entry.writers],
                                          write_protect=True, cause=cause)
        entry.writers.clear()
        return cost

    def collapse(self, obj: str, idx: int, entry: DirEntry, cause: str, only: int | None = None):
        """Tear down the replicas (or the one on node `only`): every replica's node unmaps it, then
        frees it, then acknowledges; only after every ack is the entry changed. A replica lives on
        the only home node that maps it, so its free rides on its shootdown."""
        victims = {r: fe for r, fe in entry.replicas.items() if only is None or r == only}
        targets = [(r, r, frame) for r, (frame, _gen) in victims.items()]
        entry.collapsing.update(victims)
        try:
            cost = yield from self.shootdown(obj, idx, entry, targets, False, cause, free=True)
        finally:
            entry.collapsing.difference_update(victims)
        self._forget_replicas(obj, idx, entry, victims, cause)
        return cost

    def _forget_replicas(self, obj: str, idx: int, entry: DirEntry, victims: dict, cause: str) -> None:
        c = self.core
        now = c.clock_ns()
        for r in victims:
            if entry.replicas.get(r) != victims[r]:
                # forgotten already: the unsafe ordering collapses without the lock, so a write's
                # collapse may clear a replica while a locked collapse (a master's move) waits
                # for its shootdowns (found on a real cluster with vm.unsafe_unreplicate=1)
                continue
            del entry.replicas[r]
            if entry.mappers.get(r) == r:
                del entry.mappers[r]
            lifetime = now - entry.born_ns.pop(r, now)
            self.lifetimes[lifetime_bucket(lifetime)] += 1
            if cause == "write" and lifetime < self.tunables.thrash_window_ns and self.tunables.backoff:
                entry.backoff_level += 1
                entry.backoff_until_ns = now + self.tunables.cooldown_ns * 2 ** (entry.backoff_level - 1)
                c.events["pgreplicabackoff"] += 1
            if c.trace.on:
                c.trace.emit("unreplicate", obj=obj, idx=idx, replica_node=r, frame=victims[r][0], cause=cause,
                             lifetime_ns=lifetime, unsafe=self.tunables.unsafe_unreplicate)

    def _collapse_unsafe(self, obj: str, idx: int, entry: DirEntry, cause: str):
        """The 2007 ordering, on purpose: clear the replicas without the lock, free them at once,
        and send the unmaps later without waiting (invariant 1 broken, and nothing else)."""
        # a replica whose locked collapse is under way has its free on its way with the shootdown:
        # freed here too, its frame would be freed twice (seen as "frame N is not in use")
        victims = {r: fe for r, fe in entry.replicas.items() if r not in entry.collapsing}
        targets = [(r, r, frame) for r, (frame, _gen) in victims.items() if entry.mappers.get(r) == r]
        self._forget_replicas(obj, idx, entry, victims, cause)
        yield from self.core.free_frames({r: [frame] for r, (frame, _gen) in victims.items()}, zap_cause=cause)
        yield Spawn(self._late_unmaps(obj, idx, targets, cause))

    def _late_unmaps(self, obj: str, idx: int, targets: list, cause: str):
        yield Sleep(self.tunables.unsafe_unmap_delay_ns / 1e9)
        for home, node, frame in targets:
            msg = pc.PteShootdown(obj=obj, idx=idx, node=node, frame=frame, cause=cause, epoch=0)
            try:
                yield Call(node_dest(home), msg)
            except NumaEmuError:
                pass

    # ---- writeback, truncate, reclaim -------------------------------------------------------
    def writeback(self, msg: pc.DirWriteback):
        c = self.core
        for (obj, idx), entry in self.dir.of_object(msg.obj):
            if not entry.dirty or not obj.startswith(FILE_PREFIX) or entry.node < 0 or c.store is None:
                continue
            yield from entry.lock.acquire()
            try:
                yield from self.bury(obj, idx, entry)  # a dirty master that died is reported lost, not written
                if entry.dirty:
                    yield from self._write_back(obj, idx, entry)
            finally:
                entry.lock.release()
        return Ok()

    def _write_back(self, obj: str, idx: int, entry: DirEntry):
        """Write the dirty master to the store, the entry locked; the page is clean after it."""
        c = self.core
        if entry.writers:  # page_mkclean: the next write must fault and dirty the page again
            yield from self._write_protect(obj, idx, entry, "writeback")
        data = yield from c.read_frame(entry.node, entry.frame, entry.gen)
        state = self.files.get(store_name(obj))
        yield from c.store.write_page(obj, idx, data, state.size if state else (idx + 1) * c.page_size)
        entry.dirty = False
        c.events["pgwriteback"] += 1
        if c.trace.on:
            c.trace.emit("writeback", obj=obj, idx=idx, master=entry.node, frame=entry.frame)

    def truncate(self, msg: pc.DirTruncate):
        while any(self.rebuilding.values()):  # else a copy announced later would outlive the cut
            yield self._changed
        for (obj, idx), entry in self.dir.of_object(msg.obj):
            if idx < msg.first_idx:
                continue
            yield from entry.lock.acquire()
            try:
                yield from self.bury(obj, idx, entry)
                yield from self._drop(obj, idx, entry, "truncate")
            finally:
                entry.lock.release()
        return Ok()

    def _drop(self, obj: str, idx: int, entry: DirEntry, cause: str):
        """Take every copy of the page away, the entry locked: the replicas, then every mapping of
        the master, acknowledged, then the master's frame; the entry is forgotten (its next access
        starts afresh). The number of frames freed."""
        c = self.core
        freed = len(entry.replicas)
        if entry.replicas:
            yield from self.collapse(obj, idx, entry, cause)
        if entry.node >= 0:
            targets = [(h, node, entry.frame) for h, node in entry.mappers.items() if node == entry.node]
            yield from self.shootdown(obj, idx, entry, targets, False, cause)
            yield from c.free_frames({entry.node: [entry.frame]})
            freed += 1
        self.dir.drop(obj, idx, entry)
        entry.node = -1
        return freed

    def reclaim(self, msg: pc.DirReclaim):
        """Drop the pages node `msg.node` chose to reclaim (nodes/reclaim.py), each [obj, idx,
        frame] of that node: its replica alone, or the master with every copy (a dirty master is
        written back first, as kswapd's pageout would). A page whose lock is held, or whose copy
        on that node is no longer that frame, is kept: reclaim takes no lock it would wait for,
        so an allocation that reclaims can never close a cycle of page locks."""
        c = self.core
        if not 0 <= msg.node < c.n_nodes or not isinstance(msg.pages, list):
            raise NumaEmuError(ErrorCode.EINVAL, "dir.reclaim: bad node or page list")
        dropped, freed = [], 0
        for page in msg.pages:
            if (not isinstance(page, list) or len(page) != 3 or not isinstance(page[0], str)
                    or not all(isinstance(v, int) for v in page[1:])):
                raise NumaEmuError(ErrorCode.EINVAL, "dir.reclaim: each page must be [obj, idx, frame]")
            obj, idx, frame = page
            entry = self.dir.entries.get((obj, idx))
            if entry is None or entry.lock.held:  # trylock_page
                continue
            yield from entry.lock.acquire()  # free: taken at once
            try:
                yield from self.bury(obj, idx, entry)
                replica = entry.replicas.get(msg.node, (None, 0))[0] == frame
                if replica:
                    yield from self.collapse(obj, idx, entry, "reclaim", only=msg.node)
                    freed += 1
                elif (entry.node == msg.node and entry.frame == frame and obj.startswith(FILE_PREFIX)
                      and c.store is not None):
                    if entry.dirty:
                        yield from self._write_back(obj, idx, entry)
                        c.events["nr_vmscan_write"] += 1
                    freed += yield from self._drop(obj, idx, entry, "reclaim")
                else:
                    continue
                dropped.append(frame)
            finally:
                entry.lock.release()
        return pc.DirReclaimReply(dropped=dropped, freed=freed)
