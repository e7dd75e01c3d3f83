"""The fork server of node processes: `python -m numa_emu.nodes.zygote` imports the node's code once and
forks one child per node, so that a node costs a fork instead of a fresh interpreter that imports
everything again (64 nodes: about 5 s of start-up otherwise, on 2 cores).

It stays the parent of the nodes: it reaps them and reports to the coordinator, one line per
event on stdout: `spawned NODE PID`, `exited NODE STATUS` (STATUS negative: killed by that
signal). It takes commands on stdin after the first line, `spawn NODE TOKEN` (`numa-emu node
restart`) and `signal NODE SIGNUM` (a node on another host), `watch TASK PID` and `unwatch TASK 0` (a task of
this host: reported `taskgone TASK 0` when its process exits), `clock 0 0` (answered `clock HOST_KEY
NS`, its CLOCK_MONOTONIC: the coordinator estimates this host's clock offset), and leaves once stdin is closed (the
coordinator stopped or died) and every node has exited.

On a cluster of several hosts it is each host's agent (protocol.hosts): started over ssh or srun
without --cluster-dir, it makes that host's cluster folder from what the first line carries (the
topology and the cluster's keys), and its stdin is the coordinator's parent-alive pipe: the nodes
hold a pipe whose write end it closes when stdin reads EOF. Each node runs in a session of its own and holds the coordinator's parent-alive pipe, so a
crash of the coordinator or of this process never leaves an orphan running. It creates no ZeroMQ
context and starts no thread before forking (neither survives a fork). Each node's register token
comes on stdin (the first line, JSON {"tokens": {node id: token}, ...}; then with each spawn), never in argv (`ps`
shows argv).
"""
from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import sys
import time
from pathlib import Path

from numa_emu.protocol.clusterdir import RUN_DIR, node_log, open_private, process_tag
from numa_emu.protocol.delaylink import HOST_KEY
from numa_emu.protocol.hosts import CONNECTION_FILE
from numa_emu.protocol.keys import KEYS_DIR
from numa_emu.protocol.logsetup import DEFAULT_LOG_LEVEL, LOG_LEVELS


def _child(args: argparse.Namespace, node_id: int, token: str) -> None:
    """In the forked child: become node `node_id` (never returns)."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # A process group of its own (signals to the fork server's group miss it), but the fork
        # server's session: with the kernel's autogroup scheduling every session is a group of its
        # own, and a node alone in one had its ZeroMQ I/O thread left runnable but unscheduled for
        # 2-3.5 s on a loaded host (measured: docs/design.md#processes).
        os.setpgid(0, 0)
        fd = open_private(args.cluster_dir / node_log(node_id))
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        from numa_emu.nodes.__main__ import start_node

        status = start_node(args.cluster_dir, args.name, node_id, args.coordinator, args.alive_fd, token,
                            log_level=args.log_level, host=args.host, bind=args.bind,
                            remote_store=args.remote_store)
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


def _host_folder(args: argparse.Namespace, header: dict) -> tuple[Path, bool]:
    """As a host's agent (no --cluster-dir): this host's cluster folder, made if need be, with the
    topology and the keys that came on stdin (another host has no copy of the coordinator's), and
    whether the agent owns it. The coordinator's own folder (the agent of its host, same
    NUMA_EMU_HOME: `up` wrote hosts.json and this cluster's keys there) is left as it is: its
    connection file, keys and sockets are the coordinator's, to write and to delete. A hosts.json
    with other keys is a coordinator's of an earlier run: the folder is this agent's."""
    from numa_emu.protocol.clusterdir import (HOME_ENV, MARKER_FILE, RUN_DIR, TOPOLOGY_FILE, cluster_dir, make_private,
                                     write_json_atomic)
    from numa_emu.protocol.errors import NumaEmuError
    from numa_emu.protocol.hosts import HOSTS_FILE, connection
    from numa_emu.protocol.keys import ClusterKeys

    if args.home:
        os.environ[HOME_ENV] = args.home
    cdir = cluster_dir(args.name)
    public, secret = header["keys"]
    if (cdir / HOSTS_FILE).is_file():
        try:
            if ClusterKeys.load(cdir).public == public.encode():
                return cdir, False
        except NumaEmuError:
            pass
    if cdir.exists() and not (cdir / MARKER_FILE).is_file() and any(cdir.iterdir()):
        raise SystemExit(f"{cdir} exists but was not made by numa-emu; move it away or pick another cluster name")
    make_private(cdir)
    (cdir / MARKER_FILE).write_text("made by numa-emu up; clean-up deletes only in folders that have this file\n")
    write_json_atomic(cdir / TOPOLOGY_FILE, header["topology"])
    (cdir / RUN_DIR).mkdir(mode=0o700, exist_ok=True)
    ClusterKeys.install(cdir, public.encode(), secret.encode())
    # a task on this host attaches through it (numa_emu.cluster.connect)
    write_json_atomic(cdir / CONNECTION_FILE, connection(args.name, args.host, args.coordinator, public.encode(),
                                                         secret.encode()))
    return cdir, True


def _watch(watched: dict[int, int], task_id: int, pid: int) -> None:
    """`watch TASK PID`: tell the coordinator `taskgone TASK 0` when process PID of this host
    exits (a pidfd turns readable; the coordinator cannot see another host's pids); `unwatch TASK 0`
    (it detached) stops that."""
    for fd in [fd for fd, t in watched.items() if t == task_id]:
        os.close(fd)
        del watched[fd]
    if pid:
        try:
            watched[os.pidfd_open(pid)] = task_id
        except OSError:  # gone already (or no such pid here)
            _report(f"taskgone {task_id} 0")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m numa_emu.nodes.zygote")
    parser.add_argument("--cluster-dir", type=Path, help="the cluster folder (else this host's, made here)")
    parser.add_argument("--home", help="NUMA_EMU_HOME on this host (a fake host of a test has its own)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--alive-fd", type=int, help="the coordinator's parent-alive pipe (else stdin is)")
    parser.add_argument("--nodes", required=True, help="comma-separated node ids")
    parser.add_argument("--host", default="", help="this host's name in the placement (protocol.hosts)")
    parser.add_argument("--bind", default="", help="the address the nodes' tcp sockets bind")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=DEFAULT_LOG_LEVEL, help="every node's")
    args = parser.parse_args()
    os.umask(0o077)  # an agent started by ssh gets the login's umask
    import setproctitle

    where = f"--host {args.host} --home {args.home or '~'}" if args.cluster_dir is None else ""
    setproctitle.setproctitle(f"{process_tag(args.name)} node-zygote {where or f'--cluster-dir {args.cluster_dir}'}")
    import numa_emu.nodes.server  # noqa: F401  (imported once here, inherited by every fork)

    # SIGCHLD wakes the select below through this pipe (set_wakeup_fd): no polling
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    watched: dict[int, int] = {}  # pidfd -> task id: this host's tasks, watched for the coordinator

    commands, pending = True, b""
    while b"\n" not in pending:  # the first line: every node's token (os.read: no buffer to share with select)
        data = os.read(0, 4096)
        if not data:
            commands = False
            break
        pending += data
    first, _, pending = pending.partition(b"\n")
    header = json.loads(first or b"{}")
    tokens = {int(k): str(v) for k, v in header.get("tokens", {}).items()}
    alive_w = None
    made_folder = False  # True: this agent owns the host's folder (and cleans it at exit)
    if args.cluster_dir is None:
        try:
            args.cluster_dir, made_folder = _host_folder(args, header)
        except (OSError, KeyError, ValueError) as exc:
            raise SystemExit(f"agent of host {args.host}: cannot prepare the cluster folder: {exc}") from None
    args.remote_store = made_folder  # not the coordinator's folder: its nodes use its store through it
    if args.alive_fd is None:  # stdin (an ssh session, srun's pipe) is the coordinator's life: its EOF ends ours
        args.alive_fd, alive_w = os.pipe()

    def spawn(node_id: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
            if alive_w is not None:
                os.close(alive_w)
            _child(args, node_id, tokens.get(node_id, ""))
        children[pid] = node_id
        _report(f"spawned {node_id} {pid}")

    for node_id in (int(n) for n in args.nodes.split(",")):
        spawn(node_id)
    try:
        while children or commands:
            while children:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                node_id = children.pop(pid, None)
                if node_id is not None:
                    _report(f"exited {node_id} {os.waitstatus_to_exitcode(status)}")
            if not children and not commands:
                break
            ready, _, _ = select.select(([0, wake_r] if commands else [wake_r]) + list(watched), [], [])
            for fd in [fd for fd in ready if fd in watched]:  # a task of this host exited
                os.close(fd)
                _report(f"taskgone {watched.pop(fd)} 0")
            if wake_r in ready:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            if 0 in ready:
                data = os.read(0, 4096)
                commands = bool(data)
                if not commands and alive_w is not None:
                    os.close(alive_w)  # the nodes read EOF and leave
                    alive_w = None
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    what, _, rest = line.decode(errors="replace").partition(" ")
                    node, _, value = rest.strip().partition(" ")
                    if what == "spawn" and node.isdigit():
                        tokens[int(node)] = value
                        spawn(int(node))
                    elif what == "signal" and node.isdigit() and value.isdigit():
                        pid = next((p for p, n in children.items() if n == int(node)), None)
                        if pid is not None:
                            try:
                                os.kill(pid, int(value))
                            except (ProcessLookupError, ValueError):
                                pass
                    elif what == "clock":  # the coordinator measures this host's clock (delaylink.estimate_offset)
                        _report(f"clock {HOST_KEY} {time.monotonic_ns()}")
                    elif what in ("watch", "unwatch") and node.isdigit() and value.isdigit():
                        _watch(watched, int(node), int(value) if what == "watch" else 0)
    finally:
        if made_folder:  # this host's way in goes with the cluster, and so do its keys and sockets
            (args.cluster_dir / CONNECTION_FILE).unlink(missing_ok=True)
            for folder in (KEYS_DIR, RUN_DIR):
                shutil.rmtree(args.cluster_dir / folder, ignore_errors=True)


if __name__ == "__main__":
    main()
