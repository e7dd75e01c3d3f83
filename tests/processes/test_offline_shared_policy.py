"""`numa-emu node offline N` places the masters of shared pages by their object's policy
(nodes/offline.py): a file's shared policy, the shm policy set by mbind, the nearest online node
without one; falling back by distance from N. A master bound to N alone refuses the offline with
EBUSY and nothing moved."""
from __future__ import annotations

import pytest

import numa_emu
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.topology_shapes import from_cli

pytestmark = pytest.mark.cluster
PAGE = 4096
# a chain 0-1-2-3: from node 3, node 2 is nearest (20), then 1 (30), then 0 (40)
CHAIN = "10,20,30,40;20,10,20,30;30,20,10,20;40,30,20,10"


def pattern(i: int) -> bytes:
    return bytes((i * 13 + j) % 251 for j in range(PAGE))


def call(c, request):
    with c.client(timeout_s=120) as client:
        return client.call(request)


def used(c) -> dict[int, int]:
    nodes = call(c, tm.ClusterStats()).nodes
    return {int(n): d["frames_total"] - d["frames_free"] for n, d in nodes.items()}


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
