"""The numa-emu command: argparse subcommands built from a registry of small modules.

Each command module has a docstring (its --help), `add_arguments(parser)` and `run(args) -> int`.
Exit codes are fixed (circus): 0 ok, 1 cannot reach the cluster, 2 usage, 3 error reply.
Every error is one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3

# name -> module under numa_emu.cli; the order is the order of --help
COMMANDS = {
    "up": "up",
    "down": "down",
    "status": "status",
    "node": "node",
    "hardware": "hardware",
    "latency": "latency",
    "fault": "fault",
    "trace": "trace",
    "file": "file",
    "memtoy": "memtoy",
    "numactl": "numactl",
    "memhog": "memhog",
    "numastat": "numastat",
    "migratepages": "migratepages",
    "vmstat": "vmstat",
    "numa-maps": "numa_maps",
    "shims": "shims",
    "cpuset": "cpuset",
    "sysctl": "sysctl",
    "workload": "workload",
    "experiment": "experiment",
    "sim": "sim",
    "top": "top",
    "logs": "logs",
    "completion": "completion",
}

_UNREACHABLE = {ErrorCode.ECONNREFUSED, ErrorCode.ETIMEDOUT}


# The front ends that mimic real tools keep those tools' options: they take the cluster from
# $NUMA_EMU_CLUSTER (which `numa-emu --name X` sets for them).
FRONT_ENDS = ("numactl", "numastat", "memhog", "migratepages")
ENV_CLUSTER = "NUMA_EMU_CLUSTER"
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as argparse does, without the usage dump
        print(f"{self.prog}: error: {_did_you_mean(message)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _did_you_mean(message: str) -> str:
    """argparse's invalid-choice message, with the closest choice suggested."""
    m = _INVALID_CHOICE.search(message)
    if not m:
        return message
    choices = re.findall(r"'([^']*)'", m.group(2))
    close = difflib.get_close_matches(m.group(1), choices, n=1)
    return f"{message}; did you mean '{close[0]}'?" if close else message


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numa-emu")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _has_name(p: argparse.ArgumentParser) -> bool:
    """Whether p or a sub-command of it takes --name as the cluster's name (workload's --name is
    its own option, with the environment's fallback)."""
    action = p._option_string_actions.get("--name")
    return (action is not None and action.dest == "name") or any(_has_name(c) for c in _children(p))


def _children(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return [c for a in subs for c in dict.fromkeys(a.choices.values())]


def _name_in_every_position(p: argparse.ArgumentParser, *, inner: bool = False) -> None:
    """A command that takes --name takes it before and after its sub-commands (`latency --name X
    show`, `latency show --name X`). Inner options leave the name alone when they are absent
    (SUPPRESS), so that an outer --name survives the inner parser."""
    from numa_emu.cli.common import cluster_name

    action = p._option_string_actions.get("--name")
    if action is None:
        p.add_argument("--name", metavar="CLUSTER", type=cluster_name,
                       default=argparse.SUPPRESS if inner else None, help="cluster name")
    elif inner:
        action.default = argparse.SUPPRESS
    for child in _children(p):
        _name_in_every_position(child, inner=True)


def build_parser() -> argparse.ArgumentParser:
    from numa_emu.cli.common import cluster_name

    parser = _Parser(prog="numa-emu", description="A NUMA machine emulated with real processes.")
    parser.add_argument("--version", action="version", version=f"numa-emu {_version()}")
    parser.add_argument("--name", dest="global_name", metavar="CLUSTER", type=cluster_name,
                        help="the cluster for any command (the front ends get it as $NUMA_EMU_CLUSTER)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"numa_emu.cli.{module_name}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        if _has_name(p):
            _name_in_every_position(p)
        p.set_defaults(_run=module.run)
    return parser


def _apply_global_name(args: argparse.Namespace) -> None:
    """`numa-emu --name X CMD`: the command's own --name wins; the front ends and the tasks they
    start find the cluster in the environment."""
    if args.global_name is None:
        return
    if getattr(args, "name", None) is None:
        args.name = args.global_name
    if getattr(args, "command", None) != "shims":  # shims' --name is what the scripts default to
        os.environ[ENV_CLUSTER] = args.global_name


def warn(message: str) -> None:
    print(f"numa-emu: {message}", file=sys.stderr)


def fail(message: str) -> None:
    print(f"numa-emu: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _apply_global_name(args)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except NumaEmuError as exc:
        fail(exc.message)
        return EXIT_UNREACHABLE if exc.code in _UNREACHABLE else EXIT_ERROR
    except KeyboardInterrupt:
        fail("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # e.g. a path the file system refuses (a name too long): one line, no traceback
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}")
        return EXIT_ERROR


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
