"""Messages of files and the page cache: the coordinator's file table, a task's file operations
on its home node, the directory's read/write (replicate/collapse) protocol, shootdowns with their
acknowledgements, and writeback (docs/protocol.md#read-of-a-shared-page, #collapse)."""
from __future__ import annotations

from numa_emu.protocol.messages.base import Ok, Reply, Request, message
from numa_emu.protocol.messages.memory import MmapReply

# ---- the file table (CLI / home node -> coordinator) ----------------------------------------


@message
class FileInfoReply(Reply):
    kind = "file.info.reply"
    file: dict  # name, size, writable_maps, exec_maps, policy (Policy.to_wire() or None)


@message
class FileOpen(Request):
    """Open (or create) a file of the backing store; `size` sets the size of a new file."""

    kind = "file.open"
    reply = FileInfoReply
    name: str
    create: bool = False
    size: int | None = None


@message
class FileResize(Request):
    """Grow (pwrite past the end) or truncate a file: the size authority is the coordinator;
    a truncate also drops the page-cache pages beyond the new end on every directory shard."""

    kind = "file.resize"
    reply = FileInfoReply
    name: str
    size: int


@message
class FileMapped(Request):
    """A task mapped (delta +1) or unmapped (-1) a file, writable and/or executable: the file
    flags that the replication filters (no-writers, exec-only) read."""

    kind = "file.mapped"
    reply = FileInfoReply
    name: str
    writable: bool
    exec: bool
    delta: int


@message
class FileListReply(Reply):
    kind = "file.list.reply"
    files: list


@message
class FileList(Request):
    kind = "file.list"
    reply = FileListReply


IMPORT_CHUNK_BYTES = 1 << 20  # the most one file.import carries: the coordinator's loop never stalls on a file


@message
class FileImport(Request):
    """One chunk of a host file that a client streams into the backing store under `name`. The
    client reads the file with its own rights (numa_emu.fileimport), never the coordinator (which
    would copy whatever it can read for anyone who asks). Chunks come in order from offset 0 under
    one `upload` id (hex, chosen by the client), each at most IMPORT_CHUNK_BYTES; the one with
    `done` stores the file (reply FileInfoReply; Ok before)."""

    kind = "file.import"
    reply = FileInfoReply
    name: str
    upload: str
    offset: int
    data: bytes
    done: bool


@message
class StoreReadReply(Reply):
    kind = "store.read.reply"
    data: bytes  # exactly one page: zeros past the stored end


@message
class StoreRead(Request):
    """A node of another host than the coordinator's -> the coordinator: page `idx` of file
    `name` from the cluster's one store (a page-cache page is filled; nodes/store.py)."""

    kind = "store.read"
    reply = StoreReadReply
    name: str
    idx: int


@message
class StoreWrite(Request):
    """A node of another host -> the coordinator: write page `idx` of file `name` back to the
    cluster's one store (fsync, reclaim, `down`), `data` at most a page, cut at `file_size`."""

    kind = "store.write"
    reply = Ok
    name: str
    idx: int
    data: bytes
    file_size: int


@message
class FileSetPolicy(Request):
    """Set a file's shared policy (Linux shmem's shared policy, Lee's shared policy for mapped
    files): its page-cache pages are allocated by it whoever reads them first. `mode` carries
    MPOL_F_* bits as set_mempolicy(2)'s does; MPOL_DEFAULT clears it (readers' policies again)."""

    kind = "file.set_policy"
    reply = FileInfoReply
    name: str
    mode: int
    nodes: list


@message
class NodeFileInfo(Request):
    """Coordinator -> every node: a file's size or mapping flags changed (short reads, writeback
    lengths, and the replication filters no-writers and exec-only)."""

    kind = "node.file.info"
    reply = Ok
    name: str
    size: int
    writably_mapped: bool
    exec_mapped: bool
    policy: dict | None = None  # the shared policy (Policy.to_wire()), None for the readers' own


# ---- a task's file operations (task -> home node) ------------------------------------------


@message
class FileReadReply(Reply):
    kind = "mem.pread.reply"
    data: bytes
    clock_ns: int


@message
class FileRead(Request):
    kind = "mem.pread"
    reply = FileReadReply
    task_id: int
    name: str
    offset: int
    length: int


@message
class FileWriteReply(Reply):
    kind = "mem.pwrite.reply"
    written: int
    clock_ns: int


@message
class FileWrite(Request):
    kind = "mem.pwrite"
    reply = FileWriteReply
    task_id: int
    name: str
    offset: int
    data: bytes


@message
class FileSync(Request):
    """fsync: every dirty page of the file written back to the store."""

    kind = "mem.fsync"
    reply = Ok
    task_id: int
    name: str


@message
class FileMmap(Request):
    kind = "mem.mmap_file"
    reply = MmapReply
    task_id: int
    name: str
    offset: int = 0
    length: int | None = None
    writable: bool = True
    exec: bool = False


# ---- the directory protocol (home node -> directory home) -----------------------------------


@message
class DirPageReply(Reply):
    kind = "dir.page.reply"
    node: int  # the copy to use: a replica on the asker, or the master
    frame: int
    generation: int
    replica: bool
    epoch: int  # the entry's epoch when this answer was made (see PteShootdown.epoch)
    cost_ns: int = 0  # virtual time the directory's work cost the asker (replica copy, shootdowns)
    data: bytes | None = None  # a new replica's bytes, for the frame the asker offered (the directory owns the master)
    # a replica was wanted and the asker offered no frame (its node is full): it may reclaim, no
    # page lock held, and ask again with one
    short: bool = False


@message
class DirRead(Request):
    """Read access by home node `mapper` (docs/protocol.md#read-of-a-shared-page)."""

    kind = "dir.read"
    reply = DirPageReply
    obj: str
    idx: int
    mapper: int
    task_node: int
    policy: dict
    allowed: list
    interleave_index: int
    replicate: bool  # the asking task may replicate (cpuset, global switch, mode filter)
    frame: int | None = None  # a frame the asker allocated on its own node for the replica, if any
    generation: int = 0


@message
class DirWrite(Request):
    """Write access by `mapper`: collapses the replicas first (docs/protocol.md#collapse)."""

    kind = "dir.write"
    reply = DirPageReply
    obj: str
    idx: int
    mapper: int
    task_node: int
    policy: dict
    allowed: list
    interleave_index: int


@message
class DirReclaimReply(Reply):
    kind = "dir.reclaim.reply"
    dropped: list  # the frames of `pages` (on the asking node) that were dropped
    freed: int  # frames freed in all, with the replicas a dropped master took along


@message
class DirReclaim(Request):
    """Reclaim on node `node`: drop these clean page-cache copies it holds, each [obj, idx, frame]
    (a replica goes alone, a master with its replicas). Pages whose lock is held are kept (a
    trylock: reclaim never waits on a page lock); dirty masters are written back first."""

    kind = "dir.reclaim"
    reply = DirReclaimReply
    node: int
    pages: list


@message
class DirWriteback(Request):
    """Write every dirty page of `obj` in this shard back to the store (obj None: every object)."""

    kind = "dir.writeback"
    reply = Ok
    obj: str | None = None


@message
class DirRebuild(Request):
    """Survivor -> the new directory home of pages whose home died: what the sender holds of
    each (docs/protocol.md#a-nodes-death). A record: obj, idx, node, frame, gen (the copy),
    replica (it is a replica on the sender), mapped (the sender maps it), writable. Every
    survivor sends one to every possible new home, empty when it holds nothing of its pages:
    a new home serves those pages once every survivor's has come."""

    kind = "dir.rebuild"
    reply = Ok
    sender: int
    records: list
    dead: int = -1  # the node whose death this announcement follows


@message
class DirTruncate(Request):
    """Drop the pages of `obj` from page `first_idx` on: unmap everywhere, free every copy."""

    kind = "dir.truncate"
    reply = Ok
    obj: str
    first_idx: int


@message
class PteShootdownAck(Reply):
    kind = "pte.shootdown.ack"
    unmapped: int  # task page-table entries removed (or write-protected)


@message
class PteShootdown(Request):
    """Directory -> home node: drop (or write-protect) every mapping of this copy of (obj, idx),
    then acknowledge. After the ack no access on that node can still use the mapping."""

    kind = "pte.shootdown"
    reply = PteShootdownAck
    obj: str
    idx: int
    node: int  # the copy's node and frame
    frame: int
    write_protect: bool = False  # downgrade to read-only instead of unmapping
    free: bool = False  # the copy is a replica on the receiving node: free it once unmapped
    cause: str = ""
    epoch: int = 0  # the entry's new epoch: an answer of an older epoch that arrives later is stale
    directory: int = -1  # the sender: one its receiver knows dead is ignored (its operation died with it)


@message
class FrameCopy(Request):
    """-> the owner of a frame: copy it into `dst_frame` on `dst` (the bytes travel owner -> dst
    once). The one page-copy path of replication and migration. With `free` (a migration) the
    frame is retired in the same step, so an access still in flight to it either is in the copy or
    gets ESTALE and faults again, and freed once the copy landed (a copy that fails leaves it in
    place); the generations, when given, must still be the frames'. `dst_master_of`: the copy
    makes the target the master of that page (announced if its directory dies). A move whose
    `directory` died meanwhile leaves the source frame in place (it was, or will be, announced
    as the master) and the target refuses it once it knows the death."""

    kind = "frame.copy"
    reply = Ok
    frame: int
    dst: int
    dst_frame: int
    generation: int | None = None
    dst_generation: int | None = None
    free: bool = False
    dst_master_of: list | None = None
    directory: int = -1  # a move's directory: if it died meanwhile, the source keeps the frame


@message
class ReplicaCopy(Request):
    """Directory -> owner of the master: send this frame's bytes to home node `dst` as the answer
    to its pending read (ReplicaFill), then acknowledge. The directory holds the page lock until
    this ack, so nothing can change the page or its copies while the bytes travel."""

    kind = "repl.copy"
    reply = Ok
    frame: int  # the master on the receiving node, and its generation
    generation: int
    dst: int
    obj: str  # the rest is what the ReplicaFill to `dst` carries besides the bytes
    idx: int
    dst_frame: int
    dst_generation: int
    epoch: int
    cost_ns: int


@message
class ReplicaFill(Request):
    """Master's owner -> home node `dst` of ReplicaCopy: the bytes of a new replica, into the
    frame the home node offered in its dir.read, and the directory's answer to that read (a
    forwarded reply: the home node maps the replica at once, without waiting for the directory's
    own answer). Refused unless that exact frame (and generation) is still waiting for the copy
    of (obj, idx)."""

    kind = "repl.fill"
    reply = Ok
    obj: str
    idx: int
    frame: int
    generation: int
    epoch: int
    cost_ns: int
    data: bytes
