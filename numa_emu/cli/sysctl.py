"""Read and set the cluster's tunables, as sysctl(8) does.

  sysctl -a                  every key with its value, sorted, `key = value` lines
  sysctl KEY ...             those keys
  sysctl [-w] KEY=VALUE ...  set them, all or nothing, and print the values now in force
                             (-w: procps's spelling; then every argument must be KEY=VALUE)

The keys, their meaning and default are listed below (from the table the coordinator and the
nodes use, protocol/messages/control.py). The coordinator keeps the values and pushes them to
every node before the command returns, so they hold for the next allocation. An unknown key or an invalid value (a weight outside 1..255)
changes nothing. -n prints the values only; --json prints {"KEY": value, ...}.
Exit codes: 0 ok, 1 cluster not reachable, 2 usage, 3 error (one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import textwrap

from numa_emu.cli.common import add_json_option, add_name_option, running_cluster
from numa_emu.cli.main import EXIT_USAGE, fail


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    p.epilog = keys_help()
    p.add_argument("-a", "--all", action="store_true", help="every key, sorted")
    p.add_argument("-w", "--write", action="store_true", help="set: every argument is KEY=VALUE (procps's -w)")
    p.add_argument("-n", "--values", action="store_true", help="print values only")
    add_json_option(p)
    p.add_argument("settings", nargs="*", metavar="KEY[=VALUE]")


def keys_help() -> str:
    """Every key with its meaning and default, from the cluster's table of tunables; the per-node
    weight keys once, as nodeN."""
    from numa_emu.protocol.messages import control as cm

    lines = ["keys (default in brackets):"]
    for key, tunable in cm.tunables([0]).items():
        doc = tunable.doc
        if cm.weight_node(key) is not None:
            key, doc = cm.WEIGHT_KEY_PREFIX + "N", doc.replace("node 0", "node N").replace("node0", "nodeN")
        lines.append(f"  {key} [{tunable.default}]")
        lines += textwrap.wrap(doc, width=92, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


def split(settings: list[str]) -> tuple[list[str], dict[str, str]]:
    """The argument order of the keys, and the KEY=VALUE assignments (the last one of a key wins)."""
    order: list[str] = []
    assign: dict[str, str] = {}
    for item in settings:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not key:
            raise ValueError(f"'{item}' names no key")
        if eq:
            assign[key] = value.strip()
        if key not in order:
            order.append(key)
    return order, assign


def run(args: argparse.Namespace) -> int:
    from numa_emu.protocol.messages import control as cm

    try:
        order, assign = split(args.settings)
    except ValueError as exc:
        fail(f"sysctl: {exc}")
        return EXIT_USAGE
    plain = [item for item in args.settings if "=" not in item]
    if args.write and plain:
        fail(f"sysctl: -w takes KEY=VALUE, not '{plain[0]}'")
        return EXIT_USAGE
    if not order and not args.all:
        fail("sysctl: give -a or KEY[=VALUE] ...")
        return EXIT_USAGE
    info = running_cluster(args)
    with info.client() as client:
        values = {}
        if assign:
            values.update(client.call(cm.SysctlSet(values=assign)).values)
        if args.all:
            listed = client.call(cm.SysctlGet()).values
            values.update(listed)
            order = sorted(listed)
        else:
            reads = [k for k in order if k not in assign]
            if reads:
                values.update(client.call(cm.SysctlGet(keys=reads)).values)
    if args.json:
        print(json.dumps({k: values[k] for k in order}, indent=2))
    else:
        for key in order:
            print(values[key] if args.values else f"{key} = {values[key]}")
    return 0
