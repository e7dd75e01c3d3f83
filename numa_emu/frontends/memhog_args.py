"""memhog(8) command-line parsing: ``memhog [-fFILE] [-rNUM] [-H] size[kmg] [policy [nodeset]]``.

Place in numa-emu: the built-in memhog workload (docs/linux-semantics.md#memhog) takes the real tool's
arguments, as LTP (``memhog -r1000000 1MB``) and numactl's ``test/regress``
(``memhog -H 15728640 interleave 0,1``) pass them.  Sources: numactl/numactl
``memhog.c`` (``main``, ``usage``) and ``util.c`` (``memsize``, ``parse_policy``,
``print_policies``).  Errors raise :class:`MemhogUsageError` with memhog's exact
output and exit status 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from numa_emu.frontends import FrontendExit
from numa_emu.frontends.libnuma import NodeStringError, c_strtoul, parse_nodestring

# util.c policies[]: memhog's policy words, their noarg flag, and our mode names
# (numactl's policy_name() vocabulary), in the table's order (print_policies).
_POLICIES: tuple[tuple[str, bool, str], ...] = (
    ("preferred-many", False, "preferred-many"),
    ("local", True, "local"),
    ("interleave", False, "interleave"),
    ("membind", False, "bind"),
    ("preferred", False, "preferred"),
    ("default", True, "default"),
    ("weighted-interleave", False, "weighted-interleave"),
)

MEMHOG_USAGE = (
    "memhog [-fFILE] [-rNUM] [-H] size[kmg] [policy [nodeset]]\n"
    "-f mmap is backed by FILE\n"
    "-rNUM repeat memset NUM times\n"
    "-H disable transparent hugepages\n"
    "Policies: " + " ".join(name for name, _, _ in _POLICIES) + "\n"
)

CHUNK_BYTES = 10 * 1024 * 1024  # memhog.c UNIT: one '.' per 10 MiB memset


@dataclass(frozen=True)
class MemhogRequest:
    """A parsed memhog command line.

    ``size_bytes``: the region length.  ``policy``: ``default``, ``local``,
    ``interleave``, ``bind`` (memhog's ``membind``), ``preferred``,
    ``preferred-many`` or ``weighted-interleave``; applied with mbind to the region.
    ``nodeset``: the node string as typed (None for default/local), ``nodes``: it
    parsed against the allowed nodes (None when no ``allowed`` set was given or the
    policy takes none).  ``file``: ``-fFILE``.  ``repeat``: ``-rNUM`` (default 1).
    ``disable_thp``: ``-H``.
    """

    size_bytes: int
    policy: str = "default"
    nodeset: str | None = None
    nodes: frozenset[int] | None = None
    file: str | None = None
    repeat: int = 1
    disable_thp: bool = False


class MemhogUsageError(FrontendExit):
    """memhog exits 1; its usage (and policy list) goes to stdout."""


def _usage() -> MemhogUsageError:
    return MemhogUsageError("", [(1, MEMHOG_USAGE)])


def memsize(text: str) -> int:
    """util.c memsize(): strtoul(s, &end, 0), then a k/m/g suffix (any case, binary).

    Anything after the suffix letter is ignored, so ``1MB`` is 1 MiB.  The result
    is a C ``long``: values past 2**63 wrap negative.
    """
    value, end = c_strtoul(text)
    suffix = text[end : end + 1].upper()
    value *= {"G": 1 << 30, "M": 1 << 20, "K": 1 << 10}.get(suffix, 1)
    value %= 1 << 64
    return value - (1 << 64) if value >= 1 << 63 else value


def c_atoi(text: str) -> int:
    """C atoi(): optional whitespace and one sign, then decimal digits; else 0."""
    rest = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if rest[:1] in ("+", "-"):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    count = len(rest) - len(rest.lstrip("0123456789"))
    return sign * int(rest[:count]) if count else 0


def _policy(name: str | None, has_nodeset: bool) -> str:
    """util.c parse_policy(): leading dashes stripped; a nodeset needed unless noarg."""
    if name is None:
        return "default"
    word = name.lstrip("-")
    for policy_word, noarg, mode in _POLICIES:
        if word == policy_word and (has_nodeset or noarg):
            return mode
    raise _usage()


def parse_memhog_args(
    argv: Sequence[str], *, allowed: frozenset[int] | None = None, configured: int | None = None
) -> MemhogRequest:
    """Parse memhog's arguments (``argv`` without the program name).

    With ``allowed`` (the task's cpuset mems) the nodeset is parsed as libnuma's
    numa_parse_nodestring does (``configured``: node count for ``!``); a bad one
    raises :class:`MemhogUsageError` with ``<X> is invalid`` (exit 1, no usage).
    """
    args = list(argv)
    file, repeat, disable_thp = None, 1, False
    while args and args[0].startswith("-"):
        flag, value = args[0][1:2], args[0][2:]
        if flag == "f":
            file = value
        elif flag == "r":
            repeat = c_atoi(value)
        elif flag == "H":
            disable_thp = True
        else:
            raise _usage()
        args.pop(0)
    if not args:
        raise _usage()
    size = memsize(args[0])
    policy = _policy(args[1] if len(args) > 1 else None, len(args) > 2)
    nodeset = args[2] if policy not in ("default", "local") else None
    nodes = None
    if nodeset is not None and allowed is not None:
        try:
            nodes = parse_nodestring(nodeset, allowed, configured=configured)
        except NodeStringError as err:
            raise MemhogUsageError(
                f"<{nodeset}> is invalid", [(2, err.warning), (1, f"<{nodeset}> is invalid\n")]
            ) from None
    if size <= 0:
        # memhog.c: mmap() of 0 bytes (or a negative long, i.e. a huge size_t) fails.
        reason = "Invalid argument" if size == 0 else "Cannot allocate memory"
        raise MemhogUsageError(f"numactl: mmap: {reason}", [(2, f"numactl: mmap: {reason}\n")])
    return MemhogRequest(size, policy, nodeset, nodes, file, repeat, disable_thp)
