"""Unit strings (protocol/units.py): exact values, refusals, and parse/format round trips."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.units import (GIB, KIB, MIB, TIB, format_bandwidth_mib_s, format_duration_ns, format_size,
                            parse_bandwidth_mib_s, parse_duration_ns, parse_duration_s, parse_size)


@pytest.mark.parametrize("text, expected", [
    (4096, 4096), (0, 0), ("4096", 4096), ("0", 0), ("4k", 4096), ("4K", 4096), ("4KiB", 4096),
    ("4kb", 4096), ("4KB", 4096), ("256MiB", 256 * MIB), ("256m", 256 * MIB), ("1g", GIB),
    ("1GB", GIB), ("2T", 2 * TIB), ("0x1000", 4096), ("0X10", 16), ("1.5GiB", 3 * GIB // 2),
    (".5k", 512), ("3B", 3), (" 8 MiB ", 8 * MIB), ("1p", 1 << 50),
])
def test_parse_size_exact(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "k", "4x", "4 kk", "-1", "1.5", "0x", "1e3", "4KiBs", "four",
                                  "0x10k", None, 1.5, True, [4096], -4096])
def test_parse_size_refuses(text):
    with pytest.raises(NumaEmuError) as err:
        parse_size(text)
    assert err.value.code is ErrorCode.EINVAL


def test_parse_size_message_names_text_and_units():
    with pytest.raises(NumaEmuError) as err:
        parse_size("12 parsecs")
    assert err.value.message == ("invalid size '12 parsecs': expected a number with an optional unit "
                                 "(k, M, G, T; KiB, MiB ...)")


@pytest.mark.parametrize("n_bytes, text", [
    (0, "0B"), (1, "1B"), (512, "512B"), (4096, "4KiB"), (256 * MIB, "256MiB"),
    (3 * GIB // 2, "1.5GiB"), (GIB + 256 * MIB, "1.25GiB"), (2 * TIB, "2TiB"), (1025, "1025B"),
    (10**9, "976562.5KiB"),
])
def test_format_size_exact(n_bytes, text):
    assert format_size(n_bytes) == text


def test_format_size_display_rounds():
    assert format_size(10**9, exact=False) == "953.67MiB"


@pytest.mark.parametrize("bad", [-1, 1.5, "4k", True])
def test_format_size_refuses(bad):
    with pytest.raises(NumaEmuError):
        format_size(bad)


@given(st.integers(min_value=0, max_value=1 << 60))
def test_size_round_trip(n_bytes):
    assert parse_size(format_size(n_bytes)) == n_bytes


@given(st.integers(min_value=0, max_value=1 << 40), st.sampled_from(["", "k", "K", "KiB", "kb", "M", "MiB",
                                                                     "g", "GB"]))
def test_parse_size_multiplies(number, unit):
    scale = {"": 1, "k": KIB, "m": MIB, "g": GIB}[unit[:1].lower()]
    assert parse_size(f"{number}{unit}") == number * scale


@pytest.mark.parametrize("text, ns", [
    ("120ns", 120.0), ("1.5us", 1500.0), ("1\u00b5s", 1000.0), ("1\u03bcs", 1000.0), ("2ms", 2e6),
    ("1s", 1e9), ("80", 80.0), (80, 80.0), (2.5, 2.5), ("0", 0.0), (" 7 ns", 7.0), ("1e3ns", 1000.0),
])
def test_parse_duration_ns(text, ns):
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text, seconds", [
    ("5s", 5.0), ("250ms", 0.25), ("1.5us", 1.5e-6), ("120ns", 1.2e-7), (3, 3.0), ("0.5", 0.5),
])
def test_parse_duration_s(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "ns", "5 sec", "-1ns", "1h", "nan", "inf", float("nan"), float("inf"),
                                  -3, True, None])
def test_parse_duration_refuses(text):
    with pytest.raises(NumaEmuError) as err:
        parse_duration_ns(text)
    assert err.value.code is ErrorCode.EINVAL


@pytest.mark.parametrize("ns, text", [
    (0, "0ns"), (0.5, "0.5ns"), (120, "120ns"), (120.0, "120ns"), (1500, "1.5us"), (2e6, "2ms"),
    (1e9, "1s"), (123456.789, "123.457us"), (90e9, "90s"),
])
def test_format_duration_ns(ns, text):
    assert format_duration_ns(ns) == text


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_duration_round_trip_within_rounding(ns):
    back = parse_duration_ns(format_duration_ns(ns))
    assert back == pytest.approx(ns, rel=1e-3, abs=1e-3)


@pytest.mark.parametrize("text, mib_s", [
    ("34GB/s", 34e9 / MIB), ("17.6GB/s", 17.6e9 / MIB), ("800MB/s", 800e6 / MIB), ("100MiB/s", 100.0),
    ("1GiB/s", 1024.0), ("2 TB/s", 2e12 / MIB), ("5kB/s", 5e3 / MIB), ("1KiB/s", 1 / 1024),
    ("10B/s", 10 / MIB), ("34GBps", 34e9 / MIB), (100, 100.0), ("111000", 111000.0), (0.5, 0.5),
])
def test_parse_bandwidth(text, mib_s):
    assert parse_bandwidth_mib_s(text) == pytest.approx(mib_s, rel=1e-12)


@pytest.mark.parametrize("text", ["34GB", "34 Gb/s/s", "fast", "", "-1MB/s", "34ib/s", None, True])
def test_parse_bandwidth_refuses(text):
    with pytest.raises(NumaEmuError) as err:
        parse_bandwidth_mib_s(text)
    assert err.value.code is ErrorCode.EINVAL


def test_format_bandwidth_prints_vendor_units():
    assert format_bandwidth_mib_s(parse_bandwidth_mib_s("34GB/s")) == "34GB/s"
    assert format_bandwidth_mib_s(parse_bandwidth_mib_s("17.6GB/s")) == "17.6GB/s"
    assert format_bandwidth_mib_s(parse_bandwidth_mib_s("800MB/s")) == "800MB/s"
    assert format_bandwidth_mib_s(0) == "0B/s"
