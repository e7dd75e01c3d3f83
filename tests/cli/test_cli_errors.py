"""Bad input at the CLI: one clear line on stderr, a non-zero exit, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _one_error_line(proc, code, *fragments):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_topology(cli, cluster_name):
    _one_error_line(cli("up", "--name", cluster_name, "-t", "no-such-machine"), 3, "unknown topology 'no-such-machine'")


def test_invalid_topology_file(cli, cluster_name, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndistances = [[10, 20], [20, 12]]\n[[nodes]]\nid = 0\ncpus = "0"\nmem = "64MiB"\n'
                   '[[nodes]]\nid = 1\ncpus = "1"\nmem = "64MiB"\n')
    _one_error_line(cli("up", "--name", cluster_name, "-t", str(bad)), 3, str(bad))


def test_bad_distances_on_the_command_line(cli, cluster_name):
    _one_error_line(cli("up", "--name", cluster_name, "--nodes", "2", "--distances", "10,20;20"), 3, "--distances")


def test_cluster_name_already_up(cli, cluster_name):
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    try:
        _one_error_line(cli("up", "--name", cluster_name, "--nodes", "2"), 3, f"cluster '{cluster_name}' is already up")
    finally:
        cli("down", "--name", cluster_name, check=True)


def test_down_of_a_cluster_that_is_not_up(cli, cluster_name):
    _one_error_line(cli("down", "--name", cluster_name), 1, f"cluster '{cluster_name}' is not up")


def test_status_of_a_cluster_that_is_not_up(cli, cluster_name):
    _one_error_line(cli("status", "--name", cluster_name), 1, f"cluster '{cluster_name}' is not up")


def test_missing_numa_emu_home(tmp_path):
    missing = tmp_path / "nowhere"
    proc = subprocess.run([sys.executable, "-m", "numa_emu.cli.main", "status"], capture_output=True, text=True,
                          env=dict(os.environ, NUMA_EMU_HOME=str(missing)), timeout=30)
    _one_error_line(proc, 3, f"NUMA_EMU_HOME={missing} is not a folder")


@pytest.mark.parametrize("args", [["up", "--nodes", "0"], ["up", "--nodes", "2", "--mem-per-node", "lots"]])
def test_bad_machine_description(cli, cluster_name, args):
    proc = cli(*args, "--name", cluster_name)
    assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_unknown_command_is_a_usage_error(cli):
    proc = cli("frobnicate")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
