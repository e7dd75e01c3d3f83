"""The backing store's files page by page: one file per page-cache object, named as the object
without its "file:" prefix, in the store folder of the coordinator's cluster folder. There is one
store per cluster: a node that shares the coordinator's folder reads and writes it here directly
(nodes/store.py), a node of another host through the coordinator (store.read / store.write,
coordinator/fileserver.py), which answers with this same code."""
from __future__ import annotations

import os
from pathlib import Path

from numa_emu.protocol.errors import ErrorCode, NumaEmuError


class StorePages:
    def __init__(self, folder: Path, page_size: int):
        self.folder = folder
        self.page_size = page_size

    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise NumaEmuError(ErrorCode.EINVAL, f"bad file name {name!r}")
        return self.folder / name

    def read_page(self, name: str, idx: int) -> bytes:
        """Page `idx` as stored; zeros past the stored end (a page that exists only in the cache)."""
        try:
            with open(self.path(name), "rb") as f:
                f.seek(idx * self.page_size)
                data = f.read(self.page_size)
        except FileNotFoundError:
            data = b""
        return data + bytes(self.page_size - len(data))

    def write_page(self, name: str, idx: int, data: bytes, file_size: int) -> None:
        """Write page `idx`, cut at the file's size (a last partial page is written partially)."""
        keep = max(0, min(len(data), file_size - idx * self.page_size))
        fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT, 0o600)  # the owner's alone, as the whole cluster folder
        try:
            os.pwrite(fd, data[:keep], idx * self.page_size)
        finally:
            os.close(fd)
