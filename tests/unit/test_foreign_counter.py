"""numa_foreign owed to a preferred node (nodes/core.py add_foreign, take_foreign): each sender
sends its running total, again until confirmed; the receiver adds what a total grew by, per
sender incarnation, so a duplicate, a late copy or a re-send counts once, and a restarted sender
starts again from zero."""
from __future__ import annotations

import collections

import pytest

from numa_emu.catalog import resolve_topology
from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.frames import FrameService
from numa_emu.nodes.framepool import FramePool
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from tests.helpers import run_effects

PAGE = 4096
TOPOLOGY = resolve_topology("default-4n").to_dict()


def partitioned(call):
    raise NumaEmuError(ErrorCode.ETIMEDOUT, f"{call.dest} did not answer stat.add")


def test_duplicates_late_copies_and_resends_count_once_per_incarnation():
    core = NodeCore(0, TOPOLOGY, FramePool(4, PAGE))
    assert [core.take_foreign(1, 100, t) for t in (3, 3, 2, 5, 4)] == [3, 0, 0, 2, 0]
    assert core.take_foreign(2, 7, 4) == 4  # another sender keeps its own total
    assert core.numastat["numa_foreign"] == 9
    assert core.take_foreign(1, 200, 1) == 1  # node 1 restarted: its totals start again at zero
    assert core.take_foreign(1, 100, 9) == 0  # a copy from before the restart, arriving late
    assert core.take_foreign(1, 200, 1) == 0
    assert core.numastat["numa_foreign"] == 10
    assert core.foreign_seen == {1: (200, 1), 2: (7, 4)}


def test_a_total_delivered_twice_through_stat_add_counts_once():
    core = NodeCore(3, TOPOLOGY, FramePool(4, PAGE))
    frames = FrameService(core)
    msg = mm.StatAdd(counter="numa_foreign", node=1, incarnation=5, total=6)
    assert frames.stat_add(msg) == frames.stat_add(msg)
    frames.stat_add(mm.StatAdd(counter="numa_foreign", node=1, incarnation=5, total=4))  # reordered
    assert core.numastat["numa_foreign"] == 6


@pytest.mark.parametrize("fields", [
    {"counter": "numa_hit", "node": 1, "incarnation": 0, "total": 1},
    {"counter": "numa_foreign", "node": 4, "incarnation": 0, "total": 1},
    {"counter": "numa_foreign", "node": -1, "incarnation": 0, "total": 1},
    {"counter": "numa_foreign", "node": 1, "incarnation": -1, "total": 1},
    {"counter": "numa_foreign", "node": 1, "incarnation": 0, "total": -1},
])
def test_a_bad_stat_add_is_refused_with_one_error_and_counts_nothing(fields):
    core = NodeCore(0, TOPOLOGY, FramePool(4, PAGE))
    with pytest.raises(NumaEmuError) as err:
        FrameService(core).stat_add(mm.StatAdd(**fields))
    assert err.value.code == ErrorCode.EINVAL
    assert err.value.message == (f"stat.add: cannot take a total of {fields['total']} {fields['counter']!r} "
                                 f"from node {fields['node']} (incarnation {fields['incarnation']})")
    assert core.numastat["numa_foreign"] == 0 and core.foreign_seen == {}


def test_a_total_that_timed_out_is_sent_again_until_confirmed_and_dropped_for_a_dead_node():
    core = NodeCore(0, TOPOLOGY, FramePool(4, PAGE), clock_ns=lambda: 1234)
    run_effects(core.add_foreign(collections.Counter({1: 2, 2: 1})), partitioned)
    assert core.foreign_owed == {1: 2, 2: 1} and core.foreign_unsent == {1, 2} and core.unconfirmed()
    assert run_effects(core.retry_foreign(), partitioned) == 2  # still cut off: kept
    run_effects(core.add_foreign(collections.Counter({1: 3})), partitioned)
    core.node_died(2, "killed")  # its counters died with it
    assert core.foreign_owed == {1: 5} and core.foreign_unsent == {1}
    sent = []
    assert run_effects(core.retry_foreign(), lambda call: sent.append((call.dest, call.request))) == 0
    assert sent == [("node:1", mm.StatAdd(counter="numa_foreign", node=0, incarnation=1234, total=5))]
    assert not core.unconfirmed()
    assert run_effects(core.retry_foreign(), partitioned) == 0  # nothing left to send


def test_a_later_total_confirmed_covers_an_earlier_one_that_failed():
    sender, receiver = NodeCore(0, TOPOLOGY, FramePool(4, PAGE)), NodeCore(1, TOPOLOGY, FramePool(4, PAGE))
    frames = FrameService(receiver)
    run_effects(sender.add_foreign(collections.Counter({1: 2})), partitioned)
    run_effects(sender.add_foreign(collections.Counter({1: 1})), lambda call: frames.stat_add(call.request))
    assert sender.foreign_unsent == set() and receiver.numastat["numa_foreign"] == 3
    run_effects(sender.retry_foreign(), lambda call: frames.stat_add(call.request))  # nothing unconfirmed: nothing sent
    assert receiver.numastat["numa_foreign"] == 3
