"""One way to name a cluster, and help that helps (issue 15): --name before or after a command's
sub-command and as a global option, workload's --name, the clusters that are up in the not-up
error, "did you mean", --version and shell completion."""
from __future__ import annotations

import subprocess

import pytest

from numa_emu.cli.main import COMMANDS, FRONT_ENDS, build_parser

# every command that talks to one cluster, with the arguments that make it reach for it
REACHES_A_CLUSTER = {
    "down": [], "status": [], "hardware": [], "latency": ["show"], "trace": ["off"], "file": ["ls"],
    "vmstat": [], "numa-maps": ["1"], "cpuset": ["show"], "sysctl": ["-a"], "top": ["--once"],
    "memtoy": [], "node": ["restart", "1"], "fault": ["show"],
}


def _sub_commands(name: str) -> list[str]:
    parser = build_parser()
    top = parser._subparsers._group_actions[0].choices[name]
    for action in top._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return sorted(action.choices)
    return []


def test_every_command_but_the_front_ends_is_covered():
    # up, shims, workload, experiment and completion take --name otherwise (below, or not at all);
    # logs reads a cluster's folder, up or down (tests/cli/test_cli_help.py); sim runs no cluster
    assert set(COMMANDS) - set(REACHES_A_CLUSTER) - set(FRONT_ENDS) == {"up", "shims", "workload", "experiment",
                                                                       "completion", "logs", "sim"}


@pytest.mark.parametrize("command", sorted(REACHES_A_CLUSTER))
@pytest.mark.parametrize("where", ["global", "before", "after"])
def test_name_in_every_position(cli, command, where):
    rest = REACHES_A_CLUSTER[command]
    argv = {"global": ["--name", "nosuch", command, *rest],
            "before": [command, "--name", "nosuch", *rest],
            "after": [command, *rest, "--name", "nosuch"]}[where]
    proc = cli(*argv, input="")
    expected = ("numa-emu: error: cluster 'nosuch' is not up; start it with: numa-emu up --name nosuch\n"
                if command != "down" else "numa-emu: error: cluster 'nosuch' is not up\n")
    assert (proc.returncode, proc.stderr) == (1, expected), argv


def test_every_sub_command_takes_name_after_it():
    for command in ("latency", "cpuset", "file", "trace", "sysctl"):
        for sub in _sub_commands(command):
            parser = build_parser()
            top = parser._subparsers._group_actions[0].choices[command]
            inner = [a for a in top._actions if a.__class__.__name__ == "_SubParsersAction"][0].choices[sub]
            assert "--name" in inner._option_string_actions, (command, sub)


def test_a_front_end_gets_the_global_name_in_its_environment(cli):
    proc = cli("--name", "nosuch", "numastat")
    assert (proc.returncode, proc.stderr) == (
        1, "numa-emu: error: cluster 'nosuch' is not up; start it with: numa-emu up --name nosuch\n")


def test_workload_takes_name_and_the_old_cluster(cli):
    for option in ("--name", "--cluster"):
        proc = cli("workload", "chase", option, "nosuch", "--size", "64KiB")
        assert (proc.returncode, proc.stderr) == (
            1, "numa-emu: error: cluster 'nosuch' is not up; start it with: numa-emu up --name nosuch\n")


def test_not_up_lists_the_clusters_that_are(cli, cluster_name):
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    try:
        proc = cli("status", "--name", "other")
        assert (proc.returncode, proc.stderr) == (
            1, f"numa-emu: error: cluster 'other' is not up; up: {cluster_name} (use --name {cluster_name})\n")
    finally:
        cli("down", "--name", cluster_name, check=True)


@pytest.mark.parametrize("argv, suggestion", [(["stauts"], "status"), (["latency", "shwo"], "show"),
                                              (["cpuset", "creat"], "create")])
def test_did_you_mean(cli, argv, suggestion):
    proc = cli(*argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"; did you mean '{suggestion}'?"), proc.stderr


def test_no_suggestion_for_nothing_close(cli):
    proc = cli("zzzzzz")
    assert proc.returncode == 2 and "did you mean" not in proc.stderr


def test_version(cli):
    from importlib.metadata import version

    proc = cli("--version")
    assert (proc.returncode, proc.stdout) == (0, f"numa-emu {version('numa-emu')}\n")


def test_bash_completion_completes_commands_and_sub_commands(cli, tmp_path):
    proc = cli("completion", "bash", check=True)
    script = tmp_path / "numa-emu.bash"
    script.write_text(proc.stdout)
    probe = (f'source {script}; '
             'COMP_WORDS=(numa-emu sta); COMP_CWORD=1; _shtab_numa_emu numa-emu sta numa-emu; echo "${COMPREPLY[@]}"; '
             'COMP_WORDS=(numa-emu latency s); COMP_CWORD=2; _shtab_numa_emu numa-emu s latency; echo "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["status", "show set scale"]


def test_zsh_completion_is_a_compdef(cli):
    proc = cli("completion", "zsh", check=True)
    assert proc.stdout.startswith("#compdef numa-emu")
    assert "completion" in proc.stdout and "status" in proc.stdout
