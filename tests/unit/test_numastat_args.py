"""numastat(8)'s command line as numastat.c's getopt_long("cmnp:s::vVz?", {"help"}) reads it."""
from __future__ import annotations

from numa_emu.frontends.numastat_args import NUMASTAT_USAGE, VERSION_LINE, parse_numastat_args


def test_usage_and_version_text() -> None:
    # numastat.c display_usage_and_exit() / display_version_and_exit(), prog_name "numastat"
    assert NUMASTAT_USAGE.splitlines()[0] == ("Usage: numastat [-c] [-m] [-n] [-p <PID>|<pattern>] [-s[<node>]] [-v] "
                                              "[-V] [-z] [ <PID>|<pattern>... ]")
    assert len(NUMASTAT_USAGE.splitlines()) == 9 and NUMASTAT_USAGE.endswith("-z to skip rows and columns of zeros\n")
    assert VERSION_LINE.startswith("numastat version: 20130723: ")


def test_flags_cluster_and_s_takes_only_an_attached_argument() -> None:
    a = parse_numastat_args(["-czs2"])
    assert (a.compress, a.show_zero, a.sort, a.sort_node) == (True, False, True, 2)
    a = parse_numastat_args(["-s", "1"])  # "s::": "1" is a PID, the sort is by Total
    assert (a.sort, a.sort_node, a.operands) == (True, -1, ["1"])
    a = parse_numastat_args(["-s1c"])  # the rest of the word is -s's argument, not all digits
    assert (a.sort, a.sort_node, a.compress) == (True, -1, False)
    a = parse_numastat_args(["-mnv"])
    assert (a.system, a.numastat, a.verbose) == (True, True, True)


def test_p_takes_the_rest_of_the_word_or_the_next_word() -> None:
    assert parse_numastat_args(["-p123"]).p_specs == ["123"]
    assert parse_numastat_args(["-cp", "-z"]).p_specs == ["-z"]  # even one that looks like an option
    a = parse_numastat_args(["-p", "x", "7", "-p", "8", "-n", "bash"])
    assert (a.p_specs, a.operands, a.numastat) == (["x", "8"], ["7", "bash"], True)  # GNU permutation


def test_double_dash_and_posixly_correct_end_the_options() -> None:
    assert parse_numastat_args(["--", "-c"]).operands == ["-c"]
    a = parse_numastat_args(["1", "-c"], environ={"POSIXLY_CORRECT": "1"})
    assert (a.operands, a.compress) == (["1", "-c"], False)


def test_bad_options_print_getopts_message_and_the_usage_and_exit_1() -> None:
    for argv, message in ((["-x"], "numastat: invalid option -- 'x'\n"),
                          (["-c", "-p"], "numastat: option requires an argument -- 'p'\n"),
                          (["--bogus=1"], "numastat: unrecognized option '--bogus=1'\n"),
                          (["--json=1"], "numastat: option '--json' doesn't allow an argument\n"),
                          (["--name"], "numastat: option '--name' requires an argument\n"),
                          (["-?"], "")):
        stop = parse_numastat_args(argv).stop
        assert stop is not None and (stop.exit_code, stop.stdout, stop.stderr) == (1, "", message + NUMASTAT_USAGE)


def test_the_first_stop_wins_and_p_before_it_was_already_met() -> None:
    a = parse_numastat_args(["-p", "pat", "-V", "-x", "-p", "other"])
    assert a.p_specs == ["pat"] and (a.stop.exit_code, a.stop.stdout, a.stop.stderr) == (0, VERSION_LINE, "")
    a = parse_numastat_args(["-x", "-V"])
    assert a.stop.exit_code == 1


def test_our_long_options_and_compatibility_mode() -> None:
    assert parse_numastat_args([]).compat  # numastat.c: argc == 1
    a = parse_numastat_args(["--nam=two"])  # any unambiguous prefix, as getopt_long
    assert (a.name, a.compat) == ("two", True)
    assert parse_numastat_args(["--name", "two", "--json"]).json
    assert not parse_numastat_args(["--json"]).compat
    assert not parse_numastat_args(["--"]).compat  # argc == 2
    assert not parse_numastat_args(["-z"]).compat
    assert parse_numastat_args(["--he"]).help
