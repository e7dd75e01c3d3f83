"""The coordinator's file handlers: open, create, import, resize (truncate drops cached pages on
every directory shard first), mapping counts; every change is pushed to every node, which needs
sizes and flags for reads, writeback and the replication filters. The store is the cluster's one
file system: nodes of other hosts read and write its pages through here (store.read, store.write)."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from numa_emu.coordinator.files import MAX_FILE_BYTES, FileRecord, FileTable, check_name, check_size
from numa_emu.coordinator.state import ClusterState
from numa_emu.protocol.clusterdir import open_private
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.policy import Mode, make_policy, policy_to_str
from numa_emu.protocol.storepages import StorePages

log = logging.getLogger("coordinator.files")
_UPLOAD_PREFIX = ".import-"  # a file import in progress (hidden: '.' names are no store files)
_UPLOAD_ID = re.compile(r"[0-9a-f]{8,64}")


class FileService:
    def __init__(self, state: ClusterState, store: Path):
        self.state = state
        self.store = store
        self.table = FileTable()
        self.pages = StorePages(store, state.page_size)
        store.mkdir(mode=0o700, exist_ok=True)
        for stale in store.glob(f"{_UPLOAD_PREFIX}*"):  # imports cut short by an earlier run
            stale.unlink()

    def handlers(self) -> dict:
        return {"file.open": self.open, "file.resize": self.resize, "file.mapped": self.mapped,
                "file.list": self.list, "file.import": self.import_, "file.set_policy": self.set_policy,
                "store.read": self.store_read, "store.write": self.store_write}

    def _push(self, rec: FileRecord):
        info = pc.NodeFileInfo(name=rec.name, size=rec.size, writably_mapped=rec.writable_maps > 0,
                               exec_mapped=rec.exec_maps > 0, policy=rec.policy)
        yield self.state.broadcast(info)
        return pc.FileInfoReply(file=rec.to_dict())

    def _known(self, name: str) -> FileRecord | None:
        rec = self.table.get(name)
        if rec is None and (self.store / name).is_file():  # stored by an earlier run of the cluster
            rec = self.table.add(name, (self.store / name).stat().st_size)
        return rec

    def open(self, msg: pc.FileOpen):
        rec = self._known(msg.name)
        if rec is None:
            if not msg.create:
                raise NumaEmuError(ErrorCode.ENOENT, f"no file {msg.name!r} in the store (create it, or numa-emu file import)")
            size = check_size(msg.size or 0)
            with os.fdopen(open_private(self.store / msg.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
                f.truncate(size)
            rec = self.table.add(msg.name, size)
            log.info("file %s created, %d bytes", msg.name, size)
        elif msg.create and msg.size is not None and msg.size != rec.size:
            return (yield from self._resize(rec, msg.size))
        return (yield from self._push(rec))

    def import_(self, msg: pc.FileImport):
        """Take one chunk of a client's upload (pc.FileImport): appended to a hidden file of the
        store, which becomes `name` with the last chunk."""
        self.table.get(msg.name)  # validates the name
        if not _UPLOAD_ID.fullmatch(msg.upload):
            raise NumaEmuError(ErrorCode.EINVAL, f"bad upload id {msg.upload!r}: 8 to 64 hex digits")
        if len(msg.data) > pc.IMPORT_CHUNK_BYTES:
            raise NumaEmuError(ErrorCode.EMSGSIZE, f"an import chunk carries at most {pc.IMPORT_CHUNK_BYTES} bytes, "
                                                   f"got {len(msg.data)}")
        check_size(msg.offset)
        check_size(msg.offset + len(msg.data))
        part = self.store / f"{_UPLOAD_PREFIX}{msg.upload}"
        if self._known(msg.name) is not None:
            part.unlink(missing_ok=True)
            raise NumaEmuError(ErrorCode.EEXIST, f"file {msg.name!r} exists in the store already")
        flags = os.O_WRONLY | (os.O_CREAT | os.O_EXCL if msg.offset == 0 else 0)
        try:
            fd = open_private(part, flags)
        except FileExistsError:
            raise NumaEmuError(ErrorCode.EEXIST, f"upload {msg.upload} was started already") from None
        except FileNotFoundError:
            raise NumaEmuError(ErrorCode.ENOENT, f"no upload {msg.upload} in progress (start at offset 0)") from None
        try:
            if os.fstat(fd).st_size != msg.offset:
                raise NumaEmuError(ErrorCode.EINVAL, f"upload {msg.upload} holds {os.fstat(fd).st_size} bytes, "
                                                     f"not {msg.offset}: send the chunks in order")
            os.pwrite(fd, msg.data, msg.offset)
        finally:
            os.close(fd)
        if not msg.done:
            return None
        os.replace(part, self.store / msg.name)
        rec = self.table.add(msg.name, msg.offset + len(msg.data))
        log.info("file %s imported, %d bytes", msg.name, rec.size)
        return (yield from self._push(rec))

    def resize(self, msg: pc.FileResize):
        rec = self._known(msg.name)
        if rec is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"no file {msg.name!r}")
        return (yield from self._resize(rec, msg.size))

    def _resize(self, rec: FileRecord, size: int):
        size = check_size(size)
        if size < rec.size:  # truncate: unmap and drop the cached pages past the new end everywhere
            ps = self.state.page_size
            drop = pc.DirTruncate(obj=f"file:{rec.name}", first_idx=-(-size // ps))
            yield self.state.broadcast(drop)
        os.truncate(self.store / rec.name, size)
        rec.size = size
        return (yield from self._push(rec))

    def mapped(self, msg: pc.FileMapped):
        rec = self._known(msg.name)
        if rec is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"no file {msg.name!r}")
        before = (rec.writable_maps > 0, rec.exec_maps > 0)
        self.table.mapped(msg.name, msg.writable, msg.exec, msg.delta)
        if (rec.writable_maps > 0, rec.exec_maps > 0) != before:
            return (yield from self._push(rec))
        return pc.FileInfoReply(file=rec.to_dict())

    def set_policy(self, msg: pc.FileSetPolicy):
        """The file's shared policy, over any node of the machine (each reader's cpuset still
        limits where its faults may allocate); pages already cached stay where they are."""
        rec = self._known(msg.name)
        if rec is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"no file {msg.name!r} (see: numa-emu file ls)")
        nodes = [n.id for n in self.state.nodes.values()]
        policy = make_policy(msg.mode, msg.nodes, allowed=nodes, possible=nodes)
        rec.policy = None if policy.mode == Mode.DEFAULT else policy.to_wire()
        log.info("file %s: shared policy %s", rec.name, policy_to_str(policy))
        return (yield from self._push(rec))

    def list(self, msg: pc.FileList) -> pc.FileListReply:
        for path in sorted(self.store.iterdir()) if self.store.is_dir() else []:
            if path.is_file() and not path.name.startswith("."):
                self._known(path.name)
        return pc.FileListReply(files=[r.to_dict() for r in sorted(self.table.files.values(), key=lambda r: r.name)])

    # ---- the store's pages, for nodes of other hosts (nodes/store.py RemoteStore) --------------
    def _page(self, name: str, idx: int) -> None:
        check_name(name)
        if not isinstance(idx, int) or idx < 0 or idx * self.pages.page_size >= MAX_FILE_BYTES:
            raise NumaEmuError(ErrorCode.EINVAL, f"page {idx} of file {name!r} is out of range: "
                                                 f"0..{MAX_FILE_BYTES // self.pages.page_size - 1}")

    def store_read(self, msg: pc.StoreRead) -> pc.StoreReadReply:
        self._page(msg.name, msg.idx)
        try:
            return pc.StoreReadReply(data=self.pages.read_page(msg.name, msg.idx))
        except OSError as exc:
            raise NumaEmuError(ErrorCode.EIO, f"store: cannot read page {msg.idx} of file {msg.name!r}: "
                                              f"{exc.strerror}") from None

    def store_write(self, msg: pc.StoreWrite) -> Ok:
        self._page(msg.name, msg.idx)
        check_size(msg.file_size)
        if len(msg.data) > self.pages.page_size:
            raise NumaEmuError(ErrorCode.EMSGSIZE, f"store.write carries at most a page ({self.pages.page_size} "
                                                   f"bytes), got {len(msg.data)}")
        if self._known(msg.name) is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"no file {msg.name!r} in the store to write page {msg.idx} of")
        try:
            self.pages.write_page(msg.name, msg.idx, msg.data, msg.file_size)
        except OSError as exc:
            raise NumaEmuError(ErrorCode.EIO, f"store: cannot write page {msg.idx} of file {msg.name!r}: "
                                              f"{exc.strerror}") from None
        return Ok()

    def writeback_all(self):
        """Effects that write every dirty page of every shard back to the store (before `down`)."""
        return self.state.broadcast(pc.DirWriteback(obj=None), 30.0)
