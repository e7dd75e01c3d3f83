"""libnuma's node and CPU string parser, step for step, and the C ``strtoul`` it rests on.

Place in numa-emu: every front end that takes numactl-style node strings (``numactl``,
``memhog``, ``migratepages``) parses them here, so that an invalid string gives
exactly libnuma's warning (``libnuma: Warning: node argument 5 is out of range``).
Sources: numactl/numactl ``libnuma.c`` (``__numa_parse_nodestring``,
``__numa_parse_cpustring``, ``get_nr``, ``numa_warn``).  Pure functions.

``protocol.nodemask`` has a parser for the same grammar with numa-emu's own error
text; this one exists because the front ends must reproduce libnuma's messages byte
for byte (including the quirks: ``%ld`` of a wrapped unsigned long, quoting of CPU
arguments, trailing garbage refused without a warning).
"""

from __future__ import annotations

from dataclasses import dataclass
from string import ascii_letters

_ULONG = 1 << 64
NODEMASK_BITS = 1024  # libnuma nodemask size on kernels with CONFIG_NODES_SHIFT=10
CPUMASK_BITS = 8192  # libnuma cpumask size (NR_CPUS); only bounds relative numbers
_IO_PREFIXES = ("netdev:", "ip:", "file:", "block:", "pci:")  # libnuma affinity.c handlers


def c_strtoul(s: str, pos: int = 0, base: int = 0) -> tuple[int, int]:
    """C ``strtoul(s + pos, &end, base)`` as (value mod 2**64, end index).

    Leading whitespace and one sign are accepted; base 0 picks hex for ``0x``, octal
    for a leading ``0``, else decimal.  No digits: value 0 and end == pos.
    Overflow saturates to ULONG_MAX; a minus sign negates modulo 2**64.
    """
    i = pos
    while i < len(s) and s[i] in " \t\n\v\f\r":
        i += 1
    negative = i < len(s) and s[i] == "-"
    if i < len(s) and s[i] in "+-":
        i += 1
    if base in (0, 16) and s[i : i + 2].lower() == "0x" and i + 2 < len(s) and s[i + 2] in "0123456789abcdefABCDEF":
        base, i = 16, i + 2
    elif base == 0:
        base = 8 if s[i : i + 1] == "0" else 10
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
    start = i
    while i < len(s) and s[i].lower() in digits:
        i += 1
    if i == start:
        return 0, pos
    value = int(s[start:i], base)
    if value >= _ULONG:
        return _ULONG - 1, i
    return ((-value) % _ULONG if negative else value), i


def _signed(value: int) -> int:
    """An unsigned long printed with ``%ld``."""
    return value - _ULONG if value >= 1 << 63 else value


class NodeStringError(ValueError):
    """libnuma refused a node or CPU string; ``warning`` is what it wrote to stderr."""

    def __init__(self, warning: str) -> None:
        super().__init__(warning.strip())
        self.warning = warning


def _warn(message: str) -> NodeStringError:
    """libnuma.c numa_warn(): prefix, the format (which may end in a newline), a newline."""
    return NodeStringError(f"libnuma: Warning: {message}\n")


@dataclass(frozen=True)
class _MaskSyntax:
    """What one libnuma string parse works against."""

    allowed: frozenset[int]
    relative: bool
    cpu: bool

    @property
    def what(self) -> str:
        return "cpu" if self.cpu else "node"

    def number(self, s: str, pos: int) -> tuple[int, int]:
        """libnuma.c get_nr(): a number, or with ``+`` the id of the n-th allowed one."""
        nr, end = c_strtoul(s, pos)
        if not self.relative or end == pos:
            return nr, end
        n, order = _signed(nr), sorted(self.allowed)
        if n < 0:
            return _ULONG - 1, end
        return (order[n] if n < len(order) else (CPUMASK_BITS if self.cpu else NODEMASK_BITS)), end

    def out_of_range(self, text: str, value: int, verb: str) -> NodeStringError:
        """libnuma.c quotes the text for CPUs and prints the number (%ld) for nodes."""
        return _warn(f"cpu argument {text} {verb}\n" if self.cpu else f"node argument {_signed(value)} {verb}\n")


def _parse_element(s: str, p: int, syn: _MaskSyntax) -> tuple[set[int], int]:
    """One ``N`` or ``A-B`` of the list at index ``p``: its allowed ids and the index after it."""
    arg, end = syn.number(s, p)
    if end == p:
        raise _warn(f"unparseable {syn.what} description `{s[p:-1]}'\n")
    if arg not in syn.allowed:
        raise syn.out_of_range(s[p:-1], arg, "is out of range")
    if s[end] != "-":
        return {arg}, end
    p = end + 1
    arg2, end2 = syn.number(s, p)
    if end2 == p:
        raise _warn(f"missing {syn.what} argument {s[p:-1]}\n")
    if arg2 not in syn.allowed:
        raise syn.out_of_range(s[p:-1], arg2, "out of range")
    return {arg} | {i for i in range(arg, arg2 + 1) if i in syn.allowed}, end2


def _parse_mask(text: str, allowed: frozenset[int], configured: int, *, cpu: bool) -> frozenset[int]:
    """libnuma.c __numa_parse_nodestring / __numa_parse_cpustring, step for step.

    ``s`` carries C's terminating NUL so that index arithmetic matches the pointer code.
    """
    s, p = text + "\0", 0
    if s[0] == "\0":
        return frozenset()
    invert = s[p] == "!"
    p += invert
    relative = s[p] == "+"
    p += relative
    syn = _MaskSyntax(allowed, relative, cpu)
    mask: set[int] = set()
    while True:
        rest = s[p:-1]
        if (cpu or s[p] in ascii_letters) and rest == "all":
            mask, p = set(allowed), p + 4
            break
        if not cpu and s[p] in ascii_letters and rest.startswith(_IO_PREFIXES):
            raise _warn(f"I/O device affinity is not emulated: `{rest}'")
        ids, p = _parse_element(s, p, syn)
        mask |= ids
        p += 1
        if s[p - 1] != ",":
            break
    if s[p - 1] != "\0":
        raise NodeStringError("")  # trailing garbage: libnuma fails without a warning
    if invert:
        mask.symmetric_difference_update(range(configured))
    return frozenset(mask)


def parse_nodestring(text: str, allowed: frozenset[int], *, configured: int | None = None) -> frozenset[int]:
    """libnuma ``numa_parse_nodestring``: ``N``, ``A-B``, lists, ``all``, ``!`` and ``+``.

    ``allowed`` is the task's allowed nodes (cpuset mems), or every possible node for
    ``numa_parse_nodestring_all``.  ``configured`` (default ``len(allowed)``) is
    numa_num_configured_nodes(): ``!`` inverts ids ``0 .. configured-1``.
    Raises :class:`NodeStringError` with libnuma's warning text.
    """
    count = len(allowed) if configured is None else configured
    return _parse_mask(text, frozenset(allowed), count, cpu=False)


def parse_cpustring(text: str, allowed: frozenset[int], *, configured: int | None = None) -> frozenset[int]:
    """libnuma ``numa_parse_cpustring``: the same syntax for CPUs (no I/O device names)."""
    count = len(allowed) if configured is None else configured
    return _parse_mask(text, frozenset(allowed), count, cpu=True)
