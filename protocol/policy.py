"""Memory-policy values and the Linux rules for making, rebinding and printing them.

Shared by the coordinator (the policy authority: set_mempolicy, mbind, cpuset rebinding), the
nodes (which place pages by the policy, see nodes/placement.py) and the CLI (numactl, memhog and
numa_maps text). Pure functions on frozen values; node sets are frozenset[int] everywhere.

Sources: include/uapi/linux/mempolicy.h (numbers), mm/mempolicy.c (mpol_new, mpol_set_nodemask,
mpol_rebind_nodemask, mpol_relative_nodemask, mpol_to_str), lib/bitmap.c (bitmap_remap,
bitmap_fold, bitmap_onto), set_mempolicy(2), mbind(2), and docs/linux-semantics.md#policies, #numa_maps,
#weighted-interleave-weights.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from numa_emu.protocol.errors import einval
from numa_emu.protocol.nodemask import format_nodelist


class Mode(enum.IntEnum):
    """Policy modes, numbered as in include/uapi/linux/mempolicy.h."""

    DEFAULT = 0
    PREFERRED = 1
    BIND = 2
    INTERLEAVE = 3
    LOCAL = 4
    PREFERRED_MANY = 5  # Linux 5.15
    WEIGHTED_INTERLEAVE = 6  # Linux 6.9


# Mode flags, OR'ed into the mode argument of set_mempolicy(2) / mbind(2).
MPOL_F_STATIC_NODES = 1 << 15
MPOL_F_RELATIVE_NODES = 1 << 14
MPOL_F_NUMA_BALANCING = 1 << 13
MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING

# mbind(2) flags. MPOL_MF_VALID is what mainline mbind accepts; LAZY, outside it, is Lee
# Schermerhorn's migrate-on-fault extension (docs/linux-semantics.md#mbind).
MPOL_MF_STRICT = 1 << 0
MPOL_MF_MOVE = 1 << 1
MPOL_MF_MOVE_ALL = 1 << 2
MPOL_MF_LAZY = 1 << 3
MPOL_MF_VALID = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL

# get_mempolicy(2) flags.
MPOL_F_NODE = 1 << 0
MPOL_F_ADDR = 1 << 1
MPOL_F_MEMS_ALLOWED = 1 << 2

# Modes whose nodemask is rebound node by node (mpol_ops[].rebind == mpol_rebind_nodemask).
_NODEMASK_MODES = frozenset({Mode.BIND, Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE})
# MPOL_F_NUMA_BALANCING is accepted with these modes only (sanitize_mpol_flags in current
# mm/mempolicy.c; from 5.12 until the 2024 preferred-many series it was BIND only).
_BALANCING_MODES = frozenset({Mode.BIND, Mode.PREFERRED_MANY})



@dataclass(frozen=True)
class Policy:
    """One memory policy (struct mempolicy), already contextualised to a cpuset.

    `nodes` is the effective mask the allocator uses (pol->nodes; one node for PREFERRED, empty
    for DEFAULT and LOCAL). `user_nodes` is the mask as the user gave it, kept only with
    MPOL_F_STATIC_NODES or MPOL_F_RELATIVE_NODES (pol->w.user_nodemask), because only those
    policies are rebound from it; get_mempolicy(2) reports it instead of `nodes` then (see
    `reported_nodes`). `home_node` is set by set_mempolicy_home_node(2) (BIND, PREFERRED_MANY).
    """

    mode: Mode = Mode.DEFAULT
    nodes: frozenset[int] = frozenset()
    flags: int = 0
    user_nodes: frozenset[int] = frozenset()
    home_node: int | None = None

    def __post_init__(self) -> None:
        # Accept plain sets and ints from callers; the value stays hashable and comparable.
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "nodes", frozenset(self.nodes))
        object.__setattr__(self, "user_nodes", frozenset(self.user_nodes))

    @property
    def reported_nodes(self) -> frozenset[int]:
        """The mask get_mempolicy(2) returns (do_get_mempolicy: user mask if stored)."""
        return self.user_nodes if self.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) else self.nodes

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-safe map: mode as int, node sets as sorted lists of ints."""
        return {"mode": int(self.mode), "nodes": sorted(self.nodes), "flags": self.flags,
                "user_nodes": sorted(self.user_nodes), "home_node": self.home_node}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Policy:
        """Inverse of to_wire; anything malformed is EINVAL (it came from a peer)."""
        try:
            mode = Mode(_wire_int(d.get("mode", 0)))
            flags = _wire_int(d.get("flags", 0))
            nodes = _wire_nodes(d.get("nodes", ()))
            user_nodes = _wire_nodes(d.get("user_nodes", ()))
            home = d.get("home_node")
            home_node = None if home is None else _wire_int(home)
        except (TypeError, ValueError, AttributeError) as exc:
            raise einval(f"malformed policy on the wire: {exc}") from None
        if flags & ~MPOL_MODE_FLAGS:
            raise einval(f"malformed policy on the wire: unknown flag bits {flags:#x}")
        return cls(mode, nodes, flags, user_nodes, home_node)


DEFAULT_POLICY = Policy()


def _wire_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {value!r}")
    return value


def _wire_nodes(value: Any) -> frozenset[int]:
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"expected a list of node ids, got {value!r}")
    nodes = frozenset(_wire_int(n) for n in value)
    if any(n < 0 for n in nodes):
        raise ValueError(f"negative node id in {sorted(nodes)}")
    return nodes


# ---------------------------------------------------------------------------------------------
# Kernel bitmap helpers (lib/bitmap.c), on node sets.


def node_remap(node: int, old: Iterable[int], new: Iterable[int]) -> int:
    """bitmap_bitremap: the n-th node of `old` maps to the (n mod |new|)-th node of `new`;
    nodes not in `old`, or an empty `old`/`new`, map to themselves."""
    old_ids, new_ids = sorted(set(old)), sorted(set(new))
    if not old_ids or not new_ids or node not in old_ids:
        return node
    return new_ids[old_ids.index(node) % len(new_ids)]


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


def nodes_remap(nodes: Iterable[int], old: Iterable[int], new: Iterable[int]) -> frozenset[int]:
    """bitmap_remap: node_remap applied to every node of `nodes`."""
    old_set, new_set = frozenset(old), frozenset(new)
    return frozenset(node_remap(n, old_set, new_set) for n in nodes)


def nodes_fold(nodes: Iterable[int], size: int) -> frozenset[int]:
    """bitmap_fold: every node n becomes n mod `size` (empty if size <= 0)."""
    if size <= 0:
        return frozenset()
    return frozenset(n % size for n in nodes)


def nodes_onto(nodes: Iterable[int], relmap: Iterable[int]) -> frozenset[int]:
    """bitmap_onto: node m becomes the m-th node (0-based) of `relmap`; m >= |relmap| is dropped."""
    rel = sorted(set(relmap))
    return frozenset(rel[m] for m in nodes if 0 <= m < len(rel))


def relative_nodes(user_nodes: Iterable[int], allowed: Iterable[int]) -> frozenset[int]:
    """mpol_relative_nodemask: fold the user mask by |allowed|, then map it onto `allowed`."""
    allowed_set = frozenset(allowed)
    return nodes_onto(nodes_fold(user_nodes, len(allowed_set)), allowed_set)


# ---------------------------------------------------------------------------------------------
# Making a policy: set_mempolicy(2) / mbind(2) validation and contextualisation.


def split_mode(mode: int, flags: int = 0) -> tuple[int, int]:
    """Split a syscall mode argument (mode | MPOL_F_* flags) as sanitize_mpol_flags does."""
    mode = int(mode)
    return mode & ~MPOL_MODE_FLAGS, (mode & MPOL_MODE_FLAGS) | int(flags)


def _check_mode_and_flags(mode_bits: int, flags: int) -> Mode:
    """sanitize_mpol_flags: the mode must exist, flags must be known and compatible."""
    if flags & ~MPOL_MODE_FLAGS:
        raise einval(f"unknown mode flag bits {flags & ~MPOL_MODE_FLAGS:#x}")
    try:
        mode = Mode(mode_bits)
    except ValueError:
        raise einval(f"unknown policy mode {mode_bits}") from None
    if flags & MPOL_F_STATIC_NODES and flags & MPOL_F_RELATIVE_NODES:
        raise einval("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES are mutually exclusive")
    if flags & MPOL_F_NUMA_BALANCING and mode not in _BALANCING_MODES:
        raise einval(f"MPOL_F_NUMA_BALANCING needs bind or preferred-many, not {mode.name.lower()}")
    return mode


def _check_mask_shape(mode: Mode, nodes: frozenset[int], flags: int) -> Mode:
    """mpol_new: which modes need, forbid or reinterpret an empty mask."""
    user_flags = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)
    if mode == Mode.DEFAULT:
        if nodes:
            raise einval("MPOL_DEFAULT takes no nodes")
    elif mode == Mode.PREFERRED and not nodes:
        if user_flags:
            raise einval("MPOL_PREFERRED with an empty mask cannot be static or relative")
        return Mode.LOCAL  # an empty preferred mask means local allocation
    elif mode == Mode.LOCAL:
        if nodes or user_flags:
            raise einval("MPOL_LOCAL takes no nodes and no static/relative flag")
    elif not nodes:
        raise einval(f"{mode.name} needs a non-empty nodemask")
    return mode


def make_policy(
    mode: Mode | int,
    nodes: Iterable[int],
    flags: int = 0,
    *,
    allowed: Iterable[int],
    possible: Iterable[int],
    strict: bool = False,
) -> Policy:
    """The policy set_mempolicy(2) or mbind(2) installs, or NumaEmuError(EINVAL).

    `mode` may carry MPOL_F_* bits as the syscall argument does. `allowed` is the task's cpuset
    mems (with memory), `possible` every node id the machine has.

    Nodes outside the cpuset follow the kernel (mpol_set_nodemask): the mask is intersected
    with `allowed` (STATIC keeps the user mask for later rebinding; RELATIVE folds the mask onto
    `allowed` instead) and only an empty result is EINVAL. Callers implementing the syscalls
    (coordinator: set_mempolicy, mbind) use this default. `strict=True` also refuses any node
    outside `allowed` (not applied to RELATIVE masks, which are positions, not nodes); that is
    the rule of numactl/libnuma's node parser (docs/linux-semantics.md#node-strings) and of the numa-emu issue text, so
    front ends that emulate numactl use it.
    """
    mode_bits, flags = split_mode(int(mode), flags)
    checked = _check_mode_and_flags(mode_bits, flags)
    user = frozenset(nodes)
    possible_set, allowed_set = frozenset(possible), frozenset(allowed)
    if any(not isinstance(n, int) or isinstance(n, bool) for n in user):
        raise einval(f"node ids must be ints: {sorted(map(repr, user))}")
    if user - possible_set:
        raise einval(f"node(s) {format_nodelist(user - possible_set)} do not exist")
    checked = _check_mask_shape(checked, user, flags)
    if checked == Mode.DEFAULT:
        return DEFAULT_POLICY
    if checked == Mode.LOCAL:
        return Policy(Mode.LOCAL, flags=flags)
    relative = bool(flags & MPOL_F_RELATIVE_NODES)
    if strict and not relative and user - allowed_set:
        raise einval(f"node(s) {format_nodelist(user - allowed_set)} outside the cpuset's mems")
    effective = relative_nodes(user, allowed_set) if relative else user & allowed_set
    if not effective:
        # mems_allowed is the cpuset's effective mems: an offline node is not in it
        raise einval(f"policy nodes {format_nodelist(user)} have none of the task's mems_allowed "
                     f"{format_nodelist(allowed_set)} (nodes outside its cpuset or offline)")
    if checked == Mode.PREFERRED:
        effective = frozenset({min(effective)})  # mpol_new_preferred: first node only
    keep_user = bool(flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES))
    return Policy(checked, effective, flags, user if keep_user else frozenset())


def with_home_node(policy: Policy, home_node: int, *, possible: Iterable[int]) -> Policy:
    """set_mempolicy_home_node(2) on one policy: EINVAL for a node that does not exist,
    EOPNOTSUPP (reported as EINVAL here: no such code in ErrorCode) unless BIND/PREFERRED_MANY."""
    if home_node not in frozenset(possible):
        raise einval(f"home node {home_node} does not exist")
    if policy.mode not in (Mode.BIND, Mode.PREFERRED_MANY):
        raise einval(f"a home node needs bind or preferred-many, not {policy.mode.name.lower()}")
    return replace(policy, home_node=home_node)


def rebind(policy: Policy, new_allowed: Iterable[int], old_allowed: Iterable[int]) -> Policy:
    """The policy after the cpuset's mems change from `old_allowed` to `new_allowed`.

    mpol_rebind_policy / mpol_rebind_nodemask (as in Linux 6.1 and later), for BIND, INTERLEAVE and
    WEIGHTED_INTERLEAVE: STATIC -> user mask & new; RELATIVE -> user mask folded onto new;
    otherwise nodes_remap(nodes, old, new). A result that comes out empty becomes the whole new
    set (the kernel's `tmp = *nodes`, not local allocation as the older admin-guide text says).
    DEFAULT and LOCAL have nothing to rebind; PREFERRED and PREFERRED_MANY keep their nodes
    (mpol_rebind_preferred only records the new mems): the allocator then starts at the
    preferred node's fallback order restricted to the cpuset, see nodes/placement.py.
    """
    if policy.mode not in _NODEMASK_MODES:
        return policy
    new_set, old_set = frozenset(new_allowed), frozenset(old_allowed)
    if policy.flags & MPOL_F_STATIC_NODES:
        rebound = policy.user_nodes & new_set
    elif policy.flags & MPOL_F_RELATIVE_NODES:
        rebound = relative_nodes(policy.user_nodes, new_set)
    else:
        if old_set == new_set:
            return policy
        rebound = nodes_remap(policy.nodes, old_set, new_set)
    return replace(policy, nodes=rebound or new_set)


# ---------------------------------------------------------------------------------------------
# Text forms.

# mode -> (mm/mempolicy.c policy_modes[] as numa_maps prints it, numactl --show "policy:" word)
_MODE_NAMES = {
    Mode.DEFAULT: ("default", "default"),
    Mode.PREFERRED: ("prefer", "preferred"),
    Mode.BIND: ("bind", "bind"),
    Mode.INTERLEAVE: ("interleave", "interleave"),
    Mode.LOCAL: ("local", "local"),
    Mode.PREFERRED_MANY: ("prefer (many)", "preferred-many"),
    Mode.WEIGHTED_INTERLEAVE: ("weighted interleave", "weighted-interleave"),
}

_MODE_WORDS = {  # numactl/memhog (util.c parse_policy), memtoy (commands.c) and kernel names
    "default": Mode.DEFAULT,
    "local": Mode.LOCAL,
    "localalloc": Mode.LOCAL,
    "preferred": Mode.PREFERRED,
    "prefer": Mode.PREFERRED,
    "bind": Mode.BIND,
    "membind": Mode.BIND,
    "interleave": Mode.INTERLEAVE,
    "interleaved": Mode.INTERLEAVE,
    "preferred-many": Mode.PREFERRED_MANY,
    "prefer (many)": Mode.PREFERRED_MANY,
    "weighted-interleave": Mode.WEIGHTED_INTERLEAVE,
    "weighted interleave": Mode.WEIGHTED_INTERLEAVE,
}


def policy_to_str(policy: Policy) -> str:
    """mpol_to_str, as in /proc/PID/numa_maps: "bind:0-1", "interleave=static:0-3",
    "bind=relative|balancing:2,3", "local", "default" (docs/linux-semantics.md#numa_maps)."""
    text = _MODE_NAMES[policy.mode][0]
    flags = policy.flags & MPOL_MODE_FLAGS
    if flags:
        words = []
        if flags & MPOL_F_STATIC_NODES:
            words.append("static")
        elif flags & MPOL_F_RELATIVE_NODES:
            words.append("relative")
        if flags & MPOL_F_NUMA_BALANCING:
            words.append("balancing")
        text += "=" + "|".join(words)
    if policy.nodes and policy.mode not in (Mode.DEFAULT, Mode.LOCAL):
        text += ":" + format_nodelist(policy.nodes)
    return text


def parse_mode_name(name: str) -> Mode:
    """A policy word as numactl, memhog or memtoy spell it (case-insensitive, leading dashes
    stripped as memhog does), or one of the kernel's own names; EINVAL otherwise."""
    word = name.strip().lstrip("-").lower()
    try:
        return _MODE_WORDS[word]
    except KeyError:
        raise einval(f"unknown policy {name!r}") from None


def numactl_policy_name(mode: Mode | int) -> str:
    """The word on numactl --show's "policy:" line."""
    return _MODE_NAMES[Mode(mode)][1]


# ---------------------------------------------------------------------------------------------
# Weighted interleave weights: /sys/kernel/mm/mempolicy/weighted_interleave/nodeN
# (docs/linux-semantics.md#weighted-interleave-weights).

WEIGHT_MIN = 1
WEIGHT_MAX = 255
DEFAULT_WEIGHT = 1


def _parse_weight(text: str) -> int:
    """kstrtou8(buf, 0, ...): decimal, 0x hex or 0-prefixed octal, one trailing newline."""
    s = text[:-1] if text.endswith("\n") else text
    s = s[1:] if s.startswith("+") else s
    if s[:2].lower() == "0x":
        digits, base = s[2:], 16
    elif len(s) > 1 and s.startswith("0"):
        digits, base = s[1:], 8
    else:
        digits, base = s, 10
    if not digits or not all(c in "0123456789abcdef"[:base] for c in digits.lower()):
        raise einval(f"invalid weight {text!r}")
    return int(digits, base)


class WeightTable(Mapping[int, int]):
    """Per-node weighted-interleave weights (1..255, default 1), as the sysfs files hold them.

    A read-only Mapping node -> weight (every possible node is present), so it can be passed
    straight to nodes.placement.place(weights=...). `set` follows the node_store rules of
    Linux >= 6.16: a value outside 1..255, empty or unparsable is EINVAL. (Older kernels took
    "0" or "" to mean "back to the default"; use `reset` for that.) The `auto` mode of 6.16
    (weights from HMAT bandwidth) is not modelled.
    """

    def __init__(self, possible: Iterable[int], weights: Mapping[int, int] | None = None):
        self._weights: dict[int, int] = {n: DEFAULT_WEIGHT for n in sorted(set(possible))}
        for node, weight in (weights or {}).items():
            self.set(node, weight)

    def __getitem__(self, node: int) -> int:
        return self._weights[node]

    def __iter__(self) -> Iterator[int]:
        return iter(self._weights)

    def __len__(self) -> int:
        return len(self._weights)

    def set(self, node: int, value: int | str) -> None:
        """Write nodeN: EINVAL for an unknown node or a weight outside 1..255."""
        if node not in self._weights:
            raise einval(f"no weight file for node {node}")
        weight = _parse_weight(value) if isinstance(value, str) else value
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise einval(f"invalid weight {value!r}")
        if not WEIGHT_MIN <= weight <= WEIGHT_MAX:
            raise einval(f"weight {weight} outside {WEIGHT_MIN}..{WEIGHT_MAX}")
        self._weights[node] = weight

    def reset(self, node: int) -> None:
        """Back to the system default weight (what writing "0" did before Linux 6.16)."""
        if node not in self._weights:
            raise einval(f"no weight file for node {node}")
        self._weights[node] = DEFAULT_WEIGHT

    def show(self, node: int) -> str:
        """What reading nodeN prints."""
        return f"{self[node]}\n"

    def to_wire(self) -> dict[int, int]:
        return dict(self._weights)

    @classmethod
    def from_wire(cls, d: Mapping[Any, Any]) -> WeightTable:
        try:
            weights = {_wire_int(k): v for k, v in d.items()}
        except (TypeError, AttributeError) as exc:
            raise einval(f"malformed weight table on the wire: {exc}") from None
        return cls(weights, weights)
