"""`trace show`: a trace told as a time-ordered story, one line per event.

    +12.345 ms (+0.210) node 1 task 311 [vt 4484 ns] read 8 bytes of 0x7f0000000000 on node 0 (remote)

Relative wall time from the first event of the file (ms, 3 decimals), the gap since the previous
line shown, the node that recorded the event, the task and its virtual clock, and a sentence.
The sentence of each kind is one entry of SENTENCES: a function of the event and the story so far
(what the trace said earlier about the same page, e.g. when its replicas were torn down). A kind
without an entry, or an event missing a field its sentence needs, prints generically.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from numa_emu.traceview.events import (COMMON_FIELDS, Filters, Link, first, link_frames, page_key,
                                       page_name, replica_node)
from numa_emu.protocol.nodemask import format_nodelist
from numa_emu.protocol.policy import Policy, policy_to_str


@dataclass
class Story:
    """What the sentences may know besides their event: the frame links, when each live replica
    was made, when each page was last unreplicated and which replica frames were torn down."""

    links: dict[int, Link] = field(default_factory=dict)
    link: Link | None = None  # the current event's
    replicated_at: dict[tuple, dict] = field(default_factory=dict)  # page -> {replica node: wall ns}
    unreplicated_at: dict[tuple, int] = field(default_factory=dict)
    torn_down: dict[tuple, int] = field(default_factory=dict)  # (page, replica node, frame) -> wall ns

    def observe(self, e: dict) -> None:
        """Called for every event in order, shown or not, after its sentence is made."""
        key = page_key(e)
        if key is None:
            return
        node = replica_node(e)
        if e["ev"] == "replicate":
            self.replicated_at.setdefault(key, {}).setdefault(node, e["wall_ns"])
        elif e["ev"] == "unreplicate":
            self.unreplicated_at[key] = e["wall_ns"]
            live = self.replicated_at.get(key, {})
            if node is None:
                live.clear()
            else:
                live.pop(node, None)
            if node is not None and isinstance(e.get("frame"), int):
                self.torn_down[(key, node, e["frame"])] = e["wall_ns"]

    def born(self, e: dict) -> int | None:
        """When the replica an unreplicate event tears down was made (the oldest one of its page
        when the event names no node)."""
        live, node = self.replicated_at.get(page_key(e), {}), replica_node(e)
        if node is None:
            return min(live.values(), default=None)
        return live.get(node)


# ---- words ---------------------------------------------------------------------------------

def duration(ns: float) -> str:
    """A wall-clock interval: '0.98 s' (from 0.1 s), '12.3 ms', '450 µs', '800 ns'."""
    if ns >= 1e8:
        return f"{ns / 1e9:.2f} s"
    return three_digits(ns)


def three_digits(ns: float) -> str:
    """ns in ms, µs or ns with three significant digits, never an exponent (999.7 µs is 1 ms)."""
    for scale, unit, bigger in ((1e6, "ms", None), (1e3, "µs", "ms"), (1, "ns", "µs")):
        if ns >= scale or unit == "ns":
            text = f"{ns / scale:.3g}"
            if "e" in text and bigger:  # rounded up to 1000: say it in the bigger unit
                return f"{ns / (scale * 1000):.3g} {bigger}"
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def frames_phrase(frames: Any) -> str:
    if not isinstance(frames, list) or not frames:
        return "no frame"
    if len(frames) == 1:
        return f"frame {frames[0]}"
    return f"{len(frames)} frames ({format_nodelist(frames)})"


def nodes_phrase(nodes: Any) -> str:
    if isinstance(nodes, dict):
        nodes = list(nodes)
    if isinstance(nodes, list):
        ids = [int(n) for n in nodes]
        return f"node {ids[0]}" if len(ids) == 1 else f"nodes {format_nodelist(ids)}"
    return f"node {nodes}"


def page_of(e: dict) -> str:
    if e.get("obj") is not None and isinstance(e.get("idx"), list):
        return f"{e['obj']}:{format_nodelist(e['idx'])}"
    return page_name(page_key(e))


def rw(e: dict) -> str:
    return "write" if e.get("write") else "read"


def _locality(e: dict, where: Any) -> str:
    local = e.get("local")
    if local is None:
        local = where == e.get("node")
    return "local" if local else "remote"


# ---- one sentence per kind -------------------------------------------------------------------

def _fault(e: dict, story: Story) -> str:
    copy = "replica frame" if e.get("replica") is True else "frame"
    return (f"first touch of {page_of(e)} ({rw(e)}): {copy} {e['frame']} on node {e['supplier']}, "
            f"{_locality(e, e['supplier'])}")


def _alloc(e: dict, story: Story) -> str:
    verdict = "hit" if e.get("hit") else "miss"
    how = ", interleave" if e.get("interleave") else ""
    return (f"allocated {frames_phrase(e['frames'])} for a task on node {e['task_node']} "
            f"(preferred node {e['preferred']}: {verdict}{how})")


def _free(e: dict, story: Story) -> str:
    pages = story.link.pages if story.link else []
    of = f" of {page_name(pages[0])}" if len(pages) == 1 else ""
    cause = f" ({e['cause']})" if e.get("cause") else ""
    return f"freed {frames_phrase(e['frames'])}{of}{cause}"


def _access(e: dict, story: Story) -> str:
    verb, prep = ("wrote", "to") if e.get("write") else ("read", "of")
    return f"{verb} {e['bytes']} bytes {prep} {page_of(e)} on node {e['to']} ({_locality(e, e['to'])})"


def _task(e: dict, story: Story) -> str:
    what = e.get("what")
    if what == "attach":
        return f"attached on cpu {e['cpu']} ({e.get('comm', '?')})"
    if what == "detach":
        return f"detached, {e['pages']} pages released"
    if what == "move":
        return f"moving to cpu {e['cpu']} of node {e['to']}: page table handed over"
    if what == "adopt":
        return f"adopted on cpu {e['cpu']}: this node is the task's home now"
    return f"task {what}"


def _policy(e: dict, story: Story) -> str:
    text = policy_to_str(Policy.from_wire(e["policy"]))
    scope = e.get("scope")
    if scope == "task":
        return f"task policy set to {text} (mems allowed {format_nodelist(e.get('mems', []))})"
    if scope == "mbind":
        return f"mbind {e['addr']:#x}, {e['length']} bytes: {text}"
    return f"{scope} policy set to {text}"


def _node(e: dict, story: Story) -> str:
    return f"node {e['target']}: {e['old']} -> {e['new']}"


def _replicate(e: dict, story: Story) -> str:
    text = f"replica of {page_of(e)} on node {first(e, 'replica_node', 'to')} (frame {e['frame']})"
    master = first(e, "master", "from", "master_node")
    return text + (f", copied from node {master}" if master is not None else "")


def _unreplicate(e: dict, story: Story) -> str:
    replicas = first(e, "replica_node", "replicas", "nodes")
    where = f" on {nodes_phrase(replicas)}" if replicas is not None else ""
    frame = f" (frame {e['frame']})" if e.get("frame") is not None else ""
    text = f"replica of {page_of(e)}{where}{frame} torn down ({e.get('cause', 'no cause given')}"
    if e.get("unsafe"):
        text += ", unsafe: unlocked, freed before the unmaps"
    lifetime, born = e.get("lifetime_ns"), story.born(e)
    if lifetime is None and born is not None:
        lifetime = e["wall_ns"] - born
    return text + (f") after {duration(lifetime)}" if lifetime is not None else ")")


def _shootdown(e: dict, story: Story) -> str:
    verb = "write-protect" if e.get("write_protect") else "shootdown"
    copy = ""
    if e.get("frame") is not None:
        copy = f" (frame {e['frame']} on node {first(e, 'copy_node', 'replica_node', default=e['node'])})"
    cause = f" ({e['cause']})" if e.get("cause") else ""
    phase, target = e.get("phase"), first(e, "target", "to")
    if phase == "done":
        return f"{verb} of {page_of(e)}{copy} done: {e.get('unmapped', '?')} mapping(s) removed{cause}"
    if phase == "acked" or isinstance(e.get("targets"), list):
        return f"{verb} of {page_of(e)} acknowledged by {nodes_phrase(e.get('targets', []))}{cause}"
    text = f"{verb} of {page_of(e)}{copy}" + (f" sent to node {target}" if target is not None else "") + cause
    acked = e.get("acked")
    if acked is None:
        return text
    return text + (", acknowledged" if acked else ", NOT acknowledged")


def _stale(e: dict, story: Story) -> str:
    where = first(e, "replica_node", "copy_node", default=e["node"])
    torn = story.torn_down.get((page_key(e), where, e.get("frame")))
    copy = "replica" if torn is not None else "frame"
    who = f"task {e['task']}" if e.get("task") is not None else "a task"
    at = torn if torn is not None else story.unreplicated_at.get(page_key(e))
    when = f"{duration(e['wall_ns'] - at)} after unreplication" if at is not None else "after its frame was freed"
    text = f"{copy} of {page_of(e)} on node {where} still mapped by {who} {when}"
    if e.get("frame") is not None:
        text += f" (frame {e['frame']}"
        if e.get("mapped_gen") is not None:
            text += f", mapped at generation {e['mapped_gen']}, now {e.get('frame_gen', '?')}"
        text += ")"
    return text


def _migrate(e: dict, story: Story) -> str:
    lazy = "lazily " if e.get("mode") == "lazy" else ""
    src = f"node {e['from']}" + (f" (frame {e['from_frame']})" if e.get("from_frame") is not None else "")
    result = e.get("result", "ok")
    if result != "ok":
        dst = f" to node {e['to']}" if e.get("to") is not None else ""
        text = f"could not {lazy}migrate {page_of(e)} from {src}{dst}: {result}"
    else:
        dst = f"node {e['to']}" + (f" (frame {e['new_frame']})" if e.get("new_frame") is not None else "")
        text = f"{lazy}migrated {page_of(e)} from {src} to {dst}"
    if e.get("cause"):
        text += f" ({e['cause']})"
    return text


def _migcache(e: dict, story: Story) -> str:
    frame = f"frame {e['frame']} on node {e.get('at', '?')}"
    if e.get("what") == "in":
        return f"{page_of(e)} unmapped into the migration cache ({frame})"
    why = " (unmapped)" if e.get("why") == "unmap" else ""
    return f"{page_of(e)} left the migration cache ({frame}){why}"


def _writeback(e: dict, story: Story) -> str:
    master = first(e, "master", default=e["node"])
    frame = f"frame {e['frame']} " if e.get("frame") is not None else ""
    return f"wrote back dirty {page_of(e)} ({frame}on node {master})"


def _reclaim(e: dict, story: Story) -> str:
    if isinstance(e.get("frames"), list):
        return f"reclaimed {frames_phrase(e['frames'])}"
    return f"reclaimed {page_of(e)}" + (f" (frame {e['frame']})" if e.get("frame") is not None else "")


Sentence = Callable[[dict, Story], str]
SENTENCES: dict[str, Sentence] = {
    "fault": _fault, "alloc": _alloc, "free": _free, "access": _access, "task": _task, "policy": _policy,
    "node": _node, "replicate": _replicate, "unreplicate": _unreplicate, "shootdown": _shootdown,
    "stale": _stale, "migrate": _migrate, "migcache": _migcache, "writeback": _writeback, "reclaim": _reclaim,
}


def generic(e: dict) -> str:
    fields = " ".join(f"{k}={v}" for k, v in e.items() if k not in COMMON_FIELDS)
    return f"{e['ev']}" + (f": {fields}" if fields else "")


def sentence(e: dict, story: Story) -> str:
    make = SENTENCES.get(e["ev"])
    if make is None:
        return generic(e)
    try:
        return make(e, story)
    except Exception:  # noqa: BLE001 - the boundary between the table and any file: never crash on an event
        return generic(e)  # a field missing or of another shape: still one honest line


# ---- lines ---------------------------------------------------------------------------------

def story_lines(events: list[dict], filters: Filters = Filters()) -> Iterator[str]:
    """The story of the events `filters` selects, aligned in columns. Every event (shown or not)
    feeds the story, so a sentence can refer to earlier events about its page."""
    story = Story(links=link_frames(events))
    rows = []
    t0 = events[0]["wall_ns"] if events else 0
    previous = None
    for i, e in enumerate(events):
        story.link = story.links.get(i)
        if filters.matches(e, story.link):
            task = e.get("task")
            if task is None and story.link is not None:
                task = story.link.task
            gap = 0.0 if previous is None else (e["wall_ns"] - previous) / 1e6
            previous = e["wall_ns"]
            rows.append((f"{(e['wall_ns'] - t0) / 1e6:+.3f}", f"({gap:+.3f})", _node_label(e.get("node")),
                         f"task {task}" if task is not None else "",
                         f"[vt {e['vns']} ns]" if e.get("vns") is not None else "", sentence(e, story)))
        story.observe(e)
    widths = [max((len(r[c]) for r in rows), default=0) for c in range(5)]
    for r in rows:
        yield _join(r, widths)


def _node_label(node: Any) -> str:
    return f"node {node}" if isinstance(node, int) else str(node)


def _join(row: tuple, widths: list[int]) -> str:
    """Columns padded to their widths; an empty column (no task in the whole story) takes no room."""
    parts = [f"{row[0]:>{widths[0]}} ms {row[1]:>{widths[1]}}"]
    for col in (2, 3, 4):
        if widths[col]:
            parts.append(f"{row[col]:<{widths[col]}}")
    parts.append(row[5])
    return " ".join(parts)
