"""The backing store of the page cache: one file per page-cache object in the cluster's store
folder. Only directory homes read from it (when a page enters the page cache) and write to it
(writeback: fsync, reclaim, down). Injected into the core, so a simulator can use memory instead."""
from __future__ import annotations

import os
from pathlib import Path

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

FILE_PREFIX = "file:"  # page-cache objects are named file:NAME; shm objects shm:NAME


def store_name(obj: str) -> str:
    return obj[len(FILE_PREFIX):]


class Store:
    def __init__(self, folder: Path, page_size: int):
        self.folder = folder
        self.page_size = page_size

    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise NumaEmuError(ErrorCode.EINVAL, f"bad file name {name!r}")
        return self.folder / name

    def read_page(self, obj: str, idx: int) -> bytes:
        """Page `idx` as stored; zeros past the stored end (a page that exists only in the cache)."""
        try:
            with open(self.path(store_name(obj)), "rb") as f:
                f.seek(idx * self.page_size)
                data = f.read(self.page_size)
        except FileNotFoundError:
            data = b""
        return data + bytes(self.page_size - len(data))

    def write_page(self, obj: str, idx: int, data: bytes, file_size: int) -> None:
        """Write page `idx`, cut at the file's size (a last partial page is written partially)."""
        keep = max(0, min(len(data), file_size - idx * self.page_size))
        path = self.path(store_name(obj))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # the owner's alone, as the whole cluster folder
        try:
            os.pwrite(fd, data[:keep], idx * self.page_size)
        finally:
            os.close(fd)
