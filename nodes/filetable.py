"""What a node knows of the page-cache files: each file's size, whether it is mapped writable or
executable anywhere, and its shared policy, pushed by the coordinator (node.file.info), the
file table's authority. The memory manager (placement, the replication filters), the file
operations and the directory's writeback read it.
"""
from __future__ import annotations

from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.policy import Policy


@dataclass
class FileState:
    """What a node knows of a page-cache file (pushed by the coordinator)."""

    size: int = 0
    writably_mapped: bool = False
    exec_mapped: bool = False
    policy: Policy | None = None  # the file's shared policy: it places the pages, not the reader's


class FileTable:
    def __init__(self) -> None:
        self.files: dict[str, FileState] = {}

    def handlers(self) -> dict:
        return {"node.file.info": self.file_info}

    def file_info(self, msg: pc.NodeFileInfo) -> Ok:
        self.files[msg.name] = FileState(msg.size, msg.writably_mapped, msg.exec_mapped,
                                         Policy.from_wire(msg.policy) if msg.policy is not None else None)
        return Ok()

    def get(self, name: str) -> FileState | None:
        return self.files.get(name)

    def known(self, name: str) -> FileState:
        """The state of file `name`; ENOENT if the coordinator never told of it."""
        state = self.files.get(name)
        if state is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"file {name!r} is not open in this cluster (open it first)")
        return state

    def policy(self, name: str) -> Policy | None:
        """The shared policy of file `name`, if it has one (it outranks the readers' policies)."""
        state = self.files.get(name)
        return state.policy if state is not None else None
