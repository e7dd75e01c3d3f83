"""The real tools' front ends on a running cluster: numactl's exec and inherited policy, the
task PID, numa-maps lines, numastat -p and -n, vmstat names, and shims first on PATH running
a script written for the real numactl, numastat, memhog and migratepages."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import numa_emu
from numa_emu.cli.main import COMMANDS
from numa_emu.protocol.policy import MPOL_F_ADDR
from tests.processes.test_policy_regress import EMU, PAGE
from tests.processes.test_tasks import stats

pytestmark = pytest.mark.cluster

# A workload that stays attached until its stdin closes, after reporting what it mapped.
LIVE_TASK = textwrap.dedent("""\
    import json, os, sys
    import numa_emu

    task = numa_emu.attach()
    spread = task.mmap(256 * 4096)
    spread.mbind("interleave", "0-3")
    spread.touch(fill=0xFF)                     # memhog's memset: present and dirty
    half = task.mmap(64 * 4096)
    half.touch(0, 32 * 4096, write=True)        # half of it written: present and dirty
    half.touch(32 * 4096, 16 * 4096)            # a quarter only read: the zero page, no page of its own
    untouched = task.mmap(8 * 4096)
    shared = task.mmap(4 * 4096, shared=True, name="seg")
    shared.touch(write=True)
    regions = [{"start": r.vaddr, "where": r.where()} for r in (spread, half, untouched, shared)]
    print(json.dumps({"pid": os.getpid(), "task_id": task.task_id, "cpu": task.cpu, "regions": regions}), flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def four(cluster_factory):
    return cluster_factory("default-4n")


@pytest.fixture
def env(home):
    return dict(os.environ, NUMA_EMU_HOME=str(home))


def ok(proc):
    assert proc.returncode == 0, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture
def live_task(four, env, tmp_path):
    """`numa-emu numactl -C 2 --membind=2,3 -- live.py` kept running; yields its report."""
    script = tmp_path / "live.py"
    script.write_text(LIVE_TASK)  # not executable: numactl runs a .py under this Python
    proc = subprocess.Popen([*EMU, "numactl", "--physcpubind=2", "--membind=2,3", "--", str(script)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        report = json.loads(line)
        report["popen_pid"] = proc.pid
        yield report
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()


def test_policy_survives_exec(four, cli):
    show = ok(cli("numactl", "--membind=1", "--", *EMU, "numactl", "--show"))
    assert show == ("policy: bind\npreferred node: 1\nphyscpubind: 0 1 2 3 \ncpubind: 0 1 2 3 \n"
                    "nodebind: 0 1 2 3 \nmembind: 1 \npreferred: 1 \n")
    show = ok(cli("numactl", "--interleave=0,1", "--physcpubind=2", "--", *EMU, "numactl", "--show"))
    assert show == ("policy: interleave\npreferred node: 0 (interleave next)\ninterleavemask: 0 1 \n"
                    "interleavenode: 0\nphyscpubind: 2 \ncpubind: 2 \nnodebind: 2 \nmembind: 0 1 2 3 \n"
                    "preferred: 0 1 \n")
    # two levels down, and a later numactl overrides only what it sets
    show = ok(cli("numactl", "--cpunodebind=3", "--", *EMU, "numactl", "--preferred=2", "--",
                  *EMU, "numactl", "--show")).splitlines()
    assert show[:3] == ["policy: preferred", "preferred node: 2", "physcpubind: 3 "]


def test_the_pid_the_caller_sees_is_the_tasks_pid(four, env, tmp_path):
    script = tmp_path / "whoami.py"
    script.write_text("import os, numa_emu\nt = numa_emu.attach()\nprint(os.getpid(), t.task_id, t.cpu)\n")
    for command in ([sys.executable, str(script)], [str(script)]):
        proc = subprocess.Popen([*EMU, "numactl", "--physcpubind=1", "--", *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.split() == [str(proc.pid), str(proc.pid), "1"], command


def test_numa_maps_lines(live_task, cli):
    lines = ok(cli("numa-maps", str(live_task["pid"]))).splitlines()
    spread, half, untouched, shared = live_task["regions"]

    def nodes(region):
        where = [n for n in region["where"] if n is not None]
        return " ".join(f"N{n}={where.count(n)}" for n in sorted(set(where)))

    assert nodes(spread) == "N0=64 N1=64 N2=64 N3=64"
    assert nodes(half) == "N2=32"  # bind {2,3} from CPU 2 fills node 2; the pages only read have none
    # fresh pages sit on the inactive list: active=0 (gather_stats counts PG_active ones)
    assert lines == [
        f"{spread['start']:08x} interleave:0-3 anon=256 dirty=256 active=0 {nodes(spread)} kernelpagesize_kB=4",
        f"{half['start']:08x} bind:2-3 anon=32 dirty=32 active=0 {nodes(half)} kernelpagesize_kB=4",
        f"{untouched['start']:08x} bind:2-3",
        f"{shared['start']:08x} bind:2-3 file=/dev/shm/seg dirty=4 active=0 {nodes(shared)} kernelpagesize_kB=4",
    ]
    regions = json.loads(ok(cli("numa-maps", str(live_task["pid"]), "--json")))["regions"]
    assert [r["present"] for r in regions] == [256, 32, 0, 4]
    assert [r["mapmax"] for r in regions] == [1, 1, 0, 1]


def test_numa_maps_mapmax_counts_the_tasks_of_every_node_that_map_a_page(live_task, four, cli):
    shared = live_task["regions"][3]
    with numa_emu.attach(0, cluster=four.name) as other:  # home node 0; the live task's is node 2
        other.mmap(4 * PAGE, shared=True, name="seg").touch(PAGE, 2 * PAGE)  # pages 1 and 2
        line = ok(cli("numa-maps", str(live_task["pid"]))).splitlines()[3]
        assert line == (f"{shared['start']:08x} bind:2-3 file=/dev/shm/seg dirty=4 mapmax=2 active=0 N2=4 "
                        "kernelpagesize_kB=4")
        mine = ok(cli("numa-maps", str(other.task_id))).splitlines()
        assert mine[-1].endswith(" default file=/dev/shm/seg mapped=2 mapmax=2 active=0 N2=2 kernelpagesize_kB=4")


def test_numastat_p_of_a_live_task(live_task, cli):
    pid = live_task["pid"]
    assert pid == live_task["task_id"] == live_task["popen_pid"]
    out = ok(cli("numastat", "-p", str(pid)))
    lines = out.splitlines()
    assert lines[0] == ""
    assert lines[1] == f"Per-node process memory usage (in MBs) for PID {pid} (live.py)"
    # LTP numa01.sh: the field of "Node 2" in line 3, split on two or more blanks, read from ^Total
    expected = [sum(r["where"].count(n) for r in live_task["regions"]) for n in range(4)]
    assert expected[:2] == [64, 64] and expected[2] >= 64 + 32
    header = re.split(r"\s\s+", lines[2])
    total = [line for line in lines if line.startswith("Total")][0].split()
    assert total[header.index("Node 2")] == f"{expected[2] * PAGE / 2**20:.2f}"
    rows = {line.split()[0]: line.split()[1:] for line in lines[4:] if line[:1].isalpha()}
    assert rows["Huge"] == rows["Heap"] == rows["Stack"] == ["0.00"] * 5
    assert rows["Private"] == [f"{p * PAGE / 2**20:.2f}" for p in expected] + [f"{sum(expected) * PAGE / 2**20:.2f}"]
    assert rows["Total"] == rows["Private"]
    # a pattern finds the task by its name, as numastat searches process names
    assert ok(cli("numastat", "-p", "live.py")) == out


# What a fresh cluster's vmstat lists, in this order: every counter numa-emu keeps, zeros included.
FRESH_VMSTAT_NAMES = [
    "nr_free_pages", "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other",
    "nr_anon_pages", "nr_file_pages", "nr_shmem", "nr_vmscan_write", "pgpgin", "pgalloc_normal", "pgfree", "pgfault", "pgsteal_kswapd",
    "pgsteal_direct", "pgscan_kswapd", "pgscan_direct", "numa_pte_updates", "numa_huge_pte_updates",
    "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success", "pgmigrate_fail",
    "nr_repl_pages", "pgreplicated", "pgreplicazap",
    "pgreplicazap_write", "pgreplicazap_truncate", "pgreplicazap_migration", "pgreplicazap_reclaim",
    "pgreplicazap_copyfail", "pgreplicazap_nodedeath", "pgreplicabackoff", "nr_migcache_pages", "pgmigcache_in", "pgmigcache_out",
    "pgwriteback", "repl_hits", "repl_stale_access", "repl_backoff_skips", "repl_copy_failed",
    "repl_fill_refused", "repl_fetch_bytes", "repl_fault_wall_ns", "pglost_master", "pglost_dirty", "dir_rebuilt",
    "nr_direct_held", "numa_task_migrated", "numa_task_swapped"]


def test_vmstat_of_a_fresh_cluster_lists_every_counter_with_its_zero(four, cli):
    lines = ok(cli("vmstat")).splitlines()
    assert [line.split()[0] for line in lines] == FRESH_VMSTAT_NAMES
    assert lines[0] == f"nr_free_pages {4 * (512 << 20) // PAGE}"
    assert "pgmigrate_success 0" in lines and "numa_hit 0" in lines
    assert lines[1:] == [f"{name} 0" for name in FRESH_VMSTAT_NAMES[1:]]
    assert list(json.loads(ok(cli("vmstat", "--json"))).items()) == [
        (name, int(value)) for name, value in (line.split() for line in lines)]


def test_vmstat_and_numastat_n(four, cli):
    ok(cli("numactl", "-C", "0", "--membind=1", "--", *EMU, "memhog", "4m"))
    text = ok(cli("vmstat"))
    values = dict((name, int(value)) for name, value in (line.split() for line in text.splitlines()))
    pages = (4 << 20) // PAGE
    assert {k: values[k] for k in ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local",
                                   "numa_other", "pgalloc_normal", "pgfree", "pgfault")} == {
        "numa_hit": pages, "numa_miss": 0, "numa_foreign": 0, "numa_interleave": 0, "numa_local": 0,
        "numa_other": pages, "pgalloc_normal": pages, "pgfree": pages, "pgfault": pages}
    assert values["nr_free_pages"] == 4 * (512 << 20) // PAGE  # memhog's pages came back at exit
    names = list(values)
    assert names[0] == "nr_free_pages"
    assert names.index("numa_hit") < names.index("numa_other") < names.index("pgalloc_normal") \
        < names.index("pgfree") < names.index("pgfault")
    assert "pgalloc" not in values and "nr_total_pages" not in values  # node names mapped to the kernel's
    assert json.loads(ok(cli("vmstat", "--json"))) == values
    mb = ok(cli("numastat", "-n")).splitlines()
    assert mb[:2] == ["", "Per-node numastat info (in MBs):"]
    assert mb[4].split() == ["Numa_Hit", "0.00", "4.00", "0.00", "0.00", "4.00"]
    counters = json.loads(ok(cli("numastat", "--json")))["nodes"]
    assert counters["1"] == {"numa_hit": pages, "numa_miss": 0, "numa_foreign": 0, "interleave_hit": 0,
                             "local_node": 0, "other_node": pages}


@pytest.mark.skipif("cpuset" not in COMMANDS, reason="needs numa-emu cpuset")
def test_numactl_inside_a_cpuset(four, cli):
    ok(cli("cpuset", "create", "half", "--cpus", "2-3", "--mems", "2-3"))

    def inside(*argv):
        return cli("cpuset", "exec", "half", "--", *EMU, "numactl", *argv)

    assert ok(inside("--show")).splitlines()[2:6] == ["physcpubind: 2 3 ", "cpubind: 2 3 ", "nodebind: 2 3 ",
                                                      "membind: 2 3 "]
    proc = inside("--membind=0", "true")  # libnuma checks node strings against the cpuset's mems
    assert (proc.returncode, proc.stdout) == (1, "<0> is invalid\n")
    assert proc.stderr.startswith("libnuma: Warning: node argument 0 is out of range\n\nusage: numactl")
    proc = inside("--all", "--membind=0", "true")  # past libnuma with --all, the kernel refuses
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "set_mempolicy: Invalid argument\nsetting membind: Invalid argument\n")
    # cpuset-relative strings: +1 is the cpuset's second node (3), +0 its first cpu (2)
    ok(inside("--membind=+1", "--physcpubind=+0", "--", *EMU, "memhog", "4m"))
    counters = json.loads(ok(cli("numastat", "--json")))["nodes"]
    assert {n: c["numa_hit"] for n, c in counters.items()} == {"0": 0, "1": 0, "2": 0, "3": 1024}
    assert counters["3"]["other_node"] == 1024  # from a cpu of node 2


REGRESS_STYLE = textwrap.dedent("""\
    # the parts of numactl's test/regress that read the tools' output, unchanged
    nstat() {
        numastat | grep $1 | while read -a fields ; do
            echo ${fields[$[1 + $2]]}
        done
    }
    numnodes=$(numactl --hardware | awk '/^available/ { print $2 }')
    a0=`nstat interleave_hit 0`
    a1=`nstat interleave_hit 1`
    numactl --interleave=0,1 memhog -H 4194304 || echo FAILED
    memhog -H 4194304 interleave 0,1 || echo FAILED
    b0=`nstat interleave_hit 0`
    b1=`nstat interleave_hit 1`
    echo "nodes $numnodes delta0 $(expr $b0 - $a0) delta1 $(expr $b1 - $a1)"
    numactl --cpubind=1 /bin/true && echo cpubind ok
    migratepages $$ 0 1
    echo "migratepages exit $?"
""")


def test_shims_first_on_path_run_a_script_written_for_the_real_tools(four, cli, env, tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("regress is a bash script")
    shims = tmp_path / "bin"
    out = ok(cli("shims", str(shims)))
    assert out.splitlines()[0] == f"wrote numactl numastat memhog migratepages to {shims}"
    for tool in ("numactl", "numastat", "memhog", "migratepages"):
        assert os.access(shims / tool, os.X_OK)
    script = tmp_path / "regress-style.sh"
    script.write_text(REGRESS_STYLE)
    env = dict(env, PATH=f"{shims}{os.pathsep}{env['PATH']}")
    proc = subprocess.run([bash, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.splitlines() == [".", ".", "nodes 4 delta0 1024 delta1 1024", "cpubind ok",
                                        "migratepages exit 1"], proc.stderr
    assert proc.stderr == "migrate_pages: No such process\n"  # $$ is bash, not a task of the cluster


def test_migratepages_moves_a_tasks_pages_as_migratepages_8_does(four, cli):
    with numa_emu.attach(0, cluster=four.name) as task:
        region = task.mmap(6 * PAGE)
        region.mbind("interleave", [0, 1])
        region.touch(write=True)
        region.write(PAGE, b"kept")
        assert region.where() == [0, 1, 0, 1, 0, 1]
        hits = {n: s["numastat"]["numa_hit"] for n, s in stats(four).items()}
        # 0,1 -> 2,3: node 0 to 2, node 1 to 3 (docs/linux-semantics.md#observed-on-a-real-kernel)
        assert cli("migratepages", str(task.pid), "0,1", "2-3").returncode == 0
        assert region.where() == [2, 3, 2, 3, 2, 3] and region.read(PAGE, 4) == b"kept"
        after = {n: s["numastat"]["numa_hit"] for n, s in stats(four).items()}
        assert (after[2] - hits[2], after[3] - hits[3]) == (3, 3)  # each moved page: an allocation there
        assert (after[0], after[1]) == (hits[0], hits[1])  # the sources' counters are left alone
        assert task.get_mempolicy(MPOL_F_ADDR, region.addr(0))[1] == [0, 1]  # the policy stays
        proc = cli("migratepages", str(task.pid), "9", "1")
        assert (proc.returncode, proc.stdout) == (1, "<9> is invalid\n")
        proc = cli("migratepages", str(task.pid), "2")
        assert proc.returncode == 1 and proc.stderr.startswith("usage: migratepages pid from-nodes to-nodes")
    proc = cli("migratepages", str(os.getpid()), "0", "1")  # detached: no such task any more
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "migrate_pages: No such process\n")
