"""memtoy: define, map, bind, touch and locate memory as one task of the cluster.

An interactive shell in the spirit of Lee Schermerhorn's memtoy, attached to the running cluster
as ONE task (on --cpu N, else $NUMA_EMU_CPU, else the coordinator's pick):

    numa-emu memtoy                     a shell; history in $NUMA_EMU_HOME/.memtoy_history
    numa-emu memtoy -f SCRIPT           run a script (-f - reads stdin)
    printf 'anon a 8p\\nmap a\\ntouch a\\nwhere a\\n' | numa-emu memtoy

Commands (type 'help' or 'help <command>' in the shell; any unique prefix works):
    anon <seg> <size>[k|m|g|p] [private|shared]     shmem <seg> <size>      file <path> ...
    map <seg>   unmap <seg>   remove <seg> ...      show [<seg>]
    touch <seg> [<off> <len>] [read|write]
    mbind <seg> [<off> <len>] <policy>[+shared][+move[+all][+lazy]] [<nodes>]
    where <seg> [<off> <len>]   memtoy's layout: the segment line, a 'page offset +00 .. +07'
                                header, then eight nodes a line after the hex page offset, '-'
                                for a page with none; the first 64 pages by default.
                                --where-lines: one 'PAGE NODE' line per page instead, then
                                '... N more pages' when the default window left some out
    mpol [<policy> [<nodes>]]   migrate <to> [<from>]   numa   pid   time
    snooze <seconds>   help [<command>]   quit | exit | end of input
Sizes: k, m, g, or p for pages. Policies: default, preferred, bind, interleaved, local, noop.

A bad command prints one line, 'memtoy: ...', on stderr and the session goes on. A script (-f or
a pipe) runs to its end and exits 1 if any command failed, naming the lines. The task always
detaches, which frees every private page it touched. Exit status: 0 ok, 1 a script command
failed or the cluster cannot be reached, 2 usage, 3 error reply (e.g. a --cpu the machine lacks).
"""
from __future__ import annotations

import argparse
import signal
import sys

from numa_emu.protocol.clusterdir import home
from numa_emu.protocol.errors import ErrorCode, NumaEmuError

from numa_emu.cli.common import add_name_option, running_cluster


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    p.add_argument("-f", "--file", metavar="SCRIPT", help="run the commands of SCRIPT ('-': stdin) instead of a shell")
    p.add_argument("--cpu", type=int, metavar="N",
                   help="attach on CPU N (default: $NUMA_EMU_CPU, else the coordinator's pick)")
    p.add_argument("-v", "--verbose", action="store_true", help="echo script commands; report map/unmap addresses")
    p.add_argument("--where-lines", action="store_true",
                   help="print `where` as one 'PAGE NODE' line per page, for scripts, instead of memtoy's layout")


def _script(args: argparse.Namespace) -> tuple[list[str] | None, str]:
    """The script's lines (None: read stdin as we go) and its name for error lines."""
    if args.file is None or args.file == "-":
        return None, "<stdin>"
    try:
        with open(args.file, encoding="utf-8") as f:
            return f.read().splitlines(), args.file
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise NumaEmuError(ErrorCode.ENOENT, f"cannot read memtoy script {args.file}: {why}") from None


def _leave(signum: int, frame: object) -> None:
    # Only wakes the loop: the `finally` below detaches the task, as `quit` does.
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    from numa_emu.api import attach
    from numa_emu.memtoy.executor import Memtoy
    from numa_emu.memtoy.shell import HISTORY_FILE, Shell, run_script

    lines, source = _script(args)
    interactive = args.file is None and sys.stdin.isatty()
    info = running_cluster(args)
    task = attach(args.cpu, cluster=info.name, comm="memtoy")
    saved = {sig: signal.signal(sig, _leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        toy = Memtoy(task, cluster_info=info, verbose=args.verbose, where_lines=args.where_lines)
        if interactive:
            intro = (f"memtoy on cluster {info.name}: pid {task.pid}, cpu {task.cpu} (node {task.node}), "
                     f"{task.n_nodes} nodes, page size {task.page_size}; 'help' lists the commands")
            return Shell(toy, history=home() / HISTORY_FILE, intro=intro).run()
        return run_script(toy, sys.stdin if lines is None else lines, source, echo=args.verbose)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        task.detach()
