"""The page cache as a home node sees it: the shared pages (page-cache and shm) its tasks map,
which copy of each (a local replica or the master), and the reverse map from each page to the
task page-table entries that point at it (docs/protocol.md#read-of-a-shared-page: the home node's side).

A shootdown from a directory removes (or write-protects) every task entry of that copy on this
node before it is acknowledged; since every access of a task is served here, one at a time,
nothing can use the old mapping after the ack (docs/design.md#tasks). Answers of the directory carry
the entry's epoch and shootdowns the epoch they start: an answer older than a shootdown already
seen here is stale (the two travel on different sockets) and the access asks again.

A read that offers a spare frame for a replica takes the first answer to arrive: the bytes of
the replica sent straight by the master's node (repl.fill, a forwarded reply: the directory holds
the page lock until that copy is acknowledged) or the directory's own answer (the master, a
replica made earlier, or a new replica whose bytes it pulled into the spare or carries itself).
A fill is taken only into the exact frame and generation still waiting for that page; anything
else is refused with ESTALE and changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from numa_emu.nodes.core import NodeCore, directory_home
from numa_emu.protocol.effects import Call, Future, Spawn
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.routing import node_dest

Key = tuple[str, int]
# A shared page's frame can be freed under a mapping between its fault and its access (a
# migration or a truncate moved it): the access faults again. A kernel retries such faults for as
# long as it takes; we stop with ESTALE after this many, so a page that never settles cannot hang
# its task (a page migrated back and forth every few ms needs two or three).
STALE_RETRIES = 32


@dataclass
class CachedPage:
    node: int
    frame: int
    gen: int
    writable: bool
    replica: bool


class PageCacheView:
    def __init__(self, core: NodeCore, tasks: dict):
        """`tasks`: this node's tasks by id (nodes.mm.TaskState), shared with the memory manager:
        a shootdown unmaps their page-table entries."""
        self.core = core
        self.tasks = tasks
        self.pages: dict[Key, CachedPage] = {}
        self.rmap: dict[Key, set[tuple[int, int]]] = {}  # page -> {(task id, page-aligned vaddr)}
        self.seen_epoch: dict[Key, int] = {}
        self.spares: dict[int, Key] = {}  # frames offered to a directory for a replica, answer pending
        self.fetches: dict[int, tuple[Key, int, Future]] = {}  # spare -> (page, generation, first answer)

    def handlers(self) -> dict:
        return {"pte.shootdown": self.shootdown, "repl.fill": self.fill}

    def lookup(self, obj: str, idx: int, *, write: bool, task, policy: dict, interleave_index: int, replicate: bool):
        """The copy of (obj, idx) this node uses, asking its directory home if needed.
        Returns (CachedPage, cost in ns of the directory's work)."""
        key = (obj, idx)
        page = self.pages.get(key)
        core = self.core
        # A reader that may replicate asks again while only a remote master is cached: the
        # replication decision is taken at every read-only lookup (find_get_page_readonly).
        may_gain_replica = replicate and not write and page is not None and not page.replica and page.node != core.node_id
        if page is not None and (page.writable or not write) and not may_gain_replica:
            return page, 0
        if page is not None and page.node in core.dead:  # its copy died: ask the directory again
            del self.pages[key]
            page = None
        home = directory_home(obj, idx, core.n_nodes, core.shardless)
        started_ns, made = core.clock_ns(), False
        reclaim, short = False, None  # short: an answer that wanted a replica this node had no frame for
        while True:
            common = dict(obj=obj, idx=idx, mapper=core.node_id, task_node=task.node, policy=policy,
                          allowed=sorted(task.mems), interleave_index=interleave_index)
            spare = (yield from self._spare_frame(task, reclaim)) if replicate and not write else None
            if short is not None and spare is None and short.epoch >= self.seen_epoch.get(key, -1):
                reply = short  # reclaim freed no frame: the master, as answered
                break
            short = None
            if write:
                msg = pc.DirWrite(**common)
            else:
                msg = pc.DirRead(**common, replicate=replicate, frame=spare,
                                 generation=core.pool.generation[spare] if spare is not None else 0)
            if spare is not None:
                self.spares[spare] = key
            try:
                if spare is not None:  # the fill or the directory's answer, whichever comes first
                    answer = Future()
                    self.fetches[spare] = (key, core.pool.generation[spare], answer)
                    yield Spawn(self._ask(home, msg, answer))
                    reply = yield answer
                else:
                    reply = yield Call(node_dest(home), msg)
            except BaseException:
                self.fetches.pop(spare, None)
                if self.spares.pop(spare, None) is not None:
                    core.release([spare])
                raise
            self.fetches.pop(spare, None)
            # A shootdown that overtook the answer may have freed the spare already (see shootdown).
            if spare is not None and self.spares.pop(spare, None) is not None:
                taken = reply.replica and reply.node == core.node_id and reply.frame == spare
                if core.pool.generation[spare] != msg.generation:
                    # freed behind our back (the unsafe collapse frees without shootdowns): nothing
                    # to take or to release; an answer that names it is stale, ask again
                    if taken:
                        continue
                elif taken:  # the directory took it
                    if reply.data is not None:  # the bytes rode on the answer
                        core.pool.write(spare, 0, reply.data)
                    self._became_replica(spare, key)
                    made = True
                else:
                    core.release([spare])
            if reply.epoch < self.seen_epoch.get(key, -1):
                continue  # a shootdown overtook this answer: ask again
            if not (reply.short and spare is None and not reclaim):
                break
            # A replica was wanted and this node had no free frame: reclaim one here, with no page
            # lock held (the directory used to, holding the page's lock through the round trips),
            # and ask again with it, once.
            reclaim, short = True, reply
        page = CachedPage(reply.node, reply.frame, reply.generation, write, reply.replica)
        self.pages[key] = page
        if made and page.replica:  # wall time from asking to the replica in hand, on this node (bench_replication)
            core.events["repl_fault_wall_ns"] += core.clock_ns() - started_ns
        return page, reply.cost_ns

    def _ask(self, home: int, msg: pc.DirRead, answer: Future):
        """The directory's answer to `msg`, into `answer` (unless a fill got there first)."""
        try:
            reply = yield Call(node_dest(home), msg)
        except Exception as exc:  # noqa: BLE001 - handed on whole to the waiting lookup
            answer.set_exception(exc)
        else:
            answer.set_result(reply)

    def fill(self, msg: pc.ReplicaFill) -> Ok:
        """The bytes of a replica this node asked for, sent by the master's node (the forwarded
        reply): into the spare frame, and the waiting read maps it at once."""
        core = self.core
        key = (msg.obj, msg.idx)
        pending = self.fetches.get(msg.frame)
        if (pending is None or pending[:2] != (key, msg.generation) or self.spares.get(msg.frame) != key
                or core.pool.generation[msg.frame] != msg.generation):
            core.events["repl_fill_refused"] += 1
            raise NumaEmuError(ErrorCode.ESTALE, f"repl.fill: node {core.node_id} is not waiting for a copy of "
                                                 f"{msg.obj}:{msg.idx} in frame {msg.frame} "
                                                 f"(generation {msg.generation})")
        if len(msg.data) != core.page_size:
            raise NumaEmuError(ErrorCode.EINVAL, f"repl.fill: {len(msg.data)} bytes, a page is {core.page_size}")
        del self.fetches[msg.frame]
        core.pool.write(msg.frame, 0, msg.data)
        pending[2].set_result(pc.DirPageReply(node=core.node_id, frame=msg.frame, generation=msg.generation,
                                              replica=True, epoch=msg.epoch, cost_ns=msg.cost_ns))
        return Ok()

    def _became_replica(self, frame: int, key: Key) -> None:
        self.core.replica_frames[frame] = key
        self.core.events["pgreplicated"] += 1

    def _spare_frame(self, task, reclaim: bool):
        """A frame of this node for a replica, allocated before asking the directory, as Linux
        allocates a page before it locks it in the page cache; None when this node has none to
        spare. `reclaim`: the directory wanted a replica, and this node was full: another
        replica here is reclaimed for it (the directory made room itself before, holding the
        page's lock, and the page's other readers waited through the reclaim's round trips)."""
        kw = dict(preferred=self.core.node_id, task_node=task.node, interleave=False, fill=None)
        if reclaim:
            frames = yield from self.core.supply_reclaiming(1, replicas_only=True, **kw)
        else:
            frames = self.core.supply(1, **kw)
        return frames[0] if frames else None

    def map(self, key: Key, task_id: int, vpage: int) -> None:
        self.rmap.setdefault(key, set()).add((task_id, vpage))

    def mapcounts(self, pages: dict) -> dict:
        """object -> the number of this node's mappings of each page index asked."""
        return {obj: [len(self.rmap.get((obj, idx), ())) for idx in idxs] for obj, idxs in pages.items()}

    def unmap(self, key: Key, task_id: int, vpage: int) -> None:
        users = self.rmap.get(key)
        if users is not None:
            users.discard((task_id, vpage))
            if not users:
                del self.rmap[key]

    def access(self, key: Key, offset: int, n: int, data: bytes | None, locate):
        """Read `n` bytes at `offset` of shared page `key` (`data` None), or write `data` there,
        through the copy `locate(again)` gives: a generator returning (node, frame, generation;
        None: not checked). A copy freed since (ESTALE: truncated, moved) or on a node that died
        is forgotten here and `locate(True)` asked again, the directory giving the page's new
        place (docs/protocol.md#a-nodes-death); ESTALE after STALE_RETRIES tries, so a page that
        never settles cannot hang its task. A read of this node's replica counts repl_hits."""
        core = self.core
        for attempt in range(STALE_RETRIES):
            node, frame, gen = yield from locate(attempt > 0)
            try:
                if data is None:
                    if node == core.node_id and frame in core.replica_frames:
                        core.events["repl_hits"] += 1
                    return (yield from core.read_frame(node, frame, gen, offset, n))
                yield from core.write_frame(node, frame, gen, offset, data)
                return None
            except NumaEmuError as exc:
                gone = exc.code == ErrorCode.ESTALE or node in core.dead  # moved, or its node died
                if not gone or attempt == STALE_RETRIES - 1:
                    raise
                cached = self.pages.get(key)
                if cached is not None and cached.frame == frame and cached.node == node:
                    del self.pages[key]
        return None

    def node_died(self, node: int, held_shard: bool = True) -> dict[int, list[dict]]:
        """`node` is dead (core.dead and core.shardless hold it already). Returns what this node
        must announce (dir.rebuild) to the new directory home of each page whose home was
        `node` (none if it held no directory shard): its mapping of the page and the replica
        and master frames it holds; then unmaps every copy that was on `node`, so the next
        access faults and asks the page's directory."""
        core = self.core
        n, before = core.n_nodes, core.shardless - {node}
        records: dict[int, list[dict]] = {}

        def announce(key: Key, **rec) -> None:
            if held_shard and directory_home(key[0], key[1], n, before) == node:
                home = directory_home(key[0], key[1], n, core.shardless)
                records.setdefault(home, []).append(dict(obj=key[0], idx=key[1], **rec))

        for key in [k for k in self.seen_epoch if held_shard and directory_home(k[0], k[1], n, before) == node]:
            del self.seen_epoch[key]  # the epochs of a directory entry that died: its new home counts afresh
        for key, page in self.pages.items():
            announce(key, node=page.node, frame=page.frame, gen=page.gen, replica=page.replica, mapped=True,
                     writable=page.writable)
        for held, replica in ((core.replica_frames, True), (core.master_frames, False)):
            for frame, key in held.items():  # the copies held here that no mapping here announced
                page = self.pages.get(key)
                if page is None or page.frame != frame or page.node != core.node_id:
                    announce(key, node=core.node_id, frame=frame, gen=core.pool.generation[frame], replica=replica,
                             mapped=False, writable=False)
        for key, page in [(k, p) for k, p in self.pages.items() if p.node == node]:
            self.shootdown(pc.PteShootdown(obj=key[0], idx=key[1], node=node, frame=page.frame, cause="nodedeath"))
        return records

    def shootdown(self, msg: pc.PteShootdown) -> pc.PteShootdownAck:
        key = (msg.obj, msg.idx)
        if msg.directory in self.core.dead:
            # Sent by a directory before it died, delivered after its death was heard here: the
            # operation waiting for this ack died with it (no write or move happened), and this
            # node announced its copy as it is to the page's new home, whose epochs start afresh
            # (node_died): applied, it would free an announced replica or leave an epoch the new
            # home is below, and every answer would look stale.
            return pc.PteShootdownAck(unmapped=0)
        if msg.epoch > self.seen_epoch.get(key, -1):
            self.seen_epoch[key] = msg.epoch
        page = self.pages.get(key)
        count = 0
        if msg.node == self.core.node_id:  # first of all: no task writes the frame directly any more
            self.core.revoke_direct_write(msg.frame)
        if page is not None and page.node == msg.node and page.frame == msg.frame:
            if msg.write_protect:
                page.writable = False
            else:
                del self.pages[key]
        ps = self.core.page_size
        for task_id, vpage in list(self.rmap.get(key, ())):
            task = self.tasks.get(task_id)
            if task is None:
                continue
            region = task.space.find(vpage)
            p = (vpage - region.start) // ps
            if region.node[p] == msg.node and region.frame[p] == msg.frame:
                if msg.write_protect:
                    region.wr[p] = 0
                else:
                    task.unmap_direct([vpage])
                    region.node[p] = -1
                    self.unmap(key, task_id, vpage)
                count += 1
        if msg.free and msg.node == self.core.node_id:
            if self.fetches.get(msg.frame, (None,))[0] == key:
                del self.fetches[msg.frame]  # a fill for it that comes later is refused
            if self.spares.get(msg.frame) == key:  # a replica made in a frame whose answer is still on its way
                del self.spares[msg.frame]
                self._became_replica(msg.frame, key)
            if self.core.replica_frames.get(msg.frame) == key:
                self.core.release([msg.frame], zap_cause=msg.cause)  # the replica goes with its mappings
        if self.core.trace.on:
            self.core.trace.emit("shootdown", obj=msg.obj, idx=msg.idx, copy_node=msg.node, frame=msg.frame,
                                 write_protect=msg.write_protect, cause=msg.cause, phase="done", unmapped=count)
        return pc.PteShootdownAck(unmapped=count)
