"""The fork server of node processes: `python -m nodes.zygote` imports the node's code once and
forks one child per node, so that a node costs a fork instead of a fresh interpreter that imports
everything again (64 nodes: about 5 s of start-up otherwise, on 2 cores).

It stays the parent of the nodes: it reaps them and reports to the coordinator, one line per
event on stdout: `spawned NODE PID`, `exited NODE STATUS` (STATUS negative: killed by that
signal). Each node runs in a session of its own and holds the coordinator's parent-alive pipe,
so a crash of the coordinator or of this process never leaves an orphan running. It creates no
ZeroMQ context and starts no thread before forking (neither survives a fork). Each node's
register token comes on stdin, one JSON line {node id: token}, never in argv (`ps` shows argv).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from protocol.clusterdir import open_private, process_tag


def _child(args: argparse.Namespace, node_id: int, token: str) -> None:
    """In the forked child: become node `node_id` (never returns)."""
    status = 1
    try:
        os.setsid()
        fd = open_private(args.cluster_dir / f"node-{node_id}.log")
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        from nodes.__main__ import start_node

        status = start_node(args.cluster_dir, args.name, node_id, args.coordinator, args.alive_fd, token)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # a node that cannot start must still leave through os._exit
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _report(line: str) -> None:
    try:
        print(line, flush=True)
    except BrokenPipeError:
        pass  # the coordinator is gone; the nodes will notice through the parent-alive pipe


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nodes.zygote")
    parser.add_argument("--cluster-dir", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--alive-fd", type=int, required=True)
    parser.add_argument("--nodes", required=True, help="comma-separated node ids")
    args = parser.parse_args()
    import setproctitle

    setproctitle.setproctitle(f"{process_tag(args.name)} node-zygote --cluster-dir {args.cluster_dir}")
    import nodes.server  # noqa: F401  (imported once here, inherited by every fork)

    tokens = {int(k): str(v) for k, v in json.loads(sys.stdin.readline() or "{}").items()}

    children: dict[int, int] = {}
    for node_id in (int(n) for n in args.nodes.split(",")):
        pid = os.fork()
        if pid == 0:
            _child(args, node_id, tokens.get(node_id, ""))
        children[pid] = node_id
        _report(f"spawned {node_id} {pid}")
    os.close(args.alive_fd)  # only the nodes watch it; this process leaves when they have
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        node_id = children.pop(pid, None)
        if node_id is not None:
            _report(f"exited {node_id} {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    main()
