"""A node's death on real clusters (kill -9 of its process): a fast error naming the node and the
page, files readable again with their synced bytes, nothing leaked on the survivors, and
`numa-emu node restart` bringing a fresh node back (docs/protocol.md#a-nodes-death)."""
from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.timing import CLIENT_TIMEOUT_S
from tests.helpers import PuppetError, poll_until

pytestmark = pytest.mark.cluster

PAGE = 4096
SYNCED = bytes(range(256)) * 16  # one page of known bytes, fsync'd
UNSYNCED = bytes(reversed(range(256))) * 16  # written over it afterwards, never fsync'd


def _stats(c) -> dict:
    with c.client() as client:
        return client.call(tm.ClusterStats()).nodes


def _free(c, nodes) -> dict[int, int]:
    stats = _stats(c)
    return {n: stats[n]["frames_free"] for n in nodes}


def _states(c) -> list[str]:
    return [n["state"] for n in c.status().nodes]


def _kill(c, node: int) -> float:
    os.kill(c.status().nodes[node]["pid"], signal.SIGKILL)
    return time.monotonic()


def _dead(c, node: int) -> None:
    poll_until(lambda: _states(c)[node] == "dead", timeout_s=10.0, what=f"node {node} reported dead")


def _check_counters(c) -> None:
    """The per-node invariants on the survivors (the cluster-wide sums lost the dead node's share)."""
    for d in _stats(c).values():
        s, v = d["numastat"], d["vmstat"]
        assert s["numa_hit"] + s["numa_miss"] == s["local_node"] + s["other_node"]
        assert v["nr_repl_pages"] == v.get("pgreplicated", 0) - v.get("pgreplicazap", 0)
        assert 0 <= d["frames_free"] <= d["frames_total"]


def test_a_private_page_on_a_dead_node_fails_at_once_with_eio_naming_node_and_page(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    task = puppets(c, 0)
    vaddr = task.do("mmap", **{"as": "far", "length": 2 * PAGE})
    task.do("mbind", mode="bind", nodes=[2], **{"as": "far"})
    task.do("write", **{"as": "far", "offset": PAGE, "data": SYNCED.hex()})
    killed = _kill(c, 2)
    while True:  # the first clear error a task sees: the time from the kill to it (README)
        try:
            task.do("read", **{"as": "far", "offset": PAGE, "length": 16})
        except PuppetError as exc:
            first_error_s = time.monotonic() - killed
            err = exc
            break
        assert time.monotonic() - killed < 10.0, "no error 10 s after node 2 was killed"
    print(f"\nkill -9 of node 2 -> first clear error seen by a task: {first_error_s * 1000:.0f} ms ({err})")
    assert err.errno_name == "EIO"
    m = re.fullmatch(r"EIO: node 2 is dead \(exited with status -9\): page (0x[0-9a-f]+) of task (\d+) was there "
                     r"and is lost", str(err))
    assert m, str(err)
    assert int(m.group(1), 16) == vaddr + PAGE
    with pytest.raises(PuppetError) as again:  # the same for a write, and for a page never written there
        task.do("write", **{"as": "far", "offset": PAGE + 8, "data": "00"})
    assert str(again.value) == str(err)
    _dead(c, 2)
    assert c.status().state == "degraded"


def test_a_file_whose_master_node_died_reads_its_synced_bytes_and_reports_unsynced_loss_once(cluster_factory,
                                                                                               puppets):
    c = cluster_factory("default-4n")
    task = puppets(c, 0)
    task.do("policy", mode="preferred", nodes=[2])  # the masters on node 2 first, elsewhere once it is gone
    pages = 8  # their directory homes spread over the 4 nodes: node 2's entries are rebuilt too
    for name in ("synced", "dirty"):
        task.do("open", name=name, create=True, size=0)
        task.do("pwrite", name=name, offset=0, data=(SYNCED * pages).hex())
        task.do("fsync", name=name)
    task.do("pwrite", name="dirty", offset=0, data=(UNSYNCED * pages).hex())
    assert bytes.fromhex(task.do("pread", name="dirty", offset=0, length=PAGE)) == UNSYNCED
    _kill(c, 2)
    _dead(c, 2)
    assert bytes.fromhex(task.do("pread", name="synced", offset=0, length=pages * PAGE)) == SYNCED * pages
    for idx in range(pages):  # each unsynced page says once that it is lost, then reads the store
        with pytest.raises(PuppetError) as err:
            task.do("pread", name="dirty", offset=idx * PAGE, length=PAGE)
        assert str(err.value) == (f"EIO: page {idx} of file 'dirty' was written and not synced when node 2 died "
                                  "(exited with status -9); it is lost, and reads now give the stored bytes")
        assert bytes.fromhex(task.do("pread", name="dirty", offset=idx * PAGE, length=PAGE)) == SYNCED
    task.do("pwrite", name="dirty", offset=PAGE, data=UNSYNCED.hex())  # and the file works as before
    task.do("fsync", name="dirty")
    assert bytes.fromhex(task.do("pread", name="dirty", offset=0, length=2 * PAGE)) == SYNCED + UNSYNCED
    vm = {n: d["vmstat"] for n, d in _stats(c).items()}
    assert sorted(vm) == [0, 1, 3]
    assert sum(v.get("pglost_dirty", 0) for v in vm.values()) == pages
    _check_counters(c)


def test_unsynced_writes_on_a_surviving_master_outlive_the_writer_and_the_directory(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    survivors = [0, 1, 3]
    baseline = _free(c, survivors)
    writer = puppets(c, 2)  # node 2 maps the pages and holds the directory of some: both die
    writer.do("policy", mode="bind", nodes=[3])  # the masters on node 3, which lives
    writer.do("open", name="f", create=True, size=0)
    pages = 8
    writer.do("pwrite", name="f", offset=0, data=(UNSYNCED * pages).hex())
    _kill(c, 2)
    _dead(c, 2)
    reader = puppets(c, 0)
    reader.do("open", name="f")
    assert bytes.fromhex(reader.do("pread", name="f", offset=0, length=pages * PAGE)) == UNSYNCED * pages
    assert sum(d["vmstat"].get("dir_rebuilt", 0) for d in _stats(c).values()) > 0
    reader.do("fsync", name="f")  # rebuilt entries are taken for dirty: written back
    writer.do("detach")
    reader.do("truncate", name="f", size=0)  # every master freed, those rebuilt too
    assert _free(c, survivors) == baseline
    reader.do("pwrite", name="f", offset=0, data=SYNCED.hex())
    assert bytes.fromhex(reader.do("pread", name="f", offset=0, length=PAGE)) == SYNCED
    _check_counters(c)


def test_a_task_whose_home_died_detaches_and_the_survivors_free_all_it_held(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    survivors = [0, 2, 3]
    baseline = _free(c, survivors)
    task = puppets(c, 1)
    task.do("mmap", **{"as": "a", "length": 64 * PAGE})
    task.do("mbind", mode="interleave", nodes=[0, 2, 3], **{"as": "a"})
    assert task.do("touch", fill=7, **{"as": "a"}) == 64
    task.do("mmap", **{"as": "b", "length": 16 * PAGE})
    task.do("mbind", mode="bind", nodes=[3], **{"as": "b"})
    task.do("touch", fill=1, **{"as": "b"})
    used = {n: baseline[n] - f for n, f in _free(c, survivors).items()}
    assert sum(used.values()) == 64 + 16 and min(used.values()) >= 21 and used[3] >= 16 + 21
    _kill(c, 1)
    _dead(c, 1)
    with pytest.raises(PuppetError) as err:  # its home does not answer: the coordinator says why
        task.do("read", **{"as": "a", "offset": 0, "length": 1})
    assert re.fullmatch(r"EIO: task \d+: its home node 1 died \(exited with status -9\) with its memory; detach it",
                        str(err.value)), str(err.value)
    task.do("detach")
    assert _free(c, survivors) == baseline
    with c.client() as client:
        assert client.call(tm.TaskList()).tasks == []
    _check_counters(c)


def test_a_task_whose_home_died_hears_it_before_its_deadline_on_every_request_and_detaches(cluster_factory,
                                                                                          puppets):
    """Its home node is silent, not refusing: the task asks the coordinator while it waits
    (protocol.client on_silence), so the EIO comes long before the 5 s channel deadline, for
    every request, and detach does not wait at all."""
    c = cluster_factory("default-4n")
    baseline = _free(c, [0, 1, 3])
    task = puppets(c, 2)
    task.do("mmap", **{"as": "a", "length": 8 * PAGE})
    task.do("mbind", mode="bind", nodes=[0], **{"as": "a"})
    task.do("touch", fill=9, **{"as": "a"})
    _kill(c, 2)
    _dead(c, 2)
    for op, kw in (("read", {"offset": 0, "length": 1}), ("where", {}), ("clock", {})):
        started = time.monotonic()
        with pytest.raises(PuppetError) as err:
            task.do(op, **{"as": "a", **kw})
        waited = time.monotonic() - started
        assert re.fullmatch(r"EIO: task \d+: its home node 2 died \(exited with status -9\) with its memory; "
                            r"detach it", str(err.value)), str(err.value)
        assert waited < CLIENT_TIMEOUT_S, f"{op}: the error came after {waited:.1f} s, at the channel's deadline"
    started = time.monotonic()
    task.do("detach")
    assert time.monotonic() - started < CLIENT_TIMEOUT_S
    assert _free(c, [0, 1, 3]) == baseline


def test_a_task_whose_home_died_detaches_cleanly_after_its_home_restarted(cluster_factory, puppets, cli):
    c = cluster_factory("default-4n")
    survivors = [0, 1, 2]
    baseline = _free(c, survivors)
    task = puppets(c, 3)
    task.do("mmap", **{"as": "a", "length": 32 * PAGE})
    task.do("mbind", mode="bind", nodes=[1], **{"as": "a"})
    task.do("touch", fill=3, **{"as": "a"})
    _kill(c, 3)
    _dead(c, 3)
    cli("node", "restart", "3", "--name", c.name, check=True)
    with pytest.raises(PuppetError) as err:  # the fresh node 3 does not know it: the coordinator says why
        task.do("read", **{"as": "a", "offset": 0, "length": 1})
    assert re.fullmatch(r"EIO: task \d+: its home node 3 died \(exited with status -9\) with its memory; detach it",
                        str(err.value)), str(err.value)
    task.do("detach")
    assert _free(c, survivors) == baseline
    assert c.status().state == "up"


def test_a_migration_whose_source_died_fails_cleanly_and_frees_its_target_frames(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    survivors = [0, 1, 3]
    baseline = _free(c, survivors)
    task = puppets(c, 2)  # the source of the migration is the task's home: both die at once
    task.do("mmap", **{"as": "a", "length": 512 * PAGE})
    task.do("touch", fill=5, **{"as": "a"})
    task.send("migrate_pages", old=[2], new=[3])
    poll_until(lambda: _free(c, [3])[3] < baseline[3], timeout_s=10.0, what="the migration's first frames on node 3")
    _kill(c, 2)
    _dead(c, 2)
    task.answer()  # the migration's answer, whatever it was (done, or cut off by the death)
    task.do("detach")
    assert _free(c, survivors) == baseline
    _check_counters(c)


def test_a_migration_away_from_a_dead_node_moves_nothing_and_leaks_nothing(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    survivors = [0, 1, 3]
    baseline = _free(c, survivors)
    task = puppets(c, 0)
    task.do("mmap", **{"as": "a", "length": 512 * PAGE})
    task.do("mbind", mode="bind", nodes=[2], **{"as": "a"})
    task.do("touch", fill=5, **{"as": "a"})
    _kill(c, 2)
    _dead(c, 2)
    assert task.do("migrate_pages", old=[2], new=[3]) == 0  # nothing left on node 2 to move
    assert task.do("where", **{"as": "a"}) == [None] * 512  # the pages died with it
    with pytest.raises(PuppetError) as err:  # and say so at every access, until unmapped
        task.do("touch", **{"as": "a"})
    assert re.fullmatch(r"EIO: node 2 is dead \(exited with status -9\): page 0x[0-9a-f]+ of task \d+ was there and "
                        r"is lost", str(err.value))
    assert _free(c, survivors) == baseline
    task.do("munmap", **{"as": "a"})
    task.do("mmap", **{"as": "b", "length": PAGE})
    assert task.do("touch", **{"as": "b"}) == 1
    _check_counters(c)


def test_node_restart_brings_a_fresh_node_back(cluster_factory, puppets, cli):
    c = cluster_factory("default-4n")
    busy = cli("node", "restart", "3", "--name", c.name)
    assert (busy.returncode, busy.stderr) == (3, "numa-emu: error: node 3 is up; only a dead node of a running "
                                                 "cluster can be restarted\n")
    nodev = cli("node", "restart", "9", "--name", c.name)
    assert (nodev.returncode, nodev.stderr) == (3, f"numa-emu: error: no node 9 in cluster {c.name} (nodes 0-3)\n")
    far = puppets(c, 0)
    vaddr = far.do("mmap", **{"as": "a", "length": PAGE})
    far.do("mbind", mode="bind", nodes=[3], **{"as": "a"})
    far.do("write", **{"as": "a", "offset": 0, "data": SYNCED.hex()})
    old_pid = c.status().nodes[3]["pid"]
    _kill(c, 3)
    _dead(c, 3)
    out = cli("node", "restart", "3", "--name", c.name, check=True).stdout
    new_pid = c.status().nodes[3]["pid"]
    assert out == f"node 3 restarted (pid {new_pid})\n" and new_pid != old_pid
    st = json.loads(cli("status", "--name", c.name, "--json", check=True).stdout)
    assert st["state"] == "up" and [n["state"] for n in st["nodes"]] == ["up"] * 4
    assert st["nodes"][3]["frames_free"] == st["nodes"][3]["frames_total"]
    again = cli("node", "restart", "3", "--name", c.name)
    assert again.returncode == 3 and again.stderr.count("\n") == 1
    local = puppets(c, 3)  # a task on the fresh node works
    assert local.node == 3
    local.do("mmap", **{"as": "a", "length": 2 * PAGE})
    local.do("write", **{"as": "a", "offset": 100, "data": SYNCED.hex()})
    assert bytes.fromhex(local.do("read", **{"as": "a", "offset": 100, "length": len(SYNCED)})) == SYNCED
    assert local.do("where", **{"as": "a"}) == [3, 3]
    with pytest.raises(PuppetError) as err:  # a page of its former life stays lost, not a page of the new one
        far.do("read", **{"as": "a", "offset": 0, "length": 1})
    assert re.fullmatch(rf"EIO: node 3 is dead \(exited with status -9\): page {vaddr:#x} of task \d+ was there "
                        r"and is lost", str(err.value))
    far.do("mmap", **{"as": "b", "length": PAGE})  # and the others reach it again
    far.do("mbind", mode="bind", nodes=[3], **{"as": "b"})
    far.do("write", **{"as": "b", "offset": 0, "data": UNSYNCED.hex()})
    assert bytes.fromhex(far.do("read", **{"as": "b", "offset": 0, "length": PAGE})) == UNSYNCED
    far.do("open", name="f", create=True, size=0)  # files too, their directory on the survivors
    far.do("pwrite", name="f", offset=0, data=(SYNCED * 4).hex())
    far.do("fsync", name="f")
    assert bytes.fromhex(far.do("pread", name="f", offset=0, length=4 * PAGE)) == SYNCED * 4
    local.do("open", name="f")  # and a task on the fresh node shares them
    local.do("pwrite", name="f", offset=PAGE, data=UNSYNCED.hex())
    assert bytes.fromhex(far.do("pread", name="f", offset=0, length=2 * PAGE)) == SYNCED + UNSYNCED
    _check_counters(c)


def test_node_restart_without_its_fork_server_says_so_in_one_line(cluster_factory, cli):
    c = cluster_factory("default-4n")
    zygote = c.info.data["zygote"]["pid"]
    os.kill(zygote, signal.SIGKILL)
    _kill(c, 1)
    _dead(c, 1)
    out = cli("node", "restart", "1", "--name", c.name)
    assert (out.returncode, out.stderr) == (3, "numa-emu: error: the node fork server is gone; restart the cluster "
                                               "(down, then up)\n")
    assert c.status().state == "degraded"


def test_a_restarted_node_counts_its_numa_foreign_again_from_zero(cluster_factory, puppets, cli):
    """numa_foreign goes to the preferred node as the sender's running total (nodes/core.py
    take_foreign). A restarted sender starts again at zero under a later incarnation: its first
    increments count on the receiver, not only what passes its former life's total."""
    from numa_emu.protocol.topology import from_cli

    c = cluster_factory(from_cli(2, 1, "64KiB"))  # 16 frames a node
    for life in (1, 2):
        task = puppets(c, 0)
        task.do("policy", mode="preferred", nodes=[1])
        task.do("mmap", **{"as": "a", "length": 20 * PAGE})
        task.do("touch", fill=7, **{"as": "a"})
        assert task.do("where", **{"as": "a"}) == [1] * 16 + [0] * 4
        assert _stats(c)[1]["numastat"]["numa_foreign"] == 4 * life  # node 0 owes node 1 the 4 that spilled
        if life == 1:
            _kill(c, 0)  # the task's home and the sender of the increments
            _dead(c, 0)
            cli("node", "restart", "0", "--name", c.name, check=True)
            task.do("detach")  # what it held on node 1 is freed
            poll_until(lambda: _free(c, [1])[1] == 16, timeout_s=10.0, what="node 1's frames freed")
    task.do("detach")
