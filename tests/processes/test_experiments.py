"""`numa-emu experiment run` on real clusters: a tiny grid writes results.csv (exact header and
rows), results.json and valid PNGs; remote-bind slows down with the remote latency while local
stays equal; Ctrl-C stops the workload and the cluster and leaves no process behind."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from numa_emu.catalog import resolve_topology
from numa_emu.experiments.output import CSV_FIELDS
from tests.helpers import poll_until

pytestmark = pytest.mark.cluster
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY = """
[experiment]
name = "tiny"
topology = "default-4n"
inject = "virtual"
metric = "ns_per_op"

[grid]
latency_scale = [1, 4]
placement = ["local", "remote"]
workload = ["chase"]

[placements.local]
cpu = 0
policy = "--localalloc"

[placements.remote]
cpu = 0
mode = "bind"
nodes = [2]

[workloads.chase]
options = { size = "64KiB", hops = 40 }
"""


def workload_processes(home) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or "numa_emu.workloads" not in " ".join(proc.info["cmdline"] or []):
                continue
            if proc.environ().get("NUMA_EMU_HOME") == str(home):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def check_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000, path


def test_a_tiny_grid_writes_csv_json_and_plots(cli, home, tmp_path):
    spec, out = tmp_path / "tiny.toml", tmp_path / "out"
    spec.write_text(TINY)
    proc = cli("experiment", "run", str(spec), "--out", str(out), check=True)
    assert "Traceback" not in proc.stderr and "remote" in proc.stdout and f"results: {out}/" in proc.stdout

    with open(out / "results.csv", newline="") as f:
        reader = csv.reader(f)
        header, rows = next(reader), [dict(zip(CSV_FIELDS, r)) for r in reader]
    assert tuple(header) == CSV_FIELDS and len(rows) == 4
    assert all(r["status"] == "ok" and r["workload"] == "chase" and r["ops"] == "40" for r in rows)
    ns = {(float(r["latency_scale"]), r["placement"]): int(r["virtual_ns"]) for r in rows}
    assert ns[(4.0, "remote")] > ns[(1.0, "remote")] and ns[(4.0, "local")] == ns[(1.0, "local")]
    topo = resolve_topology("default-4n")
    bytes_per_ns = topo.bandwidth_mib_s[0][2] * 1048576 / 1e9
    assert ns[(4.0, "remote")] == 40 * round(4 * topo.latency_ns[0][2] + 8 / bytes_per_ns)  # scaled exactly
    remote = [r for r in rows if r["placement"] == "remote"]
    assert all(r["pages_by_node"] == "N2=16" and int(r["other_node"]) == 16 for r in remote)

    doc = json.loads((out / "results.json").read_text())
    assert doc["experiment"] == "tiny" and doc["spec"]["metric"] == "ns_per_op" and not doc["interrupted"]
    assert len(doc["runs"]) == 4 and len(doc["clusters"]) == 1
    assert not doc["clusters"][0]["kept"] and not (home / doc["clusters"][0]["name"]).exists()  # all ok: no litter
    assert [c["factor"] for c in doc["clusters"][0]["latency_changes"]] == [4.0]
    run = doc["runs"][0]
    assert run["result"]["distinct_slots"] > 0 and set(run["numastat_delta"]) == {"0", "1", "2", "3"}
    assert "nr_free_pages" in run["vmstat_delta"]["0"]
    assert [s["relative"] for s in doc["summary"]][:2] == [1.0, 1.0]

    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["ns_per_op-vs-latency_scale-relative.png", "ns_per_op-vs-latency_scale.png",
                    "ns_per_op-vs-placement.png"]
    for name in pngs:
        check_png(out / name)
    assert workload_processes(home) == []


def test_ctrl_c_stops_the_workload_and_the_cluster(home, tmp_path):
    spec, out = tmp_path / "long.toml", tmp_path / "out"
    spec.write_text(TINY.replace("hops = 40", "hops = 200000"))
    proc = subprocess.Popen([sys.executable, "-m", "numa_emu.cli.main", "experiment", "run", str(spec), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NUMA_EMU_HOME=str(home)))
    try:
        poll_until(lambda: workload_processes(home), timeout_s=30, what="the first workload")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert workload_processes(home) == []
    doc = json.loads((out / "results.json").read_text())
    assert doc["interrupted"] and [r["status"] for r in doc["runs"]] == ["interrupted"]
    # the home fixture fails the test if a coordinator or node process is left


def test_the_shipped_latency_sensitivity_quick_run(cli, tmp_path):
    out = tmp_path / "ls"
    cli("experiment", "run", "latency-sensitivity", "--quick", "--out", str(out), check=True, timeout_s=120)
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 2 and all(r["status"] == "ok" for r in rows)
    ns = {(float(r["latency_scale"]), r["placement"], r["workload"]): int(r["virtual_ns"]) for r in rows}
    for w in ("stream", "chase"):
        assert ns[(4.0, "local", w)] == ns[(1.0, "local", w)]
        assert ns[(4.0, "remote-bind", w)] > ns[(4.0, "interleave-all", w)] > ns[(1.0, "interleave-all", w)]
    # the chase's hops are 8-byte reads: its remote time grows almost exactly with the latency
    assert ns[(4.0, "remote-bind", "chase")] / ns[(1.0, "remote-bind", "chase")] == pytest.approx(4, rel=0.01)
    check_png(out / "virtual_ns-vs-latency_scale.png")
    assert json.loads((out / "results.json").read_text())["spec"]["quick"] is True


SCRIPT = """
import argparse
import sys

import numa_emu

p = argparse.ArgumentParser()
p.add_argument("--pages", type=int)
p.add_argument("--times", type=int)
args = p.parse_args()
print("starting")  # other output is fine: the last JSON object line is the result
with numa_emu.attach() as task:
    region = task.mmap(args.pages * task.page_size)
    region.touch(write=True)
    numa_emu.report(product=args.pages * args.times, label=f"{args.pages}x{args.times}",
                    on_node2=region.where().count(2))
"""

MINE = """
[experiment]
name = "mine"
report = ["virtual_ns", "product"]

[grid]
pages = [2, 3]
times = [5, 7]
placement = ["remote"]

[placements.remote]
cpu = 0
policy = "--membind=2"

[workloads.mine]
command = ["python", "scripts/mine.py", "--pages", "{pages}", "--times", "{times}"]
"""


def test_a_user_script_over_a_2x2_grid_reports_its_figures(cli, home, tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "mine.py").write_text(SCRIPT)
    spec, out = tmp_path / "mine.toml", tmp_path / "out"
    spec.write_text(MINE)
    cli("experiment", "run", str(spec), "--out", str(out), check=True)  # the script's path: beside the file

    with open(out / "results.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [dict(zip(header, r)) for r in reader]
    cut = CSV_FIELDS.index("status")
    assert header == [*CSV_FIELDS[:cut], "pages", "times", *CSV_FIELDS[cut:], "product", "label", "on_node2"]
    got = [(r["pages"], r["times"], r["status"], r["product"], r["label"], r["on_node2"], r["other_node"])
           for r in rows]
    assert got == [("2", "5", "ok", "10", "2x5", "2", "2"), ("2", "7", "ok", "14", "2x7", "2", "2"),
                   ("3", "5", "ok", "15", "3x5", "3", "3"), ("3", "7", "ok", "21", "3x7", "3", "3")]
    ns = [int(r["virtual_ns"]) for r in rows]  # the runner's: the task's virtual time at detach
    assert ns[0] == ns[1] > 0 and ns[2] == ns[3] > ns[0]
    doc = json.loads((out / "results.json").read_text())
    assert doc["spec"]["workloads"]["mine"]["command"][1] == "scripts/mine.py"
    assert [s["product"] for s in doc["summary"]] == [10, 14, 15, 21]

    for png in out.glob("*.png"):
        png.unlink()
    cli("experiment", "replot", str(out), check=True)
    assert sorted(p.name for p in out.glob("*.png")) == [
        "virtual_ns-vs-pages.png", "virtual_ns-vs-times.png"]
    for png in out.glob("*.png"):
        check_png(png)
    assert workload_processes(home) == []


BROKEN = """
[experiment]
name = "broken"

[grid]
n = [1]
workload = ["missing", "silent", "exits", "typo", "noprogram", "fine"]

[workloads.missing]
command = ["python", "nowhere.py", "{n}"]
[workloads.silent]
command = ["python", "-c", "print('no json here {n}')"]
[workloads.exits]
command = ["python", "-c", "import sys; sys.exit('bad size {n}')"]
[workloads.typo]
command = ["python", "-c", "print(1)", "{sise}"]
[workloads.noprogram]
command = ["no-such-program-numa-emu", "{n}"]
[workloads.fine]
command = ["python", "-c", "import numa_emu; numa_emu.report(n={n})"]
"""


def test_a_broken_script_fails_its_own_run_and_the_experiment_goes_on(cli, tmp_path):
    spec, out = tmp_path / "broken.toml", tmp_path / "out"
    spec.write_text(BROKEN)
    proc = cli("experiment", "run", str(spec), "--out", str(out))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (f"numa-emu: error: 5 run(s) failed; first: run 0: failed: no script "
                                            f"nowhere.py in {tmp_path} (a command's relative paths are resolved "
                                            f"against the experiment file's folder)")
    with open(out / "results.csv", newline="") as f:
        status = {r["workload"]: r["status"] for r in csv.DictReader(f)}
    assert status == {
        "missing": f"failed: no script nowhere.py in {tmp_path} (a command's relative paths are resolved against "
                   f"the experiment file's folder)",
        "silent": "failed: no JSON object line on stdout (print one with numa_emu.report(**metrics))",
        "exits": "failed (exit status 1): bad size 1",
        "typo": "failed: command placeholder {sise} is not a grid parameter of this configuration "
                "(grid: n, workload, topology, inject, dilation, latency_scale, placement)",
        "noprogram": f"failed: cannot start no-such-program-numa-emu in {tmp_path}: No such file or directory",
        "fine": "ok"}


def test_the_shipped_task_placement_quick_run_pinned_against_unpinned(cli, home, tmp_path):
    """numa02 with balancing on (experiments/numa-task-placement.toml): on a ring of four busy
    CPUs no unpinned task can move (no idle CPU, no two tasks preferring each other's node), so
    the run equals the pinned one; on two nodes the tasks swap, after the pages already went home,
    and vm.auto_migrate brings the pages after them: every page copied twice."""
    out = tmp_path / "tp"
    cli("experiment", "run", "numa-task-placement", "--quick", "--out", str(out), check=True, timeout_s=240)
    with open(out / "results.csv", newline="") as f:
        rows = {(r["topology"].split(",")[1], r["placement"]): r for r in csv.DictReader(f)}
    assert len(rows) == 4 and all(r["status"] == "ok" and r["locality"] == "1.0" for r in rows.values())
    fields = ("virtual_ns", "numa_hint_faults", "numa_pages_migrated", "pgmigrate_success", "numa_task_migrated",
              "numa_task_swapped")
    figures = {k: {f: int(r[f]) for f in fields} for k, r in rows.items()}
    ring = {"numa_hint_faults": 1024, "numa_pages_migrated": 512, "pgmigrate_success": 512,
            "numa_task_migrated": 0, "numa_task_swapped": 0}
    assert figures[("4", "pinned")] == figures[("4", "unpinned")] == {**ring, "virtual_ns": figures[("4", "pinned")]["virtual_ns"]}
    pinned, unpinned = figures[("2", "pinned")], figures[("2", "unpinned")]
    assert {k: v for k, v in pinned.items() if k != "virtual_ns"} == {
        "numa_hint_faults": 512, "numa_pages_migrated": 256, "pgmigrate_success": 256, "numa_task_migrated": 0,
        "numa_task_swapped": 0}
    # each task asks once its first window's faults (all on the other node) made that node its
    # preferred one, whatever its pages did since: the second asker finds the first preferring its
    # node, so the swap is certain; how many pages went home before it landed, and came back
    # after it, depends on wall-clock timing
    assert unpinned["numa_task_swapped"] == 2 and unpinned["numa_task_migrated"] == 0
    assert unpinned["numa_pages_migrated"] <= 256 <= unpinned["numa_hint_faults"]
    assert unpinned["pgmigrate_success"] >= unpinned["numa_pages_migrated"]
    assert rows[("2", "unpinned")]["cpu"] == "1" and rows[("2", "pinned")]["cpu"] == "0"  # the leader swapped
    assert workload_processes(home) == []
