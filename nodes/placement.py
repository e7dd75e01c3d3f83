"""Where a first-touch allocation goes, and which numastat counters it moves.

The node's memory manager calls `place` on a fault to learn which nodes to try and in which
order (it walks `order`, taking the first node with a free frame; an empty walk is ENOMEM),
then `charge` on the node that supplied the frame. `misplaced` answers the lazy-migration
question "should this page move, and where". Pure functions of plain values: no sockets, no
clocks; the zonelists (`fallback_orders[n]`, nearest first) are built elsewhere from the SLIT.

Sources: mm/mempolicy.c (policy_nodemask, interleave_nid, weighted_interleave_nid,
interleave_nodes, weighted_interleave_nodes, alloc_pages_mpol, alloc_pages_preferred_many,
mpol_misplaced), mm/page_alloc.c (prepare_alloc_pages, finalise_ac, zone_statistics),
docs/linux-semantics.md#policies, #numastat-counters and #observed-on-a-real-kernel.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.counters import NUMASTAT_COUNTERS, NUMASTAT_TO_VMSTAT  # noqa: F401  (NUMASTAT_COUNTERS re-exported)
from numa_emu.protocol.policy import MPOL_F_NUMA_BALANCING, Mode, Policy

# The counter names live in protocol (the front ends print them); re-exported for the core.
VMSTAT_NAMES = NUMASTAT_TO_VMSTAT

Increment = tuple[int, str, int]  # (node, counter name, delta in pages)


@dataclass(frozen=True)
class Placement:
    """The nodes one allocation tries, and what numastat judges it against.

    `preferred` is the preferred zone of zone_statistics: the first node of the allocation's
    zonelist that its nodemask allows (the cpuset's mems when the policy has no mask).
    `interleave` marks an interleave pick: landing on `preferred` then also counts
    interleave_hit. PREFERRED_MANY allocates in two passes (alloc_pages_preferred_many): the
    first `first_pass` nodes of `order` are the policy's mask, the rest is the second pass,
    whose preferred zone is `second_preferred`; `preferred_for` picks the right one.
    """

    preferred: int
    order: tuple[int, ...]
    interleave: bool = False
    first_pass: int | None = None
    second_preferred: int | None = None

    def preferred_for(self, supplier: int) -> int:
        """The preferred node the allocation that `supplier` satisfied was judged against."""
        if self.first_pass is None or self.second_preferred is None:
            return self.preferred
        if supplier in self.order[: self.first_pass]:
            return self.preferred
        return self.second_preferred


@dataclass(frozen=True)
class InterleaveCursor:
    """A task's interleave state for its task policy (task_struct il_prev, il_weight).

    `prev` None is the state right after set_mempolicy(2), which sets il_prev to
    MAX_NUMNODES-1 so that the next pick is the lowest node of the mask.
    """

    prev: int | None = None
    weight_left: int = 0


def _ordered(fallback: Sequence[int], keep: Iterable[int]) -> tuple[int, ...]:
    """`fallback` restricted to `keep`, order kept (for_each_zone_zonelist_nodemask)."""
    keep_set = frozenset(keep)
    return tuple(n for n in fallback if n in keep_set)


def _weight(weights: Mapping[int, int] | None, node: int) -> int:
    # get_il_weight: no table or a 0 entry means the system default, 1.
    return (weights or {}).get(node, 1) or 1


def _check_has_nodes(policy: Policy) -> None:
    """make_policy never builds a mask mode without nodes; one from the wire might."""
    if not policy.nodes and policy.mode not in (Mode.DEFAULT, Mode.LOCAL):
        raise NumaEmuError(ErrorCode.EINVAL, f"{policy.mode.name} policy without nodes")


def _interleave_nodes(policy: Policy, allowed: frozenset[int]) -> list[int]:
    """The interleave set in node-id order: the policy's mask within the cpuset, or the bare
    mask when they do not meet (the kernel interleaves over pol->nodes and relies on rebinding
    to keep that inside the cpuset)."""
    return sorted(policy.nodes & allowed) or sorted(policy.nodes)


def interleave_target(
    policy: Policy, index: int, *, allowed: Iterable[int], weights: Mapping[int, int] | None = None
) -> int:
    """interleave_nid / weighted_interleave_nid: the node of interleave slot `index`.

    INTERLEAVE: the (index mod |mask|)-th node. WEIGHTED_INTERLEAVE: node i owns weights[i]
    consecutive slots, nodes in id order (weights [5,2] over {0,1}: slots 0-4 on node 0, 5-6 on
    node 1, then again). For a region (VMA) policy the index is the page offset in the region;
    for the task policy use `next_interleave_index`.
    """
    _check_has_nodes(policy)
    nodes = _interleave_nodes(policy, frozenset(allowed))
    if policy.mode != Mode.WEIGHTED_INTERLEAVE:
        return nodes[index % len(nodes)]
    slot = index % sum(_weight(weights, n) for n in nodes)
    for node in nodes:
        if slot < _weight(weights, node):
            return node
        slot -= _weight(weights, node)
    raise AssertionError("unreachable: slot below the total weight")


def next_interleave_index(
    policy: Policy,
    cursor: InterleaveCursor,
    *,
    allowed: Iterable[int],
    weights: Mapping[int, int] | None = None,
) -> tuple[int, InterleaveCursor]:
    """The interleave index of the task policy's next page, and the task's new cursor.

    interleave_nodes / weighted_interleave_nodes: the next node after the previous one in the
    mask (wrapping); weighted interleave stays on a node for its weight's worth of pages. Pass
    the index to `place`. Reset the cursor to InterleaveCursor() on set_mempolicy(2).
    Non-interleave policies return (0, cursor) unchanged.
    """
    if policy.mode not in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE):
        return 0, cursor
    _check_has_nodes(policy)
    nodes = _interleave_nodes(policy, frozenset(allowed))
    if policy.mode == Mode.WEIGHTED_INTERLEAVE and cursor.weight_left > 0 and cursor.prev in nodes:
        node, left = cursor.prev, cursor.weight_left
    else:
        after = [n for n in nodes if cursor.prev is not None and n > cursor.prev]
        node = after[0] if after else nodes[0]  # next_node_in wraps around
        left = _weight(weights, node)
    if policy.mode == Mode.INTERLEAVE:
        return nodes.index(node), InterleaveCursor(prev=node)
    weight = _weight(weights, node)
    used = min(max(weight - left + 1, 1), weight)  # pages of this turn, this one included
    start = sum(_weight(weights, n) for n in nodes[: nodes.index(node)])
    return start + used - 1, InterleaveCursor(prev=node, weight_left=left - 1)


def place(
    policy: Policy,
    *,
    task_node: int,
    allowed: Iterable[int],
    fallback_orders: Sequence[Sequence[int]],
    interleave_index: int = 0,
    weights: Mapping[int, int] | None = None,
) -> Placement:
    """Which nodes a first touch under `policy` tries, from a CPU on `task_node`, inside the
    cpuset mems `allowed` (alloc_pages_mpol + policy_nodemask + prepare_alloc_pages).

    - DEFAULT, LOCAL: the task node's zonelist within the cpuset.
    - PREFERRED n: n's zonelist within the cpuset (spills along n's order, no error).
    - BIND: the task node's (or home node's) zonelist within mask & cpuset; never spills, an
      exhausted order is ENOMEM. (A mask that misses the cpuset entirely is ignored, as by
      cpuset_nodemask_valid_mems_allowed; rebinding keeps that from happening.)
    - PREFERRED_MANY: first pass the mask in that zonelist, then the rest of the cpuset.
    - (WEIGHTED_)INTERLEAVE: the target node, then its zonelist within the cpuset.

    With cpusets, the preferred zone is the first *allowed* node of the zonelist (the kernel
    substitutes the cpuset mems for a missing nodemask), so a task running outside its mems
    is judged against its nearest allowed node. An empty `order` means no node may supply.
    """
    _check_has_nodes(policy)
    allowed_set = frozenset(allowed)
    mode = policy.mode
    if mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE):
        return _place_interleave(policy, allowed_set, fallback_orders, interleave_index, weights)
    if mode == Mode.PREFERRED:
        start = min(policy.nodes)
        return _simple(_ordered(fallback_orders[start], allowed_set), start)
    home = policy.home_node if policy.home_node is not None else task_node
    if mode == Mode.BIND:
        mask = policy.nodes & allowed_set or allowed_set
        return _simple(_ordered(fallback_orders[home], mask), home)
    if mode == Mode.PREFERRED_MANY:
        return _place_preferred_many(policy, home, allowed_set, fallback_orders)
    return _simple(_ordered(fallback_orders[task_node], allowed_set), task_node)  # DEFAULT, LOCAL


def _simple(order: tuple[int, ...], start: int) -> Placement:
    return Placement(preferred=order[0] if order else start, order=order)


def _place_interleave(
    policy: Policy,
    allowed: frozenset[int],
    fallback_orders: Sequence[Sequence[int]],
    index: int,
    weights: Mapping[int, int] | None,
) -> Placement:
    target = interleave_target(policy, index, allowed=allowed, weights=weights)
    order = _ordered(fallback_orders[target], allowed)
    if target in allowed:
        order = (target,) + tuple(n for n in order if n != target)
        return Placement(preferred=target, order=order, interleave=True)
    # Target outside the cpuset: nothing can land on it, so no interleave_hit is possible.
    return _simple(order, target)


def _place_preferred_many(
    policy: Policy, home: int, allowed: frozenset[int], fallback_orders: Sequence[Sequence[int]]
) -> Placement:
    zonelist = fallback_orders[home]
    first = _ordered(zonelist, policy.nodes & allowed)
    second_all = _ordered(zonelist, allowed)
    rest = tuple(n for n in second_all if n not in first)
    preferred = first[0] if first else (second_all[0] if second_all else home)
    second_preferred = second_all[0] if second_all else home
    return Placement(preferred, first + rest, False, len(first), second_preferred)


def charge(
    counters: dict[int, dict[str, int]] | Callable[[int, str, int], object] | None,
    *,
    supplier: int,
    placement: Placement,
    task_node: int,
    pages: int = 1,
) -> list[Increment]:
    """zone_statistics (mm/page_alloc.c) plus the interleave_hit of alloc_pages_mpol.

    numa_hit on the supplier if it is the preferred node, else numa_miss on the supplier and
    numa_foreign on the preferred node; interleave_hit on the supplier for an interleave pick
    that landed on its target; local_node on the supplier if the allocating CPU is on it, else
    other_node. Returns the increments and applies them to `counters` (a dict node -> name ->
    pages, created as needed, or a callable(node, name, delta)); None only computes them.
    """
    preferred = placement.preferred_for(supplier)
    increments: list[Increment] = []
    if supplier == preferred:
        increments.append((supplier, "numa_hit", pages))
        if placement.interleave:
            increments.append((supplier, "interleave_hit", pages))
    else:
        increments.append((supplier, "numa_miss", pages))
        increments.append((preferred, "numa_foreign", pages))
    increments.append((supplier, "local_node" if supplier == task_node else "other_node", pages))
    for node, name, delta in increments:
        if callable(counters):
            counters(node, name, delta)
        elif counters is not None:
            per_node = counters.setdefault(node, {})
            per_node[name] = per_node.get(name, 0) + delta
    return increments


def misplaced(
    policy: Policy,
    page_node: int,
    *,
    task_node: int,
    allowed: Iterable[int],
    fallback_orders: Sequence[Sequence[int]],
    interleave_index: int = 0,
    weights: Mapping[int, int] | None = None,
) -> int | None:
    """mpol_misplaced: the node the page on `page_node` should move to, or None if it may stay.

    The caller decides whether the range asked for migrate-on-fault (mbind MPOL_MF_LAZY, or
    MPOL_F_NUMA_BALANCING); this only answers where. The target is computed like `place`:
    INTERLEAVE the slot's node; PREFERRED its node unless the page is already there; LOCAL and
    DEFAULT the task's node; BIND / PREFERRED_MANY the first mask node in the task node's
    zonelist unless the page is already in the mask (with NUMA_BALANCING: the task's node if
    it is in the mask). A target outside the cpuset cannot be allocated on, so None.
    """
    _check_has_nodes(policy)
    allowed_set = frozenset(allowed)
    mode = policy.mode
    target: int | None
    if mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE):
        target = interleave_target(policy, interleave_index, allowed=allowed_set, weights=weights)
    elif mode == Mode.PREFERRED:
        target = None if page_node in policy.nodes else min(policy.nodes)
    elif mode in (Mode.BIND, Mode.PREFERRED_MANY):
        if policy.flags & MPOL_F_NUMA_BALANCING:
            target = task_node if task_node in policy.nodes else None
        elif page_node in policy.nodes:
            target = None
        else:
            nearest = _ordered(fallback_orders[task_node], policy.nodes)
            target = nearest[0] if nearest else None
    else:  # DEFAULT, LOCAL
        target = task_node
    if target is None or target == page_node or target not in allowed_set:
        return None
    return target
