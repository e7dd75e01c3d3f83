"""Clusters seen from outside: start one, find one, ask it, stop it, clean a stale one.

The CLI and Python scripts (the `Cluster` context manager) both come here. Nothing here reaches
into a daemon: it starts `python -m coordinator` and talks to it over the wire.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from numa_emu.protocol.client import Client
from numa_emu.protocol.clusterdir import (CLUSTER_FILE, COORDINATOR_LOG, MARKER_FILE, RUN_DIR, TOPOLOGY_FILE, cluster_dir,
                                 home, is_cluster_folder, is_name, make_private, open_private, read_json,
                                 rotate_logs, write_json_atomic)
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.hosts import (CONNECTION_ENV, CONNECTION_FILE, HOSTS_FILE, Host, coordinator_address, host_identity,
                            place)
from numa_emu.protocol.keys import KEYS_DIR, ClusterKeys
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.timing import NODE_READY_TIMEOUT_S, SHUTDOWN_GRACE_S, TERM_GRACE_S
from numa_emu.protocol.topology import Topology

from numa_emu import processes

DEFAULT_NAME = "default"


@dataclass
class ClusterInfo:
    """What cluster.json says about a running cluster."""

    name: str
    dir: Path
    data: dict

    @property
    def endpoint(self) -> str:
        return self.data["coordinator"]["endpoint"]

    @property
    def coordinator_pid(self) -> int:
        return int(self.data["coordinator"]["pid"])

    @property
    def pids(self) -> list[int]:
        """The coordinator, the nodes and their fork server: this machine's. On a cluster of
        several hosts, each host's agent as seen here (itself or its ssh client) stands for its
        nodes, whose pids are that host's: they exit when their agent does."""
        zygote = (self.data.get("zygote") or {}).get("pid")
        return [self.coordinator_pid] + [int(n["pid"]) for n in self.data.get("nodes", []) if not n.get("host")] \
            + ([int(zygote)] if zygote else []) + [int(a["pid"]) for a in self.data.get("agents", [])]

    @property
    def host(self) -> str:
        """The host this information is for: a connection file's, else the coordinator's."""
        return self.data.get("host") or self.data["coordinator"].get("host", "")

    @functools.cached_property
    def keys(self) -> ClusterKeys:
        """The cluster's CURVE keys: every client needs them (only the owner can read them)."""
        if "public_key" in self.data:  # a connection file carries them
            return ClusterKeys(self.data["public_key"].encode(), self.data["secret_key"].encode(), self.dir / KEYS_DIR)
        return ClusterKeys.load(self.dir)

    def client(self, timeout_s: float | None = None, endpoint: str | None = None) -> Client:
        """A client of the coordinator, or of another daemon of this cluster at `endpoint`."""
        endpoint = endpoint or self.endpoint
        if timeout_s is None:
            return Client(endpoint, keys=self.keys)
        return Client(endpoint, keys=self.keys, timeout_s=timeout_s)


def _base(base: Path | None) -> Path:
    return base if base is not None else home()


def names(base: Path | None = None) -> list[str]:
    """Clusters that have a cluster.json (up, starting, or stale) in a folder `up` made."""
    root = _base(base)
    return sorted(p.parent.name for p in root.glob(f"*/{CLUSTER_FILE}")
                  if is_name(p.parent.name) and is_cluster_folder(p.parent))


def find(name: str, base: Path | None = None, *, warn=None) -> ClusterInfo | None:
    """The running cluster `name`, or None. A stale one (its coordinator gone) is cleaned here,
    and `warn` (e.g. print to stderr) is told so."""
    cdir = cluster_dir(name, _base(base))
    path = cdir / CLUSTER_FILE
    try:
        data = read_json(path)
        info = ClusterInfo(name, cdir, data)
        coordinator = info.coordinator_pid
    except FileNotFoundError:
        return None
    except PermissionError:
        raise NumaEmuError(ErrorCode.EACCES, f"cluster '{name}' belongs to another user: cannot read {path}") from None
    except (ValueError, KeyError, TypeError):
        info, coordinator = None, 0
    if not is_cluster_folder(cdir):
        return None  # not made by `up`: neither a cluster nor ours to clean
    if info is not None and info.host and info.host != host_identity():
        # a home shared with the coordinator's host (NFS): its pids are not this machine's, never
        # clean-up here; reach it over tcp, as a process of this host
        coordinator = dict(info.data["coordinator"], endpoint=info.data["coordinator"].get("tcp_endpoint") or info.endpoint)
        return ClusterInfo(name, cdir, dict(info.data, coordinator=coordinator, host=host_identity()))
    if processes.is_ours(coordinator, name, cdir):
        return info
    # Count only what was alive and ours: a pid in cluster.json may have died or been reused.
    leftover = processes.alive(info.pids[1:], name, cdir) if info else []
    left = processes.kill_ladder(leftover, name, cdir, TERM_GRACE_S)
    _clean_runtime(cdir)
    if warn is not None:
        extra = f"; stopped {len(leftover) - len(left)} leftover node process(es)" if leftover else ""
        warn(f"cluster '{name}' was stale (its coordinator is gone): cleaned its folder {cdir}{extra}")
    return None


def connect(name: str, base: Path | None = None, *, warn=None) -> ClusterInfo:
    """What a task needs to attach to cluster `name` from this host: $NUMA_EMU_CONNECTION (a
    connection file's path or its JSON text: any host), else the cluster running here
    (cluster.json), else this host's connection file (written by its agent: another host of the
    cluster). ECONNREFUSED, as require() says, when none is there."""
    text = os.environ.get(CONNECTION_ENV)
    if text:
        inline = text.lstrip().startswith("{")
        try:
            data = json.loads(text if inline else Path(text).read_text())
            return _from_connection(data["name"], cluster_dir(data["name"], _base(base)), data, own_host=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NumaEmuError(ErrorCode.EINVAL, f"{CONNECTION_ENV}: not a usable connection file ({exc}); "
                                                 f"copy {CONNECTION_FILE} from the cluster's folder") from None
    info = find(name, base, warn=warn)
    if info is not None:
        return info
    cdir = cluster_dir(name, _base(base))
    try:
        return _from_connection(name, cdir, read_json(cdir / CONNECTION_FILE), own_host=True)
    except (OSError, ValueError, KeyError, TypeError):
        return require(name, base, warn=warn)


def _from_connection(name: str, cdir: Path, data: dict, *, own_host: bool) -> ClusterInfo:
    """A connection file as a ClusterInfo; its host is this one only when the file lies in this
    host's folder (a copy carried elsewhere: this machine's host name, protocol.hosts.host_identity)."""
    return ClusterInfo(name, cdir, {"name": data["name"], "host": data["host"] if own_host else host_identity(),
                                    "coordinator": {"endpoint": data["coordinator"], "pid": 0},
                                    "public_key": data["public_key"], "secret_key": data["secret_key"]})


def resolve_name(name: str | None, base: Path | None = None, *, warn=None) -> str:
    """An explicit name, else the only cluster that is up, else 'default'."""
    if name:
        return name
    up = [n for n in names(base) if find(n, base, warn=warn) is not None]
    return up[0] if len(up) == 1 else DEFAULT_NAME


def require(name: str, base: Path | None = None, *, warn=None) -> ClusterInfo:
    info = find(name, base, warn=warn)
    if info is None:
        up = [n for n in names(base) if n != name and find(n, base, warn=warn) is not None]
        hint = f"up: {', '.join(up)} (use --name {up[0]})" if up else f"start it with: numa-emu up --name {name}"
        raise NumaEmuError(ErrorCode.ECONNREFUSED, f"cluster '{name}' is not up; {hint}")
    return info


def _clean_runtime(cdir: Path) -> None:
    if not is_cluster_folder(cdir):
        return  # not made by `up`: nothing in it is ours to delete
    (cdir / CLUSTER_FILE).unlink(missing_ok=True)
    (cdir / CONNECTION_FILE).unlink(missing_ok=True)
    shutil.rmtree(cdir / RUN_DIR, ignore_errors=True)
    shutil.rmtree(cdir / KEYS_DIR, ignore_errors=True)


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


@dataclass
class Started:
    info: ClusterInfo
    proc: subprocess.Popen
    seconds: float


def start(name: str, topology: Topology, base: Path | None = None, *, foreground: bool = False,
          ready_timeout_s: float = NODE_READY_TIMEOUT_S, coordinator_args: list[str] | None = None,
          hosts: list[Host] | None = None, launcher: str = "ssh", ssh_opts: list[str] | None = None) -> Started:
    """Start cluster `name` on `topology`; returns once every node has reported ready. With
    `hosts`, the nodes are placed on them (protocol.hosts.place) and each host's agent is
    started by `launcher` ("ssh", or "local": fake hosts on this machine)."""
    placement = None
    if hosts:
        placed = place(hosts, topology.distances)
        placement = {"hosts": [h.to_dict() for h in placed], "launcher": launcher, "ssh_opts": list(ssh_opts or []),
                     "my_host": host_identity(), "bind": coordinator_address(placed)}
    t0 = time.monotonic()
    cdir = cluster_dir(name, _base(base))
    _claim_folder(cdir)
    make_private(cdir)
    with os.fdopen(open_private(cdir / ".lock", os.O_WRONLY | os.O_CREAT), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NumaEmuError(ErrorCode.EBUSY, f"cluster '{name}' is being started or stopped by another command") from None
        existing = find(name, base, warn=lambda m: print(f"numa-emu: {m}", file=sys.stderr))
        if existing is not None:
            raise NumaEmuError(
                ErrorCode.EEXIST,
                f"cluster '{name}' is already up (coordinator pid {existing.coordinator_pid}); "
                f"stop it with 'numa-emu down --name {name}' or pick another --name",
            )
        _clean_runtime(cdir)
        rotate_logs(cdir)
        write_json_atomic(cdir / TOPOLOGY_FILE, topology.to_dict())
        (cdir / HOSTS_FILE).unlink(missing_ok=True)
        if placement is not None:
            write_json_atomic(cdir / HOSTS_FILE, placement)
        ClusterKeys.create(cdir)
        proc = _spawn_coordinator(cdir, name, foreground, coordinator_args or [], ready_timeout_s)
    return Started(ClusterInfo(name, cdir, read_json(cdir / CLUSTER_FILE)), proc, time.monotonic() - t0)


def _claim_folder(cdir: Path) -> None:
    """Make the cluster folder with its marker, or accept one that `up` made before. A folder made
    by someone else is refused: start-up's clean-up would delete in it."""
    try:
        cdir.mkdir(mode=0o700)
    except FileExistsError:
        if is_cluster_folder(cdir):
            return
        if not cdir.is_dir() or any(cdir.iterdir()):
            raise NumaEmuError(ErrorCode.EEXIST, f"{cdir} exists but was not made by 'numa-emu up' "
                               f"(no {MARKER_FILE} in it); move it away or pick another --name") from None
    (cdir / MARKER_FILE).write_text("made by numa-emu up; clean-up deletes only in folders that have this file\n")


def _spawn_coordinator(cdir: Path, name: str, foreground: bool, extra: list[str], timeout_s: float) -> subprocess.Popen:
    ready_r, ready_w = os.pipe()
    args = [sys.executable, "-m", "numa_emu.coordinator", "--cluster-dir", str(cdir), "--name", name,
            "--ready-fd", str(ready_w), *extra]
    fds = [ready_w]
    parent_r = None
    if foreground:
        parent_r, _parent_w = os.pipe()  # _parent_w stays open in this process until it exits
        args += ["--parent-alive-fd", str(parent_r)]
        fds.append(parent_r)
    log = os.fdopen(open_private(cdir / COORDINATOR_LOG), "ab", buffering=0)
    try:
        # umask 077: whatever the daemons create (sockets, logs, store files) is the owner's alone
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                pass_fds=fds, start_new_session=True, umask=0o077)
    finally:
        log.close()
        os.close(ready_w)
        if parent_r is not None:
            os.close(parent_r)
    try:
        line = _read_line(ready_r, timeout_s)
    finally:
        os.close(ready_r)
    if not line.startswith("ready"):
        why = line[len("error "):] if line.startswith("error ") else (line or "the coordinator exited")
        processes.kill_ladder([proc.pid] + _recorded_pids(cdir), name, cdir, TERM_GRACE_S)
        proc.wait()
        _clean_runtime(cdir)
        tail = _log_tail(cdir / COORDINATOR_LOG)
        raise NumaEmuError(ErrorCode.EIO, f"cluster '{name}' did not start: {why}" + (f" (log: {tail})" if tail else ""))
    return proc


def _recorded_pids(cdir: Path) -> list[int]:
    try:
        return ClusterInfo("", cdir, read_json(cdir / CLUSTER_FILE)).pids[1:]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _read_line(fd: int, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"error no word from the coordinator within {timeout_s:g} s"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace").strip()


def stop(info: ClusterInfo, *, timeout_s: float = SHUTDOWN_GRACE_S + 2 * TERM_GRACE_S + 2.0) -> list[int]:
    """Stop a running cluster: shutdown message, then the signal ladder for whatever is left.
    Returns the pids that could not be stopped (none, unless something is badly wrong)."""
    try:
        with info.client(timeout_s=2.0) as client:
            client.call(lc.ClusterShutdown())
    except NumaEmuError:
        pass  # unresponsive coordinator: the ladder below takes over
    left = processes.wait_gone(info.pids, info.name, info.dir, timeout_s)
    if left:
        left = processes.kill_ladder(left, info.name, info.dir, TERM_GRACE_S)
    _clean_runtime(info.dir)
    return left


def status(info: ClusterInfo, timeout_s: float = 3.0) -> lc.ClusterStatusReply:
    with info.client(timeout_s=timeout_s) as client:
        reply = client.call(lc.ClusterStatus())
    assert isinstance(reply, lc.ClusterStatusReply)
    return reply


class Cluster:
    """A cluster for the length of a `with` block: scripts, experiments and tests use this.

        with Cluster("2s-skylake", name="exp1") as c:
            print(c.status().nodes)
    """

    def __init__(self, topology: Topology | str | None = None, *, name: str = DEFAULT_NAME,
                 base: Path | None = None, coordinator_args: list[str] | None = None,
                 hosts: list[Host] | None = None, launcher: str = "ssh", ssh_opts: list[str] | None = None):
        if not isinstance(topology, Topology):
            from numa_emu.catalog import resolve_topology

            topology = resolve_topology(topology)
        self.topology = topology
        self.name = name
        self.base = base
        self.coordinator_args = coordinator_args
        self.hosts, self.launcher, self.ssh_opts = hosts, launcher, ssh_opts  # several hosts: protocol.hosts
        self.started: Started | None = None

    @property
    def info(self) -> ClusterInfo:
        assert self.started is not None, "cluster not started"
        return self.started.info

    def start(self) -> "Cluster":
        self.started = start(self.name, self.topology, self.base, coordinator_args=self.coordinator_args,
                             hosts=self.hosts, launcher=self.launcher, ssh_opts=self.ssh_opts)
        return self

    def stop(self) -> None:
        if self.started is not None:
            stop(self.started.info)
            self.started.proc.wait()  # our child: reap it
            self.started = None

    def status(self) -> lc.ClusterStatusReply:
        return status(self.info)

    def client(self, timeout_s: float | None = None, endpoint: str | None = None) -> Client:
        return self.info.client(timeout_s, endpoint)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
