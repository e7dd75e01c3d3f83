"""Reading a trace file and linking its events: load and validate the JSON lines, name the page
an event is about, attribute the frame events (alloc, free) to the task and page they served,
and the filters of `trace show`.

Pure functions on lists of event dicts (protocol/tracing.py gives their shape); no printing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

DEFAULT_PAGE_SIZE = 4096  # when the events do not carry "page_size"
COMMON_FIELDS = ("ev", "wall_ns", "node", "task", "vns")

# Events that map a (node, frame) to a page: the fields that name that copy, and the field that
# names the node of the task the frame was allocated for (an alloc event's task_node; None: do
# not check). A later kind (a promotion, a lazy migration's second half) is one more entry here.
NEW_COPY_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    "fault": (("supplier",), ("frame",), "node"),  # a fault is recorded by the task's home node
    "replicate": (("replica_node", "to"), ("frame",), "replica_node"),  # a replica is for its node's tasks
    "migrate": (("to",), ("new_frame", "frame"), None),
}
# Events that release frames of the emitting node.
FREE_KINDS = frozenset({"free", "reclaim"})


class TraceError(Exception):
    """A line of the trace file that is not an event: the line number and what is wrong."""

    def __init__(self, line: int, what: str):
        super().__init__(f"line {line}: {what}")
        self.line = line
        self.what = what


def parse_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Events from JSON lines (blank lines skipped), sorted by wall time (stable: a file written
    by the recorder is sorted already). TraceError names the first malformed line."""
    out = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            event = json.loads(text)
        except ValueError as exc:
            raise TraceError(number, f"not JSON ({exc})") from None
        if not isinstance(event, dict):
            raise TraceError(number, f"not a JSON object but {type(event).__name__}")
        if not isinstance(event.get("ev"), str) or not event["ev"]:
            raise TraceError(number, "no event kind (an \"ev\" string)")
        wall = event.get("wall_ns")
        if isinstance(wall, bool) or not isinstance(wall, (int, float)):
            raise TraceError(number, f"\"wall_ns\" is not a number: {wall!r}")
        if not isinstance(event.get("node", ""), (int, str)):
            raise TraceError(number, f"\"node\" is neither a node id nor a name: {event['node']!r}")
        task = event.get("task")
        if task is not None and (isinstance(task, bool) or not isinstance(task, int)):
            raise TraceError(number, f"\"task\" is not a pid: {task!r}")
        out.extend(expand(event))
    out.sort(key=lambda e: e["wall_ns"])
    return out


# A batched fault (one event for a run of pages of one supplier, so that tracing a large
# first touch stays cheap) carries parallel lists; the reader turns it back into one per page.
BATCH_FIELDS = {"addrs": "addr", "frames_mapped": "frame", "vnss": "vns"}


def expand(event: dict[str, Any]) -> list[dict[str, Any]]:
    if "addrs" not in event:
        return [event]
    lists = {single: event.get(batch) or [] for batch, single in BATCH_FIELDS.items()}
    base = {k: v for k, v in event.items() if k not in BATCH_FIELDS}
    return [dict(base, **{single: values[i] for single, values in lists.items() if i < len(values)})
            for i in range(len(lists["addr"]))]


def load(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_events(f)
    except UnicodeDecodeError as exc:
        raise TraceError(0, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def first(event: dict, *names: str, default: Any = None) -> Any:
    """The first of `names` that the event carries (field names of later kinds may vary)."""
    for name in names:
        if event.get(name) is not None:
            return event[name]
    return default


def replica_node(event: dict) -> int | str | None:
    """The node of the replica a replicate/unreplicate event is about (None: not named)."""
    node = first(event, "replica_node", "to")
    return node if isinstance(node, (int, str)) else None


def page_size(event: dict) -> int:
    return int(event.get("page_size") or DEFAULT_PAGE_SIZE)


def page_key(event: dict) -> tuple | None:
    """The page an event is about: ("shm", obj, idx) for a shared page, ("va", addr) for an
    address of a task, None when it names no page (alloc, free, task, node)."""
    if isinstance(event.get("obj"), str) and isinstance(event.get("idx"), int):
        return ("shm", event["obj"], event["idx"])
    if isinstance(event.get("addr"), int):
        return ("va", event["addr"])
    return None


def page_name(key: tuple | None) -> str:
    if key is None:
        return "a page"
    if key[0] == "shm":
        return f"{key[1]}:{key[2]}"
    return f"{key[1]:#x}"


@dataclass
class Link:
    """What the trace says a frame event served: the tasks and pages its frames were mapped for."""

    tasks: set[int] = field(default_factory=set)
    pages: list[tuple] = field(default_factory=list)

    @property
    def task(self) -> int | None:
        return next(iter(self.tasks)) if len(self.tasks) == 1 else None


def link_frames(events: list[dict]) -> dict[int, Link]:
    """Attribute alloc and free events, which carry frames but no task, to the task and page
    whose fault (or replica, or migration) mapped those frames: an alloc to the next event that
    maps one of its (node, frame)s, a free to the last one. Keys are indexes into `events`."""
    links: dict[int, Link] = {}
    # (node, frame) allocated, not mapped yet -> (alloc index, the node of the task it is for).
    # A frame allocated outside a fault (a file write's master) stays pending until it is freed
    # or reallocated; the node check keeps a later mapper on another node from claiming it.
    pending: dict[tuple[Any, int], tuple[int, Any]] = {}
    owner: dict[tuple[Any, int], list[tuple[int | None, tuple | None]]] = {}  # (node, frame) -> mappers
    for i, e in enumerate(events):
        kind = e["ev"]
        frames = e.get("frames")
        frames = [f for f in frames if isinstance(f, int)] if isinstance(frames, list) else None
        if kind == "alloc" and frames is not None:
            for f in frames:
                pending[(e.get("node"), f)] = (i, e.get("task_node"))
        elif kind in FREE_KINDS and frames is not None:
            for f in frames:
                where = (e.get("node"), f)
                pending.pop(where, None)
                for mapping in owner.pop(where, ()):
                    _add(links, i, *mapping)
        elif kind in NEW_COPY_FIELDS:
            node_names, frame_names, for_node = NEW_COPY_FIELDS[kind]
            where = (first(e, *node_names), first(e, *frame_names))
            if not isinstance(where[0], (int, str)) or not isinstance(where[1], int):
                continue
            mapping = (e.get("task"), page_key(e))
            alloc = pending.get(where)
            if alloc is not None and (for_node is None or alloc[1] is None or alloc[1] == e.get(for_node)):
                del pending[where]
                _add(links, alloc[0], *mapping)
                owner[where] = [mapping]  # a fresh frame: whatever mapped it before is gone
            elif mapping not in owner.setdefault(where, []):
                owner[where].append(mapping)  # one more mapper of a shared copy
    return links


def _add(links: dict[int, Link], i: int, task: int | None, page: tuple | None) -> None:
    link = links.setdefault(i, Link())
    if task is not None:
        link.tasks.add(task)
    if page is not None and page not in link.pages[-1:]:
        link.pages.append(page)


# ---- filters -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PageFilter:
    """--page: a shared page (obj, idx) or an address (matches its whole page)."""

    obj: str | None = None
    idx: int | None = None
    addr: int | None = None

    @classmethod
    def parse(cls, text: str) -> "PageFilter":
        """'OBJ:IDX' or '0xADDR'; ValueError with a readable reason otherwise."""
        text = text.strip()
        if text.lower().startswith("0x"):
            try:
                return cls(addr=int(text, 16))
            except ValueError:
                raise ValueError(f"--page {text!r} is not a hexadecimal address") from None
        obj, sep, idx = text.rpartition(":")
        if not sep or not obj or not idx.isdigit():
            raise ValueError(f"--page takes OBJ:IDX (a shared page, e.g. file7:42) or 0xADDR, not {text!r}")
        return cls(obj=obj, idx=int(idx))

    def matches_key(self, key: tuple, size: int = DEFAULT_PAGE_SIZE) -> bool:
        if key[0] == "shm":
            return self.obj is not None and key[1] == self.obj and key[2] == self.idx
        return self.addr is not None and _same_page(key[1], self.addr, size)

    def matches(self, event: dict, link: Link | None) -> bool:
        size = page_size(event)
        if self.obj is not None and event.get("obj") == self.obj:
            idx = event.get("idx")
            if idx == self.idx or (isinstance(idx, list) and self.idx in idx):
                return True
        if self.addr is not None and isinstance(event.get("addr"), int):
            start, length = event["addr"], event.get("length")
            if isinstance(length, int) and length > 0:  # a range (mbind): does it cover the page?
                base = self.addr - self.addr % size
                if start < base + size and base < start + length:
                    return True
            elif _same_page(start, self.addr, size):
                return True
        return link is not None and any(self.matches_key(k, size) for k in link.pages)


def _same_page(a: int, b: int, size: int) -> bool:
    return a // size == b // size


@dataclass(frozen=True)
class Filters:
    page: PageFilter | None = None
    task: int | None = None
    kinds: frozenset[str] | None = None

    def matches(self, event: dict, link: Link | None) -> bool:
        if self.kinds is not None and event["ev"] not in self.kinds:
            return False
        if self.task is not None and event.get("task") != self.task and not (link and self.task in link.tasks):
            return False
        return self.page is None or self.page.matches(event, link)
