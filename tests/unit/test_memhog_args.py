"""memhog argument parsing: sizes like strtoul + k/m/g, policy words, nodesets, exact errors."""

from __future__ import annotations

import pytest

from numa_emu.frontends.memhog_args import (
    MEMHOG_USAGE,
    MemhogRequest,
    MemhogUsageError,
    c_atoi,
    memsize,
    parse_memhog_args,
)

ALLOWED = frozenset({0, 1, 2})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("15728640", 15728640),  # numactl test/regress passes plain bytes
        ("1MB", 1 << 20),  # LTP numa01: anything after the suffix letter is ignored
        ("1m", 1 << 20),
        ("2G", 2 << 30),
        ("3k", 3 << 10),
        ("0x10", 16),
        ("0x10K", 16 << 10),
        ("010", 8),  # octal, as strtoul(s, &end, 0)
        ("7x", 7),
        ("abc", 0),
    ],
)
def test_memsize(text: str, size: int) -> None:
    assert memsize(text) == size


def test_ltp_memhog_command_line() -> None:
    assert parse_memhog_args(["-r1000000", "1MB"]) == MemhogRequest(size_bytes=1 << 20, repeat=1000000)


def test_regress_memhog_command_line() -> None:
    request = parse_memhog_args(["-H", "15728640", "interleave", "0,1"], allowed=ALLOWED)
    assert request == MemhogRequest(15728640, "interleave", "0,1", frozenset({0, 1}), disable_thp=True)


@pytest.mark.parametrize(
    ("word", "policy"),
    [
        ("interleave", "interleave"),
        ("membind", "bind"),
        ("--membind", "bind"),  # leading dashes are stripped
        ("preferred", "preferred"),
        ("preferred-many", "preferred-many"),
        ("weighted-interleave", "weighted-interleave"),
    ],
)
def test_policies_with_nodesets(word: str, policy: str) -> None:
    request = parse_memhog_args(["10m", word, "1-2"], allowed=ALLOWED)
    assert (request.policy, request.nodeset, request.nodes) == (policy, "1-2", frozenset({1, 2}))


def test_default_and_local_take_no_nodeset() -> None:
    assert parse_memhog_args(["1m", "default"]).policy == "default"
    local = parse_memhog_args(["1m", "-local", "0"], allowed=ALLOWED)  # a nodeset is ignored
    assert (local.policy, local.nodeset, local.nodes) == ("local", None, None)


def test_nodeset_kept_raw_without_an_allowed_set() -> None:
    request = parse_memhog_args(["1m", "membind", "!0"])
    assert (request.nodeset, request.nodes) == ("!0", None)


def test_file_option_and_atoi_repeat() -> None:
    request = parse_memhog_args(["-f/tmp/x", "-r", "-H", "1m"])
    assert (request.file, request.repeat, request.disable_thp) == ("/tmp/x", 0, True)
    assert [c_atoi(t) for t in ("12ab", " -3", "+4", "x", "")] == [12, -3, 4, 0, 0]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-x", "1m"],
        ["-"],
        ["-H"],
        ["1m", "membind"],  # membind needs a nodeset
        ["1m", "bogus", "0"],
        ["1m", "interleave"],
    ],
)
def test_usage_errors_print_usage_on_stdout(argv: list[str]) -> None:
    with pytest.raises(MemhogUsageError) as info:
        parse_memhog_args(argv)
    assert (info.value.stdout, info.value.stderr, info.value.exit_code) == (MEMHOG_USAGE, "", 1)


def test_usage_text() -> None:
    assert MEMHOG_USAGE == (
        "memhog [-fFILE] [-rNUM] [-H] size[kmg] [policy [nodeset]]\n"
        "-f mmap is backed by FILE\n"
        "-rNUM repeat memset NUM times\n"
        "-H disable transparent hugepages\n"
        "Policies: preferred-many local interleave membind preferred default weighted-interleave\n"
    )


def test_invalid_nodeset() -> None:
    with pytest.raises(MemhogUsageError) as info:
        parse_memhog_args(["1m", "membind", "5"], allowed=ALLOWED)
    assert info.value.stderr == "libnuma: Warning: node argument 5 is out of range\n\n"
    assert info.value.stdout == "<5> is invalid\n"
    assert str(info.value) == "<5> is invalid"


def test_zero_size_fails_like_mmap() -> None:
    with pytest.raises(MemhogUsageError) as info:
        parse_memhog_args(["0"])
    assert info.value.stderr == "numactl: mmap: Invalid argument\n"
