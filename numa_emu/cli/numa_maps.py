"""A task's /proc/PID/numa_maps: one line per region, in the kernel's format.

Each line: the region's start address, its policy (the region's own from mbind, else the task's,
as mm/mempolicy.c mpol_to_str prints it), file=/dev/shm/NAME for a shared anonymous region and
file=NAME for a mapped file of the backing store, anon=, dirty=, mapped=, mapmax= (the most tasks
mapping one of its pages, over the cluster) and active= when they apply, N<node>=<pages> for every
node holding pages of the region, and kernelpagesize_kB (fs/proc/task_mmu.c show_numa_map). The answer comes from the task's home node.
--json prints the regions as the home node reports them. An unknown PID is an error (exit 3).
The cluster: --name, else $NUMA_EMU_CLUSTER, else the only cluster that is up.
"""
from __future__ import annotations

import argparse
import json

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.policy import Policy, policy_to_str

from numa_emu.cli.common import add_json_option, add_name_option
from numa_emu.cli.numastat import QUERY_TIMEOUT_S, frontend_cluster, machine, task_by_pid

SHM_DIR = "/dev/shm"  # where a named shared region would live on Linux (shm_open)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pid", type=int, metavar="PID", help="the task's process id")
    add_name_option(p)
    add_json_option(p)


def _path(region: dict) -> str | None:
    """What numa_maps prints after file=: None for private anonymous memory."""
    if region["kind"] == "anon":
        return None
    return f"{SHM_DIR}/{region['name']}" if region["kind"] == "shm" else str(region["name"])


def numa_maps_line(region: dict, page_size: int) -> str:
    """One line from a region as the home node's mem.maps reports it."""
    from numa_emu.formats.numa_maps import format_numa_maps_line

    pages = {int(n): int(c) for n, c in region["pages"].items()}
    path = _path(region)
    return format_numa_maps_line(
        region["start"], policy_to_str(Policy.from_wire(region["policy"])),
        kind="anon" if path is None else "file", file=path,
        anon=sum(pages.values()) if path is None else 0, dirty=int(region["dirty"]),
        mapmax=int(region.get("mapmax", 1)), active=region.get("active"),
        per_node_pages=pages, page_size_kb=page_size // 1024)


def run(args: argparse.Namespace) -> int:
    info = frontend_cluster(args.name)
    task = task_by_pid(info, args.pid)
    status = machine(info)
    endpoints = {n["id"]: n["endpoint"] for n in status.nodes if n["state"] in ("up", "suspect")}
    if task["node"] not in endpoints:
        raise NumaEmuError(ErrorCode.ENODEV, f"the home node {task['node']} of pid {args.pid} is not up")
    with info.client(QUERY_TIMEOUT_S, endpoint=endpoints[task["node"]]) as home:
        regions = home.call(mm.Maps(task_id=task["task_id"])).regions
    regions = sorted(regions, key=lambda r: r["start"])
    if args.json:
        print(json.dumps({"pid": args.pid, "task_id": task["task_id"], "regions": regions}, indent=2))
        return 0
    page_size = int(status.topology["page_size"])
    print("".join(numa_maps_line(r, page_size) for r in regions), end="")
    return 0
