"""The simulator itself: a seed replays byte for byte, the default protocol keeps every invariant
over a few hundred seeds, the unsafe 2007 ordering is found within a bounded number of seeds,
and the checks bite on a protocol broken on purpose (a shootdown that unmaps nothing, a collapse
that does not wait for its acknowledgements)."""
from __future__ import annotations

import pytest

from numa_emu.nodes.core import node_dest
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.nodes.replication import Replication
from numa_emu.protocol.effects import Call, Spawn
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.sim.history import History
from numa_emu.sim.network import Violation
from numa_emu.sim.run import run
from numa_emu.sim.scenarios import SCENARIOS

UNSAFE = ["vm.unsafe_unreplicate=1"]
RACE_SEEDS = 20  # the unsafe race shows in nearly every seed of unreplicate-race; 20 bounds it well


def first_violation(scenario: str, seeds: range, sysctl=()):
    for seed in seeds:
        result = run(SCENARIOS[scenario], seed, sysctl, trace=False)
        if not result.ok:
            return result
    return None


def test_the_same_seed_gives_the_same_trace_and_another_seed_another():
    for name in SCENARIOS:
        a, b = run(SCENARIOS[name], 7), run(SCENARIOS[name], 7)
        assert a.ok and a.trace == b.trace and a.delivered == b.delivered
        assert a.trace[-1].endswith("done") and len(a.trace) > a.delivered
    traces = {tuple(run(SCENARIOS["replication"], seed).trace) for seed in range(4)}
    assert len(traces) == 4


def test_a_run_without_its_trace_is_the_same_run():
    for seed in range(3):
        with_trace = run(SCENARIOS["replication"], seed, UNSAFE)
        without = run(SCENARIOS["replication"], seed, UNSAFE, trace=False)
        assert (with_trace.violation, with_trace.delivered) == (without.violation, without.delivered)
        assert without.trace == []


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_default_protocol_keeps_every_invariant(name):
    assert first_violation(name, range(60)) is None  # 60 runs of each scenario


def test_the_unsafe_unreplicate_race_is_found_within_a_bounded_number_of_seeds():
    found = first_violation("unreplicate-race", range(RACE_SEEDS), UNSAFE)
    assert found is not None
    assert "which is free" in found.violation or "freed and reused" in found.violation
    again = run(SCENARIOS["unreplicate-race"], found.seed, UNSAFE)
    assert again.violation == found.violation and again.trace[-1].endswith(found.violation)


def test_a_shootdown_that_unmaps_nothing_is_caught(monkeypatch):
    monkeypatch.setattr(PageCacheView, "shootdown", lambda self, msg: pc.PteShootdownAck(unmapped=0))
    found = first_violation("replication", range(50))
    assert found is not None, "the checks let a replica outlive its shootdown"
    assert "while node" in found.violation or "differs from its master" in found.violation, found.violation


def test_a_collapse_that_does_not_wait_for_its_acknowledgements_is_caught(monkeypatch):
    def send(call):
        yield call

    def shootdown_without_acks(self, obj, idx, entry, targets, write_protect, cause, free=False):
        entry.epoch += 1
        for home, node, frame in targets:
            msg = pc.PteShootdown(obj=obj, idx=idx, node=node, frame=frame, write_protect=write_protect, free=free,
                                  cause=cause, epoch=entry.epoch)
            yield Spawn(send(Call(node_dest(home), msg)))  # sent, never waited for
        return 0

    monkeypatch.setattr(Replication, "shootdown", shootdown_without_acks)
    found = first_violation("replication", range(50))
    assert found is not None, "the checks let a write through before the replicas were gone"
    assert "while node" in found.violation or "differs from its master" in found.violation, found.violation


def test_a_read_of_an_overwritten_value_is_a_lost_write():
    h = History()
    h.initial["f@0"] = b"A" * 8
    w = h.write_begins("f@0", b"B" * 8)
    start = h.now()  # a read that overlaps the write may see either value
    h.read_ends("f@0", start, b"A" * 8, "task:2")
    h.write_ends(w)
    h.read_ends("f@0", start, b"B" * 8, "task:2")
    start = h.now()  # the write completed before this read began: only its value
    with pytest.raises(Violation, match="lost write: task:2 read f@0 = 4141414141414141, expected one of "
                                        "4242424242424242"):
        h.read_ends("f@0", start, b"A" * 8, "task:2")


def test_lost_and_duplicated_messages_between_nodes_are_sent_again_and_served_once():
    result = run(SCENARIOS["replication"], 3, drop=0.1, dup=0.1)
    assert result.ok, result.violation
    trace = "\n".join(result.trace)
    assert "DROPPED" in trace and "DUPLICATED" in trace and " again" in trace and "answered again" in trace
    assert result.trace == run(SCENARIOS["replication"], 3, drop=0.1, dup=0.1).trace
    for name in SCENARIOS:
        assert first_violation_lossy(name, range(12)) is None


def first_violation_lossy(scenario: str, seeds: range):
    for seed in seeds:
        result = run(SCENARIOS[scenario], seed, trace=False, drop=0.1, dup=0.1)
        if not result.ok:
            return result
    return None


def first_violation_crashing(scenario: str, seeds: range):
    for seed in seeds:
        result = run(SCENARIOS[scenario], seed, trace=False, crash=True)
        if not result.ok:
            return result
    return None


def test_replication_keeps_its_invariants_when_a_node_dies():
    result = run(SCENARIOS["replication"], 4, crash=True)
    assert result.ok and any("CRASH node:" in line for line in result.trace)
    assert first_violation_crashing("replication", range(40)) is None


# A defect the simulator found with --crash (docs/simulator.md#what-it-found), fixed: a private
# page in the migration cache whose node dies during its migrate-on-fault read as zeros (found
# as seed 13; seed 15 since the crash fixes of tests/sim/test_crash_replays.py changed the orders).
def test_a_private_page_lost_with_its_node_is_never_read_as_zeros():
    result = run(SCENARIOS["migration"], 15, crash=True)
    assert result.ok, result.trace[-3:]
    assert any("task:1 failed: EIO: node 1 is dead (crashed): page 0x7f0000000000 of task 1 was there and is lost"
               in line for line in result.trace)


# Fixed too: a task moved to another node after a node's death read a private page lost with
# that node as zeros (seed 14): the task's lost pages now travel with it.
def test_migration_keeps_its_invariants_when_a_node_dies():
    result = run(SCENARIOS["migration"], 14, crash=True)
    assert result.ok and "task:1 failed: EIO: node 2 is dead (crashed): page 0x7f0000000000 of task 1" in result.trace[-1]
    assert first_violation_crashing("migration", range(20)) is None
