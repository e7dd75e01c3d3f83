"""numa-emu numastat's options on a running cluster with a live task: -m against the nodes' frame
pools (ClusterStats), -c, -z, -s, -n -c and -p PID -c against the task's pages and the counters,
and numastat's usage and version exits."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

import numa_emu
from numa_emu.frontends.numastat_args import NUMASTAT_USAGE, VERSION_LINE
from tests.processes.test_policy_regress import EMU, PAGE
from tests.processes.test_tasks import stats

pytestmark = pytest.mark.cluster

# 256 pages interleaved over nodes 0-3 and 32 pages bound to {2,3}, from CPU 2 (node 2):
# 64 pages on nodes 0, 1 and 3, 96 on node 2.
LIVE = textwrap.dedent("""\
    import json, os, sys
    import numa_emu

    task = numa_emu.attach()
    spread = task.mmap(256 * 4096)
    spread.mbind("interleave", "0-3")
    spread.touch(fill=0xFF)
    bound = task.mmap(64 * 4096)
    bound.touch(0, 32 * 4096, write=True)
    print(json.dumps({"pid": os.getpid()}), flush=True)
    sys.stdin.read()
""")
PAGES_BY_NODE = {0: 64, 1: 64, 2: 96, 3: 64}


def mb(pages: int) -> float:
    return pages * PAGE / 2**20


def ok(proc) -> str:
    assert proc.returncode == 0, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture
def live(cluster_factory, home, tmp_path):
    """A 4-node cluster with the task above kept running; yields (cluster, pid)."""
    four = cluster_factory("default-4n")
    script = tmp_path / "live.py"
    script.write_text(LIVE)
    env = dict(os.environ, NUMA_EMU_HOME=str(home))
    proc = subprocess.Popen([*EMU, "numactl", "--physcpubind=2", "--membind=2,3", "--", str(script)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        yield four, json.loads(line)["pid"]
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()


def row(label: str, cells: list[str], label_width: int = 16, width: int = 16) -> str:
    return label.ljust(label_width) + "".join(c.rjust(width) for c in cells) + "\n"


def test_m_shows_each_nodes_frame_pool(live, cli):
    four, _pid = live
    nodes = stats(four)
    total = {n: nodes[n]["frames_total"] for n in range(4)}
    free = {n: nodes[n]["frames_free"] for n in range(4)}
    used = {n: total[n] - free[n] for n in range(4)}
    assert used == PAGES_BY_NODE  # the task's pages and nothing else hold frames

    def cells(pages: dict[int, int], decimals: int) -> list[str]:
        return [f"{mb(pages[n]):.{decimals}f}" for n in range(4)] + [f"{mb(sum(pages.values())):.{decimals}f}"]

    expected = ("\nPer-node system memory usage (in MBs):\n"
                + row("", ["Node 0", "Node 1", "Node 2", "Node 3", "Total"])
                + row("", ["-" * 15] * 5)
                + row("MemTotal", cells(total, 2)) + row("MemFree", cells(free, 2)) + row("MemUsed", cells(used, 2))
                + row("FilePages", cells(dict.fromkeys(range(4), 0), 2)) + row("AnonPages", cells(used, 2))
                + row("Shmem", cells(dict.fromkeys(range(4), 0), 2)))
    assert ok(cli("numastat", "-m")) == expected
    # -c: node columns "Node N" + 1 = 7, Total max("Total", "2048") + 1 = 6, the label column 16
    # (numastat measures it over its whole meminfo list, HugePages_Total included)
    assert [mb(p) for p in total.values()] == [512.0] * 4
    expected_c = ("\nPer-node system memory usage (in MBs):\n"
                  + row("", ["Node 0", "Node 1", "Node 2", "Node 3"], width=7).rstrip("\n") + " Total\n"
                  + row("", ["------"] * 4, width=7).rstrip("\n") + " -----\n"
                  + row("MemTotal", cells(total, 0)[:4], width=7).rstrip("\n") + "  2048\n"
                  + row("MemFree", cells(free, 0)[:4], width=7).rstrip("\n") + cells(free, 0)[4].rjust(6) + "\n"
                  + row("MemUsed", cells(used, 0)[:4], width=7).rstrip("\n") + "     1\n"
                  + row("FilePages", ["0"] * 4, width=7).rstrip("\n") + "     0\n"
                  + row("AnonPages", cells(used, 0)[:4], width=7).rstrip("\n") + "     1\n"
                  + row("Shmem", ["0"] * 4, width=7).rstrip("\n") + "     0\n")
    assert ok(cli("numastat", "-m", "-c")) == expected_c
    # -m alone shows no numastat table; -m -n shows both, meminfo first
    both = ok(cli("numastat", "-mn"))
    assert both.startswith(expected) and both[len(expected):].startswith("\nPer-node numastat info (in MBs):\n")


def test_c_z_s_and_p_on_a_live_task(live, cli):
    four, pid = live
    counters = json.loads(ok(cli("numastat", "--json")))["nodes"]
    assert {n: counters[str(n)]["numa_hit"] for n in range(4)} == PAGES_BY_NODE
    labels = ["Numa_Hit", "Numa_Miss", "Numa_Foreign", "Interleave_Hit", "Local_Node", "Other_Node"]
    fields = ["numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node"]

    # -c (not compatibility mode: any argument gives the MB table); -n -c is the same table
    text = ok(cli("numastat", "-c"))
    lines = text.splitlines()
    assert lines[:4] == ["", "Per-node numastat info (in MBs):",
                         " " * 15 + " Node 0 Node 1 Node 2 Node 3 Total",
                         " " * 15 + " ------" * 4 + " -----"]
    for line, label, field in zip(lines[4:], labels, fields, strict=True):
        values = [counters[str(n)][field] for n in range(4)]
        assert line == label.ljust(15) + "".join(f"{mb(v):.0f}".rjust(7) for v in values) \
            + f"{mb(sum(values)):.0f}".rjust(6)
    assert ok(cli("numastat", "-n", "-c")) == text

    # -z: the rows whose counters are 0 on every node are left out; the rest as -n prints them
    full = ok(cli("numastat", "-n")).splitlines(keepends=True)
    zero = {label for label, field in zip(labels, fields) if all(counters[str(n)][field] == 0 for n in range(4))}
    assert zero == {"Numa_Miss", "Numa_Foreign"}  # the interleave walk and the bind both hit
    assert ok(cli("numastat", "-z")) == "".join(full[:4] + [x for x in full[4:] if x.split()[0] not in zero])

    # -s: by Total (pages 288, 0, 0, 256, 96, 192), numastat's selection sort
    order = [x.split()[0] for x in ok(cli("numastat", "-s")).splitlines()[4:]]
    assert order == ["Numa_Hit", "Interleave_Hit", "Other_Node", "Local_Node", "Numa_Miss", "Numa_Foreign"]

    # -p PID -c: Private holds the task's pages (0.25 and 0.375 MB print as 0, 1.125 as 1)
    private = "      0      0      0      0     1\n"
    zeros = "      0      0      0      0     0\n"
    assert ok(cli("numastat", "-p", str(pid), "-c")) == (
        f"\nPer-node process memory usage (in MBs) for PID {pid} (live.py)\n"
        "        " + " Node 0 Node 1 Node 2 Node 3 Total\n"
        "        " + " ------" * 4 + " -----\n"
        "Huge    " + zeros + "Heap    " + zeros + "Stack   " + zeros + "Private " + private
        + "------- " + " ------" * 4 + " -----\n" + "Total   " + private)
    # -p with -z -s2: Private and Total only, every node column non-zero; a PID named twice is one PID
    # and -v changes nothing for one PID
    pz = ok(cli("numastat", f"-p{pid}", "-zs2", "live.py", "-v")).splitlines()
    assert [x.split()[0] for x in pz[4:]] == ["Private", "-" * 16, "Total"]
    assert pz[4] == row("Private", [f"{mb(PAGES_BY_NODE[n]):.2f}" for n in range(4)] + ["1.12"], 17).rstrip("\n")


def test_bad_option_and_version_exit_as_numastat(live, cli):
    proc = cli("numastat", "-c", "-q")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "numastat: invalid option -- 'q'\n" + NUMASTAT_USAGE)
    proc = cli("numastat", "-p", "no-such", "-V")  # the pattern was searched before -V was met
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0, 'Found no processes containing pattern: "no-such"\n' + VERSION_LINE, "")


def test_m_counts_page_cache_anon_and_shm_pages_and_they_sum_to_memused(cluster_factory, cli):
    four = cluster_factory("default-4n")
    mib = 256  # pages
    with numa_emu.attach(0, cluster=four.name) as task:  # node 0
        task.mmap(mib * PAGE).touch(write=True)  # private: AnonPages on node 0
        shm = task.mmap(2 * mib * PAGE, shared=True, name="seg")
        shm.mbind("bind", [1])
        shm.touch(write=True)  # shm: Shmem, and FilePages (shmem is page cache), on node 1
        data = task.open("data", create=True, size=mib * PAGE)
        task.set_mempolicy("bind", [3])
        data.pwrite(0, b"\x01" * mib * PAGE)  # a file's page cache: FilePages on node 3
        lines = ok(cli("numastat", "-m")).splitlines()
        rows = {line.split()[0]: line.split()[1:] for line in lines[4:]}
        assert list(rows) == ["MemTotal", "MemFree", "MemUsed", "FilePages", "AnonPages", "Shmem"]
        assert rows["FilePages"] == ["0.00", "2.00", "0.00", "1.00", "3.00"]
        assert rows["AnonPages"] == ["1.00", "0.00", "0.00", "0.00", "1.00"]
        assert rows["Shmem"] == ["0.00", "2.00", "0.00", "0.00", "2.00"]
        assert rows["MemUsed"] == ["1.00", "2.00", "0.00", "1.00", "4.00"]
        for n, d in stats(four).items():
            vm = d["vmstat"]
            assert vm["nr_file_pages"] + vm["nr_anon_pages"] == d["frames_total"] - d["frames_free"], n
