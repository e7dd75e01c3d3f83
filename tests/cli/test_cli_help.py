"""Help that helps, and the options scripts need, without a cluster: numactl --help with numa-emu's
notes, sysctl's keys from the one table, sysctl -w and latency jitter's usage errors, --json on
hardware -t and experiment list. Exact output and exit codes."""
from __future__ import annotations

import json

import pytest

from numa_emu.cli.latency import jitter_args
from numa_emu.cli.numactl import HELP_NOTES, wants_help
from numa_emu.experiments.spec import shipped
from numa_emu.frontends.numactl_args import NUMACTL_USAGE
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.zonelist import fallback_orders


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_numactl_help_needs_no_cluster_and_adds_what_is_not_emulated(cli, flag):
    proc = cli("numactl", flag)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, NUMACTL_USAGE + "\n" + HELP_NOTES, "")
    for fragment in ("--shm", "--file", "I/O device affinity", "numa_emu.attach()", "numa-emu shims DIR",
                     "$NUMA_EMU_CLUSTER"):
        assert fragment in HELP_NOTES


def test_numactl_help_is_numactls_only_before_the_command():
    assert wants_help(["--help"]) and wants_help(["-l", "-h"])
    assert not wants_help(["-l", "python", "x.py", "--help"])  # the command's own --help
    assert not wants_help(["--", "-h"]) and not wants_help([])


def test_numactl_without_help_still_needs_a_cluster(cli):
    proc = cli("numactl", "--show")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "numa-emu: error: cluster 'default' is not up; start it with: numa-emu up --name default\n"


def test_sysctl_help_lists_every_key_with_its_default_from_the_table(cli):
    proc = cli("sysctl", "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    keys = proc.stdout[proc.stdout.index("keys (default in brackets):"):]
    listed = [line.strip() for line in keys.splitlines()[1:] if line.startswith("  ") and not line.startswith("      ")]
    table = cm.tunables([0])
    expected = [f"{cm.WEIGHT_KEY_PREFIX}N [{cm.DEFAULT_WEIGHT}]" if cm.weight_node(k) is not None else f"{k} [{t.default}]"
                for k, t in table.items()]
    assert listed == expected
    assert "numastat counters: 0 stops and clears them on every node, 1 counts again" in keys


@pytest.mark.parametrize("argv, message", [
    (["-w", "vm.numa_stat"], "sysctl: -w takes KEY=VALUE, not 'vm.numa_stat'"),
    (["-w", "vm.numa_stat=0", "vm.auto_migrate"], "sysctl: -w takes KEY=VALUE, not 'vm.auto_migrate'"),
    (["-w"], "sysctl: give -a or KEY[=VALUE] ..."),
])
def test_sysctl_write_takes_assignments_only(cli, argv, message):
    proc = cli("sysctl", *argv)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"numa-emu: error: {message}\n")


@pytest.mark.parametrize("argv, message", [
    (["none", "1"], "none takes [SRC DST] only, not 1"),
    (["none", "0", "x"], "argument dst: 'x' is not a node id"),
    (["normal"], "normal takes SPREAD [SRC DST], not nothing"),
    (["normal", "x"], "argument spread: 'x' is not a number, expected one in 0..10"),
    (["uniform", "0.1", "1"], "uniform takes SPREAD [SRC DST], not 0.1 1"),
    (["uniform", "11"], "argument spread: 11 is out of range: expected a number in 0..10"),
])
def test_latency_jitter_usage_errors(cli, argv, message):
    proc = cli("latency", "jitter", *argv)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"numa-emu latency jitter: error: {message}\n")


def test_latency_jitter_none_is_spread_zero():
    assert jitter_args("none", []) == {"distribution": "uniform", "spread": 0.0}
    assert jitter_args("none", ["1", "2"]) == {"distribution": "uniform", "spread": 0.0, "src": 1, "dst": 2}
    assert jitter_args("normal", ["0.25", "0", "3"]) == {"distribution": "normal", "spread": 0.25, "src": 0, "dst": 3}


def test_latency_scale_help_says_it_replaces(cli):
    proc = cli("latency", "scale", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "It replaces, it does not compose: an earlier `latency set` of a pair it touches is undone" in text


def test_hardware_json_of_a_described_machine(cli):
    proc = cli("hardware", "-t", "ring,4", "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    got = json.loads(proc.stdout)
    from numa_emu.catalog import resolve_topology

    topology = resolve_topology("ring,4")
    assert got == {"nodes": [{"id": n.id, "cpus": list(n.cpus), "size_bytes": n.mem_bytes, "free_bytes": n.mem_bytes}
                             for n in topology.nodes],
                   "distances": [list(r) for r in topology.distances], "fallback": fallback_orders(topology)}


def test_experiment_list_json_names_every_shipped_file(cli):
    proc = cli("experiment", "list", "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    got = json.loads(proc.stdout)
    assert [(e["name"], e["path"]) for e in got] == [(n, str(p)) for n, p in shipped().items()]
    assert all(e["description"] for e in got)


@pytest.mark.parametrize("argv", [["logs", "--name", "nosuch"], ["--name", "nosuch", "logs"],
                                  ["logs", "--node", "0", "--name", "nosuch"]])
def test_logs_of_a_cluster_never_started(cli, argv):
    proc = cli(*argv)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        3, "", "numa-emu: error: cluster 'nosuch' has no logs; no cluster has logs yet\n")


@pytest.mark.parametrize("argv", [["--node", "1", "--zygote"], ["--coordinator", "--node", "0"], ["-n", "-1"]])
def test_logs_usage_errors(cli, argv):
    proc = cli("logs", *argv)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1
