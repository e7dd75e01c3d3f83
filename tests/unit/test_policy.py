"""Unit tests of protocol/policy.py: Linux policy validation, rebinding and text forms."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.policy import (
    DEFAULT_POLICY,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_MF_LAZY,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_MF_VALID,
    Mode,
    Policy,
    WeightTable,
    make_policy,
    node_remap,
    nodes_fold,
    nodes_onto,
    nodes_remap,
    numactl_policy_name,
    parse_mode_name,
    policy_to_str,
    rebind,
    relative_nodes,
    split_mode,
    with_home_node,
)

ALL8 = frozenset(range(8))
STATIC, RELATIVE, BALANCING = MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES, MPOL_F_NUMA_BALANCING
MASK_MODES = [Mode.BIND, Mode.INTERLEAVE, Mode.PREFERRED_MANY, Mode.WEIGHTED_INTERLEAVE]


def make(mode, nodes, flags=0, *, allowed=ALL8, possible=ALL8, strict=False) -> Policy:
    return make_policy(mode, nodes, flags, allowed=allowed, possible=possible, strict=strict)


def assert_einval(mode, nodes, flags=0, **kw) -> None:
    with pytest.raises(NumaEmuError) as info:
        make(mode, nodes, flags, **kw)
    assert info.value.code == ErrorCode.EINVAL


# ---- numbers (include/uapi/linux/mempolicy.h) ---------------------------------------------


def test_uapi_numbers() -> None:
    assert [int(m) for m in Mode] == list(range(7))
    assert Mode.PREFERRED_MANY == 5 and Mode.WEIGHTED_INTERLEAVE == 6
    assert (STATIC, RELATIVE, BALANCING) == (32768, 16384, 8192)
    assert (MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_LAZY) == (1, 2, 4, 8)
    assert MPOL_MF_VALID == 7
    assert (MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED) == (1, 2, 4)


def test_split_mode_like_sanitize_mpol_flags() -> None:
    assert split_mode(Mode.BIND | STATIC) == (2, STATIC)
    assert split_mode(Mode.INTERLEAVE, RELATIVE) == (3, RELATIVE)


# ---- docs/linux-semantics.md#policies: every error case is EINVAL --------------------------------


def test_default_with_nodes_is_einval() -> None:
    assert_einval(Mode.DEFAULT, {0})


def test_default_with_empty_mask_is_the_default_policy() -> None:
    assert make(Mode.DEFAULT, ()) == DEFAULT_POLICY == Policy()


def test_preferred_with_empty_mask_becomes_local() -> None:
    assert make(Mode.PREFERRED, ()) == Policy(Mode.LOCAL)


@pytest.mark.parametrize("flag", [STATIC, RELATIVE])
def test_preferred_empty_with_static_or_relative_is_einval(flag: int) -> None:
    assert_einval(Mode.PREFERRED, (), flag)


def test_local_with_nodes_is_einval() -> None:
    assert_einval(Mode.LOCAL, {1})


@pytest.mark.parametrize("flag", [STATIC, RELATIVE])
def test_local_with_static_or_relative_is_einval(flag: int) -> None:
    assert_einval(Mode.LOCAL, (), flag)


def test_local_alone_is_fine() -> None:
    assert make(Mode.LOCAL, ()) == Policy(Mode.LOCAL)


@pytest.mark.parametrize("mode", MASK_MODES)
def test_other_modes_with_empty_mask_are_einval(mode: Mode) -> None:
    assert_einval(mode, ())


@pytest.mark.parametrize("mode", list(Mode))
def test_static_and_relative_together_are_einval(mode: Mode) -> None:
    assert_einval(mode, {0} if mode not in (Mode.DEFAULT, Mode.LOCAL) else (), STATIC | RELATIVE)


@pytest.mark.parametrize("mode", [7, 8, -1, 1 << 12])
def test_unknown_mode_is_einval(mode: int) -> None:
    assert_einval(mode, {0})


@pytest.mark.parametrize("flags", [1 << 12, 1, 1 << 16])
def test_unknown_flag_bits_are_einval(flags: int) -> None:
    assert_einval(Mode.BIND, {0}, flags)


def test_node_that_does_not_exist_is_einval() -> None:
    assert_einval(Mode.BIND, {0, 4}, possible={0, 1, 2, 3}, allowed={0, 1, 2, 3})
    assert_einval(Mode.BIND, {-1}, possible={0, 1})


@pytest.mark.parametrize("mode", [Mode.INTERLEAVE, Mode.PREFERRED, Mode.WEIGHTED_INTERLEAVE])
def test_numa_balancing_outside_bind_and_preferred_many_is_einval(mode: Mode) -> None:
    assert_einval(mode, {0}, BALANCING)


@pytest.mark.parametrize("mode", [Mode.BIND, Mode.PREFERRED_MANY])
def test_numa_balancing_with_bind_or_preferred_many(mode: Mode) -> None:
    assert make(mode, {0, 1}, BALANCING).flags == BALANCING


def test_numa_balancing_in_the_mode_argument() -> None:
    assert make(Mode.BIND | BALANCING, {1}).flags == BALANCING


# ---- contextualisation to the cpuset (mpol_set_nodemask) ----------------------------------


def test_nodes_outside_the_cpuset_are_dropped() -> None:
    pol = make(Mode.BIND, {0, 1, 5}, allowed={0, 1, 2})
    assert pol.nodes == {0, 1} and pol.user_nodes == frozenset()


def test_no_node_inside_the_cpuset_is_einval() -> None:
    assert_einval(Mode.INTERLEAVE, {4, 5}, allowed={0, 1})


def test_strict_refuses_any_node_outside_the_cpuset() -> None:
    assert_einval(Mode.BIND, {0, 5}, allowed={0, 1}, strict=True)
    assert make(Mode.BIND, {0, 1}, allowed={0, 1}, strict=True).nodes == {0, 1}


def test_strict_does_not_apply_to_relative_positions() -> None:
    pol = make(Mode.INTERLEAVE, {0, 1}, RELATIVE, allowed={4, 5}, strict=True)
    assert pol.nodes == {4, 5}


def test_preferred_keeps_the_first_allowed_node() -> None:
    assert make(Mode.PREFERRED, {2, 3}).nodes == {2}
    assert make(Mode.PREFERRED, {0, 3}, allowed={1, 3}).nodes == {3}


def test_static_keeps_the_user_mask() -> None:
    pol = make(Mode.BIND, {1, 2, 6}, STATIC, allowed={0, 1, 2, 3})
    assert (pol.nodes, pol.user_nodes, pol.reported_nodes) == ({1, 2}, {1, 2, 6}, {1, 2, 6})


def test_relative_folds_onto_the_cpuset() -> None:
    pol = make(Mode.INTERLEAVE, {0, 1}, RELATIVE, allowed={2, 3, 4, 5})
    assert (pol.nodes, pol.user_nodes) == ({2, 3}, {0, 1})
    # {0,2,5} mod 3 = {0,2}: the 0th and 2nd node of {4,6,7}
    assert make(Mode.INTERLEAVE, {0, 2, 5}, RELATIVE, allowed={4, 6, 7}).nodes == {4, 7}


def test_home_node() -> None:
    pol = with_home_node(make(Mode.BIND, {2, 3}), 3, possible=ALL8)
    assert pol.home_node == 3
    with pytest.raises(NumaEmuError):
        with_home_node(make(Mode.INTERLEAVE, {2, 3}), 3, possible=ALL8)
    with pytest.raises(NumaEmuError):
        with_home_node(pol, 9, possible=ALL8)


# ---- kernel bitmap helpers (lib/bitmap.c examples) ----------------------------------------


def test_nodes_remap_bitmap_c_example() -> None:
    # old 4-7, new 12-15: 4->12 ... 7->15, others unchanged; {1,5,7} -> {1,13,15}
    assert nodes_remap({1, 5, 7}, range(4, 8), range(12, 16)) == {1, 13, 15}


def test_nodes_remap_wraps_when_new_is_smaller() -> None:
    assert nodes_remap({0, 1, 2, 3}, {0, 1, 2, 3}, {6, 7}) == {6, 7}
    assert node_remap(2, {0, 1, 2, 3}, {6, 7}) == 6
    assert nodes_remap({3}, set(), {1}) == {3}


def test_nodes_onto_bitmap_c_example() -> None:
    # relmap 30-39, orig {1,3,5,7,9,11}: 11 is past the 10 nodes of relmap and dropped
    assert nodes_onto({1, 3, 5, 7, 9, 11}, range(30, 40)) == {31, 33, 35, 37, 39}


def test_nodes_fold() -> None:
    assert nodes_fold({1, 5, 9}, 4) == {1}
    assert nodes_fold({0, 7}, 3) == {0, 1}
    assert nodes_fold({1}, 0) == frozenset()


# ---- rebinding (docs/linux-semantics.md#rebinding; Documentation/admin-guide/mm/numa_memory_policy.rst) ---


def test_rebind_default_remaps() -> None:
    pol = make(Mode.INTERLEAVE, {1, 2, 3}, allowed={1, 2, 3})
    assert rebind(pol, {3, 4, 5}, {1, 2, 3}).nodes == {3, 4, 5}


def test_rebind_static_intersects() -> None:
    pol = make(Mode.INTERLEAVE, {1, 2, 3}, STATIC, allowed={1, 2, 3})
    assert rebind(pol, {3, 4, 5}, {1, 2, 3}).nodes == {3}


def test_rebind_relative_doc_example() -> None:
    pol = make(Mode.INTERLEAVE, {2, 3, 4, 5}, RELATIVE, allowed={2, 3, 4, 5})
    assert pol.nodes == {2, 3, 4, 5}
    moved = rebind(pol, {3, 4, 5, 6, 7}, {2, 3, 4, 5})
    assert moved.nodes == {3, 5, 6, 7}
    assert rebind(moved, {0, 2, 3, 5}, {3, 4, 5, 6, 7}).nodes == {0, 2, 3, 5}


def test_rebind_static_without_overlap_takes_the_new_mems() -> None:
    # mpol_rebind_nodemask: an empty result becomes the new allowed set
    pol = make(Mode.BIND, {1}, STATIC, allowed={0, 1})
    assert rebind(pol, {2, 3}, {0, 1}).nodes == {2, 3}
    assert rebind(rebind(pol, {2, 3}, {0, 1}), {0, 1}, {2, 3}).nodes == {1}


def test_rebind_keeps_preferred_local_and_default() -> None:
    for pol in (make(Mode.PREFERRED, {1}), make(Mode.PREFERRED_MANY, {1, 2}), Policy(Mode.LOCAL), DEFAULT_POLICY):
        assert rebind(pol, {4, 5}, ALL8) == pol


def test_rebind_same_mems_is_a_no_op() -> None:
    pol = make(Mode.BIND, {1, 2}, allowed={0, 1, 2})
    assert rebind(pol, {0, 1, 2}, {0, 1, 2}) is pol


node_sets = st.frozensets(st.integers(0, 15), min_size=1, max_size=16)


@given(user=node_sets, old=node_sets, new=node_sets, flag=st.sampled_from([0, STATIC, RELATIVE]),
       mode=st.sampled_from([Mode.BIND, Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE]))
def test_rebind_stays_inside_the_new_mems(user, old, new, flag, mode) -> None:
    try:
        pol = make(mode, user, flag, allowed=old, possible=range(16))
    except NumaEmuError:
        return  # no overlap with the old mems: not a policy
    rebound = rebind(pol, new, old)
    assert rebound.nodes and rebound.nodes <= new
    assert (rebound.mode, rebound.flags, rebound.user_nodes) == (pol.mode, pol.flags, pol.user_nodes)


@given(user=node_sets, allowed=node_sets)
def test_relative_nodes_is_a_subset_of_allowed(user, allowed) -> None:
    result = relative_nodes(user, allowed)
    assert result and result <= allowed


# ---- wire form ----------------------------------------------------------------------------


policies = st.builds(
    Policy,
    mode=st.sampled_from(list(Mode)),
    nodes=st.frozensets(st.integers(0, 63)),
    flags=st.sampled_from([0, STATIC, RELATIVE, BALANCING, RELATIVE | BALANCING]),
    user_nodes=st.frozensets(st.integers(0, 63)),
    home_node=st.none() | st.integers(0, 63),
)


@given(policies)
def test_wire_round_trip_through_msgpack(pol: Policy) -> None:
    wire = msgpack.unpackb(msgpack.packb(pol.to_wire(), use_bin_type=True), raw=False)
    assert Policy.from_wire(wire) == pol


def test_policy_fields_are_normalised() -> None:
    pol = Policy(2, {1, 0}, 0, [3])  # type: ignore[arg-type]
    assert pol == Policy(Mode.BIND, frozenset({0, 1}), 0, frozenset({3}))
    assert isinstance(pol.mode, Mode) and hash(pol) == hash(Policy(Mode.BIND, frozenset({0, 1}), 0, frozenset({3})))


@pytest.mark.parametrize("wire", [
    {"mode": 9}, {"mode": "bind"}, {"mode": 2, "nodes": "0-1"}, {"mode": 2, "nodes": [-1]},
    {"mode": 2, "flags": 1}, {"mode": 2, "home_node": "x"}, {"mode": True},
])
def test_malformed_wire_is_einval(wire: dict) -> None:
    with pytest.raises(NumaEmuError) as info:
        Policy.from_wire(wire)
    assert info.value.code == ErrorCode.EINVAL


# ---- text forms (mpol_to_str; numactl; memhog; memtoy) -------------------------------------


@pytest.mark.parametrize("pol, text", [
    (DEFAULT_POLICY, "default"),
    (Policy(Mode.LOCAL), "local"),
    (Policy(Mode.PREFERRED, frozenset({1})), "prefer:1"),
    (Policy(Mode.BIND, frozenset({0, 1})), "bind:0-1"),
    (Policy(Mode.INTERLEAVE, frozenset(range(4))), "interleave:0-3"),
    (Policy(Mode.WEIGHTED_INTERLEAVE, frozenset({0, 1})), "weighted interleave:0-1"),
    (Policy(Mode.PREFERRED_MANY, frozenset({0, 2})), "prefer (many):0,2"),
    (Policy(Mode.INTERLEAVE, frozenset({0, 1, 2, 3, 5}), STATIC), "interleave=static:0-3,5"),
    (Policy(Mode.BIND, frozenset({2, 3}), RELATIVE), "bind=relative:2-3"),
    (Policy(Mode.BIND, frozenset({0, 1, 3}), BALANCING), "bind=balancing:0-1,3"),
    (Policy(Mode.BIND, frozenset({1}), RELATIVE | BALANCING), "bind=relative|balancing:1"),
    (Policy(Mode.PREFERRED_MANY, frozenset({4, 6, 7}), STATIC | BALANCING), "prefer (many)=static|balancing:4,6-7"),
])
def test_policy_to_str(pol: Policy, text: str) -> None:
    assert policy_to_str(pol) == text


@pytest.mark.parametrize("word, mode", [
    ("default", Mode.DEFAULT), ("local", Mode.LOCAL), ("localalloc", Mode.LOCAL),
    ("preferred", Mode.PREFERRED), ("prefer", Mode.PREFERRED), ("bind", Mode.BIND),
    ("membind", Mode.BIND), ("--membind", Mode.BIND), ("interleave", Mode.INTERLEAVE),
    ("interleaved", Mode.INTERLEAVE), ("Interleave", Mode.INTERLEAVE),
    ("preferred-many", Mode.PREFERRED_MANY), ("weighted-interleave", Mode.WEIGHTED_INTERLEAVE),
    ("weighted interleave", Mode.WEIGHTED_INTERLEAVE), ("prefer (many)", Mode.PREFERRED_MANY),
])
def test_parse_mode_name(word: str, mode: Mode) -> None:
    assert parse_mode_name(word) == mode


@pytest.mark.parametrize("word", ["", "noop", "bound", "interleave:0"])
def test_parse_mode_name_rejects_unknown_words(word: str) -> None:
    with pytest.raises(NumaEmuError):
        parse_mode_name(word)


def test_numactl_policy_names() -> None:
    assert [numactl_policy_name(m) for m in Mode] == [
        "default", "preferred", "bind", "interleave", "local", "preferred-many", "weighted-interleave",
    ]


@given(st.sampled_from(list(Mode)))
def test_numactl_names_parse_back(mode: Mode) -> None:
    assert parse_mode_name(numactl_policy_name(mode)) == mode


# ---- weighted interleave weights (docs/linux-semantics.md#weighted-interleave-weights) -----------


def test_weight_table_defaults_and_writes() -> None:
    table = WeightTable(range(4))
    assert dict(table) == {0: 1, 1: 1, 2: 1, 3: 1}
    table.set(0, 5)
    table.set(1, "2\n")
    table.set(2, "0x10")
    table.set(3, "010")  # kstrtou8 base 0: octal
    assert dict(table) == {0: 5, 1: 2, 2: 16, 3: 8}
    assert table.show(0) == "5\n"
    table.reset(0)
    assert table[0] == 1


@pytest.mark.parametrize("value", [0, 256, -1, "", "0", "256", "abc", "1.5", "0x", True, 2.0])
def test_weight_table_rejects_invalid_weights(value) -> None:
    table = WeightTable(range(2))
    with pytest.raises(NumaEmuError) as info:
        table.set(0, value)
    assert info.value.code == ErrorCode.EINVAL
    assert table[0] == 1


def test_weight_table_unknown_node_and_wire() -> None:
    with pytest.raises(NumaEmuError):
        WeightTable(range(2)).set(5, 3)
    table = WeightTable(range(3), {1: 7})
    wire = msgpack.unpackb(msgpack.packb(table.to_wire()), raw=False, strict_map_key=False)
    assert dict(WeightTable.from_wire(wire)) == {0: 1, 1: 7, 2: 1}
    with pytest.raises(NumaEmuError):
        WeightTable.from_wire({0: 300})
