"""A live view of a cluster: per node frames, replicas and rates; per task its node, virtual time and locality.

  numa-emu top [--name CLUSTER] [--interval S] [--once [--json]]

Per node: frames used and free, replica pages, migrations, numa_hit and numa_miss and faults per
second, the remote share. Per task: cpu, node, virtual time, pages by node and locality.
Full screen, refreshed every --interval seconds (default 1); q or Ctrl-C quits and gives the
terminal back as it was. --once prints one frame and exits (for scripts): it reads the cluster
twice, --interval apart, so the rates are real. The numbers come from the coordinator
(cluster.status, cluster.stats, task.list); the columns are explained under the tables. The view
fits 80x24 for up to 8 nodes and a few tasks: short headers, numbers never cut (a number too wide
folds onto a second line). --json (with --once) prints the frame's numbers instead: {"cluster",
"state", "interval_s", "nodes": [...], "tasks": [...]}, the rates per second unrounded.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import sys
import time
from typing import Iterator

from numa_emu.protocol import limits

from numa_emu.cli.common import add_name_option, running_cluster
from numa_emu.cli.main import EXIT_USAGE, fail

QUERY_TIMEOUT_S = 5.0
PIPE_WIDTH = 132  # columns of --once when stdout is not a terminal (rich would wrap at 80)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    p.add_argument("--interval", type=limits.REFRESH_S.argtype(), default=1.0, metavar="S", help="seconds between refreshes (default 1)")
    p.add_argument("--once", action="store_true", help="print one frame, not full screen, and exit")
    p.add_argument("--json", action="store_true", help="with --once: print the frame's numbers as JSON")


def snapshot(info):
    """Read the cluster once (three requests on one connection) and stamp it."""
    from numa_emu.topview import Snapshot
    from numa_emu.protocol.messages import lifecycle as lc
    from numa_emu.protocol.messages import tasks as tm

    with info.client(timeout_s=QUERY_TIMEOUT_S) as client:
        status = client.call(lc.ClusterStatus())
        stats = client.call(tm.ClusterStats()).nodes
        tasks = client.call(tm.TaskList()).tasks
    return Snapshot(t_s=time.monotonic(), cluster=status.cluster, state=status.state,
                    node_states={int(n["id"]): n["state"] for n in status.nodes},
                    stats={int(k): v for k, v in stats.items()}, tasks=tasks)


@contextlib.contextmanager
def keys(stream) -> Iterator["KeyReader"]:
    """Read keys one by one (cbreak: no echo, no line buffering; Ctrl-C still interrupts) and
    restore the terminal's settings on the way out, whatever happens."""
    reader = KeyReader(stream)
    try:
        reader.start()
        yield reader
    finally:
        reader.restore()


class KeyReader:
    def __init__(self, stream):
        self.fd = stream.fileno() if stream is not None and stream.isatty() else None
        self.saved = None

    def start(self) -> None:
        if self.fd is None:
            return
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def quit_within(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` (the refresh pacing); True as soon as q is pressed."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self.fd is None:  # no terminal to read keys from: Ctrl-C only
                time.sleep(left)
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                data = os.read(self.fd, 64)
                if not data or b"q" in data.lower():  # EOF (the terminal went away) quits too
                    return True
        return False


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from numa_emu import topview

    if args.json and not args.once:
        fail("top: --json prints one frame: add --once")
        return EXIT_USAGE
    info = running_cluster(args)
    if args.once:
        first = snapshot(info)
        time.sleep(args.interval)  # the rate window, not a wait for a condition
        if args.json:
            print(json.dumps(topview.to_json(snapshot(info), first), indent=2))
            return 0
        console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False)
        console.print(topview.render(snapshot(info), first))
        return 0
    return _live(info, args.interval, topview)


def _live(info, interval_s: float, topview) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console(highlight=False)
    previous = None
    try:
        with keys(sys.stdin) as reader, Live(console=console, screen=True, auto_refresh=False,
                                             redirect_stdout=False, redirect_stderr=False) as live:
            while True:
                current = snapshot(info)
                live.update(topview.render(current, previous, interval_s), refresh=True)
                previous = current
                if reader.quit_within(interval_s):
                    break
    except KeyboardInterrupt:
        pass  # Ctrl-C is the other way to quit; the with blocks have restored the terminal
    return 0
