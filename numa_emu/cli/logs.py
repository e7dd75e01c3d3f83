"""Print a cluster's logs: the coordinator's (default), a node's, or the node fork server's.

  numa-emu logs [--node N | --coordinator | --zygote] [-n LINES] [-f] [--previous]

Each process of a cluster logs to a file of its own in the cluster folder ($NUMA_EMU_HOME/<cluster>/
coordinator.log, zygote.log, node-N.log; 0600), at `up --log-level debug|info|warning` (default
info). `up` keeps the previous run's logs as NAME.log.1 (--previous prints those) and deletes
older ones, so every .log belongs to the cluster as it is now. The logs outlive the cluster:
`logs` reads them when it is down too.

-n LINES prints the last LINES lines (default: all). -f then follows the file as `tail -f` does,
until Ctrl-C or the cluster goes down. Exit codes: 0 ok, 2 usage, 3 no such log.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

from numa_emu.protocol.clusterdir import COORDINATOR_LOG, ROTATED_SUFFIX, ZYGOTE_LOG, cluster_dir, is_cluster_folder, node_log
from numa_emu.protocol.errors import ErrorCode, NumaEmuError

from numa_emu import cluster
from numa_emu.cli.common import add_name_option
from numa_emu.cli.main import warn

FOLLOW_POLL_S = 0.2  # how often -f looks for new lines and whether the cluster is still up


def _lines(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines (0 or more)")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--node", type=int, metavar="N", help="node N's log")
    which.add_argument("--coordinator", action="store_true", help="the coordinator's log (the default)")
    which.add_argument("--zygote", action="store_true", help="the node fork server's log")
    p.add_argument("-n", "--lines", type=_lines, metavar="LINES", help="the last LINES lines only")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C or the cluster is down")
    p.add_argument("--previous", action="store_true", help="the previous `up`'s log (NAME.log.1)")


def _path(args: argparse.Namespace, name: str) -> Path:
    cdir = cluster_dir(name)
    if not is_cluster_folder(cdir):
        others = sorted(p.name for p in cdir.parent.iterdir() if is_cluster_folder(p))
        hint = f"clusters with logs: {', '.join(others)} (use --name {others[0]})" if others else "no cluster has logs yet"
        raise NumaEmuError(ErrorCode.ENOENT, f"cluster '{name}' has no logs; {hint}")
    file = node_log(args.node) if args.node is not None else ZYGOTE_LOG if args.zygote else COORDINATOR_LOG
    path = cdir / (file + (ROTATED_SUFFIX if args.previous else ""))
    if not path.is_file():
        there = sorted(p.name for p in cdir.glob("*.log*"))
        raise NumaEmuError(ErrorCode.ENOENT, f"cluster '{name}' has no {path.name}; its logs: {', '.join(there) or 'none'}")
    return path


def _tail(f, lines: int | None) -> None:
    out = sys.stdout.buffer
    if lines is None:
        while chunk := f.read(1 << 16):
            out.write(chunk)
    else:
        out.writelines(collections.deque(f, maxlen=lines))  # reads to the end, whatever it keeps
    out.flush()


def _follow(f, name: str) -> None:
    """Print what is appended to `f` until the cluster is down (then print the rest and stop)."""
    out = sys.stdout.buffer
    while True:
        up = cluster.find(name) is not None
        while chunk := f.read(1 << 16):
            out.write(chunk)
        out.flush()
        if not up:
            warn(f"cluster '{name}' is down")
            return
        time.sleep(FOLLOW_POLL_S)  # pacing of tail -f, not a wait for a condition


def run(args: argparse.Namespace) -> int:
    name = cluster.resolve_name(args.name, warn=warn)
    path = _path(args, name)
    with open(path, "rb") as f:
        _tail(f, args.lines)
        if not args.follow or args.previous:
            return 0
        try:
            _follow(f, name)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how -f ends
    return 0
