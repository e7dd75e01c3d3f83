"""Per-node allocation counters (or a task's memory by node) in numastat(8)'s formats.

With no option: numastat's compatibility table (node<N> columns, pages), which numactl's
test/regress and LTP parse. -n: the same counters in MB. -p PID (or a pattern matched against
the task names; several are allowed, and so are PIDs given as plain arguments): the task's resident
pages by node, as numastat -p reads them from /proc/PID/numa_maps (the rows Huge, Heap and Stack
are 0; Private holds the task's pages). An unknown PID prints numastat's own message and exits 1.
--json prints {"nodes": {"<id>": {numa_hit, numa_miss, numa_foreign, interleave_hit,
local_node, other_node}}} in pages. NUMASTAT_WIDTH folds the MB tables as numastat does.
The cluster: --name, else $NUMA_EMU_CLUSTER, else the only cluster that is up.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from protocol.errors import ErrorCode, NumaEmuError
from protocol.messages import lifecycle as lc
from protocol.messages import tasks as tm

from numa_emu import cluster
from numa_emu.cli.common import add_json_option, add_name_option
from numa_emu.cli.main import warn

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
    p.add_argument("-n", action="store_true", help="the numastat counters in MB (Node N / Total columns)")
    p.add_argument("-p", action="append", default=[], metavar="PID|PATTERN", help="a task's memory by node")
    p.add_argument("pids", nargs="*", metavar="PID|PATTERN", help="more tasks, as -p")
    add_name_option(p)
    add_json_option(p)


def _width() -> int | None:
    """numastat.c get_screen_width(): NUMASTAT_WIDTH, else the terminal's, else no folding."""
    text = os.environ.get("NUMASTAT_WIDTH")
    if text is not None:
        digits = text.strip()
        value = int(digits) if digits.isdigit() else 0  # atoi; the formatter turns nonsense into 80
        return value
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _process_tables(info: cluster.ClusterInfo, specs: list[str], stats: dict[int, dict], page_size: int,
                    width: int | None) -> tuple[int, int]:
    """Print one -p table per task; returns (PIDs listed, exit status) as numastat.c counts them."""
    from numa_emu.formats.numastat import format_numastat_process

    pages_of: dict[int, dict] = {}
    for node in stats.values():
        for task_id, entry in node.get("tasks", {}).items():
            pages_of[int(task_id)] = entry["pages"]
    listed: dict[int, dict | None] = {}  # numastat.c: sorted, without duplicates
    for spec in specs:
        found = tasks_matching(info, spec)
        if spec.isdigit():
            listed.setdefault(int(spec), None)  # listed even when it cannot be read
        elif not found:
            print(f'Found no processes containing pattern: "{spec}"')
        for task in found:
            listed[task["pid"]] = task
    status = 0
    for pid in sorted(listed):
        task = listed[pid]
        if task is None:
            # numastat.c show_process_info(): perror() of the numa_maps it cannot open
            print(f"Can't read /proc/{pid}/numa_maps: No such file or directory", file=sys.stderr)
            status = 1
            continue
        private = {int(n): count * page_size for n, count in pages_of.get(task["task_id"], {}).items()}
        columns = sorted(set(stats) | set(private))
        print(format_numastat_process(pid, task["comm"], {"Private": private}, columns, width=width), end="")
    return len(listed), status


def run(args: argparse.Namespace) -> int:
    from numa_emu.formats.numastat import format_numastat_compat, format_numastat_mb, numastat_json

    info = frontend_cluster(args.name)
    stats = cluster_stats(info)
    counters = {node: data["numastat"] for node, data in stats.items()}
    if args.json:
        print(json.dumps(numastat_json(counters), indent=2))
        return 0
    specs = list(args.p) + list(args.pids)
    if not specs and not args.n:
        print(format_numastat_compat(counters), end="")
        return 0
    page_size = int(machine(info).topology["page_size"])
    listed, status = _process_tables(info, specs, stats, page_size, _width()) if specs else (0, 0)
    if args.n or listed == 0:  # numastat.c main(): the counters when asked, or when no PID was listed
        print(format_numastat_mb(counters, page_size, width=_width()), end="")
    return status
