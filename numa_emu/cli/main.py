"""The numa-emu command: argparse subcommands built from a registry of small modules.

Each command module has a docstring (its --help), `add_arguments(parser)` and `run(args) -> int`.
Exit codes are fixed (circus): 0 ok, 1 cannot reach the cluster, 2 usage, 3 error reply.
Every error is one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from protocol.errors import ErrorCode, NumaEmuError

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3

# name -> module under numa_emu.cli; the order is the order of --help
COMMANDS = {
    "up": "up",
    "down": "down",
    "status": "status",
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
    "top": "top",
}

_UNREACHABLE = {ErrorCode.ECONNREFUSED, ErrorCode.ETIMEDOUT}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as argparse does, without the usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="numa-emu", description="A NUMA machine emulated with real processes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"numa_emu.cli.{module_name}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def warn(message: str) -> None:
    print(f"numa-emu: {message}", file=sys.stderr)


def fail(message: str) -> None:
    print(f"numa-emu: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
