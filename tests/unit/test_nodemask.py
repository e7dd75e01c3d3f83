"""Node and CPU sets as text (protocol/nodemask.py): kernel lists, numactl strings, hex masks."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ErrorCode, NumaEmuError
from protocol.nodemask import (MAX_ID, NodeStringError, format_cpulist, format_mask_hex, format_nodelist,
                               parse_cpulist, parse_cpustring, parse_mask_hex, parse_nodelist, parse_nodestring)

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


# --- numactl node strings (libnuma __numa_parse_nodestring) ------------------------------


def nodes(text, allowed=ALL8, possible=ALL8, **kw):
    return parse_nodestring(text, allowed=frozenset(allowed), possible=frozenset(possible), **kw)


@pytest.mark.parametrize("text, expected", [
    ("0", {0}), ("1,3", {1, 3}), ("0-3", {0, 1, 2, 3}), ("0-1,6-7", {0, 1, 6, 7}), ("all", ALL8),
    ("", set()), ("!0", set(range(1, 8))), ("!0-5", {6, 7}), ("!all", set()), ("0x2", {2}), ("010", {8}),
    ("0, 1", {0, 1}), ("3-1", {3}), ("1,all", ALL8),
])
def test_nodestring(text, expected):
    possible = frozenset(range(9)) if text == "010" else ALL8
    allowed = possible
    assert nodes(text, allowed, possible) == frozenset(expected)


def test_nodestring_relative_indexes_the_allowed_set():
    allowed = frozenset({2, 3, 6, 7})
    assert nodes("+0", allowed) == {2}
    assert nodes("+1-2", allowed) == {3, 6}
    assert nodes("+0,3", allowed) == {2, 7}
    assert nodes("!+0", allowed) == ALL8 - {2}
    assert nodes("+0", allowed, relative_to=frozenset({6, 7})) == {6}


def test_nodestring_range_skips_nodes_outside_the_cpuset():
    assert nodes("2-7", frozenset({2, 3, 6, 7})) == {2, 3, 6, 7}


def test_nodestring_all_is_the_allowed_set_not_the_machine():
    assert nodes("all", frozenset({1, 2})) == {1, 2}


def test_nodestring_invert_works_within_possible():
    assert nodes("!1", frozenset({1, 2}), frozenset({0, 1, 2, 3})) == {0, 2, 3}


@pytest.mark.parametrize("text, allowed, reason", [
    ("8", ALL8, "node argument 8 is out of range"),
    ("2", {0, 1}, "node argument 2 is out of range"),
    ("0-9", ALL8, "node argument 9 out of range"),
    ("+4", {0, 1, 2, 3}, "node argument 4 is out of range"),
    ("x", ALL8, "unparseable node description `x'"),
    ("1,", ALL8, "unparseable node description `'"),
    ("1-", ALL8, "missing node argument "),
    ("-1", ALL8, "node argument -1 is out of range"),
    ("1x", ALL8, "trailing characters `x'"),
    ("netdev:eth0", ALL8, "device affinity 'netdev:eth0' is not emulated"),
    ("!", ALL8, "unparseable node description `'"),
    ("+!0", ALL8, "unparseable node description `!0'"),
    ("same", ALL8, "unparseable node description `same'"),
])
def test_nodestring_refuses_like_numactl(text, allowed, reason):
    with pytest.raises(NodeStringError) as err:
        nodes(text, frozenset(allowed))
    assert err.value.code is ErrorCode.EINVAL
    assert err.value.message == f"<{text}> is invalid"  # numactl.c: printf("<%s> is invalid\n", optarg)
    assert err.value.text == text
    assert err.value.reason == reason
    assert isinstance(err.value, NumaEmuError)


def test_cpustring():
    allowed = frozenset(range(4, 8))
    assert parse_cpustring("4-5", allowed=allowed, possible=frozenset(range(8))) == {4, 5}
    assert parse_cpustring("+0", allowed=allowed, possible=frozenset(range(8))) == {4}
    assert parse_cpustring("all", allowed=allowed, possible=frozenset(range(8))) == allowed
    with pytest.raises(NodeStringError) as err:
        parse_cpustring("1", allowed=allowed, possible=frozenset(range(8)))
    assert err.value.reason == "cpu argument 1 is out of range"
    assert err.value.message == "<1> is invalid"


@given(st.frozensets(st.integers(min_value=0, max_value=15), min_size=1))
def test_nodestring_accepts_kernel_lists_of_allowed_nodes(chosen):
    assert nodes(format_nodelist(chosen), frozenset(range(16)), frozenset(range(16))) == chosen


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
