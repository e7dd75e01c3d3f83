"""Carry out parsed memtoy commands against one attached task; thin on purpose.

Each command object (numa_emu/memtoy/parsed.py) has one handler here that calls the client
API (numa_emu.api Task and Region) and prints memtoy-like lines. A failure raises MemtoyError
with one line of text; an error reply from the cluster becomes such a line too, with its errno
name and the node's own message (so `mbind ... +move` shows why the node refused).
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.messages.tasks import ClusterStats
from numa_emu.protocol.policy import (MPOL_F_ADDR, MPOL_MF_LAZY, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MODE_FLAGS, Mode, Policy,
                             policy_to_str)
from numa_emu.protocol.nodemask import format_nodelist
from numa_emu.protocol.units import format_duration_ns, format_size

from numa_emu.memtoy import helptext
from numa_emu.memtoy import parsed as c
from numa_emu.memtoy.commands import parse
from numa_emu.memtoy.parsed import MemtoyError
from numa_emu.memtoy.segments import (WHERE_DEFAULT_PAGES, Segment, SegmentTable, format_location,
                                      format_node_pages, format_segment_line, format_table, format_where)

if TYPE_CHECKING:
    from numa_emu.api import Task
    from numa_emu.cluster import ClusterInfo


@contextmanager
def _failing(what: str):
    """Turn an error reply into one memtoy line: "<what> failed - EINVAL: <the node's message>"."""
    try:
        yield
    except NumaEmuError as exc:
        raise MemtoyError(f"{what} failed - {exc.code.value}: {exc.message}") from None


class Memtoy:
    """One memtoy session: a task, its segments, and where output goes."""

    def __init__(self, task: "Task", *, cluster_info: "ClusterInfo | None" = None, out: TextIO | None = None,
                 verbose: bool = False, where_lines: bool = False):
        self.task = task
        self.where_lines = where_lines  # `where` as "PAGE NODE" lines (scripts) instead of memtoy's layout
        self.cluster_info = cluster_info
        self.out = out if out is not None else sys.stdout
        self.verbose = verbose
        self.segments = SegmentTable(task.page_size)

    # ---- entry points ---------------------------------------------------------------------
    def parse(self, line: str) -> c.Command | None:
        return parse(line, page_size=self.task.page_size, n_nodes=self.task.n_nodes)

    def execute(self, command: c.Command) -> bool:
        """Run one command; True when the session should end (quit)."""
        handler = getattr(self, f"_do_{type(command).__name__.lower()}")
        try:
            return bool(handler(command))
        except NumaEmuError as exc:  # a reply no handler put in context
            raise MemtoyError(f"{exc.code.value}: {exc.message}") from None

    def run_line(self, line: str) -> bool:
        command = self.parse(line)
        return command is not None and self.execute(command)

    # ---- output ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(f"memtoy: {text}", file=self.out)

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            print(line, file=self.out)

    # ---- segments -------------------------------------------------------------------------
    def _do_anon(self, cmd: c.Anon) -> None:
        self.segments.define(cmd.seg, "anon", cmd.size, cmd.shared)

    def _do_shmem(self, cmd: c.Shmem) -> None:
        self.segments.define(cmd.seg, "shmem", cmd.size, True)

    def _do_file(self, cmd: c.File) -> None:
        """A segment of a page-cache file: NAME in the cluster's store, or a host path whose file
        is imported into the store under its base name the first time. Mapped shared (MAP_SHARED);
        memtoy's `private` is accepted and mapped shared too, as numa-emu has no private file maps."""
        import os

        name = os.path.basename(cmd.path.rstrip("/"))
        with _failing(f"file segment {name}"):
            try:
                f = self.task.open(name)
            except Exception as exc:  # not in the store yet: import a host file of that path
                if not os.path.isfile(cmd.path):
                    raise exc
                f = self.task.import_file(cmd.path, name)
        offset = cmd.range.offset if cmd.range is not None else 0
        if offset % self.task.page_size:
            raise MemtoyError(f"file segment {name}: offset must be a multiple of the page size")
        length = cmd.range.length if cmd.range is not None and cmd.range.length else f.size - offset
        if length <= 0:
            raise MemtoyError(f"file segment {name}: nothing to map ({f.size} bytes in the file)")
        seg = self.segments.define(name, "file", length, True)
        seg.file, seg.file_offset = f, offset

    def _do_map(self, cmd: c.Map) -> None:
        seg = self.segments.get(cmd.seg)
        if seg.mapped:
            self.say(f"segment {seg.name} already mapped")
            return
        shared = seg.shared if cmd.shared is None or seg.kind != "anon" else cmd.shared
        with _failing(f"map of segment {seg.name}"):
            if seg.kind == "file":
                seg.region = self.task.mmap_file(seg.file, offset=seg.file_offset, length=seg.size)
            else:
                seg.region = self.task.mmap(seg.size, shared=shared, name=seg.name if shared else None)
        seg.shared = shared
        if self.verbose:
            start = seg.region.vaddr
            self.say(f"mapped {seg.kind} segment {seg.name} at {start:#x}-{start + seg.size - 1:#x}")

    def _unmap(self, seg: Segment) -> None:
        if seg.mapped:
            with _failing(f"unmap of segment {seg.name}"):
                seg.region.munmap()
            if self.verbose:
                self.say(f"unmapped {seg.kind} segment {seg.name} from {seg.region.vaddr:#x}")
            seg.region = None

    def _do_unmap(self, cmd: c.Unmap) -> None:
        self._unmap(self.segments.get(cmd.seg))

    def _do_remove(self, cmd: c.Remove) -> None:
        for name in cmd.segs:
            self._unmap(self.segments.get(name))
            self.segments.forget(name)

    def _do_show(self, cmd: c.Show) -> None:
        segments = [self.segments.get(cmd.seg)] if cmd.seg else list(self.segments)
        if not segments:
            self.say("no segments")
            return
        regions = self.task.maps() if any(s.mapped for s in segments) else []
        rows = []
        for seg in segments:
            address, policy, pages = "-", "-", "-"
            if seg.mapped:
                start, end = seg.region.vaddr, seg.region.vaddr + seg.size
                inside = sorted((r for r in regions if start <= r["start"] < end), key=lambda r: r["start"])
                address = f"{start:#x}"
                policy = ";".join(dict.fromkeys(_region_policy(r) for r in inside)) or "default"
                counts: dict[int, int] = {}
                for r in inside:
                    for node, n in r["pages"].items():
                        counts[int(node)] = counts.get(int(node), 0) + n
                pages = format_node_pages(counts)
            rows.append([seg.name, seg.kind, "shared" if seg.shared else "private", format_size(seg.size),
                         address, policy, pages])
        self.lines(format_table(["name", "type", "share", "size", "address", "policy", "pages"], rows))

    # ---- memory ---------------------------------------------------------------------------
    def _do_touch(self, cmd: c.Touch) -> None:
        seg = self.segments.mapped(cmd.seg)
        win = self.segments.window(seg, cmd.range)
        with _failing(f"touch of segment {seg.name}"):
            before = self.task.clock_ns()
            reply = seg.region.touch(win.offset, win.length, write=cmd.write)
        self.say(f"touched {reply.pages} pages in {format_duration_ns(reply.clock_ns - before)} virtual time "
                 f"({reply.faults} faults)")

    def _do_where(self, cmd: c.Where) -> None:
        seg = self.segments.mapped(cmd.seg)
        win = self.segments.window(seg, cmd.range, default_pages=WHERE_DEFAULT_PAGES)
        with _failing(f"where of segment {seg.name}"):
            nodes = seg.region.where(win.offset, win.length)
        first = win.first_page(self.task.page_size)
        if self.where_lines:
            self.lines(format_where(first, nodes, win.more_pages))
        else:  # memtoy cuts the default window silently
            self.lines(format_location(format_segment_line(seg), first, nodes))

    def _do_mbind(self, cmd: c.Mbind) -> None:
        seg = self.segments.mapped(cmd.seg)
        win = self.segments.window(seg, cmd.range)
        what = f"mbind of segment {seg.name}"
        if cmd.shared:
            if seg.file is None:
                raise MemtoyError(f"{what}: +shared sets a file's shared policy; {seg.name} is not a file segment")
            with _failing(what):
                seg.file.set_policy(cmd.policy.mode, self._nodes(cmd.policy))
            self.say(f"file {seg.file.name}: shared policy set")
            return
        with _failing(what):
            if cmd.policy.mode is None:  # noop: the range's own policy again, with the move flags
                mode, nodes = self.task.get_mempolicy(MPOL_F_ADDR, seg.region.addr(win.offset))
            else:
                mode, nodes = cmd.policy.mode, self._nodes(cmd.policy)
            before = self.task.clock_ns() if cmd.flags else 0
            seg.region.mbind(mode, nodes, offset=win.offset, length=win.length, flags=cmd.flags)
        if cmd.flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
            operation = "unmap" if cmd.flags & MPOL_MF_LAZY else "migration"
            spent = format_duration_ns(self.task.clock_ns() - before)
            self.say(f"{operation} of {seg.name} [{win.length // self.task.page_size} pages] took {spent} virtual time")

    # ---- policy ---------------------------------------------------------------------------
    def _nodes(self, policy: c.PolicyArg) -> list[int]:
        return sorted(self.task.mems_allowed) if policy.all_allowed else sorted(policy.nodes)

    def _do_mpol(self, cmd: c.Mpol) -> None:
        if cmd.policy is None:
            with _failing("get_mempolicy"):
                mode, nodes = self.task.get_mempolicy()
            policy = Policy(Mode(mode & ~MPOL_MODE_FLAGS), frozenset(nodes), mode & MPOL_MODE_FLAGS)
            self.say(f"task policy = {policy_to_str(policy)}")
            return
        with _failing("set_mempolicy"):
            self.task.set_mempolicy(cmd.policy.mode, self._nodes(cmd.policy))

    def _do_migrate(self, cmd: c.Migrate) -> None:
        from_nodes = sorted(self.task.mems_allowed) if cmd.from_nodes is None else sorted(cmd.from_nodes)
        before = self.task.clock_ns()
        with _failing("migrate"):
            not_moved = self.task.migrate_pages(from_nodes, sorted(cmd.to_nodes), move_all=True)
        spent = format_duration_ns(self.task.clock_ns() - before)
        left = f", {not_moved} pages not moved" if not_moved else ""
        self.say(f"migration to {format_nodelist(cmd.to_nodes)} took {spent} virtual time{left}")

    # ---- information ----------------------------------------------------------------------
    def _do_numa(self, cmd: c.Numa) -> None:
        from numa_emu.protocol.topology import Topology

        from numa_emu import cluster
        from numa_emu.formats.hardware import format_hardware

        if self.cluster_info is None:
            raise MemtoyError("numa: no cluster to ask")
        with _failing("numa"):
            topology = Topology.from_dict(cluster.status(self.cluster_info).topology)
            # ClusterStats asks the nodes now; the status carries frames free at the last heartbeat
            with self.cluster_info.client() as client:
                stats = client.call(ClusterStats())
        free = {int(node): s["frames_free"] * topology.page_size for node, s in stats.nodes.items()}
        nodes = [{"id": n.id, "cpus": list(n.cpus), "size_bytes": n.mem_bytes, "free_bytes": free.get(n.id, 0)}
                 for n in topology.nodes]
        print(format_hardware(nodes, [list(row) for row in topology.distances]), end="", file=self.out)

    def _do_pid(self, cmd: c.Pid) -> None:
        t = self.task
        task = "" if t.task_id == t.pid else f", task {t.task_id}"
        self.say(f"pid = {t.pid} (cpu {t.cpu}, node {t.node}{task})")

    def _do_time(self, cmd: c.Time) -> None:
        with _failing("time"):
            ns = self.task.clock_ns()
        self.say(f"virtual time = {ns} ns ({format_duration_ns(ns)})")

    def _do_snooze(self, cmd: c.Snooze) -> None:
        time.sleep(cmd.seconds)

    def _do_help(self, cmd: c.Help) -> None:
        self.lines(helptext.help_lines(cmd.topic))

    def _do_quit(self, cmd: c.Quit) -> bool:
        return True


def _region_policy(region: dict) -> str:
    """A region's own policy as numa_maps prints it; 'default' when it has none."""
    return policy_to_str(Policy.from_wire(region["policy"])) if region.get("vma_policy") else "default"
