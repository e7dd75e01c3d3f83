"""Node and CPU sets as text (protocol/nodemask.py): kernel lists and hex masks (numactl node
strings: numa_emu/frontends/libnuma.py, tests/unit/test_numactl_args.py)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.nodemask import (MAX_ID, format_cpulist, format_mask_hex, format_nodelist, parse_cpulist,
                               parse_mask_hex, parse_nodelist)

ALL8 = frozenset(range(8))


@pytest.mark.parametrize("text, nodes", [
    ("", set()), ("  \n", set()), ("0", {0}), ("0-3", {0, 1, 2, 3}), ("0-3,5", {0, 1, 2, 3, 5}),
    ("0-3,5,8-10", {0, 1, 2, 3, 5, 8, 9, 10}), ("1,1", {1}), ("0-2,1-3", {0, 1, 2, 3}), ("3-3", {3}),
    ("0-1\n", {0, 1}), (" 2 , 4 ", {2, 4}),
])
def test_parse_nodelist(text, nodes):
    assert parse_nodelist(text) == frozenset(nodes)


@pytest.mark.parametrize("text", ["3-1", "a", "1,,2", "1,", ",1", "-1", "1-", "0x1", "1 2", "1-2-3",
                                  f"0-{MAX_ID}"])
def test_parse_nodelist_refuses(text):
    with pytest.raises(NumaEmuError) as err:
        parse_nodelist(text)
    assert err.value.code is ErrorCode.EINVAL
    assert text.strip() in err.value.message


def test_parse_nodelist_names_the_reversed_range():
    with pytest.raises(NumaEmuError, match="range '3-1' is reversed"):
        parse_nodelist("0,3-1")


@pytest.mark.parametrize("nodes, text", [
    (set(), ""), ({0}, "0"), ({0, 1}, "0-1"), ({0, 1, 2, 3, 5}, "0-3,5"), ({5, 3, 1}, "1,3,5"),
    ([2, 2, 3], "2-3"), (range(16), "0-15"), ({0, 2, 3, 4, 8}, "0,2-4,8"),
])
def test_format_nodelist(nodes, text):
    assert format_nodelist(nodes) == text


@given(st.frozensets(st.integers(min_value=0, max_value=300)))
def test_nodelist_round_trip(nodes):
    assert parse_nodelist(format_nodelist(nodes)) == nodes


def test_cpulist_aliases():
    assert parse_cpulist("0-3,8") == frozenset({0, 1, 2, 3, 8})
    assert format_cpulist({0, 1, 2, 3, 8}) == "0-3,8"
    with pytest.raises(NumaEmuError, match="cpu list"):
        parse_cpulist("x")


# --- hex masks ---------------------------------------------------------------------------


@pytest.mark.parametrize("ids, nbits, text", [
    ({0, 1}, 64, "00000000,00000003"), (set(), 64, "00000000,00000000"), ({63}, 64, "80000000,00000000"),
    ({0, 1, 2, 3}, 4, "f"), ({0}, 8, "01"), ({32}, 40, "01,00000000"), ({31}, 32, "80000000"),
])
def test_format_mask_hex(ids, nbits, text):
    assert format_mask_hex(ids, nbits) == text


def test_format_mask_hex_refuses_ids_that_do_not_fit():
    with pytest.raises(NumaEmuError):
        format_mask_hex({64}, 64)


@given(st.frozensets(st.integers(min_value=0, max_value=127)))
def test_mask_hex_round_trip(ids):
    assert parse_mask_hex(format_mask_hex(ids, 128)) == ids


def test_parse_mask_hex_refuses_junk():
    with pytest.raises(NumaEmuError):
        parse_mask_hex("00000000,xyz")
