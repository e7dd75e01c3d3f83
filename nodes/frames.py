"""Serving this node's frames to its peers: allocate, free, read, write, fill, and counters.

These handlers take no page lock, so a directory handler that holds one may wait on them
without ever forming a cycle (docs/protocol.md#locks-and-liveness).
"""
from __future__ import annotations

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.framepool import USED
from numa_emu.protocol.effects import Answer, Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import ErrorReply, Ok
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.routing import node_dest

_COUNTERS = {"numa_foreign"}


MAX_FRAMES_READ = 1024  # frames per frames.read: 4 MiB of 4 KiB pages, well within a message


class FrameService:
    def __init__(self, core: NodeCore):
        self.core = core

    def handlers(self) -> dict:
        return {
            "frame.alloc": self.alloc,
            "frame.free": self.free,
            "frame.alloc.undo": self.undo,
            "frame.read": self.read,
            "frames.read": self.read_many,
            "frame.write": self.write,
            "frame.move_abort": self.move_abort,
            "mem.access.forward": self.access_forward,
            "frame.fill": self.fill,
            "frame.copy": self.copy,
            "repl.copy": self.replica_copy,
            "stat.add": self.stat_add,
            "node.task.purge": self.purge,
        }

    def alloc(self, msg: mm.FrameAlloc):
        c = self.core
        if msg.count < 0 or not (0 <= msg.preferred < c.n_nodes) or not (0 <= msg.task_node < c.n_nodes):
            raise NumaEmuError(ErrorCode.EINVAL, "frame.alloc: count must be >= 0 and nodes must exist")
        if msg.fill is not None and not 0 <= msg.fill <= 255:
            raise NumaEmuError(ErrorCode.EINVAL, "frame.alloc: fill must be a byte value")
        kw = dict(preferred=msg.preferred, task_node=msg.task_node, interleave=msg.interleave, fill=msg.fill,
                  replica_of=_page(msg.replica_of, "replica_of"), cache_of=_page(msg.cache_of, "cache_of"),
                  owner=msg.task_id, master_of=_page(msg.master_of, "master_of"), shm_of=_page(msg.shm_of, "shm_of"),
                  data=msg.data)
        if msg.data is not None and len(msg.data) != c.page_size:
            raise NumaEmuError(ErrorCode.EINVAL, f"frame.alloc: data is {len(msg.data)} bytes, a page is {c.page_size}")
        if msg.ticket is not None and not _is_ticket(msg.ticket):
            raise NumaEmuError(ErrorCode.EINVAL, "frame.alloc: a ticket is [node, incarnation, sequence]")
        entry = c.begin_alloc(msg.ticket)
        if entry is None and msg.ticket is not None:  # undone before it came: it takes nothing
            return mm.FrameAllocReply(frames=[], generations=[])
        frames: list[int] = []
        try:
            if msg.reclaim:  # direct reclaim: no page lock is waited for (dir.reclaim takes none that is held)
                frames = yield from c.supply_reclaiming(msg.count, **kw)
            else:
                frames = c.supply(msg.count, **kw)
        finally:
            if entry is not None:
                c.end_alloc(entry, frames)
        return mm.FrameAllocReply(frames=frames, generations=[c.pool.generation[f] for f in frames])

    def undo(self, msg: mm.FrameAllocUndo):
        if not isinstance(msg.tickets, list) or not all(_is_ticket(t) for t in msg.tickets):
            raise NumaEmuError(ErrorCode.EINVAL, "frame.alloc.undo: tickets are [node, incarnation, sequence]")
        return mm.FrameAllocUndoReply(allocated=(yield from self.core.undo_allocs(msg.tickets)))

    def free(self, msg: mm.FrameFree) -> Ok:
        frames = [int(f) for f in msg.frames]
        if msg.generations is not None:  # only those not freed since (this free may come again)
            if len(msg.generations) != len(frames):
                raise NumaEmuError(ErrorCode.EINVAL, "frame.free: one generation per frame, or none")
            pool = self.core.pool
            for f in frames:
                pool.check(f)
            frames = [f for f, g in zip(frames, msg.generations) if pool.state[f] == USED and pool.generation[f] == g]
        self.core.release(frames, msg.zap_cause)
        return Ok()

    def move_abort(self, msg: mm.FrameMoveAbort) -> mm.FrameMoveAbortReply:
        return mm.FrameMoveAbortReply(landed=self.core.abort_move(msg.frame, msg.generation,
                                                                  _page(msg.master_of, "master_of", "frame.move_abort")))

    def purge(self, msg: tm.NodeTaskPurge) -> tm.NodeTaskPurgeReply:
        return tm.NodeTaskPurgeReply(frames_freed=self.core.purge_task(msg.task_id))

    def read(self, msg: mm.FrameRead) -> mm.FrameReadReply:
        if msg.offset < 0 or msg.length < 0 or msg.offset + msg.length > self.core.page_size:
            raise NumaEmuError(ErrorCode.EINVAL, "frame.read: range crosses the page")
        self.core.check_generation(msg.frame, msg.generation)
        if msg.frame in self.core.direct_writers:  # a task here may be writing it: never read half a write
            return self._read_whole(msg)
        return mm.FrameReadReply(data=self.core.pool.read(msg.frame, msg.offset, msg.length))

    def _read_whole(self, msg: mm.FrameRead):
        return mm.FrameReadReply(data=(yield from self.core.read_local(msg.frame, msg.offset, msg.length)))

    def read_many(self, msg: mm.FramesRead) -> mm.FramesReadReply:
        c = self.core
        frames = msg.frames
        if not isinstance(frames, list) or len(frames) > MAX_FRAMES_READ or (
                msg.generations is not None and (not isinstance(msg.generations, list)
                                                 or len(msg.generations) != len(frames))):
            raise NumaEmuError(ErrorCode.EINVAL, f"frames.read: a list of at most {MAX_FRAMES_READ} frames, "
                                                 "and one generation per frame or none")
        for i, f in enumerate(frames):
            if not isinstance(f, int) or not 0 <= f < c.pool.frames:
                raise NumaEmuError(ErrorCode.EINVAL, f"frames.read: no frame {f!r} on node {c.node_id}")
            c.check_generation(f, msg.generations[i] if msg.generations is not None else None)
        return mm.FramesReadReply(data=b"".join(c.pool.read(f) for f in frames))

    def write(self, msg: mm.FrameWrite) -> Ok:
        self.core.become_master(msg.frame, msg.generation, _page(msg.master_of, "master_of", "frame.write"),
                                msg.directory)
        self.core.write_local(msg.frame, msg.offset, msg.data)
        return Ok()

    def access_forward(self, msg: mm.AccessForward) -> Answer:
        """Serve a task's access that its home node forwarded (a private page whose frame is
        here) and answer the task directly: its AccessReply, or the error. Exactly one answer,
        whatever the fields hold; in `real` mode held back for the link back to the home node."""
        c = self.core
        home = node_dest(msg.home) if 0 <= msg.home < c.n_nodes and msg.home != c.node_id else None
        try:
            if home is None:
                raise NumaEmuError(ErrorCode.EINVAL, f"mem.access.forward: home node {msg.home} is not a peer "
                                                     f"of node {c.node_id}")
            if msg.data is None:
                if msg.offset < 0 or msg.length <= 0 or msg.offset + msg.length > c.page_size:
                    raise NumaEmuError(ErrorCode.EINVAL, "mem.access.forward: the read is empty or crosses the page")
                reply = mm.AccessReply(data=c.pool.read(msg.frame, msg.offset, msg.length), clock_ns=msg.clock_ns)
            else:
                c.pool.write(msg.frame, msg.offset, msg.data)
                reply = mm.AccessReply(data=None, clock_ns=msg.clock_ns)
        except NumaEmuError as exc:
            reply = ErrorReply(code=exc.code.value, message=exc.message)
        return Answer(msg.route, msg.request_id, reply, link=home, via=home)

    def copy(self, msg: pc.FrameCopy):
        """Send this frame's bytes to `dst` (replication, migration): they travel once, owner -> dst."""
        yield from self.core.copy_frame(msg.frame, msg.generation, msg.dst, msg.dst_frame, msg.dst_generation,
                                        msg.free, _page(msg.dst_master_of, "dst_master_of", "frame.copy"),
                                        msg.directory)
        return Ok()

    def replica_copy(self, msg: pc.ReplicaCopy):
        """The master's bytes straight to the home node that asked for a replica, as the answer
        to its read (repl.fill); acknowledged to the directory once the home node took them."""
        c = self.core
        if not 0 <= msg.dst < c.n_nodes or msg.dst == c.node_id:
            raise NumaEmuError(ErrorCode.EINVAL, f"repl.copy: bad destination node {msg.dst}")
        c.check_generation(msg.frame, msg.generation)
        yield Call(node_dest(msg.dst), pc.ReplicaFill(
            obj=msg.obj, idx=msg.idx, frame=msg.dst_frame, generation=msg.dst_generation, epoch=msg.epoch,
            cost_ns=msg.cost_ns, data=c.pool.read(msg.frame)))
        return Ok()

    def fill(self, msg: mm.FrameFill) -> Ok:
        c = self.core
        if not 0 <= msg.value <= 255:
            raise NumaEmuError(ErrorCode.EINVAL, "frame.fill: value must be a byte")
        frames = msg.frames
        if not isinstance(frames, list) or (msg.generations is not None and (
                not isinstance(msg.generations, list) or len(msg.generations) != len(frames))):
            raise NumaEmuError(ErrorCode.EINVAL, "frame.fill: a list of frames, and one generation per frame or none")
        for i, f in enumerate(frames):  # every frame checked before any is written
            if not isinstance(f, int) or isinstance(f, bool) or not 0 <= f < c.pool.frames:
                raise NumaEmuError(ErrorCode.EINVAL, f"frame.fill: no frame {f!r} on node {c.node_id}")
            c.check_generation(f, msg.generations[i] if msg.generations is not None else None)
        page = bytes([msg.value]) * c.page_size
        for f in frames:
            c.write_local(f, 0, page)
        return Ok()

    def stat_add(self, msg: mm.StatAdd) -> Ok:
        c = self.core
        if msg.counter not in _COUNTERS or not 0 <= msg.node < c.n_nodes or msg.incarnation < 0 or msg.total < 0:
            raise NumaEmuError(ErrorCode.EINVAL, f"stat.add: cannot take a total of {msg.total} {msg.counter!r} from "
                                                 f"node {msg.node} (incarnation {msg.incarnation})")
        c.take_foreign(msg.node, msg.incarnation, msg.total)
        return Ok()


def _is_ticket(ticket: object) -> bool:
    return (isinstance(ticket, list) and len(ticket) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) for v in ticket))


def _page(value: list | None, field: str, kind: str = "frame.alloc") -> tuple[str, int] | None:
    """A page named on the wire as [obj, idx]; EINVAL for anything else."""
    if value is None:
        return None
    if len(value) != 2 or not isinstance(value[0], str) or not isinstance(value[1], int):
        raise NumaEmuError(ErrorCode.EINVAL, f"{kind}: {field} must be [obj, idx]")
    return value[0], value[1]
