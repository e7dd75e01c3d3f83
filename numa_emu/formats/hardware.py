"""``numactl --hardware`` and ``numactl --show`` output, byte for byte, plus fallback orders.

Place in numa-emu: ``numa-emu hardware`` and the ``numactl`` front end describe the
emulated machine (nodes, CPUs, memory, SLIT distances) and a task's policy in the
exact text of numactl v2.0.19 (``numactl.c`` ``hardware()``, ``print_node_cpus()``,
``print_distances()``, ``show()``; ``util.c`` ``printmask()``), so that LTP's
``numa01.sh``, numactl's ``test/regress`` and ``test/checktopology`` and autonuma's
``preproc.awk`` parse it unchanged (docs/linux-semantics.md#numactl-hardware, #numactl).

Sizes are bytes in, MiB out (``bytes >> 20``, numactl.c ``fmt_mem``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from numa_emu.protocol.nodemask import format_cpulist  # noqa: F401  (re-exported: the kernel list format)

# numactl.c policy_name() vocabulary (util.c policy_names[]), in MPOL_* order.
POLICY_NAMES: tuple[str, ...] = (
    "default",
    "preferred",
    "bind",
    "interleave",
    "local",
    "preferred-many",
    "weighted-interleave",
)


class HardwareNode(TypedDict):
    """One node of ``numactl --hardware``: sizes in bytes, None when unknown."""

    id: int
    cpus: list[int]
    size_bytes: int | None
    free_bytes: int | None




def _fmt_mem(size_bytes: int | None) -> str:
    """numactl.c fmt_mem(): ``<MiB> MB``, or ``<not available>`` for an unknown size."""
    if size_bytes is None or size_bytes < 0:
        return "<not available>"
    return f"{size_bytes >> 20} MB"


def _node_cpus(cpus: Iterable[int], compress: bool) -> str:
    """numactl.c print_node_cpus(): `` %d`` per CPU, or ranges and a count with --cpu-compress."""
    ordered = sorted(set(cpus))
    if not compress:
        return "".join(f" {c}" for c in ordered)
    # Ranges are joined by "," and each starts with a space: " 0-17, 36-53 (36)".
    ranges = format_cpulist(ordered)
    body = ",".join(f" {r}" for r in ranges.split(",")) if ranges else ""
    return f"{body} ({len(ordered)})"


def _distance_lines(ids: Sequence[int], distances: Sequence[Sequence[int]] | None, wide: bool) -> str:
    """numactl.c print_distances(); v2.0.19 widened "% 3d" to "% 4d" (commit 81c9a37)."""
    if not distances or distances[-1][0] == 0:
        # numactl.c: numa_distance(maxnode, first) == 0 means no SLIT.
        return "No distance information available.\n"
    if len(distances) != len(ids) or any(len(row) != len(ids) for row in distances):
        raise ValueError(f"distances must be a {len(ids)}x{len(ids)} matrix in node order")
    cell, lead = ("{: 4d}", "node  ") if wide else ("{: 3d}", "node ")
    lines = ["node distances:\n", lead + "".join(cell.format(n) + " " for n in ids) + "\n"]
    for node, row in zip(ids, distances, strict=True):
        lines.append(cell.format(node) + ": " + "".join(cell.format(d) + " " for d in row) + "\n")
    return "".join(lines)


def format_hardware(
    nodes: Sequence[HardwareNode],
    distances: Sequence[Sequence[int]] | None,
    *,
    wide: bool = False,
    cpu_compress: bool = False,
) -> str:
    """``numactl --hardware``.

    ``nodes``: one dict per node, ``{"id": int, "cpus": list[int], "size_bytes": int,
    "free_bytes": int}`` (a size of None or -1 prints ``<not available>``); they are
    printed in ascending id order.  ``distances[i][j]`` is the SLIT distance between
    the i-th and j-th node in ascending id order; None or an empty matrix prints
    ``No distance information available.``.  ``wide`` selects the v2.0.19 distance
    columns (``% 4d``) instead of the v2.0.18-and-earlier ones (``% 3d``) that most
    pasted outputs and parsers show.  ``cpu_compress`` is ``--cpu-compress``.
    """
    if not nodes:
        # numactl.c hardware(): numa_available() < 0 prints this and exits 1.
        raise ValueError("No NUMA available on this system")
    ordered = sorted(nodes, key=lambda n: n["id"])
    ids = [n["id"] for n in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate node ids: {ids}")
    lines = [f"available: {len(ids)} nodes ({format_cpulist(ids)})\n"]
    for node in ordered:
        nid = node["id"]
        lines.append(f"node {nid} cpus:{_node_cpus(node['cpus'], cpu_compress)}\n")
        lines.append(f"node {nid} size: {_fmt_mem(node['size_bytes'])}\n")
        lines.append(f"node {nid} free: {_fmt_mem(node['free_bytes'])}\n")
    return "".join(lines) + _distance_lines(ids, distances, wide)


def format_fallback(orders: Sequence[Sequence[int]] | Mapping[int, Sequence[int]]) -> str:
    """``numa-emu hardware --fallback`` (our own format): each node's fallback order.

    One line per node, ascending id: ``node <id> fallback: <n> <n> ...\\n`` -- the
    nodes an allocation for that node tries, in order, the node itself first
    (mm/page_alloc.c build_zonelists).  ``orders`` is either a list indexed by node
    id or a mapping node id -> order.
    """
    items = sorted(orders.items()) if isinstance(orders, Mapping) else list(enumerate(orders))
    return "".join(f"node {nid} fallback: {' '.join(str(n) for n in order)}\n" for nid, order in items)


@dataclass(frozen=True)
class ShowState:
    """What ``numactl --show`` reports about a task (numactl.c show()).

    ``mode``: a :data:`POLICY_NAMES` name (anything else prints as given).
    ``policy_nodes``: the task mempolicy's nodemask (empty for default and local).
    ``cpus``: the CPU affinity.  ``cpu_nodes``: allowed nodes with a CPU in the
    affinity (``cpubind:``/``nodebind:``).  ``mems_allowed``: the cpuset's mems.
    ``interleave_next``: the next interleave node (get_mempolicy MPOL_F_NODE; 0 when
    the kernel refuses, as for preferred-many).  ``weights``: node -> weight for
    weighted interleave.  ``preferred_node``: overrides the ``preferred node:`` text.
    """

    mode: str
    policy_nodes: frozenset[int] = frozenset()
    cpus: frozenset[int] = frozenset()
    cpu_nodes: frozenset[int] = frozenset()
    mems_allowed: frozenset[int] = frozenset()
    interleave_next: int = 0
    weights: Mapping[int, int] = field(default_factory=dict)
    preferred_node: str | None = None


def _printmask(name: str, ids: Iterable[int]) -> str:
    """util.c printmask(): ``name: `` then ``"%d "`` per id, then a newline."""
    return f"{name}: " + "".join(f"{i} " for i in sorted(set(ids))) + "\n"


def preferred_node_text(state: ShowState) -> str:
    """numactl.c show(): the text after ``preferred node: `` for each policy mode.

    numactl prints nothing (and no newline) for ``local``; we print nothing and
    keep the newline, so ``physcpubind:`` stays on its own line.
    """
    first = min(state.policy_nodes) if state.policy_nodes else None
    if state.mode == "preferred":
        return str(first if first is not None else 0)
    if state.mode == "default":
        return "current"
    if state.mode in ("interleave", "weighted-interleave"):
        return f"{state.interleave_next} (interleave next)"
    if state.mode == "bind":
        return str(first if first is not None else -1)
    if state.mode == "preferred-many":
        return f"{state.interleave_next} (preferred-many)"
    return ""


def format_show(state: ShowState) -> str:
    """``numactl --show``: policy, preferred node, interleave lines, binding masks."""
    lines = [f"policy: {state.mode}\n"]
    preferred = state.preferred_node if state.preferred_node is not None else preferred_node_text(state)
    lines.append(f"preferred node: {preferred}\n")
    if state.mode in ("interleave", "weighted-interleave"):
        lines.append(_printmask("interleavemask", state.policy_nodes))
        if state.mode == "weighted-interleave":
            # numactl.c show_weighted_interleave_weights(): " %d" per masked node.
            weights = "".join(f" {state.weights.get(n, 1)}" for n in sorted(state.policy_nodes))
            lines.append(f"interleaveweights:{weights}\n")
        lines.append(f"interleavenode: {state.interleave_next}\n")
    lines.append(_printmask("physcpubind", state.cpus))
    lines.append(_printmask("cpubind", state.cpu_nodes))
    lines.append(_printmask("nodebind", state.cpu_nodes))
    # libnuma numa_get_membind(): the bind mask, else every allowed node.
    membind = state.policy_nodes if state.mode == "bind" else state.mems_allowed
    lines.append(_printmask("membind", membind))
    # libnuma __numa_preferred(): the policy's nodemask whatever the mode.
    lines.append(_printmask("preferred", state.policy_nodes))
    return "".join(lines)
