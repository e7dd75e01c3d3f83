"""Entry point: python -m nodes --cluster-dir DIR --name NAME --node I --coordinator ENDPOINT [--alive-fd FD]."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import setproctitle

from protocol.clusterdir import process_tag


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nodes")
    parser.add_argument("--cluster-dir", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--node", required=True, type=int)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--alive-fd", type=int)
    args = parser.parse_args()
    setproctitle.setproctitle(f"{process_tag(args.name)} node {args.node} --cluster-dir {args.cluster_dir}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from nodes.server import main as serve

    serve(args.cluster_dir, args.name, args.node, args.coordinator, args.alive_fd)


if __name__ == "__main__":
    main()
