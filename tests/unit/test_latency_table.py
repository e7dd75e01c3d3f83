"""The latency table's rules: changes validate before they change anything; delays in real mode."""
from __future__ import annotations

import random

import pytest

from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.latency import LatencyTable

TOPO = {"latency_ns": [[80, 135], [135, 80]], "bandwidth_mib_s": [[100000, 30000], [30000, 100000]]}


def table(**kw):
    return LatencyTable.from_topology(TOPO, **kw)


def test_set_symmetric_and_reset():
    t = table()
    t.set(0, 1, 500, symmetric=True)
    assert t.latency_ns == [[80, 500], [500, 80]] and t.version == 2
    t.reset()
    assert t.latency_ns == [[80, 135], [135, 80]]


def test_scale_is_relative_to_the_topology():
    t = table()
    t.scale(2, remote_only=True)
    t.scale(3, remote_only=True)
    assert t.latency_ns == [[80, 405], [405, 80]]
    t.scale(1)
    assert t.latency_ns == [[80, 135], [135, 80]]


@pytest.mark.parametrize("change", [
    lambda t: t.set(0, 2, 100), lambda t: t.set(-1, 0, 100), lambda t: t.set(0, 1, -5), lambda t: t.set(0, 1, 0),
    lambda t: t.scale(0), lambda t: t.set_mode("warp"), lambda t: t.set_mode("real", -1),
    lambda t: t.set_jitter("cauchy", 0.1), lambda t: t.set_jitter("normal", -1), lambda t: t.set_jitter("normal", 0.1, 0, None),
])
def test_bad_changes_change_nothing(change):
    t = table()
    before = t.to_wire()
    with pytest.raises(NumaEmuError) as err:
        change(t)
    assert err.value.code.value == "EINVAL"
    assert t.to_wire() == before


def test_delay_only_in_real_mode_and_scaled_by_dilation():
    assert table().delay_s(0, 1, 4096) == 0.0
    t = table(mode="real", dilation=1000)
    expected_ns = 135 + 4096 / (30000 * 1048576 / 1e9)
    assert t.delay_s(0, 1, 4096) == pytest.approx(expected_ns * 1000 * 1e-9)
    assert t.delay_s(1, 1, 4096) == 0.0


def test_jitter_is_seeded_and_bounded_below_by_zero():
    t = table(mode="real", dilation=1000)
    t.set_jitter("uniform", 0.5)
    a = [t.delay_s(0, 1, 8, random.Random(7)) for _ in range(3)]
    b = [t.delay_s(0, 1, 8, random.Random(7)) for _ in range(3)]
    assert a == b
    samples = [t.delay_s(0, 1, 8, random.Random(i)) for i in range(200)]
    base = t.delay_s(0, 1, 8)
    assert min(samples) >= 0.5 * base * 0.999 and max(samples) <= 1.5 * base * 1.001


def test_wire_round_trip():
    t = table(mode="real", dilation=50)
    t.set_jitter("normal", 0.1, 0, 1)
    assert LatencyTable.from_wire(t.to_wire()) == t
