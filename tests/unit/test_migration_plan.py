"""The pure rules of page migration: migrate_pages' relative node mapping and its order
(do_migrate_pages), and where mbind MPOL_MF_MOVE sends a page (docs/linux-semantics.md#mbind, #migrate_pages)."""
from __future__ import annotations

import errno

from numa_emu.nodes.migration_plan import EACCES, ENOMEM, NOT_MOVED, mbind_target, result_name
from numa_emu.protocol.policy import migration_pairs
from numa_emu.protocol.policy import Mode, Policy, make_policy

ALL = frozenset(range(4))


def policy(mode: Mode, nodes) -> Policy:
    return make_policy(int(mode), frozenset(nodes), allowed=frozenset(range(16)), possible=frozenset(range(16)))


def test_relative_rule_of_the_migratepages_man_page():
    assert migration_pairs([2, 3, 4, 5], [7, 9, 12, 13]) == [(2, 7), (3, 9), (4, 12), (5, 13)]
    assert migration_pairs([0, 1], [2, 3]) == [(0, 2), (1, 3)]


def test_a_destination_is_vacated_before_it_is_filled():
    assert migration_pairs([0, 1], [1, 2]) == [(1, 2), (0, 1)]
    assert migration_pairs([0, 1, 2], [1, 2, 3]) == [(2, 3), (1, 2), (0, 1)]


def test_sets_are_bitmaps_and_nodes_mapped_to_themselves_move_nothing():
    assert migration_pairs([3, 2], [3, 0]) == [(2, 0)]  # {2,3} -> {0,3}: 2 -> 0, 3 stays
    assert migration_pairs([0, 1], [0, 1]) == []
    assert migration_pairs([0, 1], [1, 0]) == []


def test_sets_of_different_sizes_wrap_and_keep_nodes_already_allowed():
    # 2 and 3 are in both: they stay; while 2, 3 still wait, the last candidate goes first (as the kernel)
    assert migration_pairs([0, 1, 2, 3], [2, 3]) == [(1, 3), (0, 2)]
    assert migration_pairs([0, 1], [3]) == [(0, 3), (1, 3)]
    assert migration_pairs([0], [1, 2]) == [(0, 1)]


def test_mbind_target_by_mode():
    order = (2, 3)
    assert mbind_target(policy(Mode.BIND, [2, 3]), 0, interleave_index=0, order=order, allowed=ALL) == 2
    assert mbind_target(policy(Mode.BIND, [2, 3]), 3, interleave_index=0, order=order, allowed=ALL) is None
    assert mbind_target(policy(Mode.PREFERRED_MANY, [2, 3]), 1, interleave_index=0, order=order, allowed=ALL) == 2
    il = policy(Mode.INTERLEAVE, [0, 1, 2, 3])
    assert [mbind_target(il, 0, interleave_index=i, order=(), allowed=ALL) for i in range(4)] == [None, 1, 2, 3]
    assert mbind_target(policy(Mode.PREFERRED, [1]), 0, interleave_index=0, order=(1, 0), allowed=ALL) == 1
    assert mbind_target(policy(Mode.PREFERRED, [1]), 1, interleave_index=0, order=(1, 0), allowed=ALL) is None
    assert mbind_target(policy(Mode.LOCAL, []), 3, interleave_index=0, order=(0,), allowed=ALL) is None


def test_statuses_are_negative_errnos():
    assert (ENOMEM, EACCES) == (-errno.ENOMEM, -errno.EACCES)
    assert result_name(3) == "ok" and result_name(ENOMEM) == "ENOMEM"
    assert EACCES not in NOT_MOVED and ENOMEM in NOT_MOVED
