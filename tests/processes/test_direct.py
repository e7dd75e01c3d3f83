"""The direct path on real clusters (docs/design.md#direct-access): tasks read and write their
local pages through shared memory with the same bytes, virtual time and counts as by message;
pages migrated, unmapped or reused under a task's feet never take a stray byte; a task killed in
the middle of a direct write leaves no lock behind, and a dead home node fails as by message."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import numa_emu
from numa_emu.protocol import directmap as dm
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.clusterdir import STORE_DIR
from numa_emu.protocol.topology import from_cli
from tests.direct_worker import big_page, file_page
from tests.helpers import poll_until, vm_total
from tests.history import violations

pytestmark = pytest.mark.cluster
PAGE = 4096
WORKER = Path(__file__).resolve().parent.parent / "direct_worker.py"


def set_direct(c, on: int) -> None:
    with c.client() as client:
        client.call(cm.SysctlSet(values={cm.DIRECT_ACCESS_KEY: str(on)}))


def task_stats(c, task_id: int) -> dict:
    with c.client() as client:
        nodes = client.call(tm.ClusterStats()).nodes
    return next(d["tasks"][task_id] for d in nodes.values() if task_id in d["tasks"])


def direct_counts(c) -> dict[int, tuple[int, int]]:
    """node -> (direct reads, direct writes) of the tasks it is home to now, as it has folded them."""
    with c.client() as client:
        nodes = client.call(tm.ClusterStats()).nodes
    return {n: (sum(t["direct_reads"] for t in d["tasks"].values()), sum(t["direct_writes"] for t in d["tasks"].values()))
            for n, d in nodes.items()}


def workload(c) -> tuple[int, bytes, dict]:
    """Writes, reads within and across pages, a touch, a move of half the pages to node 1 and
    back: the virtual time, every byte read, and the task's stats."""
    out = bytearray()
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(32 * PAGE)
        region.touch(write=True, length=16 * PAGE)
        for i in range(200):
            region.write((i * 712) % (32 * PAGE - 16), i.to_bytes(16, "little"))
            out += region.read((i * 1304) % (32 * PAGE - 8), 8)
        out += region.read(PAGE - 100, 3 * PAGE)
        for kw in ({}, {"write": True}, {"fill": 7, "length": 4 * PAGE}):  # present pages: direct when on
            reply = region.touch(offset=PAGE, **({"length": 8 * PAGE} | kw))
            out += b"%d %d %d;" % (reply.pages, reply.faults, reply.clock_ns)
        region.move_pages([1] * 8, offset=0, pages=8)
        for i in range(100):
            region.write((i * 4100) % (16 * PAGE), b"moved")
            out += region.read((i * 4100) % (16 * PAGE), 16)
        region.move_pages([0] * 8, offset=0, pages=8)
        out += region.read(0, 32 * PAGE)
        stats = task_stats(c, task.task_id)
        clock = task.clock_ns()
    return clock, bytes(out), stats


def test_the_same_workload_gives_the_same_bytes_and_virtual_time_with_direct_access_on_and_off(cluster_factory):
    c = cluster_factory("default-4n")
    clock_on, bytes_on, on = workload(c)
    set_direct(c, 0)
    clock_off, bytes_off, off = workload(c)
    assert (clock_on, bytes_on) == (clock_off, bytes_off)
    assert (off["direct_reads"], off["direct_writes"]) == (0, 0)
    # exact, and the same every run: pages are published when a message serves them first, and
    # unmapped by each move (the zero page and node 1's pages are always messages)
    assert (on["direct_reads"], on["direct_writes"]) == (199, 232)
    assert (on["faults"], on["pages"]) == (off["faults"], off["pages"])


def shared_workload(c, other, name: str) -> tuple[int, bytes, dict]:
    """Writes and reads of an shm region and of a file through a writable mapping, by a task on
    node 0, while another task of node 0 (`other`) writes a page of each now and then (taking its
    frame's grant: the first task's next write of it is a message) and the file is synced (its
    pages write-protected): the task's virtual time, every byte it read, its stats."""
    out = bytearray()
    other.do("mmap", length=8 * PAGE, shared=True, name=f"shm-{name}", **{"as": "s"})
    other.do("open", name=f"file-{name}", create=True, size=8 * PAGE)
    other.do("map", name=f"file-{name}", **{"as": "f"})
    with numa_emu.attach(0, cluster=c.name) as task:
        shm = task.mmap(8 * PAGE, shared=True, name=f"shm-{name}")
        f = task.open(f"file-{name}")
        mapped = task.mmap_file(f)
        for region, other_as in ((shm, "s"), (mapped, "f")):
            for i in range(300):
                region.write((i * 712) % (8 * PAGE - 16), i.to_bytes(16, "little"))
                out += region.read((i * 1304) % (8 * PAGE - 8), 8)
                if i % 50 == 49:
                    other.do("write", offset=(i * 712) % (8 * PAGE - 16), data="ff" * 16, **{"as": other_as})
                if i % 100 == 99 and region is mapped:
                    f.fsync()
            out += region.read(PAGE - 100, 3 * PAGE)
        stats = task_stats(c, task.task_id)
        clock = task.clock_ns()
    return clock, bytes(out), stats


def test_shared_pages_give_the_same_bytes_and_virtual_time_with_direct_access_on_and_off(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    other = puppets(c, 0)
    clock_on, bytes_on, on = shared_workload(c, other, "on")
    set_direct(c, 0)
    clock_off, bytes_off, off = shared_workload(c, other, "off")
    assert (clock_on, bytes_on) == (clock_off, bytes_off)
    assert (off["direct_reads"], off["direct_writes"]) == (0, 0)
    # exact, and the same every run: of 600 writes, a message each for the first write of a page,
    # after the other task took the page's grant (12) and after each sync (write-protected pages)
    assert (on["direct_reads"], on["direct_writes"]) == (576, 560)
    assert (on["faults"], on["pages"]) == (off["faults"], off["pages"])


def test_a_task_cannot_reach_an_unmapped_page_directly(cluster_factory):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(4 * PAGE)
        region.write(0, b"x" * (4 * PAGE))
        assert region.read(PAGE, 4) == b"xxxx"
        before = task_stats(c, task.task_id)["direct_reads"]
        region.munmap()
        for op in (lambda: region.read(PAGE, 4), lambda: region.write(PAGE, b"y")):
            with pytest.raises(NumaEmuError) as err:
                op()
            assert err.value.code == ErrorCode.EFAULT
        assert task_stats(c, task.task_id)["direct_reads"] == before


def test_an_untouched_page_reads_as_zeros_and_never_through_another_tasks_frame(cluster_factory, puppets):
    """The zero page is no frame: a read of an untouched page is never published for the direct
    path (it would point at whatever frame its mapping's empty slot names: another task's)."""
    c = cluster_factory("default-4n")
    owner = puppets(c, 0)
    owner.do("mmap", length=PAGE, **{"as": "secret"})
    owner.do("write", offset=0, data=b"secret!!".hex(), **{"as": "secret"})  # node 0's first frame
    with numa_emu.attach(0, cluster=c.name) as reader:
        region = reader.mmap(PAGE)
        assert [region.read(0, 8) for _ in range(3)] == [bytes(8)] * 3
        assert reader._dpath is None or reader._dpath.counts() == (0, 0)
        assert region.where() == [None]


def _start(*args: str, cluster: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, NUMA_EMU_CLUSTER=cluster))


def _ready(writer: subprocess.Popen) -> tuple[int, int]:
    """A writer worker's pid, once it says it is ready, and an open of its page table (its own
    open file description: the flock its direct writes hold); the caller closes it."""
    ready = writer.stdout.readline().split()
    assert ready and ready[0] == "ready", ready
    return int(ready[1]), os.open(f"/proc/{ready[1]}/fd/{ready[2]}", os.O_RDWR)


def _run_workers(procs: dict[str, subprocess.Popen], ready: tuple[str, ...], stop: Path, done, what: str,
                 seen: dict | None = None) -> dict:
    """Wait for the `ready` workers to say so, then for `done()`, then stop every worker (the
    stop file): their JSON outputs by name. Any worker still running at an error is killed.
    `seen`: what `done` last saw, said if it never came (before the test's own timeout)."""
    out = {}
    try:
        for name in ready:
            line = procs[name].stdout.readline().split()
            assert line and line[0] == "ready", (name, line)
        try:
            poll_until(done, timeout_s=100, interval_s=0.5, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {seen}") from None
        stop.touch()
        for name, p in procs.items():
            out[name] = json.loads(p.communicate(timeout=120)[0])
            assert p.returncode == 0, name
    finally:
        stop.touch()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()  # communicate() closed it, unless it failed
    return out


@pytest.mark.parametrize("mode", ["virtual", "real", "moving", "stopped"])
def test_direct_reads_and_writes_stay_exact_while_their_pages_migrate_and_frames_are_reused(cluster_factory, cli,
                                                                                             mode, tmp_path):
    """Real mode has jitter; "moving": the writer also moves itself between nodes 0 and 1;
    "stopped": each migration runs while the writer is stopped (SIGSTOP) inside a direct write."""
    c = cluster_factory("default-4n")
    if mode == "real":
        cli("latency", "--name", c.name, "inject", "real", "--dilation", "2000", check=True)
        cli("latency", "--name", c.name, "jitter", "uniform", "0.3", check=True)
    stop = tmp_path / "stop"
    writer = _start("writer", "0", "16", str(stop), *(["0,1"] if mode == "moving" else []), cluster=c.name)
    reuser = _start("reuser", "0", str(stop), cluster=c.name)
    try:
        ready = writer.stdout.readline().split()
        assert ready[0] == "ready", ready
        pid, moves = ready[1], 0
        probe = os.open(f"/proc/{pid}/fd/{ready[2]}", os.O_RDWR)  # its page table, opened anew: the same lock
        try:
            for _ in range(3):  # its pages to node 1 and back, from another process
                for move in (("0", "1"), ("1", "0")):
                    if mode == "stopped":
                        poll_until(lambda: _stop_inside_a_write(int(pid), probe), timeout_s=60, interval_s=0.001,
                                   what="the writer to be stopped inside a direct write")
                    assert cli("--name", c.name, "migratepages", pid, *move).returncode == 0
                    if mode == "stopped":
                        assert _stopped(int(pid))
                        os.kill(int(pid), signal.SIGCONT)
                moves += 2
        finally:
            os.close(probe)
        stop.touch()
        w = json.loads(writer.communicate(timeout=60)[0])
        r = json.loads(reuser.communicate(timeout=60)[0])
    finally:
        for p in (writer, reuser):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert writer.returncode == 0
    assert violations(w["writes"], w["reads"]) == []
    assert r["bad"] == [] and r["rounds"] > 0
    assert w["direct"][1] > 0 and moves >= 2 and (w["hops"] > 2 if mode == "moving" else True)
    assert vm_total(c, "pgmigrate_success") > 0


@pytest.mark.parametrize("mode", ["virtual", "real"])
def test_direct_accesses_stay_exact_while_pages_are_unmapped_reclaimed_replicated_and_collapsed(cluster_factory, cli,
                                                                                                home, mode, tmp_path):
    """Node 0 (1 MiB) serves at once: a private writer and a reuser of munmapped frames; a reader
    of file "f" through a mapping it unmaps and maps again, whose pages a writer on node 1
    rewrites (collapsing node 0's replicas) and syncs (so they replicate again); and a churner
    reading a file four times node 0's memory, so that reclaim steals its clean pages and
    replicas. Real mode has jitter."""
    frames, f_pages = 256, 24
    c = cluster_factory(from_cli(2, 1, "1MiB"))
    store = home / c.name / STORE_DIR
    (store / "big").write_bytes(b"".join(big_page(i) for i in range(4 * frames)))
    (store / "f").write_bytes(bytes(f_pages * PAGE))
    cli("sysctl", "--name", c.name, "vm.pagecache_replication_backoff=0", check=True)  # replicate every time
    if mode == "real":
        cli("latency", "--name", c.name, "inject", "real", "--dilation", "2000", check=True)
        cli("latency", "--name", c.name, "jitter", "uniform", "0.3", check=True)
    stop = tmp_path / "stop"
    # the writer's pages first, on node 0 (under load the churner could fill it first: they would
    # land on node 1, where no access of the writer is direct)
    procs = {"writer": _start("writer", "0", "16", str(stop), cluster=c.name)}
    try:
        line = procs["writer"].stdout.readline().split()
        assert line and line[0] == "ready", line
    except BaseException:
        procs["writer"].kill()
        procs["writer"].communicate()
        raise
    procs |= {"reuser": _start("reuser", "0", str(stop), cluster=c.name),
              "filewriter": _start("filewriter", "1", "f", str(f_pages), str(stop), cluster=c.name),
              "filereader": _start("filereader", "0", "f", str(f_pages), str(stop), cluster=c.name),
              "churner": _start("churner", "0", "big", str(4 * frames), str(stop), cluster=c.name)}
    reads = Path(f"{stop}.reads")
    seen: dict = {}

    def everything_happened() -> bool:  # under load the counters may come before the reader's reads
        seen.update({key: vm_total(c, key) for key in ("pgreplicazap_write", "pgreplicazap_reclaim", "pgsteal_direct")})
        seen["reads, direct"] = [int(n) for n in reads.read_text().split()] if reads.exists() else [0, 0]
        return (all(n > 2 for key, n in seen.items() if key.startswith("pg"))
                and len(seen["reads, direct"]) == 2 and seen["reads, direct"][0] > 200 and seen["reads, direct"][1] > 0)
    out = _run_workers(procs, ("filewriter", "filereader"), stop, everything_happened,
                       "collapses, replicas reclaimed, page-cache pages stolen on node 0, 200 reads of f, "
                       "some direct", seen)
    w, fw, fr = out["writer"], out["filewriter"], out["filereader"]
    assert violations(w["writes"], w["reads"]) == []
    assert violations(fw["writes"], fr["reads"]) == []  # file pages: every read against the other task's writes
    assert out["reuser"]["bad"] == [] and out["churner"]["bad"] == []
    assert out["reuser"]["rounds"] > 0 and out["churner"]["rounds"] > 0 and len(fr["reads"]) > 200  # munmapped twice
    assert w["direct"][0] > 0 and w["direct"][1] > 0 and fr["direct"][0] > 0


def _killed_holding_the_lock(path, odd_frame: int | None = None) -> None:
    """A process of the task's (a fork: its own open of the lock, the task's mapping of the pool)
    takes the task's write lock, makes its half of `odd_frame`'s version odd if asked (inside a
    direct write of a shared page), and is killed by SIGKILL holding it."""
    r, w = os.pipe()
    holder = os.fork()
    if holder == 0:
        os.close(r)
        fd = os.open(f"/proc/self/fd/{path.lock_fd}", os.O_RDWR)  # its own open: its own lock
        fcntl.flock(fd, fcntl.LOCK_EX)
        if odd_frame is not None:
            path.halves[2 * odd_frame + dm.TASK_HALF] += 1
        os.write(w, b"1")
        time.sleep(60)
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    os.kill(holder, signal.SIGKILL)
    os.waitpid(holder, 0)


def test_a_task_killed_holding_its_write_lock_leaves_no_lock_and_migration_completes(cluster_factory):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(2 * PAGE)
        region.write(0, b"a" * (2 * PAGE))
        region.write(0, b"b")  # direct
        path = task._dpath
        assert path is not None and path.counts()[1] == 1
        _killed_holding_the_lock(path)  # as in a direct write
        assert region.move_pages([1, 1]) == [1, 1]  # the node unmapped both pages: the lock was free
        assert region.read(0, 2) == b"ba" and region.where() == [1, 1]


def test_a_migration_does_not_wait_for_a_direct_write_in_flight_and_holds_the_old_frame_until_it_ends(cluster_factory):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(PAGE)
        region.write(0, b"a")
        region.write(0, b"b")  # direct
        path = task._dpath
        _seq, _base, frame, _gen, _ver, _fl = path._entry(region.vaddr // PAGE, dm.PRESENT | dm.WRITABLE)
        free = node_stats(c, 0)["frames_free"]
        fd = os.open(f"/proc/self/fd/{path.lock_fd}", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a direct write in flight, from here on
        try:
            assert _start_mover(c, task).wait(30) == 0  # node 0 did not wait for the lock
            path.pv[frame * PAGE:frame * PAGE + 5] = b"late!"  # the rest of the write lands in the old frame
            assert node_stats(c, 0)["vmstat"]["nr_direct_held"] == 1  # freed, but never reused meanwhile
            assert node_stats(c, 0)["frames_free"] == free
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        assert path.write(region.vaddr, b"x") is False  # unmapped: by message from here on
        assert region.where() == [1] and region.read(0, 5) == b"b\0\0\0\0"  # the copy made before "late!"
        poll_until(lambda: node_stats(c, 0)["vmstat"]["nr_direct_held"] == 0, timeout_s=10,
                   what="node 0 to let go of the held frame once the lock is free")
        assert node_stats(c, 0)["frames_free"] == free + 1


def node_stats(c, node: int) -> dict:
    with c.client() as client:
        return client.call(tm.ClusterStats()).nodes[node]


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def _stop_inside_a_write(pid: int, probe: int) -> bool:
    """SIGSTOP task `pid` while it holds its write lock (a direct write in flight); False: it was
    not inside when the signal came, and runs on."""
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.kill(pid, signal.SIGSTOP)
        poll_until(lambda: _stopped(pid), timeout_s=10, interval_s=0.001, what=f"task {pid} to stop")
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # stopped holding it
        fcntl.flock(probe, fcntl.LOCK_UN)
        os.kill(pid, signal.SIGCONT)
        return False
    fcntl.flock(probe, fcntl.LOCK_UN)
    return False


@pytest.mark.parametrize("move, then", [("migratepages", "SIGCONT"), ("migratepages", "SIGKILL"),
                                        ("cpuset", "SIGCONT")])
def test_a_task_stopped_inside_a_direct_write_stalls_nobody_and_its_write_lands_whole_in_the_new_home(
        cluster_factory, cli, puppets, tmp_path, move, then):
    """A task stopped (SIGSTOP) holding its write lock in the middle of a 4 MiB direct write: its
    pages migrate to node 1 (migratepages; or the task moves there by a cpuset, its page table on
    node 0 closes and its pages follow it lazily), another task on node 0 is served meanwhile;
    continued, the write is whole (sent again by message, through its new home); killed, its
    frames come back. No frame leaks."""
    c = cluster_factory("default-4n")
    mib, pages = 4, 4 << 20 >> 12
    free = [node_stats(c, n)["frames_free"] for n in (0, 1)]
    stop = tmp_path / "stop"
    bulk = _start("bulk", "0", str(mib), str(stop), cluster=c.name)
    probe = -1
    try:
        ready = bulk.stdout.readline().split()
        assert ready[0] == "ready", ready
        pid = int(ready[1])
        probe = os.open(f"/proc/{pid}/fd/{ready[2]}", os.O_RDWR)  # its page table, opened anew: the same lock
        poll_until(lambda: _stop_inside_a_write(pid, probe), timeout_s=60, interval_s=0.001,
                   what="the bulk writer to be stopped inside a direct write")
        if move == "migratepages":
            assert cli("--name", c.name, "migratepages", str(pid), "0", "1", timeout_s=120).returncode == 0
        else:
            cli("cpuset", "--name", c.name, "create", "away", "--cpus", "1", "--mems", "1", check=True)
            cli("cpuset", "--name", c.name, "attach", "away", str(pid), timeout_s=120, check=True)
        other = puppets(c, 0)
        other.do("mmap", length=PAGE, **{"as": "r"})
        other.do("write", offset=0, data=b"served".hex(), **{"as": "r"})
        assert bytes.fromhex(other.do("read", timeout_s=30, offset=0, length=6, **{"as": "r"})) == b"served"
        assert _stopped(pid)  # all of this while the writer still held its lock
        held = node_stats(c, 0)
        # migrated: every old frame freed and held; moved: its pages stay on node 0 (they follow it
        # lazily), its page table there closes with their frames held, should they be freed
        assert held["vmstat"]["nr_direct_held"] == (pages if move == "migratepages" else 0)
        assert held["frames_free"] == free[0] - pages - 1
        if then == "SIGKILL":
            os.kill(pid, signal.SIGKILL)
            bulk.wait(30)
        else:
            stop.touch()
            os.kill(pid, signal.SIGCONT)
            out = json.loads(bulk.communicate(timeout=120)[0])
            assert bulk.returncode == 0
            assert out["where"] == [1] and out["intact"]  # moved: its pages followed it on this write
            if move == "migratepages":  # the round it was stopped in went again by message
                assert out["direct"] == [0, out["rounds"] - 1]
    finally:
        if probe >= 0:
            os.close(probe)
        if bulk.poll() is None:
            bulk.kill()
            bulk.wait()
        bulk.stdout.close()
    poll_until(lambda: [node_stats(c, n)["frames_free"] for n in (0, 1)] == [free[0] - 1, free[1]], timeout_s=30,
               what="every frame of the bulk writer back (the puppet keeps one on node 0)")
    assert node_stats(c, 0)["vmstat"]["nr_direct_held"] == 0


def _start_mover(c, task) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "numa_emu.cli.main", "--name", c.name, "migratepages", str(task.pid),
                             "0", "1"], stdout=subprocess.DEVNULL, env=dict(os.environ))


def test_a_direct_read_after_the_home_node_died_fails_as_the_message_path_does(cluster_factory):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(PAGE)
        region.write(0, b"z")
        assert region.read(0, 1) == b"z" and task._dpath.counts()[0] == 1
        os.kill(c.status().nodes[0]["pid"], signal.SIGKILL)
        errors = []

        def failed() -> bool:
            try:
                region.read(0, 1)
            except NumaEmuError as exc:
                errors.append(exc)
                return True
            return False

        poll_until(failed, timeout_s=30, what="a read of the dead node's page to fail")
        assert errors[0].code == ErrorCode.EIO and "node 0" in str(errors[0])
        with pytest.raises(NumaEmuError) as again:
            region.write(0, b"y")
        assert again.value.code == ErrorCode.EIO
        assert task._dpath is None  # its mappings let go of the dead node's memory


def replica_workload(c, writer, name: str) -> tuple[int, bytes, int, dict]:
    """A file written on node 1, read through a read-only mapping by a task on node 0 (a replica
    there): its virtual time, the bytes read, the cluster's replica hits, the reader's stats."""
    writer.do("open", name=name, create=True, size=4 * PAGE)
    writer.do("pwrite", name=name, offset=0, data=(bytes(range(256)) * 16 * 4).hex())
    writer.do("fsync", name=name)
    with numa_emu.attach(0, cluster=c.name) as reader:
        region = reader.mmap_file(reader.open(name), writable=False)
        out = b"".join(region.read((i * 520) % (4 * PAGE - 16), 16) for i in range(100))
        out += region.read(100, 3 * PAGE)
        writer.do("pwrite", name=name, offset=PAGE, data=b"collapsed".hex())  # page 1's replica goes
        out += b"".join(region.read(PAGE, 9) for _ in range(20))
        hits = vm_total(c, "repl_hits")
        stats = task_stats(c, reader.task_id)
        clock = reader.clock_ns()
    return clock, out, hits, stats


def test_replica_reads_go_direct_with_the_same_hits_bytes_and_virtual_time_as_by_message(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    writer = puppets(c, 1)
    clock_on, bytes_on, hits_on, on = replica_workload(c, writer, "on")
    set_direct(c, 0)
    clock_off, bytes_off, hits_off, off = replica_workload(c, writer, "off")
    assert (clock_on, bytes_on) == (clock_off, bytes_off)
    assert bytes_on.endswith(b"collapsed")  # no stale replica read after the write
    assert hits_off > 0 and hits_on * 2 == hits_off  # the first run's hits, then as many again
    assert on["direct_reads"] > 90 and (off["direct_reads"], off["direct_writes"]) == (0, 0)


def test_the_unsafe_mode_counts_a_stale_access_through_a_direct_mapping(cluster_factory, cli, puppets):
    c = cluster_factory("default-4n")
    writer = puppets(c, 0)
    writer.do("open", name="h", create=True, size=PAGE)
    writer.do("pwrite", name="h", offset=0, data="41" * 8)
    writer.do("fsync", name="h")
    with numa_emu.attach(3, cluster=c.name) as reader:
        region = reader.mmap_file(reader.open("h"), writable=False)
        assert region.read(0, 1) == b"A" and region.read(0, 1) == b"A"  # the second through its replica, direct
        assert reader._dpath.counts()[0] == 1 and vm_total(c, "repl_hits") == 1
        cli("sysctl", "--name", c.name, "vm.unsafe_unreplicate=1", "vm.unsafe_unmap_delay_ms=2000", check=True)
        writer.do("pwrite", name="h", offset=0, data="42")  # the replica freed now, unmapped 2 s later
        region.read(0, 1)  # the entry is still there; its frame's generation moved: by message, counted
        assert vm_total(c, "repl_stale_access") == 1 and reader._dpath.counts()[0] == 1
        poll_until(lambda: region.where() == [None], timeout_s=10, what="the late unmap")
        assert region.read(0, 1) == b"B" and vm_total(c, "repl_stale_access") == 1


def test_a_lazily_migrated_page_leaves_the_direct_path_until_its_next_touch_moves_it(cluster_factory):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(2 * PAGE)
        region.write(0, b"a" * (2 * PAGE))
        region.write(0, b"b")
        writes = task._dpath.counts()[1]
        assert writes == 1
        region.mbind("bind", [1], flags=MPOL_MF_MOVE | MPOL_MF_LAZY)  # into the migration cache: unmapped
        region.write(1, b"c")  # not direct: the fault moves the page to node 1 first
        assert task._dpath.counts()[1] == writes
        assert region.where() == [1, 0] and region.read(0, 3) == b"bca"  # page 1 waits in the cache, on node 0
        region.write(PAGE, b"d")  # page 1 faults over too, and its bytes come along
        assert region.where() == [1, 1] and region.read(PAGE - 1, 3) == b"ada"
        assert task._dpath.counts()[1] == writes


def test_a_latency_change_applies_to_the_next_direct_access(cluster_factory, cli):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(PAGE)
        region.write(0, b"x")
        region.read(0, 8)  # direct
        before = task.clock_ns()
        region.read(0, 8)
        base = task.clock_ns() - before
        cli("latency", "--name", c.name, "set", "0", "0", "1000", check=True)
        poll_until(lambda: task._dpath.q[dm.H_LATENCY] == dm.double_bits(1000.0), timeout_s=10,
                   what="node 0 to publish the new local latency")
        before = task.clock_ns()
        region.read(0, 8)
        assert task._dpath.counts()[0] == 3
        assert task.clock_ns() - before == base - round(c.topology.latency_ns[0][0]) + 1000


def test_a_task_killed_in_the_middle_of_direct_writes_is_detached_and_its_frames_freed(cluster_factory, tmp_path):
    c = cluster_factory("default-4n")

    def free0() -> int:
        with c.client() as client:
            return client.call(tm.ClusterStats()).nodes[0]["frames_free"]

    baseline = free0()
    writer = _start("writer", "0", "16", str(tmp_path / "never"), cluster=c.name)
    try:
        assert writer.stdout.readline().split()[0] == "ready"
        assert free0() == baseline - 16
        time.sleep(0.2)  # not a wait for a condition: let it write directly for a while, then kill it mid-loop
        writer.kill()
        writer.wait()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
    # the node's unmap at the detach takes the dead writer's lock: the kernel released it
    poll_until(lambda: free0() == baseline, timeout_s=30, what="the killed writer's frames to be freed")


@pytest.mark.parametrize("mode", ["virtual", "real", "reclaim", "moving", "unsafe"])
def test_direct_writes_of_a_shared_file_stay_exact_while_it_is_read_replicated_written_back_and_moved(
        cluster_factory, cli, home, mode, tmp_path):
    """A task on node 0 writes whole pages of file "g" through a writable mapping (direct, as the
    pages' writer holding their grants) and syncs every 20 writes; a reader on node 0 reads them
    directly (read-only entries: a page is never seen half written), a reader on node 1 by message
    and through replicas (each sync makes the pages clean: replicated, then collapsed by the next
    write), and a mover moves every master to node 1 and back (MPOL_MF_MOVE_ALL) all along. Real
    mode has jitter; "reclaim" runs on two 1 MiB nodes with a reader of a file four times node 0's
    memory, so that reclaim writes back and steals "g"'s pages too, and every move into the full
    node reclaims there (none fails with ENOMEM); "moving": the writer also moves
    itself between nodes 0 and 1 every 100 writes (a task move); "unsafe": vm.unsafe_unreplicate=1,
    whose stale reads (through replicas freed before their unmap, direct or not) must each have
    been caught and counted (repl_stale_access), and the readers count pages of the wrong bytes
    instead of failing. Then every read is checked
    against the writes, and the file's bytes in the store against the last write of each page."""
    pages, frames = 8, 256
    c = cluster_factory(from_cli(2, 1, "1MiB") if mode == "reclaim" else "default-4n")
    store = home / c.name / STORE_DIR
    (store / "g").write_bytes(bytes(pages * PAGE))
    cli("sysctl", "--name", c.name, "vm.pagecache_replication_backoff=0", check=True)
    if mode == "real":
        cli("latency", "--name", c.name, "inject", "real", "--dilation", "2000", check=True)
        cli("latency", "--name", c.name, "jitter", "uniform", "0.3", check=True)
    tolerant = ["tolerant"] if mode == "unsafe" else []
    if mode == "unsafe":
        cli("sysctl", "--name", c.name, "vm.unsafe_unreplicate=1", check=True)
    stop = tmp_path / "stop"
    procs = {"writer": _start("mapwriter", "0", "g", str(pages), str(stop), *(["0,1"] if mode == "moving" else []),
                              cluster=c.name),
             "near": _start("filereader", "0", "g", str(pages), str(stop), *tolerant, cluster=c.name),
             "far": _start("filereader", "1", "g", str(pages), str(stop), *tolerant, cluster=c.name)}
    wanted = {"pgreplicazap_write": 2, "pgwriteback": 2}
    if mode == "reclaim":
        with numa_emu.attach(0, cluster=c.name) as t:  # "g" on node 0 whatever fills it: the writer's own node
            t.open("g").set_policy("bind", [0])
        (store / "big").write_bytes(b"".join(big_page(i) for i in range(4 * frames)))
        procs["churner"] = _start("churner", "0", "big", str(4 * frames), str(stop), cluster=c.name)
        wanted["pgsteal_direct"] = 2
        del wanted["pgreplicazap_write"]  # node 1 may be too full of the big file's pages for a replica
    procs["mover"] = _start("mover", "1" if mode == "reclaim" else "2", "g", str(pages), str(stop), cluster=c.name)
    wanted["pgmigrate_success"] = 2 * pages
    if mode == "unsafe":
        wanted["repl_stale_access"] = 2

    seen: dict = {}

    def everything_happened() -> bool:  # and the near reader (node 0's only reader) read directly
        seen.update({key: vm_total(c, key) for key in wanted}, direct=direct_counts(c))
        if mode == "moving":  # and the writer moved three times
            hops = Path(f"{stop}.hops")
            seen["hops"] = int(hops.read_text() or 0) if hops.exists() else 0
            if seen["hops"] < 3:
                return False
        return (all(seen[key] > least for key, least in wanted.items()) and seen["direct"][0][0] > 0
                and sum(writes for _reads, writes in seen["direct"].values()) > 0)
    out = _run_workers(procs, ("writer", "near", "far"), stop, everything_happened,
                       "replicas collapsed, pages written back, moved (and stolen), read and written directly", seen)
    w = out["writer"]
    stale_reads = violations(w["writes"], out["near"]["reads"] + out["far"]["reads"])
    if mode == "unsafe":  # every read that went wrong went through a stale mapping, and was counted
        assert len(stale_reads) + out["near"]["bad"] + out["far"]["bad"] <= vm_total(c, "repl_stale_access")
    else:
        assert stale_reads == [] and out["near"]["bad"] == out["far"]["bad"] == 0
    assert w["direct"][1] > 0 and out["near"]["direct"][0] > 0 and out["mover"]["moved"] > 0
    assert str(-errno.ENOMEM) not in out["mover"]["failed"]  # a move reclaims on its full target, and keeps what it freed
    assert out.get("churner", {"bad": []})["bad"] == [] and (w["hops"] > 2 if mode == "moving" else True)
    assert (store / "g").read_bytes() == b"".join(file_page(page, seq) for page, seq in enumerate(w["last"]))


def test_a_task_stopped_inside_a_direct_write_of_a_shared_page_stalls_nobody_and_its_write_lands(
        cluster_factory, cli, home, tmp_path):
    """The writer of file "g" (alone mapping it: migratepages moves its pages) is stopped inside
    a direct write, three times, and each time its pages go to node 1 or back meanwhile; after it
    continues, every completed write is in the store."""
    pages = 8
    c = cluster_factory("default-4n")
    store = home / c.name / STORE_DIR
    (store / "g").write_bytes(bytes(pages * PAGE))
    stop = tmp_path / "stop"
    writer = _start("mapwriter", "0", "g", str(pages), str(stop), cluster=c.name)
    try:
        pid, probe = _ready(writer)
        try:
            for move in (("0", "1"), ("1", "0"), ("0", "1")):
                poll_until(lambda: _stop_inside_a_write(pid, probe), timeout_s=60, interval_s=0.001,
                           what="the writer to be stopped inside a direct write")
                assert cli("--name", c.name, "migratepages", str(pid), *move, timeout_s=120).returncode == 0
                assert _stopped(pid)  # moved while it held its write lock
                os.kill(pid, signal.SIGCONT)
        finally:
            os.close(probe)
        stop.touch()
        w = json.loads(writer.communicate(timeout=60)[0])
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0 and w["direct"][1] > 0
    assert vm_total(c, "pgmigrate_success") >= 3
    assert (store / "g").read_bytes() == b"".join(file_page(page, seq) for page, seq in enumerate(w["last"]))


def test_a_task_killed_inside_a_direct_write_of_a_shared_page_leaves_its_pages_direct_and_movable(
        cluster_factory, home, tmp_path):
    """SIGKILL while the writer holds its write lock inside a direct write of file "g": once the
    cluster has detached it, another task of its node reads and writes every page directly again
    (no half of a version left odd, no grant left with the dead task) and moves them all."""
    pages = 8
    c = cluster_factory("default-4n")
    (home / c.name / STORE_DIR / "g").write_bytes(bytes(pages * PAGE))
    writer = _start("mapwriter", "0", "g", str(pages), str(tmp_path / "never"), cluster=c.name)
    try:
        pid, probe = _ready(writer)
        try:
            poll_until(lambda: _stop_inside_a_write(pid, probe), timeout_s=60, interval_s=0.001,
                       what="the writer to be stopped inside a direct write")
            os.kill(pid, signal.SIGKILL)
            writer.wait()
        finally:
            os.close(probe)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()

    def node0_tasks() -> int:
        with c.client() as client:
            return len(client.call(tm.ClusterStats()).nodes[0]["tasks"])
    poll_until(lambda: node0_tasks() == 0, timeout_s=30, what="the killed writer to be detached")
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap_file(task.open("g"))
        for page in range(pages):
            region.write(page * PAGE, b"new")  # a message: this task takes the page's grant
            region.write(page * PAGE + 3, b"er")
            assert region.read(page * PAGE, 5) == b"newer"
        assert task._dpath.counts() == (pages, pages)
        assert region.move_pages([1] * pages, flags=MPOL_MF_MOVE_ALL) == [1] * pages
        assert region.read(0, pages * PAGE)[::PAGE] == b"n" * pages


def test_a_write_left_half_done_by_a_killed_process_is_waited_out_then_evened(cluster_factory, puppets):
    """A process of the task dies holding its write lock with its half of the frame's version odd
    (killed between the two halves of a direct write of a shared page): a read of the node waits
    for the write a while, then takes the grant back, which evens the half (the lock is free): the
    frame's readers go direct again, another task takes the grant, and the page moves."""
    c = cluster_factory("default-4n")
    other = puppets(c, 0)
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(PAGE, shared=True, name="k")
        region.write(0, b"grant")
        region.write(0, b"GRANT")  # direct: this task holds the frame's grant
        path = task._dpath
        assert path.counts() == (0, 1)
        frame = path._entry(region.vaddr // PAGE, dm.PRESENT | dm.WRITABLE)[2]
        _killed_holding_the_lock(path, odd_frame=frame)  # between the two halves of a direct write
        assert region.read(0, 5) == b"GRANT" and path.counts() == (0, 1)  # odd: by message, which evens it
        assert region.read(0, 5) == b"GRANT" and path.counts() == (1, 1)  # direct again, read-only now
        other.do("mmap", length=PAGE, shared=True, name="k", **{"as": "k"})
        other.do("write", offset=0, data=b"other".hex(), **{"as": "k"})  # a message: the grant is its own
        other.do("write", offset=0, data=b"again".hex(), **{"as": "k"})
        assert other.do("direct") == [0, 1]
        assert region.read(0, 5) == b"again" and path.counts() == (2, 1)
        assert region.move_pages([1], flags=MPOL_MF_MOVE_ALL) == [1] and region.read(0, 5) == b"again"
