"""The cluster's CURVE keys: every socket of a cluster is authenticated and encrypted with them.

`up` makes one keypair per cluster (zmq.curve_keypair) and stores it in the cluster folder, in
pyzmq's certificate format (zmq.auth), readable by the owner only:

    keys/cluster.key           the public key: the ZAP allow-list (zmq.auth loads every *.key here)
    keys/cluster.key_secret    the public and the secret key

Every bound socket is a CURVE server and every connecting socket a CURVE client of that keypair;
a daemon's ZAP handler (zmq.auth's ThreadAuthenticator) lets in only the public keys of keys/.
A process of another user cannot read the folder, so it cannot even start the handshake; a
process without the keys gets no reply at all. One keypair, not one per role: every role runs as
the owner, who can read every key anyway.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from protocol.errors import ErrorCode, NumaEmuError

KEYS_DIR = "keys"
_NAME = "cluster"


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

    def as_server(self, sock: zmq.Socket) -> None:
        """Before bind: the socket only talks to CURVE clients its context's ZAP handler admits."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def as_client(self, sock: zmq.Socket) -> None:
        """Before connect: the socket proves it holds the cluster's secret key."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.public

    def authenticator(self, ctx: zmq.Context) -> ThreadAuthenticator:
        """The ZAP handler of `ctx`, allowing the public keys in keys/ (start before binding).
        A thread: started by daemons after any fork (the node fork server makes none)."""
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(self.folder))
        return auth


def _certificate(public: bytes, secret: bytes | None) -> str:
    """zmq.auth's certificate text (what zmq.auth.create_certificates writes, but written here
    with mode 0600 from the start instead of with the umask's mode)."""
    lines = ["#   ZeroMQ CURVE certificate of a numa-emu cluster", "metadata", "curve",
             f'    public-key = "{public.decode("ascii")}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"
