"""Cpusets on a real cluster, through the CLI: create/show/set/delete, tasks started inside a
cpuset with `cpuset exec`, rebinding when mems change, moving a running task, bad input."""
from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

import numa_emu
from numa_emu.protocol.policy import MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES, Mode
from numa_emu.protocol.topology_shapes import from_cli

pytestmark = pytest.mark.cluster
PAGE = 4096
INTERLEAVE = int(Mode.INTERLEAVE)


@pytest.fixture
def four(cluster_factory):
    return cluster_factory("default-4n")


@pytest.fixture
def cpuset(cli):
    """`numa-emu cpuset ACTION --name CLUSTER ARGS...` for the cluster `c`."""

    def run(c, action: str, *args: str, check: bool = True):
        return cli("cpuset", action, "--name", c.name, *args, check=check)

    return run


def one_error_line(proc, code: int, *fragments: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def root(tasks=()):
    return {"name": "/", "cpus": [0, 1, 2, 3], "mems": [0, 1, 2, 3], "memory_migrate": False, "replication": True,
            "effective_cpus": [0, 1, 2, 3], "effective_mems": [0, 1, 2, 3], "tasks": list(tasks)}


def test_create_show_set_delete_round_trip(four, cpuset):
    out = cpuset(four, "create", "batch", "--cpus", "0-1", "--mems", "1,0", "--replication", "off").stdout
    assert out == "cpuset batch: cpus 0-1, mems 0-1, memory_migrate 0, replication 0 (created)\n"
    batch = {"name": "batch", "cpus": [0, 1], "mems": [0, 1], "memory_migrate": False, "replication": False,
             "effective_cpus": [0, 1], "effective_mems": [0, 1], "tasks": []}
    assert json.loads(cpuset(four, "show", "--json").stdout) == [root(), batch]
    out = cpuset(four, "set", "batch", "--mems", "0-2", "--memory-migrate", "on", "--replication", "on").stdout
    assert out == "cpuset batch: cpus 0-1, mems 0-2, memory_migrate 1, replication 1\n"
    batch.update(mems=[0, 1, 2], effective_mems=[0, 1, 2], memory_migrate=True, replication=True)
    assert json.loads(cpuset(four, "show", "batch", "--json").stdout) == [batch]
    assert cpuset(four, "show").stdout.splitlines() == [
        "name   cpus  mems  memory_migrate  replication  tasks",
        "/      0-3   0-3   0               1            -",
        "batch  0-1   0-2   1               1            -",
    ]
    assert cpuset(four, "delete", "batch").stdout == "cpuset batch deleted\n"
    assert json.loads(cpuset(four, "show", "--json").stdout) == [root()]


WHERE = textwrap.dedent("""\
    import json, sys
    import numa_emu
    with numa_emu.attach() as task:
        local = task.mmap(8 * 4096)
        local.touch(write=True)
        task.set_mempolicy("interleave", "0-3")
        spread = task.mmap(8 * 4096)
        spread.touch(write=True)
        print(json.dumps({"cpuset": task.cpuset, "cpu": task.cpu, "mems": task.mems_allowed,
                          "local": local.where(), "spread": spread.where()}))
    """)


def test_exec_runs_a_task_that_allocates_only_inside_the_mems(four, cpuset, tmp_path):
    script = tmp_path / "where.py"
    script.write_text(WHERE)
    cpuset(four, "create", "far", "--cpus", "0", "--mems", "2-3")
    proc = cpuset(four, "exec", "far", "--", sys.executable, str(script))
    got = json.loads(proc.stdout)
    assert (got["cpuset"], got["cpu"], got["mems"]) == ("far", 0, [2, 3])
    # local allocation from cpu 0 (node 0) falls back along 0 1 2 3 to the first allowed node
    assert got["local"] == [2] * 8
    # interleave 0-3 is intersected with the mems (mpol_set_nodemask)
    assert got["spread"] == [2, 3] * 4
    assert json.loads(cpuset(four, "show", "far", "--json").stdout)[0]["tasks"] == []  # detached at exit


def test_mems_change_rebinds_policies_and_leaves_pages_where_they_are(four, cpuset, monkeypatch):
    cpuset(four, "create", "a", "--cpus", "0-3", "--mems", "0-2")
    monkeypatch.setenv("NUMA_EMU_CPUSET", "a")
    with numa_emu.attach(0, cluster=four.name) as task:
        task.set_mempolicy("interleave", "0-2")
        static = task.mmap(6 * PAGE)
        static.mbind(INTERLEAVE | MPOL_F_STATIC_NODES, "0-2")
        relative = task.mmap(6 * PAGE)
        relative.mbind(INTERLEAVE | MPOL_F_RELATIVE_NODES, "0,2")
        before = task.mmap(6 * PAGE)
        before.touch(write=True)
        assert before.where() == [0, 1, 2, 0, 1, 2]

        def region_nodes(region):
            return next(r["policy"]["nodes"] for r in task.maps() if r["start"] == region.vaddr)

        assert (region_nodes(static), region_nodes(relative)) == ([0, 1, 2], [0, 2])
        out = cpuset(four, "set", "a", "--mems", "1-3").stdout.splitlines()
        assert out == ["cpuset a: cpus 0-3, mems 1-3, memory_migrate 0, replication 1",
                       f"policies rebound to mems 1-3 for task(s) {task.task_id}; their pages stay where they are"]
        assert task.get_mempolicy() == (INTERLEAVE, [1, 2, 3])  # 0-2 remapped onto 1-3
        assert task.info()["mems_allowed"] == [1, 2, 3]
        assert region_nodes(static) == [1, 2]  # static: the user mask 0-2 & the new mems
        assert region_nodes(relative) == [1, 3]  # relative: positions 0 and 2 of the new mems
        assert before.where() == [0, 1, 2, 0, 1, 2]  # memory_migrate 0: nothing moves
        after = task.mmap(6 * PAGE)
        after.touch(write=True)
        assert after.where() == [1, 2, 3, 1, 2, 3]
        static.touch(write=True)
        relative.touch(write=True)
        assert set(static.where()) == {1, 2} and set(relative.where()) == {1, 3}

        cpuset(four, "set", "a", "--mems", "2-3")
        assert task.get_mempolicy() == (INTERLEAVE, [2, 3])
        assert (region_nodes(static), region_nodes(relative)) == ([2], [2])
        assert before.where() == [0, 1, 2, 0, 1, 2] and after.where() == [1, 2, 3, 1, 2, 3]
        last = task.mmap(4 * PAGE)
        last.touch(write=True)
        assert last.where() == [2, 3, 2, 3]
        with pytest.raises(numa_emu.NumaEmuError) as info:  # nothing of the mask inside the mems
            task.set_mempolicy("bind", "0-1")
        assert info.value.code == numa_emu.ErrorCode.EINVAL
        task.set_mempolicy("bind", "1-2")  # intersected with the mems (mpol_set_nodemask)
        assert task.get_mempolicy() == (int(Mode.BIND), [2])


def test_attach_and_set_move_a_task_and_its_pages(cluster_factory, cpuset):
    c = cluster_factory(from_cli(2, 2, "16MiB"))  # cpus 0-1 on node 0, 2-3 on node 1
    cpuset(c, "create", "same", "--cpus", "0-1", "--mems", "0-1")
    cpuset(c, "create", "sibling", "--cpus", "0", "--mems", "0")
    cpuset(c, "create", "far", "--cpus", "2-3", "--mems", "1")
    with numa_emu.attach(1, cluster=c.name, comm="mover") as task:
        pid = str(task.pid)
        task.set_mempolicy("interleave", "0-1")
        out = cpuset(c, "attach", "same", pid).stdout
        assert out == f"task {task.task_id} (mover) moved to cpuset same from /: cpu 1, node 0, mems 0-1\n"
        out = cpuset(c, "attach", "sibling", pid).stdout
        assert out == f"task {task.task_id} (mover) moved to cpuset sibling from same: cpu 1 -> 0, node 0, mems 0\n"
        info = task.info()
        assert (info["cpuset"], info["cpu"], info["node"], info["policy"]["nodes"]) == ("sibling", 0, 0, [0])
        one_error_line(cpuset(c, "attach", "nowhere", pid, check=False), 3, "no cpuset 'nowhere'")
        assert task.info() == info
        one_error_line(cpuset(c, "delete", "sibling", check=False), 3, "cpuset 'sibling' has 1 task(s)")
        region = task.mmap(4 * PAGE)
        region.touch(write=True)
        assert region.where() == [0, 0, 0, 0]
        assert json.loads(cpuset(c, "show", "sibling", "--json").stdout)[0]["tasks"] == [task.task_id]

        cpuset(c, "attach", "same", pid)
        out = cpuset(c, "set", "same", "--cpus", "1").stdout.splitlines()
        assert out[1] == f"task {task.task_id}: cpu 0 -> 1"
        assert task.info()["cpu"] == 1
        one_error_line(cpuset(c, "set", "same", "--cpus", "1,9", check=False), 3, "no cpu(s) 9")
        assert json.loads(cpuset(c, "show", "same", "--json").stdout)[0]["cpus"] == [1]

        cpuset(c, "set", "same", "--memory-migrate", "on")
        out = cpuset(c, "set", "same", "--mems", "1").stdout.splitlines()
        assert out[-1] == f"policies rebound to mems 1 for task(s) {task.task_id}; their pages moved there"
        assert region.where() == [1, 1, 1, 1]
        out = cpuset(c, "set", "same", "--mems", "0-1").stdout.splitlines()  # node 1 stays allowed: no move
        assert out[-1] == f"policies rebound to mems 0-1 for task(s) {task.task_id}; their pages stay where they are"
        assert region.where() == [1, 1, 1, 1]
        cpuset(c, "set", "same", "--mems", "0")  # relative placement: node 1, the 2nd of {0,1}, goes to node 0
        assert region.where() == [0, 0, 0, 0]
        cpuset(c, "set", "same", "--mems", "0-1")
        cpuset(c, "attach", "/", pid)
        assert task.info()["cpuset"] == "/"
        cpuset(c, "create", "onto1", "--cpus", "0-1", "--mems", "1", "--memory-migrate")
        cpuset(c, "attach", "onto1", pid)  # an attach into a memory_migrate set moves the pages too
        assert region.where() == [1, 1, 1, 1]
        cpuset(c, "attach", "/", pid)
    cpuset(c, "delete", "sibling")


def test_bad_input_is_one_line_and_the_cluster_still_serves(four, cpuset, cli, tmp_path):
    cpuset(four, "create", "a", "--cpus", "0", "--mems", "0")
    for args, fragment in [
        (("create", "x", "--cpus", "9", "--mems", "0"), "no cpu(s) 9 in this machine (cpus are 0-3)"),
        (("create", "x", "--cpus", "0", "--mems", "4-5"), "no node(s) 4-5 in this machine (nodes are 0-3)"),
        (("create", "x", "--cpus", "", "--mems", "0"), "at least one cpu"),
        (("create", "a", "--cpus", "0", "--mems", "0"), "cpuset 'a' exists already"),
        (("create", "a b", "--cpus", "0", "--mems", "0"), "invalid cpuset name 'a b'"),
        (("create", "/", "--cpus", "0", "--mems", "0"), "root cpuset"),
        (("set", "nope", "--mems", "0"), "no cpuset 'nope'"),
        (("set", "/", "--mems", "0"), "root cpuset always holds the whole machine"),
        (("set", "a", "--mems", "7"), "no node(s) 7"),
        (("show", "nope"), "no cpuset 'nope'"),
        (("delete", "nope"), "no cpuset 'nope'"),
        (("attach", "a", "999999"), "no task with pid 999999"),
    ]:
        one_error_line(cpuset(four, *args, check=False), 3, fragment)
    marker = tmp_path / "ran"
    proc = cpuset(four, "exec", "nope", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')", check=False)
    one_error_line(proc, 3, "no cpuset 'nope'")
    assert not marker.exists()
    one_error_line(cpuset(four, "exec", "a", "--", str(tmp_path / "no-such-program"), check=False), 3, "cannot run")
    one_error_line(cpuset(four, "exec", "a", check=False), 2, "needs a command")
    one_error_line(cpuset(four, "set", "a", check=False), 2, "nothing to change")
    one_error_line(cpuset(four, "create", "x", "--cpus", "0-z", "--mems", "0", check=False), 2, "--cpus")
    one_error_line(cpuset(four, "set", "a", "--replication", "maybe", check=False), 2, "on or off")
    assert json.loads(cpuset(four, "show", "--json").stdout) == [
        root(), {"name": "a", "cpus": [0], "mems": [0], "memory_migrate": False, "replication": True,
                 "effective_cpus": [0], "effective_mems": [0], "tasks": []}]
    status = json.loads(cli("status", "--name", four.name, "--json", check=True).stdout)
    assert [n["state"] for n in status["nodes"]] == ["up"] * 4
    cpuset(four, "exec", "a", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert marker.exists()
    assert os.environ.get("NUMA_EMU_CPUSET") is None
