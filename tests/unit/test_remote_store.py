"""The one store across hosts on a one-node pure core (nodes/store.py RemoteStore): a directory
home that is not on the coordinator's host fills pages from the coordinator's store and writes
them back there, through the coordinator's own handlers (coordinator/fileserver.py); a read that
fails gives its frame back and leaves no entry."""
from __future__ import annotations

import pytest

from numa_emu.coordinator.fileserver import FileService
from numa_emu.coordinator.state import ClusterState
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.node import Node
from numa_emu.nodes.store import RemoteStore
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.topology import from_cli
from tests.unit.test_reclaim import drive

PAGE = 4096
FRAMES = 16


class Remote:
    """Node 0 with a RemoteStore, and a coordinator's FileService over `folder` answering it."""

    def __init__(self, folder):
        topology = from_cli(1, 1, f"{FRAMES * PAGE}").to_dict()
        self.files = FileService(ClusterState("c", topology, 0.0, 1.0), folder)
        self.coordinator = self.files.handlers()
        self.node = Node(0, topology, FramePool(FRAMES, PAGE), RemoteStore(PAGE), lambda: 0)
        self.repl = self.node.replication

    def run(self, gen):
        return drive(gen, self.node, {"coordinator": self.coordinator})

    def open(self, name: str):
        reply = self.run(self.files.open(pc.FileOpen(name=name)))
        info = reply.file
        self.node.handlers[pc.NodeFileInfo](pc.NodeFileInfo(name=name, size=info["size"], writably_mapped=False,
                                                            exec_mapped=False, policy=None))

    def _msg(self, cls, name: str, idx: int, **kw):
        return cls(obj=f"file:{name}", idx=idx, mapper=0, task_node=0, policy={"mode": 0}, allowed=[0],
                   interleave_index=0, **kw)

    def read(self, name: str, idx: int) -> bytes:
        reply = self.run(self.repl.read(self._msg(pc.DirRead, name, idx, replicate=False)))
        return self.node.core.pool.read(reply.frame)

    def write(self, name: str, idx: int, data: bytes) -> None:
        reply = self.run(self.repl.write(self._msg(pc.DirWrite, name, idx)))
        self.node.core.pool.write(reply.frame, 0, data)


def test_pages_are_filled_from_and_written_back_to_the_coordinators_store(tmp_path):
    stored = bytes(range(256)) * 16 + b"tail"  # a page and 4 bytes
    (tmp_path / "f").write_bytes(stored)
    r = Remote(tmp_path)
    r.open("f")
    assert r.read("f", 0) == stored[:PAGE]
    assert r.read("f", 1) == b"tail" + bytes(PAGE - 4)  # zeros past the stored end
    assert r.node.core.events["pgpgin"] == 2 * PAGE // 1024
    r.write("f", 1, b"TAIL" + b"x" * (PAGE - 4))
    r.run(r.repl.writeback(pc.DirWriteback(obj="file:f")))
    assert (tmp_path / "f").read_bytes() == stored[:PAGE] + b"TAIL"  # cut at the file's size
    assert r.node.core.events["pgwriteback"] == 1


def test_a_store_read_that_fails_gives_its_frame_back(tmp_path):
    r = Remote(tmp_path)
    (tmp_path / "f").write_bytes(b"x")
    r.open("f")

    def refuse(msg):
        raise NumaEmuError(ErrorCode.EIO, f"store: cannot read page {msg.idx} of file {msg.name!r}: Input/output error")

    r.coordinator = {**r.coordinator, "store.read": refuse}
    with pytest.raises(NumaEmuError) as err:
        r.read("f", 0)
    assert (err.value.code, err.value.message) == (ErrorCode.EIO, "store: cannot read page 0 of file 'f': "
                                                                  "Input/output error")
    assert r.node.core.pool.used == 0 and r.repl.dir.entries[("file:f", 0)].node == -1
    r.coordinator = r.files.handlers()
    assert r.read("f", 0) == b"x" + bytes(PAGE - 1)  # the next access reads the store
