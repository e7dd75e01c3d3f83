"""Entry point: python -m coordinator --cluster-dir DIR --name NAME [--ready-fd FD] [--parent-alive-fd FD]."""
from __future__ import annotations

import argparse
from pathlib import Path

import setproctitle

from numa_emu.protocol.clusterdir import process_tag
from numa_emu.protocol.logsetup import DEFAULT_LOG_LEVEL, LOG_LEVELS, configure


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m coordinator")
    parser.add_argument("--cluster-dir", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--ready-fd", type=int, help="pipe to report 'ready ENDPOINT' or 'error MESSAGE' on")
    parser.add_argument("--parent-alive-fd", type=int, help="shut down when this pipe reads EOF (--foreground)")
    parser.add_argument("--inject", choices=("virtual", "real"), default="virtual")
    parser.add_argument("--dilation", type=float, default=1.0)
    parser.add_argument("--sysctl", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=DEFAULT_LOG_LEVEL)
    args = parser.parse_args()
    setproctitle.setproctitle(f"{process_tag(args.name)} coordinator --cluster-dir {args.cluster_dir}")
    configure(args.log_level)
    from numa_emu.coordinator.server import CoordinatorServer

    CoordinatorServer(args.cluster_dir, args.name, args.ready_fd, args.parent_alive_fd,
                      inject=args.inject, dilation=args.dilation, sysctl=args.sysctl,
                      log_level=args.log_level).run()


if __name__ == "__main__":
    main()
