"""numactl and migratepages argument parsing: options, node strings and numactl's exact errors."""

from __future__ import annotations

import io
from typing import Any

import pytest

from numa_emu.frontends.migratepages_args import (
    MIGRATEPAGES_USAGE,
    MigratepagesUsageError,
    parse_migratepages_args,
)
from numa_emu.frontends.numactl_args import (
    NUMACTL_USAGE,
    FrontendExit,
    NodeStringError,
    NumactlRequest,
    NumactlUsageError,
    c_strtoul,
    parse_cpustring,
    parse_nodestring,
    parse_numactl_args,
)

# A 4-node machine, 2 CPUs per node (CPU c is on node c // 2).
MACHINE: dict[str, Any] = {
    "possible": frozenset({0, 1, 2, 3}),
    "allowed": frozenset({0, 1, 2, 3}),
    "cpus_allowed": frozenset(range(8)),
    "node_of_cpu": {cpu: cpu // 2 for cpu in range(8)},
}
# The same machine seen from a cpuset with mems 1-2 and CPUs 2-5.
CPUSET = dict(MACHINE, allowed=frozenset({1, 2}), cpus_allowed=frozenset(range(2, 6)))


def parse(*argv: str, env: dict[str, Any] = MACHINE) -> NumactlRequest:
    return parse_numactl_args(list(argv), **env)


def fail(*argv: str, env: dict[str, Any] = MACHINE) -> NumactlUsageError:
    with pytest.raises(NumactlUsageError) as info:
        parse(*argv, env=env)
    assert info.value.exit_code == 1
    return info.value


# ---------------------------------------------------------------- accepted forms


@pytest.mark.parametrize(
    "argv",
    [
        ["--membind=1", "cmd"],
        ["--membind", "1", "cmd"],
        ["-m1", "cmd"],
        ["-m", "1", "cmd"],
        ["--memb=1", "cmd"],  # getopt_long accepts a unique prefix
    ],
)
def test_option_spellings_are_equivalent(argv: list[str]) -> None:
    assert parse(*argv) == NumactlRequest(policy="bind", nodes=frozenset({1}), command=("cmd",))


@pytest.mark.parametrize(
    ("argv", "policy", "nodes"),
    [
        (["--interleave=all"], "interleave", {0, 1, 2, 3}),
        (["-i", "0-1,3"], "interleave", {0, 1, 3}),
        (["-w", "0,2"], "weighted-interleave", {0, 2}),
        (["--weighted-interleave", "1-2"], "weighted-interleave", {1, 2}),
        (["--preferred=2"], "preferred", {2}),
        (["-P", "2-3"], "preferred-many", {2, 3}),
        (["--localalloc"], "local", set()),
        (["-l"], "local", set()),
        (["-i", ""], "default", set()),  # libnuma: an empty interleave mask sets MPOL_DEFAULT
        (["-m", "!1"], "bind", {0, 2, 3}),
        (["-m", "0x1"], "bind", {1}),
    ],
)
def test_policies(argv: list[str], policy: str, nodes: set[int]) -> None:
    request = parse(*argv, "true")
    assert (request.policy, request.nodes, request.command) == (policy, frozenset(nodes), ("true",))


def test_command_starts_at_first_non_option_or_after_double_dash() -> None:
    assert parse("-m", "0", "ls", "-l", "-m").command == ("ls", "-l", "-m")
    assert parse("--", "-weird", "x").command == ("-weird", "x")
    assert parse("-l", "--", "ls").command == ("ls",)


def test_cpunodebind_cpubind_alias_and_physcpubind() -> None:
    request = parse("--cpunodebind=1", "true")
    assert (request.cpunodebind, request.cpus) == (frozenset({1}), frozenset({2, 3}))
    assert parse("--cpubind=1", "true") == request  # regress runs `numactl --cpubind=<n> /bin/true`
    assert parse("-c", "1", "true") == request
    physical = parse("-C", "0,5-6", "true")
    assert (physical.physcpubind, physical.cpus) == (frozenset({0, 5, 6}), frozenset({0, 5, 6}))
    both = parse("-N", "0", "-C", "7", "true")  # each option sets the affinity; the last wins
    assert (both.cpunodebind, both.physcpubind, both.cpus) == (frozenset({0}), frozenset({7}), frozenset({7}))


def test_balancing_before_membind_and_short_clusters() -> None:
    assert parse("-b", "-m", "0", "x").flags == ("balancing",)
    assert parse("-b", "-i", "0", "x").flags == ()  # numactl ignores -b for other policies
    clustered = parse("-bm0", "x")
    assert (clustered.policy, clustered.flags) == ("bind", ("balancing",))


def test_show_hardware_version_and_cpu_compress() -> None:
    assert parse("-s") == NumactlRequest(show=True)
    shown = parse("-m", "1", "--show", "--bogus-after-show")  # -s acts at once, after what came before
    assert (shown.show, shown.policy, shown.nodes) == (True, "bind", frozenset({1}))
    assert parse("--hardware", "ignored", "command") == NumactlRequest(hardware=True)
    assert parse("-H", "--cpu-compress") == NumactlRequest(hardware=True, cpu_compress=True)
    assert parse("--version", "-x") == NumactlRequest(version=True)


def test_same_reuses_the_previous_node_string() -> None:
    request = parse("-N", "1-2", "--membind=same", "x")
    assert (request.nodes, request.cpunodebind) == (frozenset({1, 2}), frozenset({1, 2}))


# ---------------------------------------------------------------- cpusets and --all


def test_cpuset_relative_and_all() -> None:
    assert parse("-m", "+0", "x", env=CPUSET).nodes == frozenset({1})
    assert parse("-i", "+0-1", "x", env=CPUSET).nodes == frozenset({1, 2})
    assert parse("-i", "all", "x", env=CPUSET).nodes == frozenset({1, 2})
    assert parse("-a", "-i", "all", "x", env=CPUSET).nodes == frozenset({0, 1, 2, 3})
    assert parse("--all", "-m", "3", "x", env=CPUSET).all_nodes
    assert parse("-C", "+1", "x", env=CPUSET).cpus == frozenset({3})


def test_node_outside_the_cpuset_is_invalid() -> None:
    err = fail("--membind=3", "x", env=CPUSET)
    assert err.stderr == "libnuma: Warning: node argument 3 is out of range\n\n" + NUMACTL_USAGE
    assert err.stdout == "<3> is invalid\n"
    assert str(err) == "libnuma: Warning: node argument 3 is out of range\n\n<3> is invalid"


def test_all_must_come_before_cpu_and_node_options() -> None:
    """numactl test/bind_range check_arg_order."""
    assert parse("--all", "--physcpubind=7", "ls").cpus == frozenset({7})
    err = fail("--physcpubind=7", "--all", "ls")
    assert err.pre_usage == "numactl: --all/-a option must be before all cpu/node specifications"
    assert err.stdout == "\n"


def test_bind_range_physcpubind_and_cpunodebind() -> None:
    """bind_range: affinity cut to CPU 0 inside a cpuset holding every CPU."""
    narrowed = dict(MACHINE, cpus_allowed=frozenset({0}), cpuset_cpus=frozenset(range(8)))
    assert "cpu argument 7 is out of range" in fail("--physcpubind=7", "ls", env=narrowed).stderr
    assert parse("--all", "--physcpubind=7", "ls", env=narrowed).cpus == frozenset({7})
    assert parse("--cpunodebind=3", "ls", env=narrowed).cpus == frozenset({6, 7})


def test_affinity_outside_the_cpuset_fails_like_sched_setaffinity() -> None:
    err = fail("-a", "-N", "0", "x", env=CPUSET)
    assert err.stderr == (
        "numa_sched_setaffinity_v2_int() failed: Invalid argument\nsched_setaffinity: Invalid argument\n"
    )
    assert not err.usage
    assert fail("-C", "", "x").stderr == "sched_setaffinity: Invalid argument\n"


# ---------------------------------------------------------------- errors, byte for byte


def test_conflicting_policies() -> None:
    err = fail("--interleave=0", "--membind=1", "x")
    assert (err.pre_usage, err.stdout, err.stderr) == (
        "numactl: Conflicting policies", "\n", "numactl: Conflicting policies" + NUMACTL_USAGE
    )  # fmt: skip
    assert str(err) == "numactl: Conflicting policies"
    # --membind checks the conflict before parsing its nodes; the others parse first.
    assert fail("-l", "-m", "9", "x").pre_usage == "numactl: Conflicting policies"
    assert "out of range" in fail("-l", "-i", "9", "x").pre_usage


def test_preferred_takes_exactly_one_node() -> None:
    err = fail("--preferred=0,1", "x")
    assert (err.pre_usage, err.stdout, err.stderr) == ("", "", NUMACTL_USAGE)


@pytest.mark.parametrize(
    ("argv", "warning", "shown"),
    [
        (["-m", "5"], "node argument 5 is out of range\n", "5"),
        (["-m", "-1"], "node argument -1 is out of range\n", "-1"),
        (["-m", "0-5"], "node argument 5 out of range\n", "0-5"),
        (["-m", "1-"], "missing node argument \n", "1-"),
        (["-m", "1,"], "unparseable node description `'\n", "1,"),
        (["-i", "foo"], "unparseable node description `foo'\n", "foo"),
        (["-m", "+4"], "node argument 1024 is out of range\n", "+4"),
        (["-C", "0,99"], "cpu argument 99 is out of range\n", "0,99"),
        (["-C", "0-99"], "cpu argument 99 out of range\n", "0-99"),
    ],
)
def test_invalid_strings(argv: list[str], warning: str, shown: str) -> None:
    err = fail(*argv, "x")
    assert err.stderr == f"libnuma: Warning: {warning}\n" + NUMACTL_USAGE
    assert err.stdout == f"<{shown}> is invalid\n"


def test_trailing_garbage_is_invalid_without_a_warning() -> None:
    err = fail("-m", "0x", "x")
    assert (err.pre_usage, err.stdout) == ("", "<0x> is invalid\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "numactl: unrecognized option '--bogus'\n"),
        (["--bogus=1"], "numactl: unrecognized option '--bogus=1'\n"),
        (["-x"], "numactl: invalid option -- 'x'\n"),
        (["-i"], "numactl: option requires an argument -- 'i'\n"),
        (["--membind"], "numactl: option '--membind' requires an argument\n"),
        (["--show=1"], "numactl: option '--show' doesn't allow an argument\n"),
        (["--pref=1"], "numactl: option '--pref=1' is ambiguous; possibilities: '--preferred' '--preferred-many'\n"),
    ],
)
def test_getopt_errors(argv: list[str], message: str) -> None:
    err = fail(*argv)
    assert (err.pre_usage, err.stdout, err.stderr) == (message, "", message + NUMACTL_USAGE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-m", "0", "-b", "x"], "numactl: specify policy after --shm/--file"),
        (["-m", "0", "-H"], "numactl: specify policy after --shm/--file"),
        (["--membind=same", "x"], "numactl: same needs previous node specification"),
        (["-L", "1m", "x"], "numactl: shm related option --length for process"),
        (["--touch"], "numactl: --touch must be after shared memory specification"),
        (["-L", "1m", "-N", "0", "x"], "numactl: --length shm option is not allowed before -c/--cpubind/--cpunodebind"),
    ],
)
def test_usage_messages(argv: list[str], message: str) -> None:
    err = fail(*argv)
    assert (err.pre_usage, err.stdout, err.stderr) == (message, "\n", message + NUMACTL_USAGE)


def test_no_command_strict_dump_and_shm() -> None:
    assert fail().stderr == NUMACTL_USAGE
    assert fail("-m", "0").stderr == NUMACTL_USAGE
    strict = fail("-t", "-m", "0")
    assert strict.stderr == "numactl: warning. Strict flag for process ignored.\n" + NUMACTL_USAGE
    assert parse("-t", "-m", "0", "x").warnings == "numactl: warning. Strict flag for process ignored.\n"
    dump = fail("--dump")
    assert (dump.stderr, dump.usage) == ("numactl: Cannot do --dump without shared memory.\n\n", False)
    assert "not supported by numa-emu" in str(fail("--shm", "key"))


def test_error_segments_interleave_streams_in_order() -> None:
    err = fail("-m", "7", "x")
    out, errs = io.StringIO(), io.StringIO()
    err.write(out, errs)
    assert out.getvalue() == "<7> is invalid\n"
    assert errs.getvalue() == "libnuma: Warning: node argument 7 is out of range\n\n" + NUMACTL_USAGE
    assert [fd for fd, _ in err.segments] == [2, 1, 2]


def test_usage_text() -> None:
    assert NUMACTL_USAGE.startswith("usage: numactl [--all | -a] [--balancing | -b]\n")
    assert "               [--huge | -u] [--touch | -T] \n" in NUMACTL_USAGE
    assert NUMACTL_USAGE.endswith("<length> can have g (GB), m (MB) or k (KB) suffixes\n")


# ---------------------------------------------------------------- helpers


def test_c_strtoul() -> None:
    assert c_strtoul("15728640") == (15728640, 8)
    assert c_strtoul("0x1fK") == (31, 4)
    assert c_strtoul("017") == (15, 3)
    assert c_strtoul("0x") == (0, 1)
    assert c_strtoul("abc") == (0, 0)
    assert c_strtoul("  -1") == (2**64 - 1, 4)
    assert c_strtoul("99999999999999999999999") == (2**64 - 1, 23)
    assert c_strtoul("777", 0, 8) == (511, 3)


def test_library_parsers_directly() -> None:
    assert parse_nodestring("", frozenset({0})) == frozenset()
    assert parse_nodestring("0,all", frozenset({0, 1})) == frozenset({0, 1})
    assert parse_nodestring("!+0", frozenset({1, 2}), configured=4) == frozenset({0, 2, 3})
    assert parse_nodestring("0-3", frozenset({0, 2, 3})) == frozenset({0, 2, 3})
    assert parse_cpustring("!0-1", frozenset(range(4))) == frozenset({2, 3})
    with pytest.raises(NodeStringError) as info:
        parse_nodestring("netdev:eth0", frozenset({0}))
    assert info.value.warning.startswith("libnuma: Warning: ")


# ---------------------------------------------------------------- migratepages


def test_migratepages_parses_pid_and_node_strings() -> None:
    request = parse_migratepages_args(["1234", "0", "1-2"], allowed=frozenset({0, 1, 2}))
    assert (request.pid, request.from_nodes, request.to_nodes) == (1234, frozenset({0}), frozenset({1, 2}))
    assert parse_migratepages_args(["0x10", "all", "1"]).from_spec == "all"
    assert parse_migratepages_args(["--", "7", "0", "1"]).pid == 7


@pytest.mark.parametrize(
    ("argv", "before"),
    [
        (["1", "0"], ""),
        (["1", "0", "1", "2"], ""),
        (["12x", "0", "1"], ""),
        (["-h"], ""),
        (["--help"], ""),
        (["1", "0", "1", "--bogus"], "migratepages: unrecognized option '--bogus'\n"),
        (["-1", "0", "1"], "migratepages: invalid option -- '1'\n"),
    ],
)
def test_migratepages_usage_errors(argv: list[str], before: str) -> None:
    with pytest.raises(MigratepagesUsageError) as info:
        parse_migratepages_args(argv)
    assert (info.value.stderr, info.value.stdout, info.value.exit_code) == (before + MIGRATEPAGES_USAGE, "", 1)


def test_migratepages_invalid_nodes() -> None:
    with pytest.raises(FrontendExit) as info:
        parse_migratepages_args(["1", "0", "3"], allowed=frozenset({0, 1}))
    assert info.value.stderr == "libnuma: Warning: node argument 3 is out of range\n\n"
    assert info.value.stdout == "<3> is invalid\n"
