"""Per-node allocation counters, node memory or a task's memory by node, in numastat(8)'s formats.

numa-emu numastat [-c] [-m] [-n] [-p PID|PATTERN] [-s[NODE]] [-v] [-V] [-z] [PID|PATTERN...]
                  [--name CLUSTER] [--json]

Follows numactl's numastat.c (v2.0.19) byte for byte:
  (no argument)  the compatibility table: node<N> columns, page counts, no Total (numactl's
                 test/regress and LTP parse it). --name does not count as an argument.
  -n             the six counters in MB, Node N and Total columns. Shown too when there are
                 other arguments but no PID and no -m.
  -m             per-node memory in MB, "Per-node system memory usage (in MBs):": the rows of
                 numastat's meminfo list that the nodes report, in numastat's order:
                 MemTotal, MemFree and MemUsed (the node's frame pool), FilePages (page
                 cache: file pages, replicas, shm), AnonPages (private pages) and Shmem;
                 FilePages + AnonPages = MemUsed on every node.
  -p PID|PATTERN a task's resident memory by node (as numastat -p reads /proc/PID/numa_maps:
                 Huge, Heap and Stack are 0, Private holds the task's pages). All digits is a
                 PID; anything else a pattern searched in the task names. Several -p and plain
                 PID/PATTERN arguments are allowed; PIDs are sorted and listed once. One PID:
                 a Huge/Heap/Stack/Private table; several: one table, a row per PID.
  -c             narrowest columns (widest cell + 1, 5 to 16), no decimals.
  -z             leave out rows and columns that are all zero (the header rows and -p's dashed
                 rule always show; an all-zero table prints "Table has no non-zero data.").
  -s[NODE]       sort the rows by Total, descending, or by Node NODE's column (NODE attached:
                 -s1; "-s 1" sorts by Total and takes 1 as a PID). Ties are not kept in order.
  -v             with several PIDs, a Huge/Heap/Stack/Private table per PID.
  -V             "numastat version: 20130723: <date>", exit 0.
A bad option (or -?) prints getopt's message and numastat's usage on stderr and exits 1.
A pattern that matches no task prints 'Found no processes containing pattern: "PATTERN"'.
An unknown PID prints numastat's "Can't read /proc/PID/numa_maps: No such file or directory"
and is left out of the tables; the exit status is then 1.

numa-emu's own: --json prints {"nodes": {"<id>": {numa_hit, numa_miss, numa_foreign,
interleave_hit, local_node, other_node}}} in pages; --help prints this text (numastat's
--help prints its usage). NUMASTAT_WIDTH folds the MB tables as numastat does; on a terminal
numastat folds at 80 columns. The cluster: --name, else $NUMA_EMU_CLUSTER, else the only
cluster that is up.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import tasks as tm

from numa_emu import cluster
from numa_emu.cli.main import warn
from numa_emu.formats.numastat import (
    NumastatOptions,
    ProcessMemory,
    format_numastat_compat,
    format_numastat_mb,
    format_numastat_meminfo,
    format_numastat_processes,
    node_meminfo,
    numastat_json,
)
from numa_emu.frontends.numastat_args import all_digits, c_atoi, parse_numastat_args

ENV_CLUSTER = "NUMA_EMU_CLUSTER"  # numa_emu.api reads the same variable
QUERY_TIMEOUT_S = 10.0


# ---- asking the cluster (shared by the numactl, vmstat and numa-maps front ends) ---------------


def frontend_cluster(name: str | None = None) -> cluster.ClusterInfo:
    """The cluster a front end talks to: `name`, else $NUMA_EMU_CLUSTER (set by numactl for the
    command it runs), else the only cluster that is up, else 'default'; it must be up."""
    chosen = name or os.environ.get(ENV_CLUSTER) or cluster.resolve_name(None, warn=warn)
    return cluster.require(chosen, warn=warn)


def ask(info: cluster.ClusterInfo, request):
    """One request to the coordinator, one reply (errors come back as NumaEmuError)."""
    with info.client(timeout_s=QUERY_TIMEOUT_S) as client:
        return client.call(request)


def cluster_stats(info: cluster.ClusterInfo) -> dict[int, dict]:
    """Every live node's counters: node id -> {"numastat", "vmstat", "frames_free", "tasks", ...}."""
    reply = ask(info, tm.ClusterStats())
    return {int(node): data for node, data in reply.nodes.items()}


def machine(info: cluster.ClusterInfo) -> lc.ClusterStatusReply:
    return ask(info, lc.ClusterStatus())


def tasks_matching(info: cluster.ClusterInfo, spec: str) -> list[dict]:
    """numastat.c: all digits is a PID; anything else is a pattern searched in the task names."""
    tasks = ask(info, tm.TaskList()).tasks
    if spec.isdigit():
        return [t for t in tasks if t["pid"] == int(spec)]
    return sorted((t for t in tasks if spec in t["comm"]), key=lambda t: t["pid"])


def task_by_pid(info: cluster.ClusterInfo, pid: int) -> dict:
    """The task record (task_id, pid, comm, cpu, node, cpuset, policy...) of a PID, or ESRCH."""
    found = tasks_matching(info, str(pid))
    if not found:
        raise NumaEmuError(ErrorCode.ESRCH, f"no task with pid {pid} in cluster '{info.name}'")
    return found[0]


# ---- the command -------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    # numastat's argv goes to its own getopt (numa_emu.frontends.numastat_args), untouched: a
    # prefix character no argv string can hold makes argparse treat every word as positional.
    p.prefix_chars = "\0"
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGS", help="numastat's arguments")


def _width() -> int | None:
    """numastat.c get_screen_width(): NUMASTAT_WIDTH, else 80 on a terminal, else no folding.

    (On a terminal numastat asks `resize`, but reads its answer into 8 bytes, so "COLUMNS=" never
    matches and the width stays 80.)"""
    text = os.environ.get("NUMASTAT_WIDTH")
    if text is not None:
        number = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)  # atoi(): leading blanks, sign, digits
        return int(number.group(1)) if number else 0  # the formatter turns < 1 or > 10,000,000 into 80
    if sys.stdout.isatty():
        return 80
    return None


class _Specs:
    """numastat.c's PID list: PIDs as given, and pattern matches found when the pattern is met."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._info: cluster.ClusterInfo | None = None
        self.listed: dict[int, dict | None] = {}  # pid -> task (None: no such task)

    @property
    def info(self) -> cluster.ClusterInfo:
        if self._info is None:
            self._info = frontend_cluster(self.name)
        return self._info

    def add(self, spec: str) -> None:
        if all_digits(spec):
            self.listed.setdefault(c_atoi(spec), None)
            return
        found = tasks_matching(self.info, spec)
        if not found:
            print(f'Found no processes containing pattern: "{spec}"', flush=True)
        for task in found:
            self.listed[task["pid"]] = task

    def resolve(self) -> None:
        """Fill in the tasks of the PIDs given as digits."""
        missing = [pid for pid, task in self.listed.items() if task is None]
        if missing:
            by_pid = {t["pid"]: t for t in ask(self.info, tm.TaskList()).tasks}
            for pid in missing:
                self.listed[pid] = by_pid.get(pid)


def _process_tables(specs: _Specs, stats: dict[int, dict], page_size: int, width: int | None,
                    opts: NumastatOptions) -> int:
    """numastat.c show_process_info(): the tables of the listed PIDs; returns the exit status."""
    pages_of: dict[int, dict] = {}
    for node in stats.values():
        for task_id, entry in node.get("tasks", {}).items():
            pages_of[int(task_id)] = entry["pages"]
    status = 0
    procs: list[ProcessMemory] = []
    columns = set(stats)
    for pid in sorted(specs.listed):  # numastat.c: sorted, without duplicates
        task = specs.listed[pid]
        if task is None:
            # numastat.c show_process_info(): perror() of the numa_maps it cannot open
            print(f"Can't read /proc/{pid}/numa_maps: No such file or directory", file=sys.stderr)
            status = 1
            continue
        private = {int(n): count * page_size for n, count in pages_of.get(task["task_id"], {}).items()}
        columns |= set(private)
        procs.append(ProcessMemory(pid, task["comm"], {"Private": private}))
    print(format_numastat_processes(procs, sorted(columns), width=width, opts=opts), end="")
    return status


# A node's vmstat gauges -> the meminfo rows that show them (drivers/base/node.c node_read_meminfo).
_KIND_GAUGES = {"FilePages": "nr_file_pages", "AnonPages": "nr_anon_pages", "Shmem": "nr_shmem"}


def _frame_kinds(vmstat: dict) -> dict[str, int]:
    """Pages by what they hold (FilePages, AnonPages, Shmem), from a node's vmstat gauges."""
    return {row: int(vmstat[gauge]) for row, gauge in _KIND_GAUGES.items() if gauge in vmstat}


def run(args: argparse.Namespace) -> int:
    parsed = parse_numastat_args(args.argv)
    specs = _Specs(parsed.name)
    for spec in parsed.p_specs:  # numastat.c searches a -p pattern when getopt meets it
        specs.add(spec)
    if parsed.help:
        print(__doc__, end="")
        return 0
    if parsed.stop is not None:
        parsed.stop.write(sys.stdout, sys.stderr)
        return parsed.stop.exit_code
    for spec in parsed.operands:
        specs.add(spec)
    stats = cluster_stats(specs.info)
    counters = {node: data["numastat"] for node, data in stats.items()}
    if parsed.json:
        print(json.dumps(numastat_json(counters), indent=2))
        return 0
    if parsed.compat:
        print(format_numastat_compat(counters), end="")
        return 0
    page_size = int(machine(specs.info).topology["page_size"])
    width = _width()
    opts = NumastatOptions(compress=parsed.compress, show_zero=parsed.show_zero, sort=parsed.sort,
                           sort_node=parsed.sort_node, verbose=parsed.verbose)
    status = 0
    if specs.listed:
        specs.resolve()
        status = _process_tables(specs, stats, page_size, width, opts)
    if parsed.system:
        meminfo = {node: node_meminfo(node, int(data["frames_total"]), int(data["frames_free"]), page_size,
                                      _frame_kinds(data["vmstat"]))
                   for node, data in stats.items()}
        print(format_numastat_meminfo(meminfo, width=width, opts=opts), end="")
    if parsed.numastat or (not specs.listed and not parsed.system):
        print(format_numastat_mb(counters, page_size, width=width, opts=opts), end="")
    return status
