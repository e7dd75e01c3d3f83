"""Nobody else gets in (issue 10, item 2): another uid reaches nothing of a cluster, over ipc, over
tcp (the long-path case) and under umask 000; a process without the cluster's keys gets no reply;
an impostor node is refused; `file import` reads with the client's rights, never the coordinator's.

The tests run as root; each attacker is a subprocess running as `nobody`, and the test's
NUMA_EMU_HOME is made 0755 first, so that only the cluster folder's own modes protect it."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import zmq

import numa_emu
from numa_emu.cluster import Cluster
from numa_emu.protocol import codec
from numa_emu.protocol.clusterdir import MARKER_FILE
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.keys import KEYS_DIR
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.topology_shapes import from_cli
from numa_emu.protocol.version import PROTOCOL_VERSION, TAG
from tests.helpers import poll_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run the attacker as another uid")

SHAPE = ("2", "1", "1MiB")  # two nodes, one cpu each: enough for every door
NO_REPLY_S = 1.5  # how long an attacker waits for a reply that must not come

# Run as `nobody`: tries every door it is given and reports what it got, as one JSON line.
ATTACKER = r"""
import json, os, socket, sys
import zmq
args = json.loads(sys.argv[1])
out = {"files": {}, "replies": {}, "import": None}
for path in args["paths"]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
        out["files"][path] = "read"
    except OSError as exc:
        out["files"][path] = type(exc).__name__
for path in args["sockets"]:  # ipc socket files: connect(2) itself
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        out["files"][path] = "connected"
    except OSError as exc:
        out["files"][path] = type(exc).__name__
    finally:
        s.close()
ctx = zmq.Context()
ping = [b"NUMAEMU/1", bytes.fromhex(args["ping"])]
for endpoint in args["endpoints"]:
    for how in ("plain", "own-curve-key"):
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        if how == "own-curve-key":  # its own keypair, and the server's public key (public keys leak)
            if not args.get("server_key"):
                continue
            sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
            sock.curve_serverkey = args["server_key"].encode()
        sock.connect(endpoint)
        sock.send_multipart(ping)
        out["replies"][f"{how} {endpoint}"] = "reply" if sock.poll(int(args["wait_s"] * 1000)) else "none"
        sock.close()
if args.get("import"):  # with a copy of the keys: the import reads with this user's rights
    from numa_emu.protocol.client import Client
    from numa_emu.protocol.errors import NumaEmuError
    from numa_emu.protocol.keys import ClusterKeys
    from numa_emu.fileimport import import_file
    imp = args["import"]
    with Client(imp["endpoint"], keys=ClusterKeys.load(__import__("pathlib").Path(imp["keys_home"]))) as client:
        results = []
        for path, name in imp["files"]:
            try:
                results.append(["ok", import_file(client, path, name)["size"]])
            except NumaEmuError as exc:
                results.append([exc.code.value, exc.message])
        out["import"] = results
print(json.dumps(out))
"""


def _as_nobody(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Python as uid `nobody`. Our interpreter may sit in a folder nobody may enter (root's pyenv):
    then the host's Python of the same version, with our packages on its path (same ABI). The
    packages folder is added as a site folder, so that its .pth files run: the editable install
    maps protocol/, nodes/, ... into numa_emu there."""
    purelib = sysconfig.get_paths()["purelib"]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([purelib, str(Path(__file__).parents[2])]),
           **(env or {})}
    code = f"import site; site.addsitedir({purelib!r})\n" + code
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, shutil.which(version, path="/usr/bin:/usr/local/bin:/bin")):
        if python is None:
            continue
        try:
            return subprocess.run([python, "-c", code, *args], user="nobody", group="nogroup", extra_groups=[],
                                  cwd="/", capture_output=True, text=True, timeout=60, env=env)
        except PermissionError:
            continue
    pytest.skip(f"no {version} that the user nobody may run")


def _attack(*, endpoints=(), paths=(), sockets=(), server_key: bytes | None = None, imports=None) -> dict:
    args = {"endpoints": list(endpoints), "paths": [str(p) for p in paths], "sockets": [str(s) for s in sockets],
            "server_key": server_key.decode() if server_key else None, "wait_s": NO_REPLY_S, "import": imports,
            "ping": codec.pack({"kind": "ping", "id": 1}).hex()}
    proc = _as_nobody(ATTACKER, json.dumps(args))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _open_home(home: Path) -> None:
    """The test's NUMA_EMU_HOME readable by all, as ~ often is: only the cluster folder's modes protect it."""
    os.chmod(home, 0o755)


def _secrets(cdir: Path) -> list[Path]:
    return [cdir, cdir / "cluster.json", cdir / "topology.json", cdir / "coordinator.log", cdir / "node-0.log",
            cdir / KEYS_DIR / "cluster.key", cdir / KEYS_DIR / "cluster.key_secret", cdir / "store", cdir / "run"]


def _serves(c: Cluster) -> None:
    assert c.status().state == "up"
    with numa_emu.attach(0, cluster=c.name) as task:
        region = task.mmap(4096)
        region.write(0, b"still serving")
        assert region.read(0, 13) == b"still serving"


def _modes(cdir: Path) -> dict[str, str]:
    out = {".": oct(stat.S_IMODE(os.lstat(cdir).st_mode))}
    for root, dirs, files in os.walk(cdir):
        for name in dirs + files:
            path = Path(root, name)
            out[str(path.relative_to(cdir))] = oct(stat.S_IMODE(os.lstat(path).st_mode))
    return out


def test_another_user_gets_nothing_over_ipc_and_every_file_is_the_owners_alone_under_umask_000(home, cluster_factory):
    _open_home(home)
    name = "sec-ipc"
    old = home / name / "store"
    old.mkdir(parents=True)
    (home / name / MARKER_FILE).write_text("")  # an earlier `up` made the folder
    (old / "earlier").write_bytes(b"a file of an earlier run, made 0644")
    os.chmod(old / "earlier", 0o644)
    os.chmod(home / name, 0o755)
    mask = os.umask(0)
    try:
        c = cluster_factory(from_cli(*SHAPE), name=name)
        with numa_emu.attach(0, cluster=c.name) as task:
            task.open("made", create=True, size=4096)
    finally:
        os.umask(mask)
    cdir = c.info.dir
    endpoints = [c.info.endpoint] + [n["endpoint"] for n in c.status().nodes]
    assert all(e.startswith("ipc://") for e in endpoints)
    got = _attack(endpoints=endpoints, paths=_secrets(cdir) + [old / "earlier"],
                  sockets=[e[len("ipc://"):] for e in endpoints], server_key=c.info.keys.public)
    assert set(got["files"].values()) == {"PermissionError"}, got["files"]
    assert set(got["replies"].values()) == {"none"} and len(got["replies"]) == 2 * len(endpoints), got["replies"]
    modes = _modes(cdir)
    status = _as_nobody("import sys; from numa_emu.cli.main import entry; sys.argv[0] = 'numa-emu'; entry()",
                        "status", "--name", name, env={"NUMA_EMU_HOME": str(home)})
    assert (status.returncode, status.stdout, status.stderr) == (
        3, "", f"numa-emu: error: cluster '{name}' belongs to another user: cannot read {cdir / 'cluster.json'}\n")
    # Were the folders open (a mistake), the daemons' ZAP handlers would still refuse another uid.
    for path in (cdir, cdir / "run"):
        os.chmod(path, 0o755)
    for endpoint in endpoints:
        os.chmod(endpoint[len("ipc://"):], 0o777)
    got = _attack(endpoints=endpoints, sockets=[e[len("ipc://"):] for e in endpoints])
    assert set(got["files"].values()) == {"connected"}, got["files"]
    assert set(got["replies"].values()) == {"none"} and len(got["replies"]) == len(endpoints), got["replies"]
    for path in (cdir, cdir / "run"):
        os.chmod(path, 0o700)
    for endpoint in endpoints:
        os.chmod(endpoint[len("ipc://"):], 0o600)
    dirs = {".", "store", "run", KEYS_DIR}
    assert {k for k in modes if k in dirs} == dirs
    assert {k: v for k, v in modes.items() if v != ("0o700" if k in dirs else "0o600")} == {}, modes
    for must in ("cluster.json", "topology.json", ".lock", "coordinator.log", "zygote.log", "node-0.log", "node-1.log",
                 "store/earlier", "store/made", "run/coordinator.sock", "run/node-0.sock", f"{KEYS_DIR}/cluster.key",
                 f"{KEYS_DIR}/cluster.key_secret"):
        assert must in modes, (must, sorted(modes))
    _serves(c)


@pytest.fixture
def tcp_cluster(home, monkeypatch):
    """A cluster whose folder is too long for ipc paths: it serves on loopback tcp, which every
    local user can reach."""
    _open_home(home)
    base = home / ("long-" + "x" * 90)
    base.mkdir()
    os.chmod(base, 0o755)
    monkeypatch.setenv("NUMA_EMU_HOME", str(base))  # where numa_emu.attach looks
    c = Cluster(from_cli(*SHAPE), name="sec-tcp", base=base).start()
    try:
        endpoints = [c.info.endpoint] + [n["endpoint"] for n in c.status().nodes]
        assert all(e.startswith("tcp://127.0.0.1:") for e in endpoints), endpoints
        yield c
    finally:
        c.stop()


def test_over_tcp_another_user_gets_no_reply_and_imports_only_what_it_can_read(home, tcp_cluster):
    """CURVE keeps other users out; with a copy of the keys, `file import` still reads with the
    client's own rights (the coordinator, root here, is no confused deputy)."""
    c = tcp_cluster
    secret = home / "root-only.bin"
    secret.write_bytes(b"ROOT-ONLY-SECRET" * 256)
    os.chmod(secret, 0o600)
    public = home / "public.bin"
    public.write_bytes(b"anyone may read this" * 100)
    os.chmod(public, 0o644)
    endpoints = [c.info.endpoint] + [n["endpoint"] for n in c.status().nodes]
    given = home / "given-keys"  # a user the owner gave the keys to (only thus can it talk at all)
    shutil.copytree(c.info.dir / KEYS_DIR, given / KEYS_DIR)
    for path in (given, given / KEYS_DIR, *(given / KEYS_DIR).iterdir()):
        os.chown(path, 65534, 65534)
    got = _attack(endpoints=endpoints, paths=_secrets(c.info.dir), server_key=c.info.keys.public,
                  imports={"endpoint": c.info.endpoint, "keys_home": str(given),
                           "files": [[str(secret), "stolen"], [str(public), "shared"]]})
    assert set(got["files"].values()) == {"PermissionError"}, got["files"]
    assert set(got["replies"].values()) == {"none"} and len(got["replies"]) == 2 * len(endpoints), got["replies"]
    code, message = got["import"][0]
    assert code == "EACCES" and message == (f"cannot import {secret}: permission denied "
                                             "(the import reads it with your own rights)"), got["import"]
    assert got["import"][1] == ["ok", len(public.read_bytes())]
    # the old request, a path for the coordinator to open, is no request any more
    with c.client() as client:
        client.send_raw([TAG, codec.pack({"kind": "file.import", "id": 5, "path": str(secret), "name": "x"})])
        reply = codec.decode(client.recv_raw(timeout_s=5.0))
        assert (reply.kind, reply.code) == ("error", "EINVAL")
        names = [f["name"] for f in client.call(pc.FileList()).files]
    assert names == ["shared"]
    for stored in (c.info.dir / "store").iterdir():
        assert b"ROOT-ONLY-SECRET" not in stored.read_bytes(), stored
    _serves(c)


def test_a_client_without_the_keys_gets_no_reply_and_the_cluster_keeps_serving(tcp_cluster):
    c = tcp_cluster
    ctx = zmq.Context()
    try:
        for endpoint in [c.info.endpoint] + [n["endpoint"] for n in c.status().nodes]:
            sock = ctx.socket(zmq.DEALER)  # even the owner's uid: over tcp only the keys count
            sock.linger = 0
            sock.connect(endpoint)
            for request in (lc.Ping(id=1), lc.ClusterShutdown(id=2)):
                sock.send_multipart(codec.encode(request))
            assert sock.poll(int(NO_REPLY_S * 1000)) == 0, endpoint
            sock.close()
    finally:
        ctx.destroy(linger=0)
    _serves(c)


def test_an_impostor_node_register_is_refused_and_nothing_changes(cluster_factory):
    c = cluster_factory(from_cli(*SHAPE))
    before = c.status().nodes
    for token in ("0" * 32, ""):
        with c.client() as client, pytest.raises(NumaEmuError) as err:
            client.call(lc.NodeRegister(node_id=1, token=token, pid=os.getpid(), endpoint="ipc:///tmp/impostor.sock",
                                        protocol_version=PROTOCOL_VERSION, frames_total=1, page_size=4096))
        assert err.value.code == ErrorCode.EACCES
        assert err.value.message == "node.register refused: node 1 was not spawned by this cluster with that token"
    after = c.status().nodes
    assert [(n["id"], n["endpoint"], n["pid"], n["state"]) for n in after] == \
        [(n["id"], n["endpoint"], n["pid"], n["state"]) for n in before]
    poll_until(lambda: "refused: wrong token" in (c.info.dir / "coordinator.log").read_text(), what="the log line")
    _serves(c)
