"""The backing store of the page cache, as a node sees it: one file per page-cache object in the
coordinator's store folder (protocol/storepages.py). Only directory homes read from it (when a
page enters the page cache) and write to it (writeback: fsync, reclaim, down). A node that shares
the coordinator's cluster folder (its host, its NUMA_EMU_HOME) reads and writes the files itself
(Store); a node of another host asks the coordinator, whose store it is (RemoteStore), so that
the cluster has one file system (docs/design.md#hosts). Both are generators for the handlers
to `yield from`. Injected into the core, so a simulator can use a folder of its own."""
from __future__ import annotations

from pathlib import Path

from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.routing import COORDINATOR
from numa_emu.protocol.storepages import StorePages

FILE_PREFIX = "file:"  # page-cache objects are named file:NAME; shm objects shm:NAME


def store_name(obj: str) -> str:
    return obj[len(FILE_PREFIX):]


class Store:
    """The store folder read and written here (the coordinator's folder, or a simulator's)."""

    def __init__(self, folder: Path, page_size: int):
        self.pages = StorePages(folder, page_size)

    def read_page(self, obj: str, idx: int):
        """Page `idx` as stored; zeros past the stored end (a page that exists only in the cache)."""
        return self.pages.read_page(store_name(obj), idx)
        yield  # never reached: a generator, as RemoteStore.read_page is

    def write_page(self, obj: str, idx: int, data: bytes, file_size: int):
        """Write page `idx`, cut at the file's size (a last partial page is written partially)."""
        self.pages.write_page(store_name(obj), idx, data, file_size)
        return
        yield  # never reached: a generator, as RemoteStore.write_page is


class RemoteStore:
    """The coordinator's store, page by page over store.read / store.write (a node of another host)."""

    def __init__(self, page_size: int):
        self.page_size = page_size

    def read_page(self, obj: str, idx: int):
        reply = yield Call(COORDINATOR, pc.StoreRead(name=store_name(obj), idx=idx))
        if len(reply.data) != self.page_size:
            raise NumaEmuError(ErrorCode.EIO, f"store.read of page {idx} of {obj} gave {len(reply.data)} bytes, "
                                              f"not a page of {self.page_size}")
        return reply.data

    def write_page(self, obj: str, idx: int, data: bytes, file_size: int):
        yield Call(COORDINATOR, pc.StoreWrite(name=store_name(obj), idx=idx, data=data, file_size=file_size))
