"""A task's file operations on its home node: pread, pwrite, fsync, and mapping a file.

pread and pwrite go through the page cache like read(2) and write(2): a read may create a
replica on this node (Piggin's do_generic_mapping_read path), a write collapses the replicas
first. File sizes and mapping flags come from the coordinator (the file table's authority).
"""
from __future__ import annotations

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.nodes.pagetable import FILE
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.routing import node_dest


class FileOps:
    def __init__(self, core: NodeCore, mmgr: MemoryManager, pcache: PageCacheView, files: FileTable):
        self.core = core
        self.mm = mmgr
        self.pcache = pcache
        self.files = files

    def handlers(self) -> dict:
        return {"mem.pread": self.pread, "mem.pwrite": self.pwrite, "mem.fsync": self.fsync,
                "mem.mmap_file": self.mmap_file}

    def _page(self, task, name: str, idx: int, write: bool):
        policy = self.files.policy(name) or task.policy
        replicate = not write and self.mm.may_replicate(task, name)
        return (yield from self.pcache.lookup(f"file:{name}", idx, write=write, task=task, policy=policy.to_wire(),
                                                 interleave_index=idx, replicate=replicate))

    def _io(self, task, name: str, idx: int, offset: int, n: int, data: bytes | None):
        """One page's part of a pread/pwrite through the page cache (PageCacheView.access: looked
        up again when the page moved or was truncated meanwhile); each lookup's cost is the task's."""
        core = self.core

        def locate(_again: bool):
            page, cost = yield from self._page(task, name, idx, data is not None)
            task.clock_ns += cost + core.cost.access_ns(task.node, page.node, n)
            return page.node, page.frame, page.gen

        return (yield from self.pcache.access((f"file:{name}", idx), offset, n, data, locate))

    def pread(self, msg: pc.FileRead):
        task = self.mm.task(msg.task_id)
        if msg.offset < 0 or msg.length < 0:
            raise NumaEmuError(ErrorCode.EINVAL, "pread offset and length must not be negative")
        size = self.files.known(msg.name).size
        end = min(size, msg.offset + msg.length)
        ps, out, pos = self.core.page_size, bytearray(), msg.offset
        while pos < end:
            idx, off = divmod(pos, ps)
            n = min(ps - off, end - pos)
            out += yield from self._io(task, msg.name, idx, off, n, None)
            pos += n
        return pc.FileReadReply(data=bytes(out), clock_ns=task.clock_ns)

    def pwrite(self, msg: pc.FileWrite):
        task = self.mm.task(msg.task_id)
        if msg.offset < 0:
            raise NumaEmuError(ErrorCode.EINVAL, "pwrite offset must not be negative")
        state = self.files.known(msg.name)
        end = msg.offset + len(msg.data)
        if end > state.size:  # grow the file first: the coordinator is the size authority
            reply = yield Call("coordinator", pc.FileResize(name=msg.name, size=end))
            state.size = max(state.size, reply.file["size"])
        ps, pos = self.core.page_size, msg.offset
        while pos < end:
            idx, off = divmod(pos, ps)
            n = min(ps - off, end - pos)
            yield from self._io(task, msg.name, idx, off, n, msg.data[pos - msg.offset:pos - msg.offset + n])
            pos += n
        return pc.FileWriteReply(written=len(msg.data), clock_ns=task.clock_ns)

    def fsync(self, msg: pc.FileSync):
        self.mm.task(msg.task_id)
        self.files.known(msg.name)
        wb = pc.DirWriteback(obj=f"file:{msg.name}")
        core = self.core
        yield [Call(node_dest(n), wb) for n in range(core.n_nodes) if n not in core.dead]
        return Ok()

    def mmap_file(self, msg: pc.FileMmap):
        task = self.mm.task(msg.task_id)
        state = self.files.known(msg.name)
        ps = self.core.page_size
        if msg.offset < 0 or msg.offset % ps:
            raise NumaEmuError(ErrorCode.EINVAL, f"file offset {msg.offset} is not page aligned")
        length = state.size - msg.offset if msg.length is None else msg.length
        if length <= 0:
            raise NumaEmuError(ErrorCode.EINVAL, f"nothing to map: file {msg.name!r} has {state.size} bytes")
        yield Call("coordinator", pc.FileMapped(name=msg.name, writable=msg.writable, exec=msg.exec, delta=1))
        region = task.space.map(-(-length // ps), FILE, msg.name, msg.offset // ps)
        region.writable, region.exec = msg.writable, msg.exec
        return mm.MmapReply(vaddr=region.start, length=region.npages * ps, clock_ns=task.clock_ns)
