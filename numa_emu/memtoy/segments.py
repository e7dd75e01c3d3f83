"""memtoy's segment table and the pure arithmetic and text around it.

A segment is defined first (anon, shmem) and mapped later (map), as in memtoy's `segment.c`;
while mapped it holds the task's Region. Ranges follow memtoy: the offset is rounded down to a
page and must fall inside the segment, the length is rounded up to whole pages and silently
cut at the end of the segment, and a length of 0 means "to the end". Nothing here talks to the
cluster, so all of it is tested with plain calls.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from numa_emu.protocol.units import format_size

from numa_emu.memtoy.parsed import MemtoyError, Range

WHERE_DEFAULT_PAGES = 64  # memtoy's `where` shows this many pages when no range is given


@dataclass
class Segment:
    name: str
    kind: str  # "anon", "shmem" or "file"
    size: int  # bytes, whole pages
    shared: bool
    region: Any = None  # numa_emu.api.Region while mapped
    file: Any = None  # numa_emu.api.File of a file segment
    file_offset: int = 0  # bytes into the file where the segment starts

    @property
    def mapped(self) -> bool:
        return self.region is not None


@dataclass(frozen=True)
class Window:
    """The part of a segment a command works on: bytes from the segment start."""

    offset: int
    length: int
    more_pages: int = 0  # pages after the window that a default `where` left out

    def first_page(self, page_size: int) -> int:
        return self.offset // page_size


class SegmentTable:
    """The session's segments by name, in the order they were defined."""

    def __init__(self, page_size: int):
        self.page_size = page_size
        self._segments: dict[str, Segment] = {}

    def define(self, name: str, kind: str, size: int, shared: bool) -> Segment:
        if name in self._segments:
            raise MemtoyError(f'segment "{name}" already exists')
        if size <= 0:
            raise MemtoyError(f"segment {name}: size must be positive")
        pages = -(-size // self.page_size)
        segment = Segment(name, kind, pages * self.page_size, shared)
        self._segments[name] = segment
        return segment

    def get(self, name: str) -> Segment:
        try:
            return self._segments[name]
        except KeyError:
            raise MemtoyError(f"no such segment: {name}") from None

    def mapped(self, name: str) -> Segment:
        segment = self.get(name)
        if not segment.mapped:
            raise MemtoyError(f"segment {name} not mapped")
        return segment

    def forget(self, name: str) -> None:
        del self._segments[name]

    def names(self) -> list[str]:
        return list(self._segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(list(self._segments.values()))

    def __len__(self) -> int:
        return len(self._segments)

    def window(self, segment: Segment, rng: Range | None, default_pages: int | None = None) -> Window:
        """The page-aligned part of `segment` that `rng` names (None: all of it, or its first
        `default_pages` pages)."""
        ps = self.page_size
        offset = (rng.offset // ps) * ps if rng else 0
        if offset >= segment.size:
            raise MemtoyError(f"offset {rng.offset if rng else 0} is past the end of segment {segment.name} "
                              f"({format_size(segment.size)})")
        room = segment.size - offset
        if rng is None:
            length = min(room, default_pages * ps) if default_pages else room
            return Window(offset, length, (room - length) // ps)
        length = -(-rng.length // ps) * ps
        return Window(offset, room if length == 0 or length > room else length)


def format_where(first_page: int, nodes: Sequence[int | None], more_pages: int = 0) -> list[str]:
    """`where` output: "PAGE NODE" per page ('-' when not present), then "... N more pages"."""
    lines = [f"{first_page + i} {'-' if node is None else node}" for i, node in enumerate(nodes)]
    if more_pages:
        lines.append(f"... {more_pages} more page{'s' if more_pages != 1 else ''}")
    return lines


# memtoy's segment.c: the type letter of show_one_segment() and segment_location()'s 8 pages a line.
_TYPE_LETTER = {"anon": "a", "file": "f", "shmem": "s"}
PAGES_PER_LINE = 8


def format_segment_line(seg: Segment) -> str:
    """memtoy's show_one_segment() line of a mapped segment (no header):
    "%c 0x%016lx 0x%012lx 0x%012lx  %s%c %s %s": type, start, length, file offset, protection,
    '-' (not executable), share ("private", "shared " or, for shmem, "default"), name."""
    share = "default" if seg.kind == "shmem" else ("shared " if seg.shared else "private")
    return (f"{_TYPE_LETTER[seg.kind]} 0x{seg.region.vaddr:016x} 0x{seg.size:012x} 0x{seg.file_offset:012x}  "
            f"rw- {share} {seg.name}")


def format_location(segment_line: str, first_page: int, nodes: Sequence[int | None]) -> list[str]:
    """memtoy's segment_location(): the segment line, a "page offset" header with +00 to +07,
    then the pages eight a line after their hexadecimal page offset ("%12lx: "), each node as
    " %3d" ('-' for a page with none: numa-emu's where never faults one in). A window that starts
    inside a line is indented to its column."""
    lines = [segment_line, "page offset   " + "".join(f" +{i:02d}" for i in range(PAGES_PER_LINE))]
    line = ""
    for i, node in enumerate(nodes):
        page = first_page + i
        if i == 0 or page % PAGES_PER_LINE == 0:
            if line:
                lines.append(line)
            start = page - page % PAGES_PER_LINE
            line = f"{start:12x}: " + "    " * (page - start)
        line += f" {'-' if node is None else node:>3}"
    lines.append(line)
    return lines


def format_node_pages(pages: dict) -> str:
    """numa_maps-style page counts: {0: 4, 1: 4} -> "N0=4 N1=4"; none -> "-"."""
    counts = {int(node): int(n) for node, n in pages.items() if n}
    return " ".join(f"N{node}={counts[node]}" for node in sorted(counts)) or "-"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two blanks apart, as wide as their widest cell."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(f"{str(cell):<{w}}" for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
