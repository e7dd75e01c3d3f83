"""The delaying link's stamp: a hold runs from the send instant on the same host, from the arrival
otherwise; nonsensical stamps never hold a message longer than the limit."""
from __future__ import annotations

import struct
import time

import pytest

from numa_emu.protocol import delaylink

SEC = 1_000_000_000


def _stamp(hold_s: float, sent_ns: int, host: int = delaylink.HOST_KEY) -> bytes:
    return delaylink.HOLD_TAG + struct.pack("<dqQ", hold_s, sent_ns, host)


def test_a_stamp_from_this_host_holds_from_its_send_instant():
    frame = delaylink.stamp(0.002)
    assert delaylink.is_stamp(frame)
    now = time.monotonic_ns()
    hold, sent = delaylink.read_stamp(frame, now)
    assert hold == 0.002 and sent is not None and 0 <= now - sent < SEC
    assert delaylink.due_s(hold, sent, now) == pytest.approx(sent * 1e-9 + 0.002)


def test_another_hosts_stamp_holds_from_the_arrival():
    hold, sent = delaylink.read_stamp(_stamp(0.001, 5 * SEC, host=delaylink.HOST_KEY ^ 1), 6 * SEC)
    assert (hold, sent) == (0.001, None)
    assert delaylink.due_s(hold, sent, 6 * SEC) == pytest.approx(6.001)


@pytest.mark.parametrize("sent_ns", [7 * SEC + 1, 7 * SEC - 11 * SEC])  # from the future; from too long ago
def test_an_implausible_send_instant_is_not_used(sent_ns):
    assert delaylink.read_stamp(_stamp(0.001, sent_ns), 7 * SEC)[1] is None


@pytest.mark.parametrize("hold, expected", [(-1.0, 0.0), (float("nan"), 0.0), (float("inf"), delaylink.MAX_HOLD_S),
                                            (1e9, delaylink.MAX_HOLD_S), (0.5, 0.5)])
def test_holds_are_clamped(hold, expected):
    assert delaylink.read_stamp(_stamp(hold, SEC), 2 * SEC)[0] == expected


def test_only_a_whole_stamp_frame_is_a_stamp():
    frame = delaylink.stamp(0.001)
    assert not delaylink.is_stamp(frame[:-1]) and not delaylink.is_stamp(b"x" + frame[1:])
    assert not delaylink.is_stamp(b"")


def test_host_key_is_stable_within_a_host():
    assert delaylink.host_key() == delaylink.HOST_KEY


def test_wait_until_returns_no_sooner_than_due():
    due = time.monotonic() + 0.003
    delaylink.wait_until(due)
    assert time.monotonic() >= due
