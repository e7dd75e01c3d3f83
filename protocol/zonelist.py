"""The fallback order of each node: the node part of the zonelists Linux builds at boot.

Part of ``protocol/``: when a node cannot give a page (full, or outside a bind mask), the
allocation falls back along this list, and a multi-node bind or preferred-many fills the
first allowed node of the allocating CPU's list (docs/linux-semantics.md#observed-on-a-real-kernel).
The coordinator and every node compute it from the SLIT with the same pure function, so
they agree without a message.

This reproduces Linux 6.1 ``mm/page_alloc.c`` (same code since v5.16, when node_load
became an accumulated count):

- ``__build_all_zonelists`` zeroes ``node_load[]`` once, then calls ``build_zonelists``
  for every node in id order, so the loads left by node 0's list bias node 1's, and so on.
  That is why only :func:`fallback_orders` (all nodes at once) is authoritative.
- ``build_zonelists(local)`` calls ``find_next_best_node`` until it returns none; each
  time the distance changes from the previous pick (the first node of a new distance
  group), it does ``node_load[node] += 1``, so the next node's list starts that group
  with a different, less loaded node.
- ``find_next_best_node(local)`` returns ``local`` first (it has memory), then the unused
  node with the smallest ``val * MAX_NUMNODES + node_load[n]``, where
  ``val = distance(local, n) + (n < local) + (1 if n has CPUs)``
  (``PENALTY_FOR_NODE_WITH_CPUS`` = 1: CPU-less nodes win ties), and the lowest id wins
  an exact tie (strict ``<`` while scanning upward). Since ``node_load[n]`` never reaches
  MAX_NUMNODES, this is the lexicographic order of (val, node_load[n], n) used below.
- Unreachable nodes (SLIT 255) are not skipped: they come last, as any far node would.
  Memory-only nodes (no CPUs) get their own list like every node; a topology here never
  has a memoryless node (validation requires memory on every node).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

PENALTY_FOR_NODE_WITH_CPUS = 1  # mm/page_alloc.c


def _inputs(distances: Any, cpuless_nodes: Collection[int] | None) -> tuple[Sequence[Sequence[int]], frozenset[int]]:
    """Accept a Topology (its SLIT and its CPU-less nodes) or a bare distance matrix."""
    if hasattr(distances, "distances") and hasattr(distances, "nodes"):
        topology = distances
        if cpuless_nodes is None:
            cpuless_nodes = [node.id for node in topology.nodes if not node.cpus]
        distances = topology.distances
    return distances, frozenset(cpuless_nodes or ())


def _find_next_best_node(local: int, used: set[int], distances: Sequence[Sequence[int]],
                         cpuless: frozenset[int], node_load: list[int]) -> int | None:
    if local not in used:
        used.add(local)
        return local
    best: int | None = None
    best_key: tuple[int, int] | None = None
    for n in range(len(distances)):
        if n in used:
            continue
        val = distances[local][n] + (1 if n < local else 0)
        if n not in cpuless:
            val += PENALTY_FOR_NODE_WITH_CPUS
        key = (val, node_load[n])
        if best_key is None or key < best_key:
            best, best_key = n, key
    if best is not None:
        used.add(best)
    return best


def fallback_orders(distances: Any, *, cpuless_nodes: Collection[int] | None = None) -> list[list[int]]:
    """Every node's fallback order, built as Linux's ``build_all_zonelists`` does at boot.

    ``distances`` is a SLIT (N x N) or a :class:`~protocol.topology.Topology`; with a bare
    matrix, pass the nodes without CPUs in ``cpuless_nodes`` (they get a tie-break
    advantage in the kernel), otherwise every node is assumed to have CPUs.
    """
    matrix, cpuless = _inputs(distances, cpuless_nodes)
    node_load = [0] * len(matrix)
    orders: list[list[int]] = []
    for local in range(len(matrix)):
        used: set[int] = set()
        order: list[int] = []
        prev = local
        while (node := _find_next_best_node(local, used, matrix, cpuless, node_load)) is not None:
            if matrix[local][node] != matrix[local][prev]:
                node_load[node] += 1
            order.append(node)
            prev = node
        orders.append(order)
    return orders


def fallback_order(distances: Any, node: int, *, cpuless_nodes: Collection[int] | None = None) -> list[int]:
    """``node``'s fallback order: ``fallback_orders(distances)[node]`` (never computed alone,
    because the kernel's node_load carries over from the lists of lower-numbered nodes)."""
    orders = fallback_orders(distances, cpuless_nodes=cpuless_nodes)
    if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < len(orders):
        raise NumaEmuError(ErrorCode.EINVAL, f"no node {node!r} (nodes 0-{len(orders) - 1})")
    return orders[node]
