"""Which page goes where when pages migrate: pure rules, no sockets (docs/linux-semantics.md#mbind,
#migrate_pages, #move_pages).

- `migration_pairs` (protocol.policy, shared with the coordinator's cpusets): migrate_pages'
  relative rule and its order (mm/mempolicy.c do_migrate_pages).
- `mbind_target`: where mbind with MPOL_MF_MOVE sends a page that the new policy would not
  have placed where it is (None: the page may stay).
- Status values of move_pages(2): a node id, or a negative errno.
"""
from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping, Sequence

from numa_emu.nodes.placement import interleave_target
from numa_emu.protocol.policy import Mode, Policy

# move_pages(2) per-page statuses (negative errno values, as the syscall writes them)
ENOENT, EFAULT, EACCES, ENOMEM, EBUSY = (-errno.ENOENT, -errno.EFAULT, -errno.EACCES, -errno.ENOMEM,
                                         -errno.EBUSY)
STATUS_NAMES = {ENOENT: "ENOENT", EFAULT: "EFAULT", EACCES: "EACCES", ENOMEM: "ENOMEM", EBUSY: "EBUSY"}
# Statuses that count as "not moved for a non-fatal reason" (move_pages' positive return, the
# return of migrate_pages): the migration was tried and failed. A page mapped by others without
# MOVE_ALL is never queued by the kernel, so it is not counted.
NOT_MOVED = frozenset({ENOMEM, EBUSY})


def reclaims_for(cause: str) -> bool:
    """Whether a move's allocation on its target reclaims there when the target is full: a move
    asked for (move_pages, migrate_pages, mbind, cpuset, offline) does, as Linux's
    alloc_migration_target (GFP_HIGHUSER_MOVABLE | __GFP_THISNODE); one a fault makes (NUMA
    balancing, migrate-on-fault) does not: the misplaced page's allocation clears __GFP_RECLAIM,
    and the page serves where it is."""
    return cause != "fault"


def result_name(status: int) -> str:
    """A status as a trace result: "ok" for a node, else the errno name."""
    return "ok" if status >= 0 else STATUS_NAMES.get(status, str(status))


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
