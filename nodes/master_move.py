"""Moving a shared page's master at its directory home (docs/protocol.md#master-moves), and
what both sides of migration share: the trace event.

dir.migrate runs under the entry lock: the replicas are torn down (cause "migration"), every
mapping of the master is shot down and acknowledged, the owner copies the master to a frame on
the target and retires the old frame in the same step (frame.copy with free), and the entry points at
the new frame with a new epoch. Home nodes refault through the directory; the requester maps the
new master at once. With `unmap_only` (mbind MOVE|LAZY) it stops after the shootdowns.
pgmigrate_success / pgmigrate_fail count here, on the directory home.
"""
from __future__ import annotations

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.directory import DirEntry
from numa_emu.nodes.migration_plan import EACCES, EBUSY, ENOENT, ENOMEM, reclaims_for, result_name
from numa_emu.nodes.replication import Replication
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.routing import node_dest

UNREACHABLE = (ErrorCode.ENODEV, ErrorCode.ETIMEDOUT)


def trace_migrate(core: NodeCore, task_id: int | None, mode: str, cause: str, status: int, src: int, src_frame: int,
                  dst: int | None, dst_frame: int | None, *, vns: int | None = None, addr: int | None = None,
                  obj: str | None = None, idx: int | None = None) -> None:
    """One "migrate" event: the page (addr, or obj and idx), from node/frame, to node/frame,
    mode (direct | lazy), cause (syscall | mbind | cpuset | fault) and result (ok or errno)."""
    page = {"addr": addr} if addr is not None else {"obj": obj, "idx": idx}
    extra = {"vns": vns} if vns is not None else {}
    core.trace.emit("migrate", task=task_id, mode=mode, cause=cause, **page, **extra, **{"from": src},
                    from_frame=src_frame, to=dst, new_frame=dst_frame, result=result_name(status))


class MasterMove:
    def __init__(self, core: NodeCore, replication: Replication):
        self.core = core
        self.repl = replication

    def handlers(self) -> dict:
        return {"dir.migrate": self.dir_migrate}

    def dir_migrate(self, msg: mg.DirMigrate):
        c = self.core
        nodes = (msg.mapper, msg.task_node) if msg.unmap_only else (msg.target, msg.mapper, msg.task_node)
        if not all(0 <= n < c.n_nodes for n in nodes) or msg.idx < 0 or not msg.obj:
            raise NumaEmuError(ErrorCode.EINVAL, "dir.migrate: bad node, page index or object")
        yield from self.repl.settled(msg.obj, msg.idx)
        hint = self.repl.dir.entries.get((msg.obj, msg.idx))
        if hint is None:
            return self._dir_reply(ENOENT)
        early = None
        if msg.move_all and not msg.unmap_only and hint.node not in (-1, msg.target):
            # The new frame before the page lock, as Linux allocates a move's destination before
            # it locks the source: a reclaim on a full target does not keep the page's readers
            # and writers waiting through its round trips. Freed below if the move does not use it.
            # Only with MOVE_ALL: without it, who maps the page decides first (EACCES), as Linux
            # checks the mapcount before it allocates.
            early = yield from self._new_frame(msg)
        try:
            entry = yield from self.repl.lock_entry(msg.obj, msg.idx)
            try:
                yield from self.repl.bury(msg.obj, msg.idx, entry)
                reply = yield from self._migrate_master(msg, entry, early)
            finally:
                entry.lock.release()
        except Exception:
            yield from c.free_allocated(early or [])  # the move failed: its frame is not leaked
            raise
        yield from c.free_allocated(early or [])  # unless the move took it: the master moved meanwhile (or went)
        return reply

    def _new_frame(self, msg: mg.DirMigrate):
        """A frame on the move's target, reclaiming there if the move was asked for: [(node,
        frame, generation)], or [] when the target has none."""
        c = self.core
        # the target becomes the page's master with the copy (FrameCopy dst_master_of), not before:
        # if this directory dies in between, the survivors announce the source, which still holds it
        kind = c.master_kwargs(msg.obj, msg.idx)
        kind.pop("master_of")
        return (yield from c.alloc_on(msg.target, 1, preferred=msg.target, task_node=msg.task_node,
                                      reclaim=reclaims_for(msg.cause), **kind))

    def _dir_reply(self, status: int, entry: DirEntry | None = None, cost: int = 0) -> mg.DirMigrateReply:
        if entry is None:
            return mg.DirMigrateReply(status=status, remap=False, node=-1, frame=0, generation=0, epoch=0, cost_ns=cost)
        return mg.DirMigrateReply(status=status, remap=True, node=entry.node, frame=entry.frame, generation=entry.gen,
                                  epoch=entry.epoch, cost_ns=cost)

    def _migrate_master(self, msg: mg.DirMigrate, entry: DirEntry, early: list | None = None):
        """Under the entry lock: replicas down, every mapping of the master down and acknowledged,
        the copy to the target (retiring the old frame), the entry moved to its new frame.
        `early`: the new frame, allocated before the lock ([] when there was none), taken out
        of the list once used; None: allocated here."""
        c = self.core
        obj, idx, target = msg.obj, msg.idx, msg.target
        src, src_frame, src_gen = entry.node, entry.frame, entry.gen
        if src < 0:
            return self._dir_reply(ENOENT)
        if src == target and not msg.unmap_only:
            if msg.mapper not in entry.mappers:  # the requester's entry was lazily unmapped: map it again
                entry.mappers[msg.mapper] = src
            return self._dir_reply(target, entry)
        others = (set(entry.mappers) | set(entry.replicas)) - {msg.mapper}
        if not msg.move_all:
            counts = (yield from self._still_mapping(obj, idx, others)) if others else {}
            mapped_by = max(msg.mapper_tasks, 1 if msg.sole else 2) + sum(counts.values())
        if not msg.move_all and mapped_by > max(1, msg.max_mapcount):
            self._trace(msg, EACCES, src, src_frame, target, None)
            return self._dir_reply(EACCES)
        if msg.unmap_only:  # mbind MOVE|LAZY: no mapping and no replica left; the next fault decides
            yield from self._unmap_all(obj, idx, entry, src_frame)
            return mg.DirMigrateReply(status=src, remap=False, node=src, frame=src_frame, generation=src_gen,
                                      epoch=entry.epoch, cost_ns=0)
        master_of = (obj, idx)
        got = early if early is not None else (yield from self._new_frame(msg))
        if not got:
            c.events["pgmigrate_fail"] += 1
            self._trace(msg, ENOMEM, src, src_frame, target, None)
            return self._dir_reply(ENOMEM)
        _node, frame, gen = got.pop()
        cost = yield from self._unmap_all(obj, idx, entry, src_frame)
        try:
            yield Call(node_dest(src), pc.FrameCopy(frame=src_frame, generation=src_gen, dst=target,
                                                    dst_frame=frame, dst_generation=gen, free=True,
                                                    dst_master_of=list(master_of), directory=c.node_id))
        except NumaEmuError:
            # failed, or unanswered: the copy may have landed (its answer lost) and the source freed
            # its frame; the target says which, and frees its frame if not
            if not (yield from c.move_landed(target, frame, gen, master_of)):
                c.events["pgmigrate_fail"] += 1
                self._trace(msg, EBUSY, src, src_frame, target, frame)
                return self._dir_reply(EBUSY)
        entry.node, entry.frame, entry.gen = target, frame, gen
        entry.epoch += 1
        entry.mappers[msg.mapper] = target  # the requester maps the new master at once
        c.events["pgmigrate_success"] += 1
        cost += c.cost.copy_ns(src, target)
        self._trace(msg, target, src, src_frame, target, frame)
        return self._dir_reply(target, entry, cost)

    def _still_mapping(self, obj: str, idx: int, nodes: set[int]):
        """How many mappings of the page each node of `nodes` still has. The entry keeps a mapper node
        until the page's next change, so each is asked: one whose tasks all unmapped the page
        (and a replica nobody maps) does not count, and MPOL_MF_MOVE moves a page nobody else
        maps. It stays in the entry: the move's shootdown still reaches it and drops its cached
        copy, so a task that maps the page there meanwhile faults again. A node that does not
        answer counts as mapping."""
        c, pages = self.core, {obj: [idx]}
        asked = sorted(n for n in nodes if n not in c.dead)  # this node too: a Call to itself
        counts = {n: 1 for n in nodes if n in c.dead}
        if asked:
            try:
                replies = yield [Call(node_dest(n), mm.MapCounts(pages=pages)) for n in asked]
                counts.update({n: int(r.counts.get(obj, [1])[0]) for n, r in zip(asked, replies)})
            except NumaEmuError:
                counts.update(dict.fromkeys(asked, 1))
        return counts

    def _unmap_all(self, obj: str, idx: int, entry: DirEntry, master_frame: int):
        """Tear the replicas down, then every mapping of the master, each acknowledged; the cost."""
        cost = 0
        if entry.replicas:
            cost += yield from self.repl.collapse(obj, idx, entry, "migration")
        targets = [(h, node, master_frame) for h, node in entry.mappers.items() if node == entry.node]
        cost += yield from self.repl.shootdown(obj, idx, entry, targets, False, "migration")
        for home, _node, _frame in targets:
            entry.mappers.pop(home, None)
        entry.writers.clear()
        return cost

    def _trace(self, msg: mg.DirMigrate, status: int, src: int, src_frame: int, dst: int | None,
               dst_frame: int | None) -> None:
        if self.core.trace.on:
            trace_migrate(self.core, msg.task_id, msg.mode, msg.cause, status, src, src_frame, dst, dst_frame,
                          obj=msg.obj, idx=msg.idx)
