"""The real tools' front ends refuse bad input as the real tools do: numactl's, memhog's,
numastat's and migratepages' exact text and exit status 1; numa-emu's own one-line errors
(never a traceback) when there is no cluster or no such task."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from numa_emu.frontends.memhog_args import MEMHOG_USAGE
from numa_emu.frontends.migratepages_args import MIGRATEPAGES_USAGE
from numa_emu.frontends.numactl_args import NUMACTL_USAGE


@pytest.fixture
def machine(cluster_factory, cli):
    """A running 4-node cluster (the only one up, so every front end finds it) and the CLI."""
    cluster_factory("default-4n")
    return cli


def exact(proc, code: int, stdout: str, stderr: str) -> None:
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, stdout, stderr)


def one_error_line(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


NUMACTL_ERRORS = [  # (argv, stdout, stderr)
    # numactl.c usage_msg(): the message on stderr, a newline on stdout, then the usage
    (["--membind=1", "--interleave=0", "true"], "\n", "numactl: Conflicting policies" + NUMACTL_USAGE),
    (["--localalloc", "--preferred=1", "true"], "\n", "numactl: Conflicting policies" + NUMACTL_USAGE),
    # --preferred takes exactly one node: numactl.c calls usage() with no message
    (["--preferred=0,1", "true"], "", NUMACTL_USAGE),
    # libnuma's warning, numactl's "<X> is invalid" on stdout, the usage
    (["--membind=7", "true"], "<7> is invalid\n", "libnuma: Warning: node argument 7 is out of range\n\n" + NUMACTL_USAGE),
    (["--interleave=0-9", "true"], "<0-9> is invalid\n", "libnuma: Warning: node argument 9 out of range\n\n" + NUMACTL_USAGE),
    (["--physcpubind=4", "true"], "<4> is invalid\n", "libnuma: Warning: cpu argument 4 is out of range\n\n" + NUMACTL_USAGE),
    (["--cpunodebind=0", "--all", "true"], "\n",
     "numactl: --all/-a option must be before all cpu/node specifications" + NUMACTL_USAGE),
    (["--membind=1"], "", NUMACTL_USAGE),  # no command
    (["--no-such-option", "true"], "", "numactl: unrecognized option '--no-such-option'\n" + NUMACTL_USAGE),
]


def test_numactl_usage_errors_are_numactls(machine):
    for argv, stdout, stderr in NUMACTL_ERRORS:  # one cluster for the whole table
        proc = machine("numactl", *argv)
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, stdout, stderr), argv


def test_numactl_exec_failure_and_version(machine):
    exact(machine("numactl", "--membind=0", "--", "/no/such/program"), 1, "",
          "numactl: execution of `/no/such/program': No such file or directory\n\n")
    exact(machine("numactl", "--version"), 0, "2.0.19\n", "")


def test_memhog_usage_errors_are_memhogs(machine):
    exact(machine("memhog"), 1, MEMHOG_USAGE, "")
    exact(machine("memhog", "4m", "membind"), 1, MEMHOG_USAGE, "")  # a policy without its nodeset
    exact(machine("memhog", "-x", "4m"), 1, MEMHOG_USAGE, "")
    exact(machine("memhog", "4m", "membind", "9"), 1, "<9> is invalid\n",
          "libnuma: Warning: node argument 9 is out of range\n\n")
    one_error_line(machine("memhog", "-f/tmp/x", "4m"), 1, "file-backed mappings are not emulated")


def test_numastat_of_an_unknown_pid(machine):
    exact(machine("numastat", "-p", "999999999"), 1, "", "Can't read /proc/999999999/numa_maps: No such file or directory\n")
    proc = machine("numastat", "-p", "no-such-task")
    assert proc.returncode == 0 and proc.stdout.startswith('Found no processes containing pattern: "no-such-task"\n'
                                                           "\nPer-node numastat info (in MBs):\n")


def test_numa_maps_of_an_unknown_pid(machine):
    one_error_line(machine("numa-maps", "999999999"), 3, "no task with pid 999999999")


@pytest.mark.parametrize("argv", [["numactl", "--show"], ["numastat"], ["vmstat"], ["numa-maps", "1"], ["memhog", "1m"]])
def test_no_cluster_up_is_one_line(cli, argv):
    one_error_line(cli(*argv), 1, "cluster 'default' is not up")


def test_migratepages_shim_runs_the_command(cli, home, tmp_path):
    assert cli("shims", str(tmp_path / "bin")).returncode == 0
    env = dict(os.environ, NUMA_EMU_HOME=str(home))

    def shim(*args):
        return subprocess.run([str(tmp_path / "bin" / "migratepages"), *args], capture_output=True, text=True,
                              env=env, timeout=30)

    exact(shim("1", "0"), 1, "", MIGRATEPAGES_USAGE)
    exact(shim(str(os.getpid()), "0", "1"), 1, "",
          "numa-emu: error: cluster 'default' is not up; start it with: numa-emu up --name default\n")
    assert "-m numa_emu.cli.main migratepages" in (tmp_path / "bin" / "migratepages").read_text()
    assert sys.executable in (tmp_path / "bin" / "numactl").read_text()
