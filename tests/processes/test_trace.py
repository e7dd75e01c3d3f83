"""Tracing on a real cluster: record a scripted workload, then read the record back with
`trace show` (the story of one task) and `trace stats` (its counts); `trace stats` finds the
thrashing page of a hand-written ping-pong trace; malformed files are one clear error line."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

pytestmark = pytest.mark.cluster
PAGE = 4096

# Attach on cpu 0 (node 0), interleave over nodes 0-1: the first page lands on node 0, the
# second on node 1; read 8 bytes of the remote one; detach releases both.
WORKLOAD = textwrap.dedent("""
    import json, sys
    import numa_emu

    with numa_emu.attach(0, cluster=sys.argv[1], comm="tracew") as task:
        task.set_mempolicy("interleave", "0-1")
        region = task.mmap(2 * 4096)
        region.touch(write=True)
        where = region.where()
        region.read(4096, 8)
        print(json.dumps({"pid": task.task_id, "vaddr": region.vaddr, "where": where}), flush=True)
""")


@pytest.fixture
def recorded(cluster_factory, cli, tmp_path):
    c = cluster_factory("full,2,mem=64MiB")
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    out = tmp_path / "trace.jsonl"
    # switched on first: `trace record -- CMD` starts CMD before it switches the trace points on
    cli("trace", "--name", c.name, "on", check=True)
    proc = cli("trace", "--name", c.name, "record", "-o", str(out), "--", sys.executable, str(script), c.name,
               check=True)
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    assert run["where"] == [0, 1]
    assert "recorded 10 events" in proc.stderr
    return out, run


def test_record_show_and_stats_tell_the_story(recorded, cli):
    out, run = recorded
    pid, va = run["pid"], run["vaddr"]
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["ev"] for e in events[:7]] == ["task", "policy", "alloc", "fault", "alloc", "fault", "access"]
    assert [e["ev"] for e in events[7:-1]] == ["free", "free"]
    assert (events[0]["what"], events[-1]["ev"], events[-1]["what"]) == ("attach", "task", "detach")
    assert [e["wall_ns"] for e in events] == sorted(e["wall_ns"] for e in events)
    f0, f1 = events[3]["frame"], events[5]["frame"]
    vts = [e["vns"] for e in events if "vns" in e]
    assert vts == sorted(vts) and vts[-1] > 0

    show = cli("trace", "show", str(out), "--task", str(pid), check=True)
    lines = show.stdout.splitlines()
    assert all(f"task {pid}" in line for line in lines)
    assert [line.split(" ms ", 1)[0].strip().startswith("+") for line in lines] == [True] * 10
    sentences = [line.split(f"task {pid}", 1)[1].split("] ", 1)[-1].strip() for line in lines]
    assert sentences == [
        "attached on cpu 0 (tracew)",
        "task policy set to interleave:0-1 (mems allowed 0-1)",
        f"allocated frame {f0} for a task on node 0 (preferred node 0: hit, interleave)",
        f"first touch of {va:#x} (write): frame {f0} on node 0, local",
        f"allocated frame {f1} for a task on node 0 (preferred node 1: hit, interleave)",
        f"first touch of {va + PAGE:#x} (write): frame {f1} on node 1, remote",
        f"read 8 bytes of {va + PAGE:#x} on node 1 (remote)",
        f"freed frame {f0} of {va:#x}",
        f"freed frame {f1} of {va + PAGE:#x}",
        "detached, 2 pages released",
    ]
    assert [line.split(") ", 1)[1].split()[:2] for line in lines] == [["node", n] for n in "0000100010"]

    remote = cli("trace", "show", str(out), "--page", f"{va + PAGE + 100:#x}", "--event", "fault,access", check=True)
    assert len(remote.stdout.splitlines()) == 2 and "on node 1 (remote)" in remote.stdout
    assert cli("trace", "show", str(out), "--task", str(pid + 1), check=True).stdout == ""

    stats = cli("trace", "stats", str(out), check=True).stdout.splitlines()
    assert stats[0].startswith(f"{out}: 10 events over ") and stats[0].endswith(" ms, 2 nodes, 1 task")
    assert stats[2:] == [
        "event   node 0  node 1  total",
        "fault        2       .      2",
        "alloc        1       1      2",
        "free         1       1      2",
        "access       1       .      1",
        "policy       1       .      1",
        "task         2       .      2",
        "total        8       2     10",
        "",
        "no replication events",
    ]


def _write_events(path, events) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_stats_finds_the_thrashing_page_of_a_ping_pong(cli, tmp_path):
    """Readers on nodes 1 and 2 replicate file7:42, a writer on node 0 collapses it, 12 times;
    lib:0 is replicated once and torn down once, under memory pressure."""
    t, events = 1_000_000_000, []
    for cycle in range(12):
        t0 = t + cycle * 5_000_000
        for k, node in enumerate((1, 2)):
            events.append({"ev": "replicate", "wall_ns": t0 + k * 1000, "node": 0, "obj": "file7", "idx": 42,
                           "replica_node": node, "frame": 50 + node, "master": 0})
        for k, node in enumerate((1, 2)):
            events.append({"ev": "unreplicate", "wall_ns": t0 + 1_000_000 + k, "node": 0, "obj": "file7", "idx": 42,
                           "replica_node": node, "frame": 50 + node, "cause": "write"})
    events += [{"ev": "replicate", "wall_ns": t + 100, "node": 3, "obj": "lib", "idx": 0, "replica_node": 1,
                "frame": 7, "master": 3},
               {"ev": "unreplicate", "wall_ns": t + 90_000_000, "node": 3, "obj": "lib", "idx": 0, "replica_node": 1,
                "frame": 7, "cause": "reclaim"}]
    trace = tmp_path / "pingpong.jsonl"
    _write_events(trace, sorted(events, key=lambda e: e["wall_ns"]))
    out = cli("trace", "stats", str(trace), "--top", "2", check=True).stdout.splitlines()
    assert "replication: 25 replicas created, 25 replicas torn down (100% of the replications zapped)" in out
    table = out[out.index("thrashing pages: replicate -> unreplicate cycles") + 1:]
    assert table == [
        "page      cycles  replicas  median lifetime  zap causes",
        "file7:42      12        24             1 ms  write 24",
        "lib:0          1         1            90 ms  reclaim 1",
    ]
    story = cli("trace", "show", str(trace), "--page", "file7:42", "--event", "unreplicate", check=True).stdout
    assert len(story.splitlines()) == 24
    assert story.splitlines()[1].endswith("replica of file7:42 on node 2 (frame 52) torn down (write) after 999 µs")


def test_a_malformed_line_is_one_error_naming_it(cli, tmp_path):
    trace = tmp_path / "bad.jsonl"
    trace.write_text('{"ev": "free", "wall_ns": 1, "node": 0, "frames": [1]}\n\n{"ev": "free", "wall_\n')
    for op in ("show", "stats"):
        proc = cli("trace", op, str(trace))
        assert proc.returncode == 3 and proc.stdout == ""
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"numa-emu: error: {trace} line 3: not JSON (") and "Traceback" not in proc.stderr
    bad_page = cli("trace", "show", str(trace), "--page", "nonsense")
    assert bad_page.returncode == 2 and len(bad_page.stderr.splitlines()) == 1 and "--page" in bad_page.stderr
    assert cli("trace", "show", str(tmp_path / "none.jsonl")).returncode == 3
