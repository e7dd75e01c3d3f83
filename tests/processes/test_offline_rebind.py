"""Node offline and online rebind the task and region policies of the tasks whose cpuset's
effective mems change, from the old effective mems to the new (coordinator/offline.py,
TaskTable.rebind_to_effective; the kernel's cpuset_hotplug_workfn -> cpuset_update_tasks_nodemask):
a policy bound to the offline node alone no longer refuses the offline, get_mempolicy reports
the rebound policy, new pages go where it places them, and online rebinds back (a default remap
need not come back where it was; MPOL_F_STATIC_NODES keeps the user's mask and does)."""
from __future__ import annotations

import json
import sys

import pytest

import numa_emu
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.policy import MPOL_F_ADDR, MPOL_F_STATIC_NODES, Mode
from numa_emu.protocol.topology_shapes import from_cli

pytestmark = pytest.mark.cluster
PAGE = 4096


@pytest.fixture
def four(cluster_factory):
    return cluster_factory(from_cli(4, 1, "1MiB"))  # cpu n on node n, 256 frames each


def switch(c, msg) -> None:
    with c.client(timeout_s=120) as client:
        client.call(msg)


def fresh(task, pages: int) -> list:
    """Where `pages` new pages of the task go under its task policy."""
    region = task.mmap(pages * PAGE)
    region.touch(write=True)
    return region.where()


def test_a_membind_to_the_offline_node_and_its_regions_are_rebound_and_come_back(four):
    with numa_emu.attach(0, cluster=four.name) as task:
        task.set_mempolicy("bind", [1])
        private = task.mmap(2 * PAGE)
        private.write(0, b"task policy")
        region = task.mmap(2 * PAGE)
        region.mbind("bind", [1])
        region.write(0, b"region policy")
        shm = task.mmap(2 * PAGE, shared=True, name="kept")
        shm.mbind("bind", [1, 2])  # a shared policy: the kernel never rebinds one
        shm.write(0, b"shared policy")
        assert (private.where(), region.where(), shm.where()) == ([1, None], [1, None], [1, None])
        switch(four, ns.NodeOffline(node_id=1))  # once EBUSY: "task ...'s policy binds it to offline nodes only"
        # bitmap_remap 0-3 -> 0,2-3: node 1, the 2nd allowed node, becomes the 2nd new one, 2
        assert task.get_mempolicy() == (Mode.BIND, [2])
        assert task.get_mempolicy(MPOL_F_ADDR, region.vaddr) == (Mode.BIND, [2])
        assert (private.where(), region.where()) == ([2, None], [2, None])  # moved where the policies now say
        assert private.read(0, 11) == b"task policy" and region.read(0, 13) == b"region policy"
        assert fresh(task, 2) == [2, 2]
        assert task.get_mempolicy(MPOL_F_ADDR, shm.vaddr) == (Mode.BIND, [1, 2])
        shm.write(PAGE, b"x")
        assert shm.read(0, 13) == b"shared policy" and shm.where() == [2, 2]  # its online part
        switch(four, ns.NodeOnline(node_id=1))  # 0,2-3 -> 0-3: 2, the 2nd, becomes 1 again
        assert task.get_mempolicy() == (Mode.BIND, [1])
        assert task.get_mempolicy(MPOL_F_ADDR, region.vaddr) == (Mode.BIND, [1])
        assert fresh(task, 2) == [1, 1]
        assert private.where() == [2, None]  # no memory_migrate: pages stay where they went
        assert task.get_mempolicy(MPOL_F_ADDR, shm.vaddr) == (Mode.BIND, [1, 2])


def test_an_interleave_is_remapped_and_online_does_not_undo_it(four):
    with numa_emu.attach(0, cluster=four.name) as task:
        task.set_mempolicy("interleave", [1, 3])
        switch(four, ns.NodeOffline(node_id=1))
        # 1 (2nd of 0-3) -> 2 (2nd of 0,2-3); 3 (4th) -> 0 (4th mod 3 = 1st)
        assert task.get_mempolicy() == (Mode.INTERLEAVE, [0, 2])
        assert fresh(task, 4) == [0, 2, 0, 2]
        switch(four, ns.NodeOnline(node_id=1))
        # 0 (1st of 0,2-3) -> 0, 2 (2nd) -> 1: the remap is lossy, as Linux's is
        assert task.get_mempolicy() == (Mode.INTERLEAVE, [0, 1])
        assert fresh(task, 4) == [0, 1, 0, 1]


def test_a_static_bind_keeps_its_mask_and_allocates_on_the_effective_mems_meanwhile(four):
    with numa_emu.attach(0, cluster=four.name) as task:
        task.set_mempolicy("bind", [1], flags=MPOL_F_STATIC_NODES)
        before = task.mmap(PAGE)
        before.write(0, b"static")
        assert before.where() == [1]
        switch(four, ns.NodeOffline(node_id=1))
        # get_mempolicy reports the user's mask; {1} & 0,2-3 is empty, so the policy binds to 0,2-3
        assert task.get_mempolicy() == (Mode.BIND | MPOL_F_STATIC_NODES, [1])
        assert before.where() == [0] and before.read(0, 6) == b"static"  # the nearest of 0,2-3 from cpu 0
        assert fresh(task, 2) == [0, 0]
        switch(four, ns.NodeOnline(node_id=1))
        assert task.get_mempolicy() == (Mode.BIND | MPOL_F_STATIC_NODES, [1])
        assert fresh(task, 2) == [1, 1]


def test_a_program_started_under_numactl_before_the_offline_passes_on_the_rebound_policy(four, cli, monkeypatch):
    """`numactl -m 1 prog` run before node 1 goes: what prog's children inherit (through the
    environment numactl wrote: the policy and the mems it was made against) is rebound too, as a
    forked child gets its parent's rebound policy: `numactl --show` and a task attaching see it."""
    dump = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('NUMA_EMU_POLICY')}))"
    for option, shown in (("--membind=1", ["policy: bind", "membind: 2 "]),
                          ("--interleave=1,3", ["policy: interleave", "interleavemask: 0 2 "])):
        inherited = json.loads(cli("numactl", option, "--", sys.executable, "-c", dump, check=True).stdout)
        assert inherited["NUMA_EMU_POLICY_MEMS"] == "0-3"
        for key, value in inherited.items():
            monkeypatch.setenv(key, value)
        switch(four, ns.NodeOffline(node_id=1))
        lines = cli("numactl", "--show", check=True).stdout.splitlines()
        assert [lines[0], next(x for x in lines if x.startswith(shown[1].split(":")[0]))] == shown
        with numa_emu.attach(0, cluster=four.name) as task:
            assert task.get_mempolicy()[1] == [int(n) for n in shown[1].split(":")[1].split()]
        switch(four, ns.NodeOnline(node_id=1))
        with numa_emu.attach(0, cluster=four.name) as task:  # made against 0-3 and back on 0-3: as numactl set it
            assert task.get_mempolicy()[1] == ([1] if option == "--membind=1" else [1, 3])
