"""Node and CPU sets as text: the kernel list format and hex masks.

Part of ``protocol/``: node sets travel and are stored as ``frozenset[int]``; this module
is the one place that turns them into text and back, in the formats existing tools
print and accept:

- the kernel *list* format ("0-3,5", ``cpuset.mems``, ``numa_maps``, sysfs ``online``):
  :func:`parse_nodelist`, :func:`format_nodelist` (lib/bitmap.c ``bitmap_parselist``);
- (numactl's node and cpu *strings*, ``--membind=+0-1``, are the front ends' business:
  numa_emu/frontends/libnuma.py, docs/linux-semantics.md#node-strings);
- the hex word format of ``/proc/PID/status`` ``Mems_allowed``: :func:`format_mask_hex`.

Stdlib only; importing this module costs next to nothing.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from numa_emu.protocol.errors import einval

# Guard against "0-999999999" building a huge set: far above Linux's MAX_NUMNODES (1024)
# and NR_CPUS (8192) limits.
MAX_ID = 1 << 16

_LIST_ITEM_RE = r"(\d+)(?:-(\d+))?"  # compiled on first use (re caches it)



# --- the kernel list format --------------------------------------------------------------


def parse_nodelist(text: str, *, what: str = "node list") -> frozenset[int]:
    """Parse the kernel list format: "0-3,5,8-10"; "" (or blanks, a newline) is empty.

    Like the kernel's ``bitmap_parselist``, overlapping items are merged and a reversed
    range ("3-1") is an error.
    """
    if not isinstance(text, str):
        raise einval(f"invalid {what} {text!r}: expected a string like '0-3,5'")
    stripped = text.strip()
    if not stripped:
        return frozenset()
    ids: set[int] = set()
    for item in stripped.split(","):
        match = re.fullmatch(_LIST_ITEM_RE, item.strip())
        if match is None:
            raise einval(f"invalid {what} '{text}': '{item}' is not N or A-B")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise einval(f"invalid {what} '{text}': range '{item}' is reversed")
        if last >= MAX_ID:
            raise einval(f"invalid {what} '{text}': {last} is above the limit {MAX_ID - 1}")
        ids.update(range(first, last + 1))
    return frozenset(ids)


def format_nodelist(nodes: Iterable[int]) -> str:
    """Format ids in the kernel list format: {0, 1, 2, 3, 5} -> "0-3,5"; empty -> ""."""
    ordered = sorted(set(nodes))
    parts: list[str] = []
    index = 0
    while index < len(ordered):
        start = index
        while index + 1 < len(ordered) and ordered[index + 1] == ordered[index] + 1:
            index += 1
        first, last = ordered[start], ordered[index]
        parts.append(f"{first}-{last}" if last > first else str(first))
        index += 1
    return ",".join(parts)


def parse_cpulist(text: str) -> frozenset[int]:
    """The kernel list format for CPUs ("0-7,16"), as :func:`parse_nodelist`."""
    return parse_nodelist(text, what="cpu list")


format_cpulist = format_nodelist


# --- hex masks ---------------------------------------------------------------------------


def format_mask_hex(ids: Iterable[int], nbits: int = 64) -> str:
    """Format a set as the kernel's ``%*pb`` does, e.g. ``Mems_allowed`` in /proc/PID/status.

    32-bit words in hex, most significant first, comma separated; the first word is only
    as wide as the bits left over (lib/vsprintf.c ``bitmap_string``). The kernel prints
    ``MAX_NUMNODES`` bits for Mems_allowed (64 with CONFIG_NODES_SHIFT=6, hence the
    default): {0, 1} -> "00000000,00000003".
    """
    if nbits < 1:
        raise einval(f"invalid mask width {nbits}: must be at least 1 bit")
    value = 0
    for bit in set(ids):
        if not 0 <= bit < nbits:
            raise einval(f"id {bit} does not fit a {nbits}-bit mask")
        value |= 1 << bit
    words: list[str] = []
    lead_bits = nbits % 32 or 32
    shift = nbits - lead_bits
    width = (lead_bits + 3) // 4
    while shift >= 0:
        words.append(f"{(value >> shift) & 0xFFFFFFFF:0{width}x}")
        shift -= 32
        width = 8
    return ",".join(words)


def parse_mask_hex(text: str) -> frozenset[int]:
    """Parse the ``%*pb`` hex word format back into a set: "00000000,00000003" -> {0, 1}."""
    words = text.strip().split(",")
    if not all(re.fullmatch(r"[0-9a-fA-F]{1,8}", word) for word in words):
        raise einval(f"invalid hex mask '{text}': expected 32-bit hex words like 00000000,00000003")
    value = 0
    for word in words:
        value = (value << 32) | int(word, 16)
    return frozenset(bit for bit in range(value.bit_length()) if value >> bit & 1)
