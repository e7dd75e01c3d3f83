"""Node and CPU sets as text: the kernel list format, numactl node strings, hex masks.

Part of ``protocol/``: node sets travel and are stored as ``frozenset[int]``; this module
is the one place that turns them into text and back, in the formats existing tools
print and accept:

- the kernel *list* format ("0-3,5", ``cpuset.mems``, ``numa_maps``, sysfs ``online``):
  :func:`parse_nodelist`, :func:`format_nodelist` (lib/bitmap.c ``bitmap_parselist``);
- numactl's node and cpu *strings* (``--membind=+0-1``, ``!2``, ``all``): the rules of
  libnuma ``__numa_parse_nodestring`` / ``__numa_parse_cpustring`` (docs/linux-semantics.md#node-strings):
  :func:`parse_nodestring`, :func:`parse_cpustring`;
- the hex word format of ``/proc/PID/status`` ``Mems_allowed``: :func:`format_mask_hex`.

Stdlib only; importing this module costs next to nothing.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from protocol.errors import ErrorCode, NumaEmuError

# Guard against "0-999999999" building a huge set: far above Linux's MAX_NUMNODES (1024)
# and NR_CPUS (8192) limits.
MAX_ID = 1 << 16

_LIST_ITEM_RE = r"(\d+)(?:-(\d+))?"  # compiled on first use (re caches it)
# strtoul(s, &end, 0) as libnuma's get_nr uses it: optional blanks and sign, then hex,
# octal or decimal digits.
_STRTOUL_RE = r"[ \t\n\r\f\v]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)"
_AFFINITY_PREFIXES = ("netdev:", "file:", "ip:", "block:", "pci:")


class NodeStringError(NumaEmuError):
    """A numactl node or cpu string that libnuma would refuse.

    ``message`` is numactl's complaint, ``"<TEXT> is invalid"`` (numactl.c prints
    ``"<%s> is invalid\\n"`` with the whole argument); ``text`` is that argument and
    ``reason`` is libnuma's warning, e.g. "node argument 7 is out of range".
    """

    def __init__(self, text: str, reason: str):
        super().__init__(ErrorCode.EINVAL, f"<{text}> is invalid")
        self.text = text
        self.reason = reason


def _einval(message: str) -> NumaEmuError:
    return NumaEmuError(ErrorCode.EINVAL, message)


# --- the kernel list format --------------------------------------------------------------


def parse_nodelist(text: str, *, what: str = "node list") -> frozenset[int]:
    """Parse the kernel list format: "0-3,5,8-10"; "" (or blanks, a newline) is empty.

    Like the kernel's ``bitmap_parselist``, overlapping items are merged and a reversed
    range ("3-1") is an error.
    """
    if not isinstance(text, str):
        raise _einval(f"invalid {what} {text!r}: expected a string like '0-3,5'")
    stripped = text.strip()
    if not stripped:
        return frozenset()
    ids: set[int] = set()
    for item in stripped.split(","):
        match = re.fullmatch(_LIST_ITEM_RE, item.strip())
        if match is None:
            raise _einval(f"invalid {what} '{text}': '{item}' is not N or A-B")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise _einval(f"invalid {what} '{text}': range '{item}' is reversed")
        if last >= MAX_ID:
            raise _einval(f"invalid {what} '{text}': {last} is above the limit {MAX_ID - 1}")
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


# --- numactl node and cpu strings --------------------------------------------------------


def _strtoul(text: str, pos: int) -> tuple[int | None, int]:
    """Read a number at ``pos`` as C ``strtoul(..., 0)``; (None, pos) if there is none.

    A minus sign gives None as well: strtoul would wrap it to a huge value that no
    allowed set contains, so libnuma refuses it as out of range.
    """
    match = re.compile(_STRTOUL_RE).match(text, pos)
    if match is None:
        return None, pos
    digits = match[2]
    if digits.startswith(("0x", "0X")):
        value = int(digits, 16)
    elif digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    return (None if match[1] == "-" else value), match.end()


def _get_nr(text: str, pos: int, allowed: list[int], relative: bool) -> tuple[int | None, int]:
    """libnuma ``get_nr``: a number, or with ``relative`` the id of the Nth allowed entry."""
    value, end = _strtoul(text, pos)
    if end == pos or value is None or not relative:
        return value, end
    return (allowed[value] if value < len(allowed) else None), end


def _parse_numactl_string(text: str, *, kind: str, allowed: frozenset[int],
                          possible: frozenset[int], relative_to: frozenset[int] | None) -> frozenset[int]:
    """The loop of libnuma ``__numa_parse_nodestring`` for ``kind`` "node" or "cpu"."""
    if not text:
        return frozenset()
    pos, invert, relative = 0, False, False
    if text.startswith("!"):
        invert, pos = True, 1
    if text.startswith("+", pos):
        relative, pos = True, pos + 1
    index_base = sorted(allowed if relative_to is None else relative_to)
    mask: set[int] = set()
    while True:
        rest = text[pos:]
        if rest == "all":
            mask.update(allowed)
            pos = len(text)
            break
        if kind == "node" and rest.startswith(_AFFINITY_PREFIXES):
            raise NodeStringError(text, f"device affinity '{rest}' is not emulated")
        first, end = _get_nr(text, pos, index_base, relative)
        if end == pos:
            raise NodeStringError(text, f"unparseable {kind} description `{rest}'")
        if first is None or first not in allowed:
            raise NodeStringError(text, f"{kind} argument {text[pos:end].strip()} is out of range")
        mask.add(first)
        pos = end
        if text.startswith("-", pos):
            last, end = _get_nr(text, pos + 1, index_base, relative)
            if end == pos + 1:
                raise NodeStringError(text, f"missing {kind} argument {text[pos + 1:]}")
            if last is None or last not in allowed:
                raise NodeStringError(text, f"{kind} argument {text[pos + 1:end].strip()} out of range")
            # libnuma quirk kept on purpose: "3-1" yields {3} (the loop runs zero times).
            mask.update(n for n in range(first, last + 1) if n in allowed)
            pos = end
        if not text.startswith(",", pos):
            break
        pos += 1
    if pos != len(text):
        raise NodeStringError(text, f"trailing characters `{text[pos:]}'")
    if invert:
        return frozenset(possible - mask)
    return frozenset(mask)


def parse_nodestring(text: str, *, allowed: frozenset[int], possible: frozenset[int],
                     relative_to: frozenset[int] | None = None) -> frozenset[int]:
    """Parse a numactl node string the way libnuma ``numa_parse_nodestring`` does.

    Accepts ``N``, ``A-B``, comma lists of those, ``all`` (= ``allowed``), a leading ``!``
    (the complement within ``possible``, libnuma's configured nodes) and then a leading
    ``+`` (numbers index ``sorted(relative_to or allowed)``, cpuset-relative). Numbers are
    read as C ``strtoul(.., 0)``: "0x2" and "010" (octal) work. Every node named must be
    in ``allowed`` (the task's cpuset mems; pass the possible nodes for numactl ``--all``);
    nodes inside a range that are not allowed are skipped, as libnuma does. The empty
    string is the empty set. numactl's ``same`` (repeat the previous string) is the
    caller's business.

    Raises :class:`NodeStringError` (EINVAL, ``"<TEXT> is invalid"``) on anything else.
    """
    return _parse_numactl_string(text, kind="node", allowed=frozenset(allowed),
                                 possible=frozenset(possible), relative_to=relative_to)


def parse_cpustring(text: str, *, allowed: frozenset[int], possible: frozenset[int],
                    relative_to: frozenset[int] | None = None) -> frozenset[int]:
    """Parse a numactl ``--physcpubind`` string (libnuma ``numa_parse_cpustring``).

    Same grammar as :func:`parse_nodestring` minus the device-affinity forms.
    """
    return _parse_numactl_string(text, kind="cpu", allowed=frozenset(allowed),
                                 possible=frozenset(possible), relative_to=relative_to)


# --- hex masks ---------------------------------------------------------------------------


def format_mask_hex(ids: Iterable[int], nbits: int = 64) -> str:
    """Format a set as the kernel's ``%*pb`` does, e.g. ``Mems_allowed`` in /proc/PID/status.

    32-bit words in hex, most significant first, comma separated; the first word is only
    as wide as the bits left over (lib/vsprintf.c ``bitmap_string``). The kernel prints
    ``MAX_NUMNODES`` bits for Mems_allowed (64 with CONFIG_NODES_SHIFT=6, hence the
    default): {0, 1} -> "00000000,00000003".
    """
    if nbits < 1:
        raise _einval(f"invalid mask width {nbits}: must be at least 1 bit")
    value = 0
    for bit in set(ids):
        if not 0 <= bit < nbits:
            raise _einval(f"id {bit} does not fit a {nbits}-bit mask")
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
        raise _einval(f"invalid hex mask '{text}': expected 32-bit hex words like 00000000,00000003")
    value = 0
    for word in words:
        value = (value << 32) | int(word, 16)
    return frozenset(bit for bit in range(value.bit_length()) if value >> bit & 1)
