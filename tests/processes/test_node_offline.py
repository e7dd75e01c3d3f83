"""`numa-emu node offline N` / `node online N` on real clusters (nodes/offline.py,
coordinator/offline.py): pages leave N with their bytes, tasks homed on N move and keep running,
replicas on N are dropped, new allocations skip N; refused with EBUSY and nothing moved when
impossible; online again. Shared masters go where their object's policy places them (a file's
shared policy, the shm policy set by mbind), and a master bound to N alone refuses the offline.
N leaves every cpuset's effective mems (cgroup v2 cpuset.mems.effective) until it is online: a
policy naming offline nodes alone is EINVAL, memory_migrate pairs the effective mems, and a
cpuset whose only memory goes offline takes its parent's effective mems."""
from __future__ import annotations

import collections
import json

import pytest

import numa_emu
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED, Mode
from numa_emu.protocol.topology_shapes import from_cli
from tests.helpers import PuppetError, poll_until
from tests.processes.test_policy_regress import EMU

pytestmark = pytest.mark.cluster
PAGE = 4096


def pattern(i: int) -> bytes:
    return bytes((i * 11 + j) % 251 for j in range(PAGE))


def call(c, request):
    with c.client(timeout_s=120) as client:
        return client.call(request)


def used(c) -> dict[int, int]:
    nodes = call(c, tm.ClusterStats()).nodes
    return {int(n): d["frames_total"] - d["frames_free"] for n, d in nodes.items()}


@pytest.fixture
def three(cluster_factory):
    return cluster_factory(from_cli(3, 1, "1MiB"))  # cpu n on node n, 256 frames each


def test_offline_moves_pages_and_tasks_with_their_bytes_and_online_takes_it_back(three, puppets):
    homed = puppets(three, 2)  # a task homed on node 2, with private pages there
    homed.do("mmap", **{"as": "p"}, length=4 * PAGE)
    for i in range(4):
        homed.do("write", **{"as": "p"}, offset=i * PAGE, data=pattern(i).hex())
    with numa_emu.attach(0, cluster=three.name) as task:
        bound = task.mmap(4 * PAGE)
        bound.mbind("bind", [1, 2])
        for i in range(4):
            bound.write(i * PAGE, pattern(10 + i))
        task.set_mempolicy("preferred", [2])
        remote = task.mmap(4 * PAGE)
        for i in range(4):
            remote.write(i * PAGE, pattern(20 + i))
        task.set_mempolicy("default")
        fresh = task.mmap(2 * PAGE)
        fresh.mbind("preferred", [2])  # kept through the offline, as Linux keeps a VMA's policy
        shm = task.mmap(2 * PAGE, shared=True, name="off")
        shm.mbind("preferred", [2])
        shm.write(0, pattern(30))
        shm.mbind("bind", [1, 2])  # the shm's policy (not a bind to 2 alone, which refuses the offline)
        assert remote.where() == [2] * 4 and shm.where()[0] == 2
        f = task.open("offline-file", create=True, size=PAGE)
        f.pwrite(0, b"replicated")
        f.fsync()
        homed.do("open", name="offline-file")
        homed.do("map", name="offline-file", **{"as": "f"}, writable=False)
        assert homed.do("read", **{"as": "f"}, offset=0, length=10) == b"replicated".hex()
        assert homed.do("where", **{"as": "f"}) == [2]  # a replica on node 2
        reply = call(three, ns.NodeOffline(node_id=2))
        assert reply.replicas_dropped == 1
        assert reply.offline == [2] and reply.tasks_moved and reply.tasks_moved[0][1] == 2
        assert used(three)[2] == 0  # nothing is left on node 2
        assert all(homed.do("read", **{"as": "p"}, offset=i * PAGE, length=PAGE) == pattern(i).hex()
                   for i in range(4))
        assert homed.do("node") in (0, 1)  # it followed its move at its next request
        assert 2 not in homed.do("where", **{"as": "p"})
        assert homed.do("read", **{"as": "f"}, offset=0, length=10) == b"replicated".hex()
        assert all(bound.read(i * PAGE, PAGE) == pattern(10 + i) for i in range(4)) and bound.where() == [1] * 4
        assert all(remote.read(i * PAGE, PAGE) == pattern(20 + i) for i in range(4)) and 2 not in remote.where()
        assert shm.read(0, PAGE) == pattern(30) and shm.where()[0] == 1
        # new allocations skip node 2, even under a policy that prefers it
        with pytest.raises(numa_emu.NumaEmuError) as err:
            task.set_mempolicy("preferred", [2])  # a new one naming 2 alone is EINVAL (mems_allowed)
        assert err.value.errno_name == "EINVAL"
        fresh.touch(write=True)
        assert 2 not in fresh.where()
        call(three, ns.NodeOnline(node_id=2))
        task.set_mempolicy("preferred", [2])  # node 2 is in mems_allowed again
        fresh2 = task.mmap(PAGE)
        fresh2.touch(write=True)
        assert fresh2.where() == [2]


def test_offline_is_refused_with_nothing_moved_when_impossible(three, puppets):
    with numa_emu.attach(0, cluster=three.name) as task:
        # the others cannot hold what node 2 holds (a policy bound to it alone is rebound instead:
        # tests/processes/test_offline_rebind.py)
        hog = puppets(three, 2)
        hog.do("mmap", **{"as": "h"}, length=200 * PAGE)
        hog.do("touch", **{"as": "h"}, fill=1)
        for node in (0, 1):  # nodes 0 and 1 nearly full
            filler = task.mmap(240 * PAGE)
            filler.mbind("bind", [node])
            filler.touch(fill=2)
        before = used(three)
        with pytest.raises(numa_emu.NumaEmuError) as err:
            call(three, ns.NodeOffline(node_id=2))
        assert err.value.errno_name == "EBUSY" and "room" in err.value.message and "nothing was moved" in err.value.message
        assert used(three) == before
        with pytest.raises(numa_emu.NumaEmuError) as err:
            call(three, ns.NodeOnline(node_id=2))
        assert err.value.errno_name == "EINVAL"


def test_status_top_and_hardware_mark_an_offline_node(three, cli):
    assert cli("node", "offline", "2", "--name", three.name, check=True).stdout.startswith("node 2 offline: ")
    status = cli("status", "--name", three.name, check=True).stdout
    assert [line.split()[2] for line in status.splitlines()[2:5]] == ["up", "up", "offline"]
    hardware = cli("hardware", "--name", three.name, check=True).stdout.splitlines()
    assert hardware[7:10] == ["node 2 cpus:", "node 2 size: 0 MB", "node 2 free: 0 MB"]
    meminfo = cli("--name", three.name, "numastat", "-m", check=True).stdout.splitlines()
    total = next(line.split() for line in meminfo if line.startswith("MemTotal"))
    assert total[1] != "0.00" and total[3] == "0.00"  # node 0 has memory, node 2 none
    again = cli("node", "offline", "2", "--name", three.name)
    assert again.returncode != 0 and "node 2 is offline already" in again.stderr
    assert cli("node", "online", "2", "--name", three.name, check=True).stdout == "node 2 online\n"
    hardware = cli("hardware", "--name", three.name, check=True).stdout.splitlines()
    assert hardware[7:9] == ["node 2 cpus: 2", "node 2 size: 1 MB"]


def test_a_task_reading_and_writing_through_the_offline_keeps_its_bytes(three, puppets):
    import threading

    worker = puppets(three, 1)
    worker.do("policy", mode="preferred", nodes=[2])
    worker.do("mmap", **{"as": "w"}, length=8 * PAGE)
    for i in range(8):
        worker.do("write", **{"as": "w"}, offset=i * PAGE, data=pattern(i).hex())
    worker.do("policy", mode="default")
    assert worker.do("where", **{"as": "w"}) == [2] * 8
    stop, seen, errors = threading.Event(), collections.Counter(), []

    def hammer():
        i = 0
        while not stop.is_set():
            page = i % 8
            try:
                if worker.do("read", **{"as": "w"}, offset=page * PAGE, length=PAGE) != pattern(page).hex():
                    errors.append(f"page {page} read wrong bytes")
                worker.do("write", **{"as": "w"}, offset=page * PAGE, data=pattern(page).hex())
            except PuppetError as exc:
                errors.append(str(exc))
            seen[page] += 1
            i += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        reply = call(three, ns.NodeOffline(node_id=2))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors and sum(seen.values()) > 0
    assert reply.pages_moved >= 8 and used(three)[2] == 0
    assert worker.do("where", **{"as": "w"}) == [1] * 8  # where the default policy places them: its own node
    assert all(worker.do("read", **{"as": "w"}, offset=i * PAGE, length=PAGE) == pattern(i).hex() for i in range(8))


def test_a_restarted_node_hears_of_the_offline_nodes(three, puppets, cli):
    import os
    import signal

    call(three, ns.NodeOffline(node_id=2))
    os.kill(three.status().nodes[1]["pid"], signal.SIGKILL)
    poll_until(lambda: three.status().nodes[1]["state"] == "dead", timeout_s=10.0, what="node 1 reported dead")
    cli("node", "restart", "1", "--name", three.name, check=True)
    with numa_emu.attach(0, cluster=three.name) as owner:  # a file whose shared policy prefers the offline node
        owner.open("prefers-2", create=True, size=2 * PAGE).set_policy("preferred", [2])
    task = puppets(three, 1)  # homed on the restarted node, which places the pages it faults
    task.do("open", name="prefers-2")
    task.do("map", name="prefers-2", **{"as": "a"})
    assert task.do("touch", **{"as": "a"}, fill=3) == 2
    assert 2 not in task.do("where", **{"as": "a"})


def test_no_task_attaches_on_an_offline_nodes_cpu(three, puppets):
    call(three, ns.NodeOffline(node_id=2))
    with pytest.raises(numa_emu.NumaEmuError) as err:
        numa_emu.attach(2, cluster=three.name)
    assert err.value.errno_name == "EINVAL" and "node 2, which is offline" in err.value.message
    busy = [puppets(three, 0), puppets(three, 1)]  # cpus 0 and 1 carry a task each, cpu 2 none
    with numa_emu.attach(cluster=three.name) as task:  # the coordinator's pick: the least loaded online cpu
        assert task.node in (0, 1) and busy
    call(three, ns.NodeOnline(node_id=2))
    with numa_emu.attach(2, cluster=three.name) as task:
        assert task.node == 2


# a chain 0-1-2-3: from node 3, node 2 is nearest (20), then 1 (30), then 0 (40)
CHAIN = "10,20,30,40;20,10,20,30;30,20,10,20;40,30,20,10"


@pytest.fixture
def chain(cluster_factory):
    return cluster_factory(from_cli(4, 1, "1MiB", distances=CHAIN))


def test_shared_masters_follow_their_objects_policy(chain):
    with numa_emu.attach(0, cluster=chain.name) as task:
        il = task.mmap(6 * PAGE, shared=True, name="il")
        il.mbind("interleave", [0, 1, 3])  # by the page's index in the shm: 0, 1, 3, 0, 1, 3
        for i in range(6):
            il.write(i * PAGE, pattern(i))
        bound = task.mmap(2 * PAGE, shared=True, name="bound")
        bound.mbind("preferred", [3])
        for i in range(2):
            bound.write(i * PAGE, pattern(10 + i))
        bound.mbind("bind", [0, 3])  # the pages stay on 3; the policy now allows 0 besides
        plain = task.mmap(PAGE, shared=True, name="plain")
        plain.mbind("preferred", [3])
        plain.write(0, pattern(20))
        plain.mbind("default")  # no shm policy left: the nearest online node
        f = task.open("shared-policy", create=True, size=2 * PAGE)
        f.set_policy("preferred", [3])
        mapped = f.mmap()
        for i in range(2):
            mapped.write(i * PAGE, pattern(30 + i))
        f.set_policy("bind", [0, 1])  # cached pages stay on 3
        assert il.where() == [0, 1, 3, 0, 1, 3] and bound.where() == [3, 3] and plain.where() == [3]
        assert mapped.where() == [3, 3] and used(chain)[3] == 7
        reply = call(chain, ns.NodeOffline(node_id=3))
        assert reply.pages_moved == 7 and used(chain)[3] == 0
        assert all(il.read(i * PAGE, PAGE) == pattern(i) for i in range(6))
        assert il.where() == [0, 1, 0, 0, 1, 1]  # pages 2 and 5: interleave over 0-1 by index
        assert all(bound.read(i * PAGE, PAGE) == pattern(10 + i) for i in range(2))
        assert bound.where() == [0, 0]  # the bind's only online node, though 2 and 1 are nearer
        assert plain.read(0, PAGE) == pattern(20) and plain.where() == [2]  # the nearest
        for i in range(2):  # read, then write the same bytes: the master mapped, no replica
            assert mapped.read(i * PAGE, PAGE) == pattern(30 + i)
            mapped.write(i * PAGE, pattern(30 + i))
        assert mapped.where() == [1, 1]  # the file's bind by distance from 3: 1 before 0


def test_a_master_bound_to_the_node_alone_refuses_the_offline(chain):
    with numa_emu.attach(0, cluster=chain.name) as task:
        shm = task.mmap(2 * PAGE, shared=True, name="stuck")
        shm.mbind("bind", [3])
        shm.write(0, pattern(1))
        before = used(chain)
        with pytest.raises(numa_emu.NumaEmuError) as err:
            call(chain, ns.NodeOffline(node_id=3))
        assert err.value.errno_name == "EBUSY"
        assert err.value.message == ("node 3 cannot go offline: 1 page(s) of shm:stuck are bound to node(s) [3] "
                                     "alone by its policy; nothing was moved")
        assert used(chain) == before and shm.where() == [3, None]
        shm.mbind("bind", [2, 3])
        f = task.open("stuck-file", create=True, size=PAGE)
        f.set_policy("bind", [3])
        f.mmap().write(0, pattern(2))
        with pytest.raises(numa_emu.NumaEmuError) as err:
            call(chain, ns.NodeOffline(node_id=3))
        assert err.value.errno_name == "EBUSY" and "file:stuck-file are bound to node(s) [3]" in err.value.message
        assert used(chain)[3] == 2
        f.set_policy("default")
        call(chain, ns.NodeOffline(node_id=3))
        assert shm.read(0, PAGE) == pattern(1) and shm.where() == [2, None]
        assert used(chain)[3] == 0


@pytest.fixture
def four(cluster_factory):
    return cluster_factory(from_cli(4, 1, "1MiB"))  # cpu n on node n


def test_offline_drops_the_node_from_effective_mems_and_allocation_follows(four, cli, monkeypatch):
    cli("cpuset", "create", "pair", "--cpus", "1-2", "--mems", "1-2", "--name", four.name, check=True)
    monkeypatch.setenv("NUMA_EMU_CPUSET", "pair")
    with numa_emu.attach(1, cluster=four.name) as task:
        task.set_mempolicy("interleave", [1, 2])
        before = task.mmap(4 * PAGE)
        before.touch(write=True)
        assert before.where() == [1, 2, 1, 2]
        call(four, ns.NodeOffline(node_id=2))
        shown = json.loads(cli("cpuset", "show", "pair", "--json", "--name", four.name, check=True).stdout)[0]
        assert (shown["mems"], shown["effective_mems"], shown["cpus"], shown["effective_cpus"]) == ([1, 2], [1],
                                                                                                   [1, 2], [1])
        table = cli("cpuset", "show", "--name", four.name, check=True).stdout.splitlines()
        assert table == ["name  cpus         mems         memory_migrate  replication  tasks",
                         "/     0-3 (0-1,3)  0-3 (0-1,3)  0               1            -",
                         f"pair  1-2 (1)      1-2 (1)      0               1            {task.task_id}"]
        assert task.get_mempolicy(MPOL_F_MEMS_ALLOWED)[1] == [1]
        assert task.info()["mems_allowed"] == [1]
        assert before.where() == [1, 1, 1, 1]  # the interleaved pages on 2 went where it now interleaves
        after = task.mmap(4 * PAGE)
        after.touch(write=True)
        assert after.where() == [1, 1, 1, 1]  # the interleave over 1-2 allocates on 1 alone
        call(four, ns.NodeOnline(node_id=2))
        shown = json.loads(cli("cpuset", "show", "pair", "--json", "--name", four.name, check=True).stdout)[0]
        assert (shown["effective_mems"], shown["effective_cpus"]) == ([1, 2], [1, 2])
        assert task.info()["mems_allowed"] == [1, 2]
        # the interleave was rebound 1-2 -> 1 at the offline and 1 -> 1-2 at the online: bitmap_remap
        # maps 1 to 1 both ways, so it stays on 1 (the kernel's remap does not come back)
        assert task.get_mempolicy() == (Mode.INTERLEAVE, [1])
        again = task.mmap(4 * PAGE)
        again.touch(write=True)
        assert again.where() == [1, 1, 1, 1]
        task.set_mempolicy("interleave", [1, 2])
        again = task.mmap(4 * PAGE)
        again.touch(write=True)
        assert sorted(again.where()) == [1, 1, 2, 2]


OFFLINE_2_EINVAL = "policy nodes 2 have none of the task's mems_allowed 0-1,3 (nodes outside its cpuset or offline)"


def test_a_policy_on_offline_nodes_alone_is_einval_and_a_partly_offline_one_keeps_its_online_part(four, cli):
    """mpol_set_nodemask: the mask meets the task's mems_allowed (the effective mems, without an
    offline node); nothing left is EINVAL, else the online part is the policy."""
    call(four, ns.NodeOffline(node_id=2))
    with numa_emu.attach(0, cluster=four.name) as task:
        for mode in ("bind", "interleave", "preferred"):
            with pytest.raises(numa_emu.NumaEmuError) as err:
                task.set_mempolicy(mode, [2])
            assert (err.value.errno_name, err.value.message) == ("EINVAL", OFFLINE_2_EINVAL)
        assert task.get_mempolicy() == (Mode.DEFAULT, [])  # the refused calls changed nothing
        region = task.mmap(2 * PAGE)
        with pytest.raises(numa_emu.NumaEmuError) as err:
            region.mbind("bind", [2])
        assert (err.value.errno_name, err.value.message) == ("EINVAL", OFFLINE_2_EINVAL)
        region.mbind("bind", [2, 3])
        assert task.get_mempolicy(MPOL_F_ADDR, region.vaddr) == (Mode.BIND, [3])
        region.touch(write=True)
        assert region.where() == [3, 3]
        task.set_mempolicy("interleave", [1, 2, 3])
        assert task.get_mempolicy() == (Mode.INTERLEAVE, [1, 3])
        spread = task.mmap(4 * PAGE)
        spread.touch(write=True)
        assert spread.where() == [1, 3, 1, 3]
    # numactl: libnuma parses node strings against Mems_allowed, where node 2 no longer is
    proc = cli("--name", four.name, "numactl", "--membind=2", "true")
    assert (proc.returncode, proc.stdout) == (1, "<2> is invalid\n")
    assert proc.stderr.startswith("libnuma: Warning: node argument 2 is out of range\n\nusage: numactl")
    proc = cli("--name", four.name, "numactl", "--all", "--interleave=2", "true")  # past libnuma: the kernel's EINVAL
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "set_mempolicy: Invalid argument\nsetting interleave mask: Invalid argument\n")
    show = cli("--name", four.name, "numactl", "--all", "--membind=2-3", "--", *EMU, "numactl", "--show", check=True)
    assert show.stdout.splitlines()[-2:] == ["membind: 3 ", "preferred: 3 "]  # the online part of 2-3


def test_memory_migrate_while_a_node_is_offline_moves_between_the_effective_mems(four, cli, monkeypatch):
    """cgroup v2 migrates from the old effective mems to the new ones: mems 1-2 -> 2-3 with node 2
    offline moves the pages from 1 to 3 (the configured pairs would move 1 to the offline 2)."""
    cli("cpuset", "create", "mig", "--cpus", "0-3", "--mems", "1-2", "--name", four.name, check=True)
    cli("cpuset", "set", "mig", "--memory-migrate", "on", "--name", four.name, check=True)
    monkeypatch.setenv("NUMA_EMU_CPUSET", "mig")
    with numa_emu.attach(0, cluster=four.name) as task:
        task.set_mempolicy("interleave", [1, 2])
        region = task.mmap(4 * PAGE)
        for i in range(4):
            region.write(i * PAGE, pattern(i))
        assert region.where() == [1, 2, 1, 2]
        call(four, ns.NodeOffline(node_id=2))
        assert region.where() == [1, 1, 1, 1]
        out = cli("cpuset", "set", "mig", "--mems", "2-3", "--name", four.name, check=True).stdout
        assert out.splitlines() == ["cpuset mig: cpus 0-3 (0-1,3), mems 2-3 (3), memory_migrate 1, replication 1",
                                    f"policies rebound to mems 2-3 for task(s) {task.task_id}; their pages moved "
                                    "to the online mems 3"]
        assert region.where() == [3, 3, 3, 3]
        assert all(region.read(i * PAGE, PAGE) == pattern(i) for i in range(4))
        assert task.info()["mems_allowed"] == [3] and used(four)[2] == 0


def test_a_cpuset_whose_only_memory_goes_offline_takes_the_parents_effective_mems(four, cli, monkeypatch):
    """cgroup v2: a cpuset with no online node in its mems allocates on its parent's effective
    mems, so the offline goes ahead and its tasks' pages leave for them (here the root's 0-1,3)."""
    cli("cpuset", "create", "solo", "--cpus", "0-1", "--mems", "2", "--name", four.name, check=True)
    monkeypatch.setenv("NUMA_EMU_CPUSET", "solo")
    with numa_emu.attach(1, cluster=four.name) as task:
        region = task.mmap(4 * PAGE)
        for i in range(4):
            region.write(i * PAGE, pattern(i))
        assert region.where() == [2, 2, 2, 2]
        reply = call(four, ns.NodeOffline(node_id=2))
        assert reply.pages_moved == 4 and used(four)[2] == 0
        assert region.where() == [1, 1, 1, 1]  # the default policy: the task's own node first
        assert all(region.read(i * PAGE, PAGE) == pattern(i) for i in range(4))
        shown = json.loads(cli("cpuset", "show", "solo", "--json", "--name", four.name, check=True).stdout)[0]
        assert (shown["mems"], shown["effective_mems"]) == ([2], [0, 1, 3])
        assert task.info()["mems_allowed"] == [0, 1, 3]
        fresh = task.mmap(2 * PAGE)
        fresh.touch(write=True)
        assert fresh.where() == [1, 1]
        call(four, ns.NodeOnline(node_id=2))
        assert task.info()["mems_allowed"] == [2]
        again = task.mmap(2 * PAGE)
        again.touch(write=True)
        assert again.where() == [2, 2]
