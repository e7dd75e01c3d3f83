"""Cpusets (cgroup v1): keep tasks to some cpus and memory nodes, move tasks between them.

  cpuset create NAME --cpus LIST --mems LIST [--memory-migrate] [--replication on|off]
  cpuset set NAME [--cpus LIST] [--mems LIST] [--memory-migrate on|off] [--replication on|off]
  cpuset attach NAME PID          move the running task PID into NAME ('/' is the root cpuset)
  cpuset exec NAME -- COMMAND ... run COMMAND so that it attaches inside NAME (like cgexec)
  cpuset show [NAME] [--json]
  cpuset delete NAME              refused (EBUSY) while tasks are in it

LIST is the kernel list format (0-3,5); every cpu and node must exist. Names are flat: no
blanks, no '/'. The root '/' holds the whole machine and cannot be changed or deleted. A new
cpuset inherits the root's replication flag unless --replication is given.

New mems: later allocations obey the new mems, and every task's policy and region policies are
rebound as the kernel does (static masks intersect, relative masks fold, others remap). Pages
already allocated stay where they are, unless memory_migrate is on: then the pages of every task
of the cpuset (and of a task attached to it) move from the old mems to the new ones, keeping
their relative placement (the i-th node of the old mems to the i-th of the new), before the
command returns. A task whose cpu leaves its cpuset moves to a cpu of the same node if the set
has one, else to the least loaded cpu of the set on another node: its home node changes, its page
table goes along, and its private pages follow it lazily (auto-migration, sysctl
vm.auto_migrate) as it touches them. replication turns page-cache replication on or off for the
tasks of the cpuset.

A node taken offline (numa-emu node offline N) leaves every cpuset's effective cpus and mems, as
cgroup v2's cpuset.cpus.effective and cpuset.mems.effective follow hotplug: the tasks allocate
on the effective mems only (none left: the root's), while cpus and mems keep what was configured;
online, N comes back. show prints the effective ones in parentheses where they differ.

show --json prints a list of {"name", "cpus", "mems", "effective_cpus", "effective_mems",
"memory_migrate", "replication", "tasks"}, cpus, mems and tasks (task ids) as lists of integers. exec runs COMMAND with NUMA_EMU_CPUSET
and NUMA_EMU_CLUSTER set; its exit status is COMMAND's. Exit codes otherwise: 0 ok, 1 cluster
not reachable, 2 usage, 3 error (one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from numa_emu.cli.common import add_json_option, add_name_option, running_cluster
from numa_emu.cli.main import EXIT_ERROR, EXIT_USAGE, fail
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.nodemask import format_nodelist, parse_cpulist, parse_nodelist
from numa_emu.protocol.timing import MIGRATE_CALL_TIMEOUT_S


def _list_type(parse):
    def convert(text: str) -> list[int]:
        try:
            return sorted(parse(text))
        except NumaEmuError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return convert


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word in ("on", "1", "yes", "true"):
        return True
    if word in ("off", "0", "no", "false"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got '{text}'")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="make a cpuset")
    c.add_argument("cpuset", metavar="NAME")
    c.add_argument("--cpus", type=_list_type(parse_cpulist), required=True, metavar="LIST")
    c.add_argument("--mems", type=_list_type(parse_nodelist), required=True, metavar="LIST")
    c.add_argument("--memory-migrate", action="store_true", help="record memory_migrate=1")
    c.add_argument("--replication", type=_switch, metavar="on|off", help="default: the root's (on)")
    s = sub.add_parser("set", help="change cpus, mems or flags of a cpuset")
    s.add_argument("cpuset", metavar="NAME")
    s.add_argument("--cpus", type=_list_type(parse_cpulist), metavar="LIST")
    s.add_argument("--mems", type=_list_type(parse_nodelist), metavar="LIST")
    s.add_argument("--memory-migrate", type=_switch, metavar="on|off")
    s.add_argument("--replication", type=_switch, metavar="on|off")
    a = sub.add_parser("attach", help="move a running task into a cpuset")
    a.add_argument("cpuset", metavar="NAME")
    a.add_argument("pid", type=int, metavar="PID")
    e = sub.add_parser("exec", help="run a command that attaches inside a cpuset")
    e.add_argument("cpuset", metavar="NAME")
    e.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    show = sub.add_parser("show", help="every cpuset, or one")
    show.add_argument("cpuset", metavar="NAME", nargs="?")
    add_json_option(show)
    d = sub.add_parser("delete", help="remove an empty cpuset")
    d.add_argument("cpuset", metavar="NAME")
    for q in sub.choices.values():
        add_name_option(q)


def _flag(value: bool) -> int:
    return int(bool(value))


def _ids(cs: dict, what: str) -> str:
    """cpus or mems as configured, and the effective ones in parentheses where an offline node
    took some away (cgroup v2's cpuset.mems.effective)."""
    text = format_nodelist(cs[what])
    effective = cs.get(f"effective_{what}", cs[what])
    return text if effective == cs[what] else f"{text} ({format_nodelist(effective)})"


def describe(cs: dict) -> str:
    return (f"cpuset {cs['name']}: cpus {_ids(cs, 'cpus')}, mems {_ids(cs, 'mems')}, "
            f"memory_migrate {_flag(cs['memory_migrate'])}, replication {_flag(cs['replication'])}")


def format_table(sets: list[dict]) -> str:
    rows = [("name", "cpus", "mems", "memory_migrate", "replication", "tasks")]
    for cs in sets:
        rows.append((cs["name"], _ids(cs, "cpus"), _ids(cs, "mems"),
                     str(_flag(cs["memory_migrate"])), str(_flag(cs["replication"])),
                     ",".join(map(str, cs["tasks"])) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(f"{v:<{w}}" for v, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def _exec(args: argparse.Namespace, info) -> int:
    from numa_emu.protocol.messages import tasks as tm

    from numa_emu.api import ENV_CLUSTER, ENV_CPUSET

    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        fail("cpuset exec needs a command: numa-emu cpuset exec NAME -- COMMAND [ARG ...]")
        return EXIT_USAGE
    with info.client() as client:
        client.call(tm.CpusetShow(name=args.cpuset))  # ENOENT before anything runs
    env = dict(os.environ, **{ENV_CPUSET: args.cpuset, ENV_CLUSTER: info.name})
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        fail(f"cannot run '{command[0]}': {exc.strerror or exc}")
        return EXIT_ERROR
    return EXIT_ERROR  # not reached: exec replaced this process


def run(args: argparse.Namespace) -> int:
    from numa_emu.protocol.messages import control as cm
    from numa_emu.protocol.messages import tasks as tm

    changes = ("cpus", "mems", "memory_migrate", "replication")
    if args.action == "set" and all(getattr(args, f) is None for f in changes):
        fail("cpuset set: nothing to change; give --cpus, --mems, --memory-migrate or --replication")
        return EXIT_USAGE
    info = running_cluster(args)
    if args.action == "exec":
        return _exec(args, info)
    with info.client(timeout_s=MIGRATE_CALL_TIMEOUT_S) as client:  # memory_migrate moves pages first
        if args.action == "show":
            sets = client.call(tm.CpusetShow(name=args.cpuset)).cpusets
            print(json.dumps(sets, indent=2) if args.json else format_table(sets))
        elif args.action == "create":
            reply = client.call(cm.CpusetCreate(name=args.cpuset, cpus=args.cpus, mems=args.mems,
                                                memory_migrate=args.memory_migrate, replication=args.replication))
            print(describe(reply.cpusets[0]) + " (created)")
        elif args.action == "set":
            reply = client.call(cm.CpusetSet(name=args.cpuset, cpus=args.cpus, mems=args.mems,
                                             memory_migrate=args.memory_migrate, replication=args.replication))
            print(describe(reply.cpuset))
            for task_id, old, new in reply.moved:
                print(f"task {task_id}: cpu {old} -> {new}")
            if reply.rebound:
                pages = "moved there" if reply.migrated else "stay where they are"
                effective = reply.cpuset.get("effective_mems", reply.cpuset["mems"])
                if reply.migrated and effective != reply.cpuset["mems"]:  # an offline node takes no page
                    pages = f"moved to the online mems {format_nodelist(effective)}"
                print(f"policies rebound to mems {format_nodelist(reply.cpuset['mems'])} for task(s) "
                      f"{', '.join(map(str, reply.rebound))}; their pages {pages}")
        elif args.action == "attach":
            reply = client.call(cm.CpusetAttach(name=args.cpuset, pid=args.pid))
            t = reply.task
            cpu = f"cpu {reply.old_cpu} -> {t['cpu']}" if reply.old_cpu != t["cpu"] else f"cpu {t['cpu']}"
            print(f"task {t['task_id']} ({t['comm']}) moved to cpuset {t['cpuset']} from {reply.old_cpuset}: "
                  f"{cpu}, node {t['node']}, mems {format_nodelist(t['mems_allowed'])}")
        elif args.action == "delete":
            client.call(cm.CpusetDelete(name=args.cpuset))
            print(f"cpuset {args.cpuset} deleted")
    return 0
