"""The objects memtoy commands parse into, and the one error type of a memtoy session.

Frozen dataclasses, one per command of numa_emu/memtoy/commands.py, so that a parsed line can
be compared in a test and carried out by numa_emu/memtoy/executor.py. Sizes are bytes, node
sets are frozenset[int], policies are protocol.policy.Mode values.
"""
from __future__ import annotations

from dataclasses import dataclass

from numa_emu.protocol.policy import Mode


class MemtoyError(Exception):
    """A command that cannot be carried out; str() is the one line to show after `memtoy: `."""


class ParseError(MemtoyError):
    """A line that is not a valid memtoy command."""


# ---- the command objects ----------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    """Part of a segment: bytes from its start; length 0 runs to its end (memtoy's range_t)."""

    offset: int
    length: int


@dataclass(frozen=True)
class PolicyArg:
    """A policy as typed: mode None is memtoy's noop (keep the policy of the range)."""

    mode: Mode | None
    nodes: frozenset[int] = frozenset()
    all_allowed: bool = False  # '*' with interleave: every node the task may allocate from


@dataclass(frozen=True)
class Anon:
    seg: str
    size: int  # bytes
    shared: bool = False


@dataclass(frozen=True)
class Shmem:
    seg: str
    size: int


@dataclass(frozen=True)
class File:
    path: str
    range: Range | None = None
    shared: bool = False


@dataclass(frozen=True)
class Map:
    seg: str
    shared: bool | None = None  # None: as defined


@dataclass(frozen=True)
class Unmap:
    seg: str


@dataclass(frozen=True)
class Remove:
    segs: tuple[str, ...]


@dataclass(frozen=True)
class Touch:
    seg: str
    range: Range | None = None
    write: bool = False


@dataclass(frozen=True)
class Mbind:
    seg: str
    policy: PolicyArg
    range: Range | None = None
    flags: int = 0  # MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_LAZY
    shared: bool = False  # +shared: the policy becomes the file's shared policy (a file segment)


@dataclass(frozen=True)
class Where:
    seg: str
    range: Range | None = None


@dataclass(frozen=True)
class Mpol:
    policy: PolicyArg | None = None  # None: show the task policy


@dataclass(frozen=True)
class Migrate:
    to_nodes: frozenset[int]
    from_nodes: frozenset[int] | None = None


@dataclass(frozen=True)
class Show:
    seg: str | None = None


@dataclass(frozen=True)
class Snooze:
    seconds: float


@dataclass(frozen=True)
class Help:
    topic: str | None = None  # a full command name


@dataclass(frozen=True)
class Numa:
    pass


@dataclass(frozen=True)
class Pid:
    pass


@dataclass(frozen=True)
class Time:
    pass


@dataclass(frozen=True)
class Quit:
    pass


Command = (Anon | Shmem | File | Map | Unmap | Remove | Touch | Mbind | Where | Mpol | Migrate | Show
           | Snooze | Help | Numa | Pid | Time | Quit)
