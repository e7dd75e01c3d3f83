"""Who may talk to a cluster: its owner's processes only. Every connection is checked by the
ZAP handler of the daemon it reaches (`Gatekeeper`, a thread started before binding):

- tcp (a cluster folder too long for ipc paths; later, other hosts): CURVE. `up` makes one
  keypair per cluster (zmq.curve_keypair), kept in the cluster folder, owner-only, in pyzmq's
  certificate format: keys/cluster.key (the public key: the allow-list, zmq.auth loads every
  *.key there) and keys/cluster.key_secret. Bound sockets are CURVE servers, connecting ones
  CURVE clients of that keypair; a peer without the secret key gets no reply at all.
- ipc: the peer's uid, which the kernel tells (SO_PEERCRED; libzmq hands it to ZAP in the
  peer's address), must be the owner's. Checked once per connection, so messages cost nothing
  more, where CURVE costs 1.14x a small round trip and 1.33x a 4 KiB page (benchmarks/
  bench_auth.py). The sockets' 0700 folder keeps other users from even connecting.

One keypair, not one per role: every role runs as the owner, who can read every key anyway.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

KEYS_DIR = "keys"
_NAME = "cluster"
_ZAP_DOMAIN = b"numa-emu"  # set on every server: makes libzmq ask ZAP about NULL-mechanism peers too
_ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq sends its questions (ZeroMQ RFC 27)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterKeys:
    public: bytes  # z85
    secret: bytes  # z85
    folder: Path  # the allow-list: the public keys in it

    @classmethod
    def create(cls, cluster_dir: Path) -> "ClusterKeys":
        """A fresh keypair in cluster_dir/keys (made 0700, files 0600 whatever the umask)."""
        folder = cluster_dir / KEYS_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        for old in folder.iterdir():
            old.unlink()
        public, secret = zmq.curve_keypair()
        for suffix, text in ((".key", _certificate(public, None)), (".key_secret", _certificate(public, secret))):
            fd = os.open(folder / f"{_NAME}{suffix}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        return cls(public, secret, folder)

    @classmethod
    def install(cls, cluster_dir: Path, public: bytes, secret: bytes) -> "ClusterKeys":
        """The cluster's keypair, handed to an agent on another host (its stdin), written there as
        create() writes it; each file replaced atomically, so a reader never sees half a key."""
        folder = cluster_dir / KEYS_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        for suffix, text in ((".key", _certificate(public, None)), (".key_secret", _certificate(public, secret))):
            path = folder / f"{_NAME}{suffix}"
            tmp = folder / f".{_NAME}{suffix}.{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        return cls(public, secret, folder)

    @classmethod
    def load(cls, cluster_dir: Path) -> "ClusterKeys":
        folder = cluster_dir / KEYS_DIR
        try:
            public, secret = zmq.auth.load_certificate(folder / f"{_NAME}.key_secret")
        except PermissionError:
            raise NumaEmuError(ErrorCode.EACCES, f"cannot read the cluster's keys in {folder}: "
                                                 "only the user who started the cluster can use it") from None
        except (OSError, ValueError) as exc:
            raise NumaEmuError(ErrorCode.ENOENT, f"no usable cluster keys in {folder} ({exc}); "
                                                 "restart the cluster with numa-emu down and up") from None
        if secret is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"no secret key in {folder}; restart the cluster with numa-emu down and up")
        return cls(public, secret, folder)

    def before_bind(self, sock: zmq.Socket, endpoint: str) -> None:
        """Before binding `endpoint`: only peers its context's ZAP handler admits get through."""
        sock.zap_domain = _ZAP_DOMAIN
        try:  # and nobody, should the handler be missing (libzmq lets everyone in then, by default)
            sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        except (AttributeError, zmq.ZMQError):
            pass  # a libzmq without the option: the handler is started before any bind regardless
        if not endpoint.startswith("ipc://"):
            sock.curve_secretkey = self.secret
            sock.curve_publickey = self.public
            sock.curve_server = True

    def before_connect(self, sock: zmq.Socket, endpoint: str) -> None:
        """Before connecting to `endpoint`: over tcp, prove that we hold the cluster's secret key
        (options apply per connection: one socket may reach ipc and tcp peers)."""
        if endpoint.startswith("ipc://"):
            sock.curve_server = False  # the NULL mechanism: the server checks our uid
        else:
            sock.curve_secretkey = self.secret
            sock.curve_publickey = self.public
            sock.curve_serverkey = self.public

    def authenticator(self, ctx: zmq.Context) -> "Gatekeeper":
        """The ZAP handler of `ctx` (start it before binding): the public keys in keys/ over tcp,
        the owner's uid over ipc. A thread: started by daemons after any fork (the node fork
        server starts none)."""
        allowed = set(zmq.auth.load_certificates(str(self.folder)))
        return Gatekeeper(ctx, allowed)


class Gatekeeper:
    """The ZAP handler (ZeroMQ RFC 27): over ipc (the NULL mechanism) the peer's uid must be
    ours; over tcp (CURVE) the peer's public key must be on the allow-list.

    Not zmq.auth's ThreadAuthenticator, whose asyncio loop takes one question per wake-up: with
    it, under load, new connections to a node sometimes waited seconds for an answer while the
    node sat idle with their first bytes unread in the kernel's socket buffer. Side by side under
    the same load (writeshare against a replication experiment, 20 runs each), pings to a node
    took up to 5 s and 2 runs failed with it; at most 1.8 s and 1 run with this thread, which
    blocks in zmq_poll (level-triggered) and answers every question waiting. The rest of those
    stalls was the scheduler's (docs/design.md#node-fork-server: one session for a host's daemons).
    """

    def __init__(self, ctx: zmq.Context, allowed: set[bytes]):
        self.allowed = allowed  # z85 public keys
        self.questions = ctx.socket(zmq.REP)
        self.questions.linger = 0
        self.questions.bind(_ZAP_ENDPOINT)
        stop_endpoint = f"inproc://numa-emu-zap-stop-{id(self)}"
        self._stop_rx = ctx.socket(zmq.PAIR)
        self._stop_rx.linger = 0
        self._stop_rx.bind(stop_endpoint)
        self._stop_tx = ctx.socket(zmq.PAIR)
        self._stop_tx.linger = 0
        self._stop_tx.connect(stop_endpoint)
        self.thread = threading.Thread(target=self._run, name="zap", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.questions, zmq.POLLIN)
        poller.register(self._stop_rx, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if self._stop_rx in ready:
                    return
                while self.questions.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    question = self.questions.recv_multipart()
                    try:
                        reply = self.answer(question)
                    except Exception:  # a bug here must not leave every later peer waiting
                        log.exception("the ZAP handler failed on a request")
                        reply = [b"1.0", question[1] if len(question) > 1 else b"", b"500", b"internal error", b"", b""]
                    self.questions.send_multipart(reply)
        except zmq.ContextTerminated:
            return
        finally:
            self.questions.close(0)
            self._stop_rx.close(0)

    def answer(self, msg: list[bytes]) -> list[bytes]:
        """The reply frames to one ZAP request:
        version, request id, domain, address, identity, mechanism, credentials..."""
        if len(msg) < 6:
            log.warning("refused a malformed ZAP request (%d frames)", len(msg))
            return [b"1.0", msg[1] if len(msg) > 1 else b"", b"400", b"malformed request", b"", b""]
        request_id, address, mechanism = msg[1], msg[3].decode("ascii", "replace"), msg[5]
        if mechanism == b"NULL":
            if peer_uid(address) == os.geteuid():
                return [b"1.0", request_id, b"200", b"OK", str(os.geteuid()).encode(), b""]
            log.warning("refused an ipc peer of another user (address %r)", address)
            return [b"1.0", request_id, b"400", b"not the cluster's owner", b"", b""]
        if mechanism == b"CURVE" and len(msg) >= 7 and len(msg[6]) == 32 and z85.encode(msg[6]) in self.allowed:
            return [b"1.0", request_id, b"200", b"OK", b"cluster", b""]
        log.warning("refused a %s peer that is not on the allow-list (address %r)", mechanism.decode("ascii", "replace"),
                    address)
        return [b"1.0", request_id, b"400", b"not allowed", b"", b""]

    def stop(self) -> None:
        """End the thread (before the context is destroyed)."""
        try:
            self._stop_tx.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:  # the thread is gone already
            pass
        self.thread.join(timeout=2.0)
        self._stop_tx.close(0)


def check_bind(endpoint: str, keys: "ClusterKeys | None") -> None:
    """Refuse to listen beyond this machine without CURVE: a tcp endpoint on an address other than
    loopback needs the cluster's keys (its ZAP handler checks them)."""
    if keys is not None or not endpoint.startswith("tcp://"):
        return
    address = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    if not loopback:
        raise NumaEmuError(ErrorCode.EACCES, f"refusing to bind {endpoint} without the cluster's CURVE keys: "
                                             "anyone on the network could talk to it; start it through numa-emu up")


def peer_uid(address: str) -> int | None:
    """The uid in the address libzmq gives ZAP for an ipc peer ("...:UID:GID:PID", SO_PEERCRED),
    or None when it holds none (then nobody is let in)."""
    parts = address.rsplit(":", 3)
    try:
        return int(parts[1]) if len(parts) == 4 else None
    except ValueError:
        return None


def _certificate(public: bytes, secret: bytes | None) -> str:
    """zmq.auth's certificate text (what zmq.auth.create_certificates writes, but written here
    with mode 0600 from the start instead of with the umask's mode)."""
    lines = ["#   ZeroMQ CURVE certificate of a numa-emu cluster", "metadata", "curve",
             f'    public-key = "{public.decode("ascii")}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"
