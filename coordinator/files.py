"""The coordinator's pure core for the file table: which files the backing store holds, their
sizes (the coordinator is the size authority while pages are cached), and how many writable and
executable mappings each has (the no-writers and exec-only replication filters)."""
from __future__ import annotations

from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

MAX_FILE_BYTES = 1 << 40


@dataclass
class FileRecord:
    name: str
    size: int
    writable_maps: int = 0
    exec_maps: int = 0
    policy: dict | None = None  # the shared policy, as Policy.to_wire(); kept while the cluster runs

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "writable_maps": self.writable_maps, "exec_maps": self.exec_maps,
                "policy": self.policy}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or len(name) > 200:
        raise NumaEmuError(ErrorCode.EINVAL, f"bad file name {name!r}: a plain name, no '/', not starting with '.'")
    return name


def check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_BYTES:
        raise NumaEmuError(ErrorCode.EFBIG if isinstance(size, int) and size > 0 else ErrorCode.EINVAL,
                           f"file size must be between 0 and {MAX_FILE_BYTES} bytes, got {size}")
    return size


class FileTable:
    def __init__(self) -> None:
        self.files: dict[str, FileRecord] = {}

    def get(self, name: str) -> FileRecord | None:
        return self.files.get(check_name(name))

    def add(self, name: str, size: int) -> FileRecord:
        rec = self.files[check_name(name)] = FileRecord(name, check_size(size))
        return rec

    def mapped(self, name: str, writable: bool, exec_: bool, delta: int) -> FileRecord:
        rec = self.files.get(check_name(name))
        if rec is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"file {name!r} is not open")
        if delta not in (1, -1):
            raise NumaEmuError(ErrorCode.EINVAL, "a mapping count changes by 1 or -1")
        if writable:
            rec.writable_maps = max(0, rec.writable_maps + delta)
        if exec_:
            rec.exec_maps = max(0, rec.exec_maps + delta)
        return rec
