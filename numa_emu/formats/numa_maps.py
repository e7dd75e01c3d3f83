"""``/proc/PID/numa_maps`` lines and the kernel's policy strings.

Place in numa-emu: a task's regions (anonymous, heap, stack, file/shm) are reported
per region with the fields of torvalds/linux ``fs/proc/task_mmu.c``
``show_numa_map()`` (docs/linux-semantics.md#numa_maps); the policy column is ``mm/mempolicy.c``
``mpol_to_str()``.  numastat ``-p`` and people's scripts read these lines, so the
optional-field rules are reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from numa_emu.formats.hardware import format_cpulist

# mm/mempolicy.c policy_modes[], keyed by numactl's policy_name() vocabulary.
KERNEL_MODE_NAMES: dict[str, str] = {
    "default": "default",
    "preferred": "prefer",
    "bind": "bind",
    "interleave": "interleave",
    "weighted-interleave": "weighted interleave",
    "local": "local",
    "preferred-many": "prefer (many)",
}

_KINDS = ("anon", "heap", "stack", "file")
_ESCAPED = "\n\t= "  # fs/proc/task_mmu.c: seq_path(m, path, "\n\t= ")


def mpol_to_str(mode: str, nodes: Iterable[int] = (), flags: Iterable[str] = ()) -> str:
    """The policy column: ``<mode>[=<flags>][:<nodelist>]`` (mm/mempolicy.c mpol_to_str).

    ``mode`` uses numactl's names (``bind``, ``preferred-many``, ...); ``flags`` is any
    of ``static``, ``relative``, ``balancing``.  Flags are printed as ``static`` or
    ``relative`` then ``|balancing`` (the pre-2024 kernel order, docs/linux-semantics.md#numa_maps).
    Nodes are printed only for modes that carry them, in list format (``0-3,5``).
    """
    if mode not in KERNEL_MODE_NAMES:
        raise ValueError(f"unknown policy mode {mode!r}")
    wanted = set(flags)
    unknown = wanted - {"static", "relative", "balancing"}
    if unknown:
        raise ValueError(f"unknown policy flags {sorted(unknown)}")
    text = KERNEL_MODE_NAMES[mode]
    shown = [f for f in ("static", "relative", "balancing") if f in wanted]
    if shown:
        text += "=" + "|".join(shown)
    node_list = format_cpulist(nodes) if mode not in ("default", "local") else ""
    if node_list:
        text += ":" + node_list
    return text


def _mangle_path(path: str) -> str:
    """fs/seq_file.c mangle_path(): escape the given characters as a backslash and 3 octal digits."""
    return "".join(f"\\{ord(c):03o}" if c in _ESCAPED else c for c in path)


def _kind_field(kind: str, file: str | None) -> str:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    if (kind == "file") != (file is not None):
        raise ValueError("file= is given exactly when kind is 'file'")
    if kind == "file":
        return " file=" + _mangle_path(file or "")
    return "" if kind == "anon" else f" {kind}"


def format_numa_maps_line(
    start: int,
    policy_str: str,
    *,
    kind: str,
    anon: int,
    dirty: int,
    mapped: int | None = None,
    mapmax: int,
    per_node_pages: Mapping[int, int],
    page_size_kb: int,
    file: str | None = None,
    huge: bool = False,
    active: int | None = None,
) -> str:
    """One numa_maps line, newline included (fs/proc/task_mmu.c show_numa_map).

    ``start`` is the region's first address (``%08lx``); ``policy_str`` the policy
    column (see :func:`mpol_to_str`); ``kind`` one of ``anon``, ``heap``, ``stack``,
    ``file`` (then ``file`` is the path; shm regions are files such as
    ``/SYSV00000000 (deleted)``); ``huge`` marks a hugetlb region.  Page counts:
    ``anon`` and ``dirty`` among the present pages, ``mapmax`` the highest map
    count, ``per_node_pages`` node -> present pages.  The kernel's ``mapped=`` value
    is the number of present pages, which is the sum of ``per_node_pages``;
    ``mapped`` may be given to cross-check it (ValueError if it differs).

    ``active`` the pages on an active LRU list (None: not known, not printed).

    Rules: nothing after the region kind unless at least one page is present;
    ``anon=``/``dirty=`` only if non-zero; ``mapped=`` only when it differs from
    both anon and dirty; ``mapmax=`` only if > 1; ``active=`` only when fewer than
    the present pages are active, never for hugetlb; ``N<n>=`` for nodes with pages,
    in node order; ``kernelpagesize_kB=`` last.
    """
    pages = sum(per_node_pages.values())
    if mapped is not None and mapped != pages:
        raise ValueError(f"mapped={mapped} but per-node pages sum to {pages}")
    line = f"{start:08x} {policy_str}" + _kind_field(kind, file)
    if huge:
        line += " huge"
    if pages:
        if anon:
            line += f" anon={anon}"
        if dirty:
            line += f" dirty={dirty}"
        if pages != anon and pages != dirty:
            line += f" mapped={pages}"
        if mapmax > 1:
            line += f" mapmax={mapmax}"
        if active is not None and active < pages and not huge:
            line += f" active={active}"
        nodes = sorted(n for n, count in per_node_pages.items() if count > 0)
        line += "".join(f" N{n}={per_node_pages[n]}" for n in nodes)
        line += f" kernelpagesize_kB={page_size_kb}"
    return line + "\n"
