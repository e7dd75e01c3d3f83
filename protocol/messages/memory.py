"""Messages of the memory path: a task's requests to its home node, and node-to-node frame,
directory and counter requests (docs/protocol.md). Addresses and lengths are bytes; page contents
travel as bytes values inside the envelope."""
from __future__ import annotations

from numa_emu.protocol.messages.base import Notice, Ok, Reply, Request, message

# ---- task -> home node -------------------------------------------------------------------


@message
class MmapReply(Reply):
    kind = "mem.mmap.reply"
    vaddr: int
    length: int
    clock_ns: int


@message
class Mmap(Request):
    """Map a region: private anonymous, or shared anonymous (`name`, visible to other tasks)."""

    kind = "mem.mmap"
    reply = MmapReply
    task_id: int
    length: int
    shared: bool = False
    name: str | None = None


@message
class Munmap(Request):
    kind = "mem.munmap"
    reply = Ok
    task_id: int
    vaddr: int
    length: int


@message
class AccessReply(Reply):
    kind = "mem.access.reply"
    data: bytes | None
    clock_ns: int


@message
class Access(Request):
    """Read `length` bytes at `vaddr` (data None) or write `data` there. May cross pages.
    `direct`: the task's socket is connected to every node under the same routing id, so the
    home node may forward an access of a private page on another node to that node, which
    answers the task itself (AccessForward)."""

    kind = "mem.access"
    reply = AccessReply
    task_id: int
    vaddr: int
    length: int = 0
    data: bytes | None = None
    direct: bool = False


@message
class DirectMapReply(Reply):
    kind = "mem.direct.reply"
    pid: int  # the home node's process: its memfds are /proc/<pid>/fd/<fd>
    pool_fd: int
    frames: int
    table_fd: int
    node: int


@message
class DirectMap(Request):
    """Where the task's direct path (protocol/directmap.py) finds its home node's frame pool and
    its own page table; the node makes the table at the first ask."""

    kind = "mem.direct"
    reply = DirectMapReply
    task_id: int


@message
class AccessForward(Notice):
    """Home node H -> owner node O (IVY forwarding, docs/protocol.md#forwarded-access): serve a task's access within
    one private page whose frame is on O, and answer the task directly with the AccessReply (or
    the error) of its mem.access. H has done the rest: the task's clock (`clock_ns`, after this
    access), its counters and trace event. `route` and `request_id` are the task's routing id
    and its mem.access id; in `real` mode O holds the answer back for the O -> H link (`home`).
    When O cannot reach the task, the answer goes back through H (ReplyRelay). Exactly one
    answer per forward."""

    kind = "mem.access.forward"
    route: bytes
    request_id: int
    home: int
    frame: int
    offset: int
    length: int = 0
    data: bytes | None = None
    clock_ns: int


@message
class TouchReply(Reply):
    kind = "mem.touch.reply"
    pages: int
    faults: int
    clock_ns: int


@message
class Touch(Request):
    """The batched form: touch every page of [vaddr, vaddr+length), faulting in what is absent;
    with `fill` set, write that byte over each page (memhog's memset)."""

    kind = "mem.touch"
    reply = TouchReply
    task_id: int
    vaddr: int
    length: int
    write: bool = False
    fill: int | None = None


@message
class Mbind(Request):
    kind = "mem.mbind"
    reply = Ok
    task_id: int
    vaddr: int
    length: int
    mode: int
    nodes: list
    flags: int = 0


@message
class GetMempolicyReply(Reply):
    kind = "mem.get_mempolicy.reply"
    mode: int
    nodes: list
    node: int | None  # with MPOL_F_NODE


@message
class GetMempolicy(Request):
    kind = "mem.get_mempolicy"
    reply = GetMempolicyReply
    task_id: int
    flags: int = 0
    addr: int | None = None


@message
class WhereReply(Reply):
    kind = "mem.where.reply"
    nodes: list  # one per page: node id, or -1 when it has none (not present, or the zero page)


@message
class Where(Request):
    """Which node holds each page of a range (move_pages query mode, memtoy `where`)."""

    kind = "mem.where"
    reply = WhereReply
    task_id: int
    vaddr: int
    length: int


@message
class MapsReply(Reply):
    kind = "mem.maps.reply"
    regions: list  # dicts: start, length, kind, name, policy, pages {node: n}, dirty, active, mapmax, present
    clock_ns: int


@message
class Maps(Request):
    kind = "mem.maps"
    reply = MapsReply
    task_id: int


@message
class MapCountsReply(Reply):
    kind = "mem.mapcounts.reply"
    counts: dict  # object -> one count per index asked: mappings by this node's tasks


@message
class MapCounts(Request):
    """How many mappings of this node's tasks each shared page has (numa_maps' mapmax: the home
    node of a task sums the answers of every node)."""

    kind = "mem.mapcounts"
    reply = MapCountsReply
    pages: dict  # object (shm:NAME, file:NAME) -> list of page indices


# ---- node -> node ------------------------------------------------------------------------


@message
class FrameAllocReply(Reply):
    kind = "frame.alloc.reply"
    frames: list  # as many as could be had, at most `count`; empty means ENOMEM there
    generations: list | None = None  # each frame's generation (to detect stale mappings)


@message
class FrameAlloc(Request):
    """Allocate frames on the receiving node; it charges its numastat counters as the supplier."""

    kind = "frame.alloc"
    reply = FrameAllocReply
    count: int
    preferred: int  # the node the policy wanted (numa_hit if it is this one)
    task_node: int  # the allocating CPU's node (local_node / other_node)
    interleave: bool = False
    fill: int | None = None  # write this byte over each frame right away
    replica_of: list | None = None  # [obj, idx]: the frame is a replica of a page-cache page
    cache_of: list | None = None  # [obj, idx]: the frame is the master of a file's page-cache page
    shm_of: list | None = None  # [obj, idx]: the frame is the master of a shm page
    reclaim: bool = False  # reclaim clean page-cache pages here when short (direct reclaim)
    task_id: int | None = None  # private frames of this task: freed by node.task.purge if its home dies
    master_of: list | None = None  # [obj, idx]: the master of a shared page (announced if its directory dies)
    data: bytes | None = None  # written into each frame at once (a file page's master, read from the store)
    # [requester node, its incarnation, a sequence number]: the allocation's name, by which the
    # requester undoes it (frame.alloc.undo) when its call timed out (a reply lost or held up)
    ticket: list | None = None


@message
class FrameAllocUndoReply(Reply):
    kind = "frame.alloc.undo.reply"
    allocated: list  # per ticket: how many frames that allocation had taken here (0: none, or unknown)


@message
class FrameAllocUndo(Request):
    """Node -> the node it asked for frames: those frame.alloc calls timed out, so nothing uses
    what they took. Their frames are freed (once, however often this comes), and an allocation
    not served yet is refused when it comes; the reply says what each had taken, for numa_foreign."""

    kind = "frame.alloc.undo"
    reply = FrameAllocUndoReply
    tickets: list  # of FrameAlloc.ticket


@message
class FrameFree(Request):
    kind = "frame.free"
    reply = Ok
    frames: list
    zap_cause: str | None = None  # set when the frames are replicas torn down (write, reclaim, ...)
    # one per frame: free it only while it still has this generation (a free sent again after a
    # lost reply, or a partition, is then applied once; nodes.core.retry_frees)
    generations: list | None = None


@message
class FrameReadReply(Reply):
    kind = "frame.read.reply"
    data: bytes


@message
class FrameRead(Request):
    kind = "frame.read"
    reply = FrameReadReply
    frame: int
    offset: int
    length: int
    generation: int | None = None  # ESTALE if the frame was freed since (None: unchecked)


@message
class FramesReadReply(Reply):
    kind = "frames.read.reply"
    data: bytes  # every frame's page, in the order asked


@message
class FramesRead(Request):
    """Whole frames in one message: a migration's batch of private pages copied toward the
    asking node (one round trip per batch instead of two messages per page)."""

    kind = "frames.read"
    reply = FramesReadReply
    frames: list
    generations: list | None = None  # ESTALE if any frame was freed since (None: unchecked)


@message
class FrameWrite(Request):
    kind = "frame.write"
    reply = Ok
    frame: int
    offset: int
    data: bytes
    generation: int | None = None
    master_of: list | None = None  # [obj, idx]: with these bytes the frame is that page's master (a move's end)
    directory: int = -1  # that move's directory: a target that knows it dead refuses (ESTALE)


@message
class FrameMoveAbortReply(Reply):
    kind = "frame.move_abort.reply"
    landed: bool  # the copy had landed: the frame is the page's master, kept


@message
class FrameMoveAbort(Request):
    """A master's move whose frame.copy failed or went unanswered (a partition, a stopped source):
    free the target frame unless the copy landed and made it `master_of`'s master, in one step on
    the target, so that a copy still in flight finds the frame freed (ESTALE) and its source keeps
    the page."""

    kind = "frame.move_abort"
    reply = FrameMoveAbortReply
    frame: int
    generation: int
    master_of: list  # [obj, idx]


@message
class FrameFill(Request):
    """Write one byte value over whole frames (batched memset of remote pages); ESTALE, and
    nothing written, if any frame was freed since (a frame freed and reused must not take it)."""

    kind = "frame.fill"
    reply = Ok
    frames: list
    value: int
    generations: list | None = None  # one per frame (None: unchecked)


@message
class StatAdd(Request):
    """A counter of the receiving node that `node` charges it (numa_foreign: an allocation that
    preferred the receiver landed elsewhere). It carries the sender's running total, not a delta:
    the receiver adds what the total grew by since the highest it saw of that incarnation, so a
    re-send after a timeout, a duplicate or a late copy counts once (nodes.core.take_foreign)."""

    kind = "stat.add"
    reply = Ok
    counter: str
    node: int  # the sender
    incarnation: int  # the sender's start: a restarted sender's totals begin again at zero
    total: int  # all the sender has charged the receiver so far in this incarnation
