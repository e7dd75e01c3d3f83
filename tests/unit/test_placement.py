"""Unit tests of nodes/placement.py against what a real kernel did
(docs/linux-semantics.md#observed-on-a-real-kernel: Linux 6.1 under QEMU, 4 nodes, SLIT 10 / 16
within {0,1} and {2,3} / 21 across)."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_emu.nodes.placement import (
    NUMASTAT_COUNTERS,
    VMSTAT_NAMES,
    InterleaveCursor,
    Placement,
    charge,
    interleave_target,
    misplaced,
    next_interleave_index,
    place,
)
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import (
    DEFAULT_POLICY,
    MPOL_F_NUMA_BALANCING,
    Mode,
    Policy,
    WeightTable,
    make_policy,
)

# The zonelists the QEMU machine built at boot (build_zonelists / find_next_best_node).
QEMU4 = [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]]
ALL = frozenset(range(4))


def pol(mode: Mode, nodes=(), flags: int = 0, allowed=ALL) -> Policy:
    return make_policy(mode, nodes, flags, allowed=allowed, possible=ALL)


def at(policy: Policy, task_node: int, allowed=ALL, index: int = 0, weights=None) -> Placement:
    return place(policy, task_node=task_node, allowed=allowed, fallback_orders=QEMU4,
                 interleave_index=index, weights=weights)


def fill(placement: Placement, free: dict[int, int]) -> int | None:
    """What the node's allocator does with a placement: first node of the order with room."""
    for node in placement.order:
        if free.get(node, 0) > 0:
            free[node] -= 1
            return node
    return None


# ---- the order of nodes tried -------------------------------------------------------------


@pytest.mark.parametrize("task_node", range(4))
@pytest.mark.parametrize("mode", [Mode.DEFAULT, Mode.LOCAL])
def test_default_and_local_follow_the_task_nodes_zonelist(mode: Mode, task_node: int) -> None:
    p = at(DEFAULT_POLICY if mode == Mode.DEFAULT else pol(Mode.LOCAL), task_node)
    assert p == Placement(preferred=task_node, order=tuple(QEMU4[task_node]))


def test_cpuset_restricts_every_order() -> None:
    p = at(DEFAULT_POLICY, 0, allowed={0, 3})
    assert p == Placement(preferred=0, order=(0, 3))


def test_task_outside_its_mems_is_judged_against_the_nearest_allowed_node() -> None:
    # prepare_alloc_pages substitutes the cpuset mems, finalise_ac takes the first allowed zone
    assert at(DEFAULT_POLICY, 0, allowed={2, 3}) == Placement(preferred=2, order=(2, 3))


def test_bind_fills_the_first_mask_node_of_the_cpus_zonelist() -> None:
    bind23 = pol(Mode.BIND, {2, 3})
    assert at(bind23, 0) == Placement(preferred=2, order=(2, 3))
    assert at(bind23, 1) == Placement(preferred=3, order=(3, 2))
    assert at(bind23, 3).order == (3, 2)


def test_bind_never_spills_outside_the_mask() -> None:
    bind23 = pol(Mode.BIND, {2, 3})
    free = {0: 100, 1: 100, 2: 3, 3: 2}
    got = [fill(at(bind23, 0), free) for _ in range(6)]
    assert got == [2, 2, 2, 3, 3, None]  # None: the caller answers ENOMEM


def test_bind_with_home_node_starts_at_the_home_node() -> None:
    bind = pol(Mode.BIND, {0, 2, 3})
    assert at(bind, 0).order == (0, 2, 3)
    homed = Policy(bind.mode, bind.nodes, home_node=3)
    assert at(homed, 0) == Placement(preferred=3, order=(3, 2, 0))


def test_preferred_spills_along_the_preferred_nodes_order() -> None:
    p = at(pol(Mode.PREFERRED, {1}), 2)
    assert p == Placement(preferred=1, order=(1, 0, 3, 2))
    free = {0: 1, 1: 2, 2: 5, 3: 1}
    assert [fill(p, free) for _ in range(6)] == [1, 1, 0, 3, 2, 2]


def test_preferred_outside_the_cpuset_starts_at_its_nearest_allowed_node() -> None:
    # mpol_rebind_preferred keeps the node; the allocator walks its zonelist inside the mems
    p = at(Policy(Mode.PREFERRED, frozenset({1})), 1, allowed={2, 3})
    assert p == Placement(preferred=3, order=(3, 2))


def test_preferred_many_two_passes() -> None:
    pm = pol(Mode.PREFERRED_MANY, {2, 3})
    from0 = at(pm, 0)
    assert from0 == Placement(preferred=2, order=(2, 3, 0, 1), first_pass=2, second_preferred=0)
    assert at(pm, 1).order == (3, 2, 1, 0)
    free = {0: 5, 1: 5, 2: 1, 3: 1}
    assert [fill(from0, free) for _ in range(4)] == [2, 3, 0, 0]


def test_interleave_picks_the_slot_node_then_its_zonelist() -> None:
    il = pol(Mode.INTERLEAVE, ALL)
    assert [at(il, 0, index=i).preferred for i in range(6)] == [0, 1, 2, 3, 0, 1]
    assert at(il, 0, index=2) == Placement(preferred=2, order=(2, 3, 0, 1), interleave=True)
    assert at(pol(Mode.INTERLEAVE, {1, 3}), 0, index=1).order == (3, 2, 1, 0)


def test_interleave_over_all_nodes_splits_exactly_evenly() -> None:
    il = pol(Mode.INTERLEAVE, ALL)
    counters: dict[int, dict[str, int]] = {}
    landed = Counter()
    for index in range(16384):
        p = at(il, 0, index=index)
        landed[p.order[0]] += 1
        charge(counters, supplier=p.order[0], placement=p, task_node=0)
    assert landed == {0: 4096, 1: 4096, 2: 4096, 3: 4096}
    for node in range(4):
        assert counters[node]["numa_hit"] == counters[node]["interleave_hit"] == 4096
        assert counters[node].get("numa_miss", 0) == 0
    assert counters[0]["local_node"] == 4096 and counters[1]["other_node"] == 4096


def test_weighted_interleave_5_to_2() -> None:
    wil = pol(Mode.WEIGHTED_INTERLEAVE, {0, 1})
    weights = {0: 5, 1: 2}
    assert [at(wil, 0, index=i, weights=weights).preferred for i in range(9)] == [0, 0, 0, 0, 0, 1, 1, 0, 0]
    landed = Counter(at(wil, 3, index=i, weights=weights).preferred for i in range(7000))
    assert landed == {0: 5000, 1: 2000}
    assert at(wil, 0, index=5, weights=weights).interleave


def test_weighted_interleave_takes_a_weight_table_and_defaults_to_one() -> None:
    wil = pol(Mode.WEIGHTED_INTERLEAVE, {1, 2, 3})
    table = WeightTable(range(4), {2: 3})
    assert [interleave_target(wil, i, allowed=ALL, weights=table) for i in range(6)] == [1, 2, 2, 2, 3, 1]
    assert [interleave_target(wil, i, allowed=ALL) for i in range(4)] == [1, 2, 3, 1]


def test_interleave_uses_only_nodes_inside_the_cpuset() -> None:
    il = Policy(Mode.INTERLEAVE, ALL)
    assert [at(il, 0, allowed={1, 2}, index=i).preferred for i in range(4)] == [1, 2, 1, 2]
    # a mask that misses the cpuset (not rebound): pages go to the nearest allowed node
    stale = at(Policy(Mode.INTERLEAVE, frozenset({0})), 0, allowed={2, 3})
    assert stale == Placement(preferred=2, order=(2, 3))


@pytest.mark.parametrize("mode", [Mode.PREFERRED, Mode.BIND, Mode.INTERLEAVE, Mode.PREFERRED_MANY,
                                  Mode.WEIGHTED_INTERLEAVE])
def test_a_mask_mode_without_nodes_is_einval(mode: Mode) -> None:
    bad = Policy(mode)  # make_policy never builds this; a peer might send it
    with pytest.raises(NumaEmuError) as info:
        at(bad, 0)
    assert info.value.code == ErrorCode.EINVAL
    with pytest.raises(NumaEmuError):
        misplaced(bad, 0, task_node=0, allowed=ALL, fallback_orders=QEMU4)
    if mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE):
        with pytest.raises(NumaEmuError):
            next_interleave_index(bad, InterleaveCursor(), allowed=ALL)


# ---- the task-policy interleave counter (il_prev, il_weight) -------------------------------


def run_cursor(policy: Policy, n: int, allowed=ALL, weights=None) -> list[int]:
    cursor, nodes = InterleaveCursor(), []
    for _ in range(n):
        index, cursor = next_interleave_index(policy, cursor, allowed=allowed, weights=weights)
        nodes.append(at(policy, 0, allowed=allowed, index=index, weights=weights).preferred)
    return nodes


def test_task_interleave_starts_at_the_lowest_node_and_cycles() -> None:
    assert run_cursor(pol(Mode.INTERLEAVE, {1, 3}), 5) == [1, 3, 1, 3, 1]


def test_task_weighted_interleave_stays_for_its_weight() -> None:
    assert run_cursor(pol(Mode.WEIGHTED_INTERLEAVE, {0, 1}), 9, weights={0: 5, 1: 2}) == [0] * 5 + [1] * 2 + [0] * 2


def test_task_interleave_after_a_rebind_continues_after_the_previous_node() -> None:
    cursor = InterleaveCursor(prev=1)
    index, cursor = next_interleave_index(Policy(Mode.INTERLEAVE, frozenset({0, 2, 3})), cursor, allowed=ALL)
    assert (index, cursor) == (1, InterleaveCursor(prev=2))


def test_next_interleave_index_ignores_other_modes() -> None:
    cursor = InterleaveCursor(prev=2, weight_left=1)
    assert next_interleave_index(pol(Mode.BIND, {1}), cursor, allowed=ALL) == (0, cursor)


# ---- numastat charging (zone_statistics) ---------------------------------------------------


def test_counter_names() -> None:
    assert NUMASTAT_COUNTERS == ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node")
    assert VMSTAT_NAMES["interleave_hit"] == "numa_interleave" and VMSTAT_NAMES["other_node"] == "numa_other"


def test_charge_local_hit() -> None:
    p = at(DEFAULT_POLICY, 1)
    assert charge(None, supplier=1, placement=p, task_node=1) == [(1, "numa_hit", 1), (1, "local_node", 1)]


def test_charge_spill_is_a_miss_on_the_supplier_and_foreign_on_the_preferred() -> None:
    p = at(pol(Mode.PREFERRED, {1}), 1)
    assert charge(None, supplier=0, placement=p, task_node=1, pages=3) == [
        (0, "numa_miss", 3), (1, "numa_foreign", 3), (0, "other_node", 3)]


def test_charge_preferred_remote_hit_is_other_node() -> None:
    p = at(pol(Mode.PREFERRED, {3}), 0)
    assert charge(None, supplier=3, placement=p, task_node=0) == [(3, "numa_hit", 1), (3, "other_node", 1)]


def test_charge_interleave_miss_gets_no_interleave_hit() -> None:
    p = at(pol(Mode.INTERLEAVE, ALL), 0, index=2)
    assert charge(None, supplier=3, placement=p, task_node=0) == [
        (3, "numa_miss", 1), (2, "numa_foreign", 1), (3, "other_node", 1)]


def test_charge_preferred_many_second_pass_is_judged_against_the_local_node() -> None:
    p = at(pol(Mode.PREFERRED_MANY, {2, 3}), 0)
    assert charge(None, supplier=3, placement=p, task_node=0) == [
        (3, "numa_miss", 1), (2, "numa_foreign", 1), (3, "other_node", 1)]
    assert charge(None, supplier=0, placement=p, task_node=0) == [(0, "numa_hit", 1), (0, "local_node", 1)]
    assert charge(None, supplier=1, placement=p, task_node=0) == [
        (1, "numa_miss", 1), (0, "numa_foreign", 1), (1, "other_node", 1)]


def test_charge_applies_to_a_dict_or_a_callable() -> None:
    p = at(pol(Mode.PREFERRED, {1}), 0)
    counters: dict[int, dict[str, int]] = {1: {"numa_hit": 7}}
    charge(counters, supplier=1, placement=p, task_node=0)
    charge(counters, supplier=0, placement=p, task_node=0)
    assert counters == {1: {"numa_hit": 8, "other_node": 1, "numa_foreign": 1},
                        0: {"numa_miss": 1, "local_node": 1}}
    seen: list[tuple[int, str, int]] = []
    charge(lambda *inc: seen.append(inc), supplier=1, placement=p, task_node=0)
    assert seen == [(1, "numa_hit", 1), (1, "other_node", 1)]


policy_strategy = st.one_of(
    st.just(DEFAULT_POLICY),
    st.just(Policy(Mode.LOCAL)),
    st.builds(lambda n: Policy(Mode.PREFERRED, frozenset({n})), st.integers(0, 3)),
    st.builds(lambda m, ns: Policy(m, ns),
              st.sampled_from([Mode.BIND, Mode.INTERLEAVE, Mode.PREFERRED_MANY, Mode.WEIGHTED_INTERLEAVE]),
              st.frozensets(st.integers(0, 3), min_size=1)),
)
allocation = st.tuples(policy_strategy, st.integers(0, 3), st.integers(0, 10**6),
                       st.frozensets(st.integers(0, 3), min_size=1), st.integers(0, 3), st.integers(1, 512))


@given(st.lists(allocation, max_size=60), st.dictionaries(st.integers(0, 3), st.integers(1, 9)))
def test_charge_invariants(allocations, weights) -> None:
    """docs/linux-semantics.md#numastat-counters / docs/protocol.md#invariants (4), over any sequence
    of allocations."""
    counters: dict[int, dict[str, int]] = {}
    for policy, task_node, index, allowed, pick, pages in allocations:
        p = place(policy, task_node=task_node, allowed=allowed, fallback_orders=QEMU4,
                  interleave_index=index, weights=weights)
        assert p.order and set(p.order) <= allowed and len(set(p.order)) == len(p.order)
        supplier = p.order[pick % len(p.order)]
        charge(counters, supplier=supplier, placement=p, task_node=task_node, pages=pages)

    def total(name: str) -> int:
        return sum(c.get(name, 0) for c in counters.values())

    assert total("numa_miss") == total("numa_foreign")
    assert total("interleave_hit") <= total("numa_hit")
    for c in counters.values():
        assert c.get("numa_hit", 0) + c.get("numa_miss", 0) == c.get("local_node", 0) + c.get("other_node", 0)


@given(policy_strategy, st.integers(0, 3), st.integers(0, 10**6), st.frozensets(st.integers(0, 3), min_size=1))
def test_placement_respects_policy(policy, task_node, index, allowed) -> None:
    p = place(policy, task_node=task_node, allowed=allowed, fallback_orders=QEMU4, interleave_index=index)
    assert p.preferred in p.order
    if policy.mode == Mode.BIND and policy.nodes & allowed:
        assert set(p.order) == policy.nodes & allowed
    if policy.mode in (Mode.PREFERRED_MANY, Mode.PREFERRED, Mode.DEFAULT, Mode.LOCAL):
        assert set(p.order) == allowed


# ---- misplaced (mpol_misplaced) --------------------------------------------------------------


def where(policy: Policy, page_node: int, task_node: int = 0, allowed=ALL, index: int = 0) -> int | None:
    return misplaced(policy, page_node, task_node=task_node, allowed=allowed, fallback_orders=QEMU4,
                     interleave_index=index)


def test_misplaced_default_and_local_pull_to_the_task_node() -> None:
    assert where(DEFAULT_POLICY, 2, task_node=0) == 0
    assert where(Policy(Mode.LOCAL), 1, task_node=1) is None
    assert where(DEFAULT_POLICY, 2, task_node=0, allowed={2, 3}) is None  # 0 is outside the cpuset


def test_misplaced_preferred() -> None:
    assert where(pol(Mode.PREFERRED, {1}), 1) is None
    assert where(pol(Mode.PREFERRED, {1}), 3) == 1


def test_misplaced_bind_and_preferred_many_move_into_the_nearest_mask_node() -> None:
    for mode in (Mode.BIND, Mode.PREFERRED_MANY):
        assert where(pol(mode, {2, 3}), 2) is None
        assert where(pol(mode, {2, 3}), 0, task_node=1) == 3
        assert where(pol(mode, {2, 3}), 1, task_node=0) == 2


def test_misplaced_bind_with_numa_balancing_follows_the_task() -> None:
    bal = pol(Mode.BIND, {0, 1}, MPOL_F_NUMA_BALANCING)
    assert where(bal, 0, task_node=1) == 1
    assert where(bal, 0, task_node=2) is None


def test_misplaced_interleave_uses_the_slot() -> None:
    il = pol(Mode.INTERLEAVE, ALL)
    assert where(il, 1, index=1) is None
    assert where(il, 1, index=6) == 2
