"""`numa-emu sim` from the command line: list, one seed replayed byte for byte, a search that stops
at the first violation with the command that replays it, and one line with exit 2 for bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def sim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numa_emu.cli.main", "sim", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONHASHSEED="random"))


def test_list_names_every_scenario():
    out = sim("list")
    assert out.returncode == 0
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["replication", "migration", "unreplicate-race",
                                                                         "writeshare", "migrate-race", "shm-move-race",
                                                                         "shm-fill-race", "direct-shm", "direct-file",
                                                                         "reclaim-fill"]


def test_run_prints_the_same_trace_every_time():
    first, second = sim("run", "migration", "--seed", "11"), sim("run", "migration", "--seed", "11")
    assert first.returncode == 0 and first.stderr == ""
    assert first.stdout == second.stdout
    assert first.stdout.splitlines()[-1].startswith("migration seed 11: ok, ")


def test_search_stops_at_the_first_violation_and_says_how_to_replay_it():
    out = sim("search", "unreplicate-race", "--runs", "20", "--set", "vm.unsafe_unreplicate=1")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    replay = lines[-1].strip()
    assert replay.startswith("numa-emu sim run unreplicate-race --seed ") and replay.endswith(
        " --set vm.unsafe_unreplicate=1")
    again = sim(*replay.split()[2:])
    assert again.returncode == 1 and again.stdout.splitlines() == lines[:-2]


def test_search_without_a_violation_exits_0():
    out = sim("search", "replication", "--runs", "5", "--from", "100")
    assert out.returncode == 0 and out.stdout.startswith("replication: seeds 100..104, no violation (5 runs in ")


@pytest.mark.parametrize("args, error", [
    (("run", "nope", "--seed", "1"), "argument scenario: no scenario 'nope' (see: numa-emu sim list)"),
    (("run", "replication", "--seed", "x"), "argument --seed: a seed is a whole number from 0 to 10**19, got 'x'"),
    (("run", "replication", "--seed", "1", "--set", "vm.nope=1"),
     "--set: unknown key 'vm.nope' (see: numa-emu sysctl -a)"),
    (("run", "replication", "--seed", "1", "--set", "vm.unsafe_unreplicate=2"),
     "--set vm.unsafe_unreplicate: invalid value '2': expected 0 or 1"),
    (("search", "replication", "--runs", "0"), "argument --runs: --runs takes a whole number from 1 to 10**9, got '0'"),
    (("run", "replication", "--seed", "1", "--drop", "1"), "argument --drop: a probability from 0 to below 1, got '1'"),
    ((), "a command is needed: list, run or search"),
])
def test_bad_input_gets_one_line_and_exit_2(args, error):
    out = sim(*args)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", f"numa-emu sim: error: {error}\n")


def test_partition_and_stop_replay_byte_for_byte_and_search_says_how_often_they_struck():
    first = sim("run", "replication", "--seed", "3", "--partition", "--stop")
    assert first.returncode == 0 and first.stderr == ""
    assert first.stdout == sim("run", "replication", "--seed", "3", "--partition", "--stop").stdout
    assert "PARTITION healed" in first.stdout and "CONTINUE node:" in first.stdout
    out = sim("search", "migration", "--runs", "3", "--partition")
    assert out.returncode == 0 and out.stdout.startswith("migration: seeds 0..2, no violation (3 runs in ")
    assert out.stdout.endswith("; a partition or stop in 3 of them)\n")
