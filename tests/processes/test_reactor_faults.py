"""Node-to-node calls under injected faults (protocol.peercalls), reactors in this process turned
by hand over ipc: a lost request or reply is re-sent with the same id, a duplicate is served once,
a partition fails the call with ETIMEDOUT naming the node, and a call nobody faults is untouched."""
from __future__ import annotations

import time

import pytest

from numa_emu.protocol.effects import Future
from numa_emu.protocol.errors import ErrorCode
from numa_emu.protocol.faults import FaultInjector, FaultTable
from numa_emu.protocol.keys import KEYS_DIR, ClusterKeys
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.reactor import Reactor


def _keys(tmp_path) -> ClusterKeys:
    return ClusterKeys.load(tmp_path) if (tmp_path / KEYS_DIR).is_dir() else ClusterKeys.create(tmp_path)


def _node(tmp_path, node: int, served: list) -> Reactor:
    r = Reactor(f"node {node}", identity=f"node:{node}", keys=_keys(tmp_path))
    r.bind(f"ipc://{tmp_path}/node-{node}.sock")

    def ping(msg):  # the operation: counted once per request id it serves
        served.append(msg.id)
        return lc.Pong(pid=len(served), role="node", name=f"node {node}", uptime_s=0.0)

    r.on("ping", ping)
    return r


def _settle(futs: list[Future], reactors: list[Reactor], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(f.done for f in futs):
        assert time.monotonic() < deadline, "calls neither answered nor timed out"
        for r in reactors:
            r.run_once(1)


@pytest.fixture
def pair(tmp_path):
    served: list[int] = []
    a, b = _node(tmp_path, 0, []), _node(tmp_path, 1, served)
    a.routes["node:1"] = b.endpoint
    yield a, b, served
    a.close()
    b.close()


def _fault(table: FaultTable, *reactors: Reactor) -> None:
    for i, r in enumerate(reactors):
        r.set_faults(FaultInjector(table, i))


@pytest.mark.parametrize("kind, p", [("drop", 0.3), ("dup", 0.6), ("reorder", 0.5), ("delay", 0.5)])
def test_every_call_completes_and_is_served_once(pair, kind, p):
    a, b, served = pair
    table = FaultTable(2, seed=4)
    table.set_rule(kind, p, 30)
    _fault(table, a, b)
    futs = [a.call("node:1", lc.Ping()) for _ in range(60)]
    _settle(futs, [a, b])
    assert [f.exception for f in futs] == [None] * 60
    assert len(served) == len(set(served)) == 60  # each request applied once
    stats = a.counters() | {f"b.{k}": v for k, v in b.counters().items()}
    key = {"drop": "fault_dropped", "dup": "fault_duplicated", "reorder": "fault_reordered", "delay": "fault_delayed"}[kind]
    assert stats.get(key, 0) + stats.get(f"b.{key}", 0) > 0
    if kind == "drop":
        assert stats["calls_retried"] > 0
    if kind == "dup":
        assert stats.get("b.duplicates_ignored", 0) + stats.get("b.duplicates_answered", 0) > 0


def test_a_lost_reply_is_answered_again_from_the_cache(pair):
    a, b, served = pair
    table = FaultTable(2)
    table.set_rule("drop", 1.0, src=1, dst=0)  # every reply lost ...
    _fault(table, a, b)
    fut = a.call("node:1", lc.Ping(), timeout_s=30)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for r in (a, b):
            r.run_once(1)
    assert not fut.done and len(served) == 1
    b.set_faults(None)  # ... until the link heals: the retry gets the cached reply
    _settle([fut], [a, b])
    assert fut.exception is None and fut.result.pid == 1 and len(served) == 1
    assert b.counters()["duplicates_answered"] >= 1


def test_a_partition_times_out_naming_the_node(pair):
    a, b, served = pair
    table = FaultTable(2)
    table.partition([0], [1])
    _fault(table, a, b)
    fut = a.call("node:1", lc.Ping(), timeout_s=1.0)
    _settle([fut], [a, b])
    assert fut.exception.code == ErrorCode.ETIMEDOUT
    assert fut.exception.message.startswith("node 1 did not answer ping (request ")
    assert served == [] and a.counters()["fault_partitioned"] >= 2



def test_a_request_older_than_the_cache_is_refused_never_served_twice(tmp_path, monkeypatch):
    from numa_emu.protocol import peercalls

    monkeypatch.setattr(peercalls, "SERVED_PER_PEER", 2)
    r = Reactor("node 1", identity="node:1", keys=_keys(tmp_path))
    try:
        r.bind(f"ipc://{tmp_path}/node-1.sock")
        peer = [b"node:0"]
        for request_id in (10, 11, 12):
            assert r._duplicate(peer, request_id) is False  # new: to be served
            r._remember_reply(b"node:0", request_id, [b"node:0", b"reply"])
        assert r._duplicate(peer, 11) is True  # answered again from the cache
        assert r._duplicate(peer, 13) is False  # new; 10 is forgotten to make room
        assert r._duplicate(peer, 10) is True  # at or below the forgotten: refused, not served
        assert r._duplicate(peer, 13) is True  # being served: ignored
        stats = r.counters()
        assert (stats["duplicates_answered"], stats["duplicates_refused"], stats["duplicates_ignored"]) == (1, 1, 1)
    finally:
        r.close()
