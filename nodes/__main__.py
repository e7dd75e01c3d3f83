"""Entry point of one node: python -m numa_emu.nodes --cluster-dir DIR --name NAME --node I --coordinator ENDPOINT
[--alive-fd FD], its register token in $NUMA_EMU_NODE_TOKEN (not in argv, which `ps` shows).
Clusters start their nodes through the fork server (nodes.zygote), which calls start_node in each
forked child; this entry point runs one node by itself."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from numa_emu.protocol.logsetup import DEFAULT_LOG_LEVEL, LOG_LEVELS, configure

TOKEN_ENV = "NUMA_EMU_NODE_TOKEN"


def start_node(cluster_dir: Path, name: str, node_id: int, coordinator: str, alive_fd: int | None, token: str,
               *, log_level: str = DEFAULT_LOG_LEVEL, host: str = "", bind: str = "", remote_store: bool = False) -> int:
    """Run node `node_id` until it stops; its exit status."""
    import setproctitle

    from numa_emu.protocol.clusterdir import process_tag

    setproctitle.setproctitle(f"{process_tag(name)} node {node_id} --cluster-dir {cluster_dir}")
    configure(log_level)
    from numa_emu.nodes.server import serve

    return serve(cluster_dir, name, node_id, coordinator, alive_fd, token, host=host, bind=bind,
                 remote_store=remote_store)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m numa_emu.nodes")
    parser.add_argument("--cluster-dir", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--node", required=True, type=int)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--alive-fd", type=int)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=DEFAULT_LOG_LEVEL)
    args = parser.parse_args()
    token = os.environ.pop(TOKEN_ENV, "")
    sys.exit(start_node(args.cluster_dir, args.name, args.node, args.coordinator, args.alive_fd, token,
                        log_level=args.log_level))


if __name__ == "__main__":
    main()
