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


def test_missing_numa_emu_home_is_made_owner_only(tmp_path):
    missing = tmp_path / "nowhere" / "home"
    proc = subprocess.run([sys.executable, "-m", "numa_emu.cli.main", "status"], capture_output=True, text=True,
                          env=dict(os.environ, NUMA_EMU_HOME=str(missing)), timeout=30)
    _one_error_line(proc, 1, "cluster 'default' is not up")
    assert missing.is_dir() and (missing.stat().st_mode & 0o777) == 0o700


def test_numa_emu_home_that_is_a_file(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    proc = subprocess.run([sys.executable, "-m", "numa_emu.cli.main", "status"], capture_output=True, text=True,
                          env=dict(os.environ, NUMA_EMU_HOME=str(a_file)), timeout=30)
    _one_error_line(proc, 3, f"NUMA_EMU_HOME={a_file} is not a folder; point it at a folder")


@pytest.mark.parametrize("args", [["up", "--nodes", "0"], ["up", "--nodes", "2", "--mem-per-node", "lots"]])
def test_bad_machine_description(cli, cluster_name, args):
    proc = cli(*args, "--name", cluster_name)
    assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_unknown_command_is_a_usage_error(cli):
    proc = cli("frobnicate")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


# ---- issue 10, items 5 and 7: numbers out of range, and no traceback for any input --------------

@pytest.mark.parametrize("args, line", [
    (["up", "--nodes", "2", "--cpus-per-node", "100000000"],
     "numa-emu up: error: argument --cpus-per-node: 100000000 is out of range: expected a whole number in 1..1024"),
    (["up", "--nodes", "two"], "numa-emu up: error: argument --nodes: 'two' is not a whole number, expected one in 1..128"),
    (["up", "--nodes", "100000"],
     "numa-emu up: error: argument --nodes: 100000 is out of range: expected a whole number in 1..128"),
    (["up", "--nodes", "2", "--dilation", "inf"],
     "numa-emu up: error: argument --dilation: inf is out of range: expected a number in 0.001..1e+06"),
    (["up", "--nodes", "2", "--dilation", "nan"],
     "numa-emu up: error: argument --dilation: nan is out of range: expected a number in 0.001..1e+06"),
    (["latency", "set", "0", "1", "1e20"],
     "numa-emu latency set: error: argument ns: 1e+20 is out of range: expected a number in 0.001..1e+09 ns"),
    (["latency", "set", "0", "1", "inf"],
     "numa-emu latency set: error: argument ns: inf is out of range: expected a number in 0.001..1e+09 ns"),
    (["latency", "scale", "1e300"],
     "numa-emu latency scale: error: argument factor: 1e+300 is out of range: expected a number in 0.001..1e+06"),
    (["latency", "jitter", "normal", "nan"],
     "numa-emu latency jitter: error: argument spread: nan is out of range: expected a number in 0..10"),
    (["latency", "inject", "real", "--dilation", "-1"],
     "numa-emu latency inject: error: argument --dilation: -1 is out of range: expected a number in 0.001..1e+06"),
    (["trace", "record", "-o", "t.jsonl", "--duration", "nan"],
     "numa-emu trace record: error: argument --duration: nan is out of range: expected a number in 0..604800 s"),
    (["top", "--interval", "inf"],
     "numa-emu top: error: argument --interval: inf is out of range: expected a number in 0.01..3600 s"),
])
def test_a_number_out_of_range_is_a_usage_error(cli, cluster_name, args, line):
    """Checked before any cluster is asked (none is up here): the option, the value and the range."""
    proc = cli(*args[:1], "--name", cluster_name, *args[1:])
    _one_error_line(proc, 2)
    assert proc.stderr.strip() == line


def test_a_shape_with_too_many_cpus_starts_nothing(cli, cluster_name, home):
    proc = cli("up", "--name", cluster_name, "-t", "ring,2,cpus=100000000")
    _one_error_line(proc, 3)
    assert proc.stderr.strip() == ("numa-emu: error: shape 'ring,2,cpus=100000000': cpus: expected an integer of at least 1 "
                                   "and at most 1024, got '100000000'")
    assert not (home / cluster_name / "cluster.json").exists()


def test_a_topology_latency_of_1e308_is_refused(cli, cluster_name, tmp_path):
    path = tmp_path / "far.toml"
    path.write_text('name = "far"\n[slit]\nmatrix = [[10, 20], [20, 10]]\n[latency]\nmatrix_ns = [[80, 1e308], [160, 80]]\n'
                    '[[nodes]]\nid = 0\ncpus = "0"\nmem = "16MiB"\n[[nodes]]\nid = 1\ncpus = "1"\nmem = "16MiB"\n')
    proc = cli("up", "--name", cluster_name, "-t", str(path))
    _one_error_line(proc, 3)
    assert proc.stderr.strip() == (f"numa-emu: error: {path}: latency.matrix_ns[0][1]: 1e+308 is out of range: "
                                   f"expected a number in 0.001..1e+09 ns")


def test_node_memory_beyond_the_frame_limit_is_refused(cli, cluster_name):
    proc = cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "1P")
    _one_error_line(proc, 3)
    assert proc.stderr.strip() == ("numa-emu: error: --mem-per-node: 274877906944 pages of 4096 bytes, expected "
                                   "1..16777216 pages per node (use larger pages or less memory)")


@pytest.mark.parametrize("sysctl, line", [
    ("vm.numa_stat=7", "numa-emu: error: --sysctl vm.numa_stat: invalid value '7': expected 0 or 1"),
    ("vm.pagecache_replication_cooldown_ms=-1",
     "numa-emu: error: --sysctl vm.pagecache_replication_cooldown_ms: invalid value '-1': expected milliseconds from 0 "
     "to 3600000"),
    ("vm.nope=1", "numa-emu: error: --sysctl: unknown key 'vm.nope' (see: numa-emu sysctl -a)"),
    ("novalue", "numa-emu: error: --sysctl takes KEY=VALUE, not 'novalue'"),
])
def test_bad_sysctl_values_at_up_start_nothing(cli, cluster_name, home, sysctl, line):
    proc = cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", "--sysctl", sysctl)
    _one_error_line(proc, 2)
    assert proc.stderr.strip() == line
    assert not (home / cluster_name).exists()  # checked before the cluster folder or any process


def test_trace_record_into_a_missing_folder(cli, cluster_name, tmp_path):
    out = tmp_path / "missing" / "t.jsonl"
    proc = cli("trace", "--name", cluster_name, "record", "-o", str(out), "--duration", "1")
    _one_error_line(proc, 2)
    assert proc.stderr.strip() == f"numa-emu: error: trace record -o {out}: folder {out.parent} does not exist"


def test_trace_record_of_a_missing_command(cli, cluster_name, tmp_path):
    proc = cli("trace", "--name", cluster_name, "record", "-o", str(tmp_path / "t.jsonl"), "--", "no-such-command-x")
    _one_error_line(proc, 2)
    assert proc.stderr.strip() == ("numa-emu: error: trace record: cannot run 'no-such-command-x': no such command "
                                   "(or not executable)")
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize("command", [["status"], ["down"], ["up", "--nodes", "1", "--mem-per-node", "16MiB"],
                                     ["sysctl", "-a"]])
def test_a_300_character_name_is_one_line(cli, command):
    """Whatever rule names follow, a name the file system refuses never shows a traceback."""
    proc = cli(command[0], "--name", "n" * 300, *command[1:])
    assert proc.returncode in (2, 3), proc.stderr
    _one_error_line(proc, proc.returncode)


def test_status_after_a_crash_claims_no_process_that_was_not_alive(cli, cluster_name, home):
    """Every process of the cluster killed (-9): `status` cleans the stale folder and says so, without
    claiming to have stopped the nodes (they were already gone)."""
    import json
    import signal

    import psutil

    from numa_emu import processes
    from tests.helpers import poll_until

    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    data = json.loads((home / cluster_name / "cluster.json").read_text())
    pids = [data["coordinator"]["pid"]] + [n["pid"] for n in data["nodes"]] + [data["zygote"]["pid"]]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # a node that saw its coordinator die and left first
            pass

    def gone() -> bool:
        processes.reap_children()
        return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)

    poll_until(gone, what="the killed cluster's processes to be gone")
    proc = cli("status", "--name", cluster_name)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"numa-emu: cluster '{cluster_name}' was stale (its coordinator is gone): cleaned its folder {home / cluster_name}",
        f"numa-emu: error: cluster '{cluster_name}' is not up; start it with: numa-emu up --name {cluster_name}"]


@pytest.mark.parametrize("option, value, line", [
    ("--pause-ms", "nan", "numa-emu workload writeshare: error: argument --pause-ms: nan is out of range: expected a number "
                          "in 0..3.6e+06 ms"),
    ("--tasks-per-node", "100000", "numa-emu workload writeshare: error: argument --tasks-per-node: 100000 is out of "
                                   "range: expected a whole number in 1..256"),
])
def test_a_workload_number_out_of_range_is_a_usage_error(cli, option, value, line):
    proc = cli("workload", "writeshare", option, value)
    _one_error_line(proc, 2)
    assert proc.stderr.strip() == line
