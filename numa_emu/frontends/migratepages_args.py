"""migratepages(8) command-line parsing: ``migratepages pid from-nodes to-nodes``.

Place in numa-emu: ``numa-emu migratepages`` moves a task's pages between nodes
with migrate_pages(2) semantics (docs/linux-semantics.md#migrate_pages, #migratepages).  Source: numactl/numactl
``migratepages.c``: glibc getopt_long with only ``-h``/``--help`` (any option prints
the usage), exactly three operands, the pid read with ``strtoul(s, &end, 0)`` and the
node strings with libnuma's numa_parse_nodestring.  Errors raise
:class:`MigratepagesUsageError` with the tool's exact output and exit status 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from numa_emu.frontends import FrontendExit
from numa_emu.frontends.libnuma import NodeStringError, c_strtoul, parse_nodestring

MIGRATEPAGES_USAGE = (
    "usage: migratepages pid from-nodes to-nodes\n"
    "\n"
    "nodes is a comma delimited list of node numbers or A-B ranges or all.\n"
)


@dataclass(frozen=True)
class MigratepagesRequest:
    """``pid``; the node strings as typed; and, when ``allowed`` was given, parsed."""

    pid: int
    from_spec: str
    to_spec: str
    from_nodes: frozenset[int] | None = None
    to_nodes: frozenset[int] | None = None


class MigratepagesUsageError(FrontendExit):
    """migratepages exits 1: usage on stderr, or ``<X> is invalid`` on stdout."""


def _usage(before: str = "") -> MigratepagesUsageError:
    return MigratepagesUsageError(before.rstrip("\n"), [(2, before), (2, MIGRATEPAGES_USAGE)])


def _operands(argv: Sequence[str]) -> list[str]:
    """glibc getopt_long(argc, argv, "h", {"help"}): options anywhere, ``--`` ends them."""
    operands: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return operands + list(argv[index + 1 :])
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
        elif arg.startswith("--"):
            name = arg[2:].partition("=")[0]
            if not name or not "help".startswith(name):
                raise _usage(f"migratepages: unrecognized option '{arg}'\n")
            if "=" in arg:
                raise _usage("migratepages: option '--help' doesn't allow an argument\n")
            raise _usage()
        elif arg[1] != "h":
            raise _usage(f"migratepages: invalid option -- '{arg[1]}'\n")
        else:
            raise _usage()
    return operands


def _nodes(spec: str, allowed: frozenset[int] | None, configured: int | None) -> frozenset[int] | None:
    if allowed is None:
        return None
    try:
        return parse_nodestring(spec, allowed, configured=configured)
    except NodeStringError as err:
        invalid = f"<{spec}> is invalid"
        raise MigratepagesUsageError(invalid, [(2, err.warning), (1, invalid + "\n")]) from None


def parse_migratepages_args(
    argv: Sequence[str], *, allowed: frozenset[int] | None = None, configured: int | None = None
) -> MigratepagesRequest:
    """Parse migratepages' arguments (``argv`` without the program name).

    With ``allowed`` (the caller's cpuset mems) both node strings are parsed and
    checked as libnuma does (``configured``: node count for ``!``).
    """
    operands = _operands(argv)
    if len(operands) != 3:
        raise _usage()
    pid, end = c_strtoul(operands[0])
    if end == 0 or end != len(operands[0]):
        raise _usage()
    pid %= 1 << 32  # migratepages.c stores strtoul's result in an int
    pid = pid - (1 << 32) if pid >= 1 << 31 else pid
    from_nodes = _nodes(operands[1], allowed, configured)
    to_nodes = _nodes(operands[2], allowed, configured)
    return MigratepagesRequest(pid, operands[1], operands[2], from_nodes, to_nodes)
