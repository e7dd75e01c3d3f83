"""The fault table and its seeded decisions (protocol.faults): plain function calls."""
from __future__ import annotations

import pytest

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.faults import PASS, FaultInjector, FaultTable, format_table, uniforms


def _fates(table: FaultTable, src: int, dst: int, n: int) -> list:
    return [table.decide(src, dst, i) for i in range(n)]


def test_same_seed_same_decisions_other_seed_others():
    a, b, c = FaultTable(4, seed=7), FaultTable(4, seed=7), FaultTable(4, seed=8)
    for t in (a, b, c):
        t.set_rule("drop", 0.3)
        t.set_rule("dup", 0.3)
        t.set_rule("reorder", 0.3, 5)
    assert _fates(a, 0, 1, 500) == _fates(b, 0, 1, 500)
    assert _fates(a, 0, 1, 500) != _fates(c, 0, 1, 500)
    assert _fates(a, 0, 1, 500) != _fates(a, 1, 0, 500)  # each link its own sequence
    assert uniforms(7, 0, 1, 3) == uniforms(7, 0, 1, 3)


def test_probabilities_are_kept_and_zero_removes_a_rule():
    t = FaultTable(2, seed=3)
    t.set_rule("drop", 0.2)
    drops = sum(d.drop for d in _fates(t, 0, 1, 10_000))
    assert 1800 < drops < 2200
    t.set_rule("drop", 0)
    assert not t.active and all(d is PASS for d in _fates(t, 0, 1, 100))


def test_delay_keeps_order_reorder_overtakes():
    t = FaultTable(2)
    t.set_rule("delay", 1.0, 20)
    assert t.decide(0, 1, 0).delay_s == pytest.approx(0.02) and not t.decide(0, 1, 0).overtake
    t.clear()
    t.set_rule("reorder", 1.0, 30)
    assert t.decide(0, 1, 0).delay_s == pytest.approx(0.03) and t.decide(0, 1, 0).overtake


def test_the_most_specific_rule_wins():
    t = FaultTable(3)
    t.set_rule("drop", 1.0)
    t.set_rule("drop", 1e-12, node=2)
    t.set_rule("drop", 1.0, src=2, dst=0)
    assert t.decide(0, 1, 0).drop  # every link
    assert not t.decide(1, 2, 0).drop and not t.decide(2, 1, 0).drop  # node 2's own rule, both ends
    assert t.decide(2, 0, 0).drop  # its link rule


def test_a_partition_cuts_both_ways_until_cleared():
    t = FaultTable(4)
    t.partition([0, 1], [2])
    assert t.decide(0, 2, 0).partitioned and t.decide(2, 1, 0).drop
    assert t.decide(0, 1, 0) is PASS and t.decide(3, 2, 0) is PASS
    t.clear()
    assert t.decide(0, 2, 1) is PASS


def test_the_wire_form_round_trips_and_is_checked():
    t = FaultTable(4, seed=11)
    t.set_rule("delay", 0.5, 20, src=0, dst=3)
    t.set_rule("dup", 0.1, node=1)
    t.partition([0], [1, 2])
    back = FaultTable.from_wire(t.to_wire())
    assert back.to_wire() == t.to_wire()
    assert "delay    0.5 by 20 ms  on link 0->3" in format_table(t.to_wire())
    assert "partition 0 | 1,2" in format_table(t.to_wire())
    for bad in ({}, {**t.to_wire(), "rules": [{"kind": "drop", "p": 2.0}]}, {**t.to_wire(), "seed": -1},
                {**t.to_wire(), "partitions": [[[0], [9]]]}, {**t.to_wire(), "rules": "x"}):
        with pytest.raises(NumaEmuError) as err:
            FaultTable.from_wire(bad)
        assert err.value.code == ErrorCode.EINVAL


@pytest.mark.parametrize("call, text", [
    (lambda t: t.set_rule("burn", 0.1), "unknown kind 'burn'"),
    (lambda t: t.set_rule("drop", float("nan")), "probability nan is out of range"),
    (lambda t: t.set_rule("delay", 0.5, 1e9), "--ms 1e+09 is out of range"),
    (lambda t: t.set_rule("drop", 0.5, src=0, dst=0), "not between two nodes"),
    (lambda t: t.set_rule("drop", 0.5, node=4), "node 4 is not a node of this cluster (0..3)"),
    (lambda t: t.partition([0, 1], [1]), "on both sides"),
    (lambda t: t.partition([], [1]), "both sides need at least one node"),
])
def test_bad_changes_are_refused_with_one_line(call, text):
    with pytest.raises(NumaEmuError) as err:
        call(FaultTable(4))
    assert text in err.value.message and "\n" not in err.value.message


def test_an_injector_numbers_each_link_and_passes_strangers():
    t = FaultTable(3, seed=5)
    t.set_rule("drop", 0.5)
    inj = FaultInjector(t, src=0)
    assert [inj.decide("node:1") for _ in range(50)] == _fates(t, 0, 1, 50)
    assert inj.decide("node:x") is PASS and inj.decide("node:0") is PASS and inj.decide("node:9") is PASS
