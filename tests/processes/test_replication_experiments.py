"""The replicated page cache's workloads and experiments on real clusters: kbuild and writeshare
print their JSON line with exact counts where the pattern is deterministic; the shipped
`replication` quick run turns kbuild's remote reads into replica hits (and makes no replica with
replication off, none in the no-writers and exec-only modes); the `unreplicate-race` quick run
sees no stale access with the default protocol and some with vm.unsafe_unreplicate=1; no task
process is left behind, also when Ctrl-C stops a workload of several tasks."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest

from numa_emu.experiments.output import csv_fields
from numa_emu.experiments.spec import load_spec
from tests.helpers import poll_until
from tests.processes.test_experiments import check_png, workload_processes

pytestmark = pytest.mark.cluster
PAGE = 4096
REPL, MODE, BACKOFF, UNSAFE = ("vm.pagecache_replication", "vm.pagecache_replication_mode",
                               "vm.pagecache_replication_backoff", "vm.unsafe_unreplicate")


def workload_line(cli, cluster, *args: str) -> dict:
    proc = cli("workload", *args, "--cluster", cluster.name, "--cpu", "0", check=True)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, (proc.stdout, proc.stderr)
    return json.loads(lines[0])


def test_kbuild_and_writeshare_print_one_json_line(cluster_factory, cli, home):
    c = cluster_factory("default-4n")
    k = workload_line(cli, c, "kbuild", "--files", "2", "--size", "16KiB", "--iterations", "2", "--write-every", "8")
    assert list(k)[:7] == ["workload", "virtual_ns", "wall_s", "ops", "bytes", "node", "cpu"]
    assert k["workload"] == "kbuild" and k["tasks"] == 4 and k["file_pages"] == 4
    assert k["masters_by_node"] == {"0": 8}  # the leader on CPU 0 wrote the tree
    # 4 tasks x 2 passes x 8 pages; the 3 tasks off node 0 read remote masters, each page once
    # copied to their node, then read there
    assert k["reads"] == 64 and k["writes"] == 8 and k["shared_writes"] == 0 and k["ops"] == 72
    assert k["remote_master_reads"] == 48 and k["repl_hits"] == 48 and k["remote_reads"] == 0
    assert k["pgreplicated"] == 24 and k["repl_fetch_bytes"] == 24 * PAGE and k["pgreplicazap"] == 0
    assert len(k["task_virtual_ns"]) == 4 and k["virtual_ns"] == max(k["task_virtual_ns"].values())
    again = workload_line(cli, c, "kbuild", "--files", "2", "--size", "16KiB", "--iterations", "2", "--write-every", "8")
    assert again["task_virtual_ns"] == k["task_virtual_ns"]  # a task per node, no shared write: deterministic

    cli("sysctl", "--name", c.name, f"{MODE}=no-writers", check=True)
    w = workload_line(cli, c, "writeshare", "--iterations", "3", "--pause-ms", "5")
    assert w["workload"] == "writeshare" and w["readers"] == 4 and w["pages"] == 4
    assert w["writes"] == 12 and w["reads"] >= 4 * 4 and w["ops"] == w["writes"] + w["reads"]
    assert w["pgreplicated"] == 0 and w["zap_ratio"] is None  # the writer maps the file writable
    assert w["remote_reads"] == w["remote_master_reads"] > 0 and w["stale_reads"] == 0
    assert w["counters"]["pgwriteback"] == 12  # every round's fsync wrote back every page
    assert workload_processes(home) == []


def rows_of(out) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_replication_quick_run(cli, home, tmp_path):
    out = tmp_path / "repl"
    proc = cli("experiment", "run", "replication", "--quick", "--out", str(out), check=True, timeout_s=120)
    assert "Traceback" not in proc.stderr and "writeshare" in proc.stdout and "zap %" in proc.stdout
    with open(out / "results.csv", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == csv_fields(load_spec("replication", quick=True))
    rows = rows_of(out)
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    kb = {r[REPL]: r for r in rows if r["workload"] == "kbuild"}
    # 3 remote tasks x 32 pages, 2 passes: every remote read becomes a replica hit, at one copy a page
    on, off = kb["1"], kb["0"]
    assert (on["remote_reads"], on["repl_hits"], on["pgreplicated"], on["repl_fetch_bytes"]) == ("0", "192", "96",
                                                                                                  str(96 * PAGE))
    assert (off["remote_reads"], off["repl_hits"], off["pgreplicated"], off["repl_fetch_bytes"]) == ("192", "0", "0",
                                                                                                     "0")
    assert int(on["virtual_ns"]) < int(off["virtual_ns"]) and on["zap_ratio"] == "0.0" and off["zap_ratio"] == ""
    ws = {(r[BACKOFF], r[MODE]): r for r in rows if r["workload"] == "writeshare"}
    for backoff in ("0", "1"):
        for mode in ("no-writers", "exec-only"):
            assert ws[(backoff, mode)]["pgreplicated"] == "0" and int(ws[(backoff, mode)]["remote_reads"]) > 0
    thrash, calm = ws[("0", "all")], ws[("1", "all")]
    assert int(thrash["pgreplicated"]) > int(calm["pgreplicated"]) > 0
    assert 0.5 < float(thrash["zap_ratio"]) <= 1 and thrash["pgreplicabackoff"] == "0"
    assert int(calm["pgreplicabackoff"]) > 0 and int(calm["repl_backoff_skips"]) > 0
    assert int(thrash["virtual_ns"]) > int(ws[("0", "no-writers")]["virtual_ns"])  # the collapses cost the writer

    doc = json.loads((out / "results.json").read_text())
    assert doc["clusters"][0]["sysctl_start"][REPL] == 1
    for run in doc["runs"]:  # kbuild's replication=0 does not leak into the writeshare runs
        assert run["sysctl"][REPL] == (run["parameters"][REPL] if run["parameters"]["workload"] == "kbuild" else 1)
    for name in ("virtual_ns-vs-vm.pagecache_replication.png", "remote_reads-vs-vm.pagecache_replication.png",
                 "repl_fetch_bytes-vs-vm.pagecache_replication.png", "zap_ratio-vs-vm.pagecache_replication_mode.png",
                 "overview-vs-vm.pagecache_replication.png", "overview-vs-vm.pagecache_replication_backoff.png"):
        check_png(out / name)
    assert not (out / "virtual_ns-vs-workload.png").exists()
    assert workload_processes(home) == []


def test_the_unreplicate_race_quick_run(cli, home, tmp_path):
    out = tmp_path / "race"
    cli("experiment", "run", "unreplicate-race", "--quick", "--out", str(out), check=True, timeout_s=120)
    rows = {r[UNSAFE]: r for r in rows_of(out)}
    assert set(rows) == {"0", "1"} and all(r["status"] == "ok" for r in rows.values())
    safe, unsafe = rows["0"], rows["1"]
    assert safe["repl_stale_access"] == "0" and safe["stale_reads"] == "0"
    assert int(unsafe["repl_stale_access"]) > 0
    assert int(safe["pgreplicated"]) > 0 and int(unsafe["pgreplicazap"]) > 0  # the race was run both ways
    doc = json.loads((out / "results.json").read_text())
    assert doc["clusters"][0]["jitter"] == {"distribution": "uniform", "spread": 0.3}
    assert all(run["sysctl"][BACKOFF] == 0 for run in doc["runs"])
    check_png(out / "repl_stale_access-vs-vm.unsafe_unreplicate.png")
    assert workload_processes(home) == []


LONG_KBUILD = """
[experiment]
name = "long-kbuild"
[grid]
workload = ["kbuild"]
[workloads.kbuild]
options = { files = 2, size = "8KiB", iterations = 100000 }
"""


def test_ctrl_c_stops_every_task_of_a_team(home, tmp_path):
    spec, out = tmp_path / "long.toml", tmp_path / "out"
    spec.write_text(LONG_KBUILD)
    argv = [sys.executable, "-m", "numa_emu.cli.main", "experiment", "run", str(spec), "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NUMA_EMU_HOME=str(home)))
    try:  # the leader and its three workers
        poll_until(lambda: len(workload_processes(home)) >= 4, timeout_s=30, what="the kbuild team")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err
    assert workload_processes(home) == []
    assert [r["status"] for r in json.loads((out / "results.json").read_text())["runs"]] == ["interrupted"]
