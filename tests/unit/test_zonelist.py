"""Fallback orders (protocol/zonelist.py) against Linux's build_zonelists.

Notation for the hand derivations: the kernel picks, after the local node, the unused node
with the smallest key (val, load) where val = d(local, n) + [n < local] + [n has CPUs]
and load = node_load[n]; the lowest id wins a full tie. Whenever the distance changes
from the previous pick, the picked node's load goes up by one, and loads carry over from
node to node (they are reset only once, before node 0).
"""
from __future__ import annotations

from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.topology import build_shape, load_topology
from numa_emu.protocol.zonelist import fallback_order, fallback_orders

OBSERVED_SLIT = [[10, 16, 21, 21], [16, 10, 21, 21], [21, 21, 10, 16], [21, 21, 16, 10]]


def shipped(name: str):
    return load_topology(resources.files("numa_emu.topologies") / f"{name}.toml")


def test_observed_on_a_real_kernel():
    # docs/linux-semantics.md#observed-on-a-real-kernel: Linux 6.1 under QEMU 7.2, SLIT 10/16/21.
    assert fallback_orders(OBSERVED_SLIT) == [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]]
    assert fallback_orders(shipped("default-4n")) == fallback_orders(OBSERVED_SLIT)
    assert fallback_order(OBSERVED_SLIT, 3) == [3, 2, 1, 0]


def test_flat_four_nodes():
    # All remote distances 20, every node with CPUs, so val = 21 + [n < local].
    # node 0: 0; 1, 2, 3 all (21, 0) -> 1 (lowest id; new distance: load[1] = 1); 2; 3.
    # node 1: 1; 2 (21, 0), 3 (21, 0), 0 (22, 0) -> 2 (load[2] = 1); 3; 0.
    # node 2: 2; 3 (21, 0) beats 0 and 1 (22) -> 3 (load[3] = 1); 0 (22, 0) beats 1 (22, 1); 1.
    # node 3: 3; 0 (22, 0) beats 1 (22, 1) and 2 (22, 1) -> 0 (load[0] = 1); 1; 2.
    flat = [[10 if i == j else 20 for j in range(4)] for i in range(4)]
    assert fallback_orders(flat) == [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]
    assert fallback_orders(build_shape("full,4")) == fallback_orders(flat)


EPYC_EXPECTED = [
    [0, 1, 2, 3, 4, 5, 6, 7],
    [1, 0, 3, 2, 5, 6, 7, 4],
    [2, 3, 0, 1, 6, 7, 4, 5],
    [3, 2, 1, 0, 7, 4, 5, 6],
    [4, 5, 6, 7, 0, 1, 2, 3],
    [5, 4, 7, 6, 1, 2, 3, 0],
    [6, 7, 4, 5, 2, 3, 0, 1],
    [7, 6, 5, 4, 3, 0, 1, 2],
]


def test_epyc_nps4():
    # SLIT: 10 local, 11 to the sibling (0-1, 2-3, 4-5, 6-7), 12 to the other two nodes of the
    # socket, 32 across sockets. Every node has CPUs (+1 for all). Loads start at 0.
    # node 0: 0; 1 (12) -> load[1]=1; 2, 3 (13, 0) -> 2 (lowest) load[2]=1; 3;
    #         4..7 (33, 0) -> 4 load[4]=1; 5; 6; 7.                 loads: 1:1 2:1 4:1
    # node 1: 1; 0 (11+1+1=13, 0), 2 (13, 1), 3 (13, 0) -> 0 load[0]=1; 3 (13, 0) beats 2 (13, 1)
    #         and is a new distance (12 after 11) -> load[3]=1; 2; 4 (33, 1) loses to 5 (33, 0)
    #         -> 5 load[5]=1; 6 (33, 0); 7 (33, 0); 4.               loads: 0..5 = 1
    # node 2: 2; 3 (12, 1) beats 0, 1 (14) -> load[3]=2; 0 (14, 1) ties 1 (14, 1) -> 0 load[0]=2;
    #         1; 6 (33, 0) beats 4, 5 (33, 1) and 7 (33, 0, higher id) -> 6 load[6]=1;
    #         7 (33, 0); 4 (33, 1) ties 5 -> 4; 5.
    # node 3: 3; 2 (13, 1) -> load[2]=2; 1 (14, 1) beats 0 (14, 2) -> load[1]=2; 0;
    #         7 (33, 0) beats 4, 5, 6 (33, 1) -> load[7]=1; 4; 5; 6.
    # nodes 4-7 mirror 0-3 with the sockets swapped, the loads of 0-7 by then making node 4
    # start its remote group with 0, node 5 with 1, node 6 with 2, node 7 with 3.
    topo = shipped("2s-epyc-nps4")
    assert fallback_orders(topo) == EPYC_EXPECTED
    assert fallback_orders([list(row) for row in topo.distances]) == EPYC_EXPECTED


def test_memory_only_nodes_win_ties():
    # A CPU-less node skips PENALTY_FOR_NODE_WITH_CPUS: at equal distance it comes first.
    slit = [[10, 20, 20], [20, 10, 20], [20, 20, 10]]
    assert fallback_orders(slit)[0] == [0, 1, 2]
    assert fallback_orders(slit, cpuless_nodes={2})[0] == [0, 2, 1]


def test_cxl_expander_unreachable_row_still_falls_back():
    # Node 2 (CXL, no CPUs) has SLIT row 255 255 10: the kernel does not skip unreachable
    # nodes, they just sort last; 0 and 1 both get val 255 + 1 + 1, 0 wins on id.
    assert fallback_orders(shipped("cxl-expander")) == [[0, 1, 2], [1, 0, 2], [2, 0, 1]]


def test_clx_pmem_reaches_own_pmem_first():
    # DRAM node s: own PMEM (17, no CPUs: val 17) before any remote DRAM (21 + ... >= 22).
    orders = fallback_orders(shipped("4s-clx-pmem"))
    assert orders[:4] == [[0, 4, 1, 3, 5, 7, 2, 6], [1, 5, 2, 0, 4, 6, 3, 7],
                          [2, 6, 3, 1, 7, 5, 0, 4], [3, 7, 0, 2, 6, 4, 1, 5]]
    assert orders[4][:2] == [4, 0]


def test_fallback_order_refuses_unknown_nodes():
    for bad in (4, -1, "0"):
        with pytest.raises(NumaEmuError):
            fallback_order(OBSERVED_SLIT, bad)


def test_single_node():
    assert fallback_orders([[10]]) == [[0]]


@st.composite
def slits(draw, step: int = 1):
    n = draw(st.integers(min_value=1, max_value=8))
    cells = st.integers(min_value=2, max_value=25).map(lambda k: k * step) if step > 1 else st.integers(10, 255)
    return [[10 if i == j else draw(cells) for j in range(n)] for i in range(n)]


@given(slits())
def test_every_order_is_a_permutation_starting_at_home(matrix):
    for node, order in enumerate(fallback_orders(matrix)):
        assert order[0] == node and sorted(order) == list(range(len(matrix)))


@given(slits(step=10))
def test_orders_follow_distance_when_penalties_cannot_reorder(matrix):
    # Penalties and loads only break ties within 1-2 units: with distances 10 apart the
    # list is sorted by distance.
    for node, order in enumerate(fallback_orders(matrix)):
        dist = [matrix[node][n] for n in order]
        assert dist == sorted(dist)
