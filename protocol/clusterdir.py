"""The cluster folder: where a cluster's state lives, and the files the CLI and daemons share.

    $NUMA_EMU_HOME/<cluster>/          (NUMA_EMU_HOME defaults to ~/.numa-emu)
        topology.json    the machine, written by `up` before anything starts
        cluster.json     pids and endpoints, written by the coordinator; gone after `down`
        coordinator.log, zygote.log, node-<i>.log   one per process, appended to within one `up`;
        *.log.1          the previous `up`'s logs (rotate_logs), older ones deleted
        keys/            the cluster's CURVE keys (protocol.keys), made by `up`
        run/             ipc sockets
        store/           the backing store (files), kept across down/up

Only its owner gets in: the folder is 0700 and everything in it 0600 (folders 0700), whatever
the umask; daemons run under umask 077 and create their files 0600 explicitly too.
cluster.json is the source of truth for what runs (docs/conventions.md#no-fixed-ports).
Cleanup only ever signals pids recorded here whose command line still carries our tag.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

HOME_ENV = "NUMA_EMU_HOME"
CLUSTER_FILE = "cluster.json"
TOPOLOGY_FILE = "topology.json"
RUN_DIR = "run"
STORE_DIR = "store"
MARKER_FILE = ".numa-emu-cluster"  # made by `up` in a folder it owns; clean-up needs it
_MAX_IPC_PATH = 100  # sun_path holds 108 bytes; keep a margin
# One path component of safe characters: never "..", "/", a newline, or an option-like "-x".
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-'"


def home() -> Path:
    """The folder that holds every cluster: $NUMA_EMU_HOME, else ~/.numa-emu; made (0700, as tools
    make their state folders) when it does not exist yet. A path that is not a folder is refused."""
    explicit = os.environ.get(HOME_ENV)
    path = Path(explicit) if explicit else Path.home() / ".numa-emu"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NumaEmuError(
            ErrorCode.ENOTDIR,
            f"{HOME_ENV}={path} is not a folder; point it at a folder or unset {HOME_ENV} to use ~/.numa-emu",
        ) from None
    return path


def check_name(name: object) -> str:
    """`name` if it is a valid cluster name (one folder inside the home), else EINVAL."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return name
    shown = repr(name)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise NumaEmuError(ErrorCode.EINVAL, f"invalid cluster name {shown}: a name is {NAME_RULE}")


def is_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def cluster_dir(name: str, base: Path | None = None) -> Path:
    """The folder of cluster `name`, always directly inside the home."""
    return (base if base is not None else home()) / check_name(name)


def is_cluster_folder(cdir: Path) -> bool:
    """Whether `up` made this folder (its marker is there): only then may clean-up delete in it."""
    return (cdir / MARKER_FILE).is_file()


def process_tag(name: str) -> str:
    """What `ps` shows for every process of cluster `name` (docs/conventions.md#no-orphans)."""
    return f"numa-emu[{name}]"


def make_private(cdir: Path) -> None:
    """Create the cluster folder 0700, and make what an earlier run left there (store files,
    logs; perhaps made by an older version, or under a looser umask) owner-only."""
    cdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(cdir, 0o700)
    for root, dirs, files in os.walk(cdir):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """A file descriptor of `path`, which is 0600 whatever the umask or its earlier mode."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


COORDINATOR_LOG = "coordinator.log"
ZYGOTE_LOG = "zygote.log"  # the node fork server's
ROTATED_SUFFIX = ".1"


def node_log(node_id: int) -> str:
    return f"node-{node_id}.log"


def rotate_logs(cdir: Path) -> None:
    """At `up`: the last run's logs become NAME.log.1 and anything older goes, so the folder holds
    this run's logs and the previous run's, never a log of a node the cluster no longer has
    without the .1 that dates it."""
    for old in cdir.glob(f"*.log{ROTATED_SUFFIX}"):
        old.unlink(missing_ok=True)
    for log in cdir.glob("*.log"):
        os.replace(log, log.with_name(log.name + ROTATED_SUFFIX))


def endpoint_for(cdir: Path, role: str) -> str:
    """An ipc endpoint in the cluster folder; loopback tcp when the path is too long, which is
    no open door: every socket is CURVE with the cluster's keys (protocol.keys)."""
    path = cdir / RUN_DIR / f"{role}.sock"
    if len(str(path)) <= _MAX_IPC_PATH:
        return f"ipc://{path}"
    return "tcp://127.0.0.1:0"


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
