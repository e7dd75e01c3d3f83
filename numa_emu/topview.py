"""The frame of `numa-emu top`: a cluster snapshot in, a rich renderable out; rates from two.

Pure: no sockets and no clocks (numa_emu/cli/top.py takes the snapshots and stamps them). Per
node: frames used and free, replica pages (vmstat nr_repl_pages), migrations per second
(pgmigrate_success), numa_hit and numa_miss per second, page faults per second, and the remote
share. Per task: its cpu and node, virtual time, pages and locality (pages on its own node over
all its pages).

The remote share is of accesses when the nodes count them (vmstat ACCESS_COUNTERS), otherwise
of allocations: other_node / (local_node + other_node), the pages a node gave to tasks of
other nodes (numastat's rule, docs/linux-semantics.md#numastat-counters).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from numa_emu.traceview.story import three_digits

# vmstat counters (local, remote) that count accesses, if a node exposes them.
ACCESS_COUNTERS = ("numa_access_local", "numa_access_remote")


@dataclass(frozen=True)
class Snapshot:
    """What one refresh reads: ClusterStatus, ClusterStats and TaskList, stamped in seconds."""

    t_s: float  # a monotonic clock, for rates
    cluster: str
    state: str
    node_states: dict[int, str]  # node id -> up / suspect / dead ...
    stats: dict[int, dict]  # ClusterStatsReply.nodes: numastat, vmstat, frames_free/total, tasks
    tasks: list[dict] = field(default_factory=list)  # TaskListReply.tasks


def _rate(cur: Snapshot, prev: Snapshot | None, node: int, where: str, name: str,
          absent: int | None = None) -> float | None:
    """Counter delta per second between two snapshots; None without a previous one, when the
    counter is absent (unless `absent` stands for it: event counters appear at their first
    increment), or when it went backwards (the node restarted)."""
    if prev is None or cur.t_s <= prev.t_s or node not in prev.stats:
        return None
    now = cur.stats[node].get(where, {}).get(name, absent)
    before = prev.stats[node].get(where, {}).get(name, absent)
    if now is None or before is None or now < before:
        return None
    return (now - before) / (cur.t_s - prev.t_s)


def node_rows(cur: Snapshot, prev: Snapshot | None = None) -> list[dict[str, Any]]:
    """One dict of numbers per node (None where unknown), in node order."""
    rows = []
    for node in sorted(set(cur.node_states) | set(cur.stats)):
        data = cur.stats.get(node)
        row: dict[str, Any] = {"node": node, "state": cur.node_states.get(node, "?")}
        if data is None:  # not live: the coordinator asked it nothing
            rows.append(row | dict.fromkeys(("used", "free", "total", "replicas", "migrate_s", "hit_s", "miss_s",
                                             "fault_s", "remote")))
            continue
        vm, ns = data.get("vmstat", {}), data.get("numastat", {})
        total, free = data.get("frames_total", 0), data.get("frames_free", 0)
        row |= {"used": total - free, "free": free, "total": total, "replicas": vm.get("nr_repl_pages", 0),
                "migrate_s": _rate(cur, prev, node, "vmstat", "pgmigrate_success"),  # None until nodes count it
                "hit_s": _rate(cur, prev, node, "numastat", "numa_hit"),
                "miss_s": _rate(cur, prev, node, "numastat", "numa_miss"),
                "fault_s": _rate(cur, prev, node, "vmstat", "pgfault", absent=0),
                "remote": _remote_share(vm, ns)}
        rows.append(row)
    return rows


def _remote_share(vm: dict, ns: dict) -> tuple[str, float] | None:
    """("access", share) or ("alloc", share); None when nothing was counted yet."""
    local_name, remote_name = ACCESS_COUNTERS
    if remote_name in vm:
        local, remote, what = vm.get(local_name, 0), vm[remote_name], "access"
    else:
        local, remote, what = ns.get("local_node", 0), ns.get("other_node", 0), "alloc"
    return (what, remote / (local + remote)) if local + remote else None


def task_rows(cur: Snapshot) -> list[dict[str, Any]]:
    usage = {int(tid): u for data in cur.stats.values() for tid, u in data.get("tasks", {}).items()}
    rows = []
    for t in sorted(cur.tasks, key=lambda t: t["task_id"]):
        u = usage.get(t["task_id"], {})
        pages = {int(n): c for n, c in u.get("pages", {}).items()}
        total = sum(pages.values())
        rows.append({"task": t["task_id"], "comm": t.get("comm", ""), "cpu": t["cpu"], "node": t["node"],
                     "cpuset": t.get("cpuset", ""), "clock_ns": u.get("clock_ns"), "faults": u.get("faults"),
                     "pages": pages, "total": total,
                     "locality": pages.get(t["node"], 0) / total if total else None})
    return rows


# ---- text ----------------------------------------------------------------------------------
# Usable at 80x24: short headers (the key under the tables spells them out), no vertical rules,
# numbers without thousands separators (as numastat and top print them), and a number that still
# does not fit folds onto a second line rather than lose digits (never an ellipsis).

def _num(x: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def _per_s(x: float | None) -> str:
    """A rate per second: one decimal below 100, whole numbers above (the decimal is noise there)."""
    return _num(x, "{:.1f}" if x is not None and abs(x) < 100 else "{:.0f}")


def vtime(ns: int | None) -> str:
    """A virtual clock: '850 ns', '4.48 µs', '12.3 ms', '1.25 s'."""
    if ns is None:
        return "-"
    if ns >= 999_500_000:
        return f"{ns / 1e9:.3g} s"
    return three_digits(ns)


def _by_access(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("remote") and r["remote"][0] == "access" for r in rows)


def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
    t = Table(title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD, show_edge=False,
              pad_edge=False, padding=(0, 0, 0, 1))
    for name in columns:
        t.add_column(name, justify="left" if name in left else "right", overflow="fold")
    return t


NODE_COLUMNS = ("N", "state", "used", "free", "use%", "repl", "migr/s", "hit/s", "miss/s", "flt/s", "rem%")
TASK_COLUMNS = ("task", "comm", "cpu", "N", "vtime", "faults", "pages", "by node", "loc%")


def node_table(rows: list[dict[str, Any]]) -> Table:
    t = _table("nodes", NODE_COLUMNS, ("state",))
    for r in rows:
        used_pct = r["used"] / r["total"] * 100 if r.get("total") else None
        remote = r.get("remote")
        remote_text = "-" if remote is None else f"{remote[1] * 100:.1f}"
        state = Text(r["state"], style="green" if r["state"] == "up" else "red")
        t.add_row(str(r["node"]), state, _num(r.get("used")), _num(r.get("free")), _num(used_pct, "{:.1f}"),
                  _num(r.get("replicas")), _per_s(r.get("migrate_s")), _per_s(r.get("hit_s")),
                  _per_s(r.get("miss_s")), _per_s(r.get("fault_s")), remote_text)
    return t


def task_table(rows: list[dict[str, Any]]) -> Table | Text:
    if not rows:
        return Text("no tasks attached", style="dim")
    t = _table("tasks", TASK_COLUMNS, ("comm", "by node"))
    for r in rows:
        by_node = " ".join(f"N{n}={c}" for n, c in sorted(r["pages"].items())) or "-"
        locality = r["locality"]
        style = "" if locality is None else "green" if locality >= 0.9 else "yellow" if locality >= 0.5 else "red"
        t.add_row(str(r["task"]), r["comm"][:16], str(r["cpu"]), str(r["node"]), vtime(r["clock_ns"]),
                  _num(r["faults"]), _num(r["total"]), by_node,
                  Text(_num(None if locality is None else locality * 100, "{:.1f}"), style=style))
    return t


def to_json(cur: Snapshot, prev: Snapshot | None = None) -> dict[str, Any]:
    """The frame's numbers for scripts (`top --once --json`): the rows as the tables show them,
    unrounded; the remote share as {"of": "access"|"alloc", "share": 0..1} or null."""
    nodes = [r | {"remote": None if r.get("remote") is None else {"of": r["remote"][0], "share": r["remote"][1]}}
             for r in node_rows(cur, prev)]
    tasks = [r | {"pages": {str(n): c for n, c in r["pages"].items()}} for r in task_rows(cur)]
    return {"cluster": cur.cluster, "state": cur.state,
            "interval_s": None if prev is None else cur.t_s - prev.t_s, "nodes": nodes, "tasks": tasks}


def header(cur: Snapshot, interval_s: float | None = None) -> Text:
    n_tasks = len(cur.tasks)
    text = Text()
    text.append("numa-emu top", style="bold")
    text.append(f"  cluster {cur.cluster} ({cur.state}), {len(cur.node_states)} nodes, "
                f"{n_tasks} task{'s' if n_tasks != 1 else ''}")
    if interval_s is not None:
        text.append(f", every {interval_s:g} s; q quits", style="dim")
    return text


def render(cur: Snapshot, prev: Snapshot | None = None, interval_s: float | None = None) -> Group:
    """One frame: the header, the node table, the task table and a key to the columns."""
    rows = node_rows(cur, prev)
    remote_note = ("rem%: accesses of a node's tasks that went to other nodes" if _by_access(rows)
                   else "rem%: pages a node gave to tasks of other nodes (other_node / (local_node + other_node))")
    note = Text(f"N node, repl replica pages, migr migrations, flt faults: per second since the previous "
                f"refresh; {remote_note}; vtime virtual time; loc%: a task's pages on its own node", style="dim")
    return Group(header(cur, interval_s), node_table(rows), task_table(task_rows(cur)), note)
