"""Reclaim's choice of victims (a clock with second chance, oldest first) and direct reclaim on a
one-node pure core: a file bigger than the node reads back exactly, the least recently used pages
go, a dirty page is written back before it is dropped, a locked page is kept."""
from __future__ import annotations

from collections import OrderedDict

import pytest

from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.node import Node
from numa_emu.nodes.reclaim import clock_victims
from numa_emu.nodes.store import Store
from numa_emu.protocol.effects import Call, Future, Spawn, answer_locally, gather
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.topology import from_cli

PAGE = 4096
FRAMES = 16


def lru(*frames: int) -> OrderedDict:
    return OrderedDict((f, ("file:f", f)) for f in frames)


def test_the_oldest_unreferenced_frames_are_taken_and_all_move_to_the_young_end():
    pages, referenced = lru(5, 3, 9, 1), bytearray(16)
    victims, scanned = clock_victims(pages, referenced, 2)
    assert [f for f, _ in victims] == [5, 3] and scanned == 2
    assert list(pages) == [9, 1, 5, 3]  # a victim whose reclaim fails waits its turn again


def test_a_referenced_frame_gets_a_second_chance_with_its_bit_cleared():
    pages, referenced = lru(5, 3, 9), bytearray(16)
    referenced[5] = referenced[9] = 1
    victims, scanned = clock_victims(pages, referenced, 2)
    assert [f for f, _ in victims] == [3, 5] and scanned == 4  # 5 passed over once, then taken
    assert referenced[5] == 0 and referenced[9] == 0 and list(pages) == [3, 9, 5]


def test_busy_frames_are_passed_over_and_each_frame_is_seen_at_most_twice():
    pages, referenced = lru(1, 2, 3), bytearray(16)
    referenced[2] = 1
    victims, scanned = clock_victims(pages, referenced, 10, busy={1})
    assert [f for f, _ in victims] == [3, 2] and scanned == 3  # a frame taken once is not taken again
    assert clock_victims(lru(), referenced, 4) == ([], 0)


# ---- direct reclaim on a one-node pure core --------------------------------------------------
def drive(gen, node: Node, others: dict | None = None):
    """Run a handler generator of a one-node cluster to its end: every effect is local, and a
    Call to the node itself is answered from its handler table, as the effect runner does;
    `others`: destination -> {kind: handler} of other processes answered in place (a coordinator)."""
    def future(effect) -> Future:
        if isinstance(effect, list):
            return gather([future(e) for e in effect])
        if isinstance(effect, Future):
            return effect
        if isinstance(effect, Call) and others and effect.dest in others:
            return answer_locally(others[effect.dest][effect.request.kind], effect.request, spawn, crashed)
        assert isinstance(effect, Call) and effect.dest == "node:0", f"a one-node core asked for {effect!r}"
        return answer_locally(node.handlers[type(effect.request)], effect.request, spawn, crashed)

    def spawn(g, done) -> None:
        try:
            result = drive(g, node, others)
        except NumaEmuError as exc:
            done(None, exc)
        else:
            done(result, None)

    def crashed(exc: BaseException) -> None:
        raise AssertionError("a handler crashed") from exc

    value, exc = None, None
    while True:
        try:
            effect = gen.throw(exc) if exc is not None else gen.send(value)
        except StopIteration as stop:
            return stop.value
        if isinstance(effect, Spawn):
            drive(effect.gen, node, others)
            value, exc = None, None
            continue
        fut = future(effect)
        assert fut.done, f"a one-node core waits for {effect!r}"
        value, exc = fut.result, fut.exception


class OneNode:
    def __init__(self, tmp_path, pages: int):
        topology = from_cli(1, 1, f"{FRAMES * PAGE}").to_dict()
        self.store = Store(tmp_path, PAGE)
        (tmp_path / "f").write_bytes(b"".join(self.page(i) for i in range(pages)))
        self.node = Node(0, topology, FramePool(FRAMES, PAGE), self.store, lambda: 0)
        self.core, self.repl = self.node.core, self.node.replication

    @staticmethod
    def page(i: int) -> bytes:
        return (f"f{i:04d}".encode() * PAGE)[:PAGE]

    def _msg(self, cls, idx: int, **kw):
        return cls(obj="file:f", idx=idx, mapper=0, task_node=0, policy={"mode": 0}, allowed=[0],
                   interleave_index=0, **kw)

    def read(self, idx: int) -> bytes:
        reply = drive(self.repl.read(self._msg(pc.DirRead, idx, replicate=False)), self.node)
        return self.core.pool.read(reply.frame)

    def write(self, idx: int, data: bytes) -> None:
        reply = drive(self.repl.write(self._msg(pc.DirWrite, idx)), self.node)
        self.core.pool.write(reply.frame, 0, data)

    def cached(self) -> list[int]:
        return sorted(idx for (_obj, idx), e in self.repl.dir.entries.items() if e.node >= 0)

    def forget_references(self) -> None:
        self.core.pool.referenced[:] = bytes(FRAMES)


def test_a_file_twice_the_node_reads_back_and_the_oldest_pages_go(tmp_path):
    n = OneNode(tmp_path, 2 * FRAMES)
    n.core.trace.configure(True, ["reclaim"])
    for i in range(2 * FRAMES):
        assert n.read(i) == n.page(i)
    ev = n.core.events
    traced = n.core.trace.drain()
    assert [(e["obj"], e["idx"], e["replica"], e["by"]) for e in traced] == [
        ("file:f", i, False, "direct") for i in range(FRAMES)]
    assert n.cached() == list(range(FRAMES, 2 * FRAMES))  # least recently used first
    assert ev["pgsteal_direct"] == FRAMES == ev["pgpgin"] * 1024 // PAGE - len(n.core.cache_frames)
    assert ev["pgscan_direct"] == FRAMES + FRAMES  # the first look gave every fresh page its second chance
    assert n.read(0) == n.page(0)  # read again from the store
    assert ev["pgsteal_direct"] == FRAMES + 1 and n.core.pool.used == FRAMES == len(n.core.cache_frames)


def test_a_dirty_page_is_written_back_then_dropped_and_a_used_page_survives(tmp_path):
    n = OneNode(tmp_path, 2 * FRAMES)
    for i in range(FRAMES):
        n.read(i)
    n.write(0, b"W" * PAGE)  # page 0 dirty
    n.forget_references()
    n.read(1)  # page 1 used again
    assert n.store.pages.read_page("f", 0) == n.page(0)
    n.read(FRAMES)  # the oldest, page 0, goes: written back first
    assert 0 not in n.cached() and n.core.events["nr_vmscan_write"] == 1
    assert n.store.pages.read_page("f", 0) == b"W" * PAGE
    n.read(FRAMES + 1)  # page 1 has its second chance: page 2 goes
    assert n.cached() == [1] + list(range(3, FRAMES + 2))
    assert n.read(0) == b"W" * PAGE  # read back from the store


def test_a_locked_page_is_kept_and_nothing_freeable_is_enomem(tmp_path):
    n = OneNode(tmp_path, FRAMES + 1)
    for i in range(FRAMES):
        n.read(i)
    n.forget_references()
    for (_obj, _idx), entry in n.repl.dir.entries.items():
        entry.lock.held = True  # every page busy (a fault in flight on each)
    gen = n.repl.read(n._msg(pc.DirRead, FRAMES, replicate=False))
    with pytest.raises(NumaEmuError) as err:
        drive(gen, n.node)
    assert err.value.code == ErrorCode.ENOMEM
    assert n.core.events["pgsteal_direct"] == 0 and n.cached() == list(range(FRAMES))


def test_an_entry_made_after_a_dropped_one_starts_at_its_epoch(tmp_path):
    """Home nodes discard answers older than the last shootdown they saw: a page read again after
    its entry was dropped (reclaim, truncate) must not be answered with epoch 0 (it was asked forever)."""
    n = OneNode(tmp_path, FRAMES + 1)
    n.read(0)
    old = n.repl.dir.entries[("file:f", 0)]
    old.epoch = 7  # shootdowns seen by the home nodes
    drive(n.repl.truncate(pc.DirTruncate(obj="file:f", first_idx=0)), n.node)
    assert n.repl.dir.entry("file:f", 0).epoch == 8  # the truncate's own shootdown made it 8
