"""Which page goes where when pages migrate: pure rules, no sockets (REFERENCE.md b2, b4, b5).

- `migration_pairs`: migrate_pages' relative rule and its order (mm/mempolicy.c do_migrate_pages):
  the i-th node of the old set goes to the (i mod |new|)-th node of the new set, and the pairs
  are ordered so that a destination is vacated before it is filled.
- `mbind_target`: where mbind with MPOL_MF_MOVE sends a page that the new policy would not
  have placed where it is (None: the page may stay).
- Status values of move_pages(2): a node id, or a negative errno.
"""
from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping, Sequence

from nodes.placement import interleave_target
from protocol.policy import Mode, Policy, node_remap

# move_pages(2) per-page statuses (negative errno values, as the syscall writes them)
ENOENT, EFAULT, EACCES, ENOMEM, EBUSY = (-errno.ENOENT, -errno.EFAULT, -errno.EACCES, -errno.ENOMEM,
                                         -errno.EBUSY)
STATUS_NAMES = {ENOENT: "ENOENT", EFAULT: "EFAULT", EACCES: "EACCES", ENOMEM: "ENOMEM", EBUSY: "EBUSY"}
# Statuses that count as "not moved for a non-fatal reason" (move_pages' positive return, the
# return of migrate_pages): the migration was tried and failed. A page mapped by others without
# MOVE_ALL is never queued by the kernel, so it is not counted.
NOT_MOVED = frozenset({ENOMEM, EBUSY})


def result_name(status: int) -> str:
    """A status as a trace result: "ok" for a node, else the errno name."""
    return "ok" if status >= 0 else STATUS_NAMES.get(status, str(status))


def migration_pairs(old_nodes: Iterable[int], new_nodes: Iterable[int]) -> list[tuple[int, int]]:
    """(source, destination) pairs in the order do_migrate_pages moves them.

    A source that is also a destination in a set of another size stays where it is (its pages are
    already allowed); a source mapped to itself moves nothing. Among the rest, a pair whose
    destination is not still waiting to be emptied is taken first, so 0,1 -> 1,2 moves 1 to 2
    before 0 to 1. Examples: 2-5 -> 7,9,12-13 gives 2->7, 3->9, 4->12, 5->13; 0,1 -> 2,3 gives
    0->2, 1->3.
    """
    old, new = sorted(set(old_nodes)), sorted(set(new_nodes))
    waiting = list(old)
    pairs: list[tuple[int, int]] = []
    while waiting:
        source = dest = None
        for s in waiting:
            if len(old) != len(new) and s in new:
                continue
            d = node_remap(s, old, new)
            if s == d:
                continue
            source, dest = s, d
            if d not in waiting:
                break
        if source is None:
            break
        waiting.remove(source)
        pairs.append((source, dest))
    return pairs


def mbind_target(policy: Policy, node: int, *, interleave_index: int, order: Sequence[int],
                 allowed: Iterable[int], weights: Mapping[int, int] | None = None) -> int | None:
    """The node mbind(MPOL_MF_MOVE) moves a page on `node` to under `policy`, or None to leave it.

    BIND and PREFERRED_MANY: a page outside the mask goes to the first node of the policy's
    allocation order (`order`, from nodes.placement.place); INTERLEAVE: a page off its slot's node
    goes there; PREFERRED: a page off the preferred node goes to it; LOCAL and DEFAULT leave pages
    alone (mbind moves only what the policy excludes).
    """
    mode = policy.mode
    if mode in (Mode.BIND, Mode.PREFERRED_MANY):
        if node in policy.nodes or not order:
            return None
        target = order[0]
    elif mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE):
        target = interleave_target(policy, interleave_index, allowed=allowed, weights=weights)
    elif mode == Mode.PREFERRED:
        target = min(policy.nodes)
    else:
        return None
    return None if target == node else target
