"""protocol.keys without processes: the key files, and the uid that ZAP reads from an ipc peer's address."""
from __future__ import annotations

import os
import stat

import pytest
import zmq
import zmq.auth

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.keys import KEYS_DIR, ClusterKeys, peer_uid


@pytest.mark.parametrize("address, uid", [
    ("localhost:0:0:5104", 0),  # what libzmq 4.3 hands ZAP for an ipc peer (SO_PEERCRED)
    ("localhost:65534:65534:77", 65534),
    (":1000:1000:1", 1000),
    ("", None),
    ("127.0.0.1", None),
    ("localhost:x:0:1", None),
])
def test_the_uid_of_an_ipc_peer_address(address, uid):
    assert peer_uid(address) == uid


def test_keys_are_made_owner_only_whatever_the_umask_and_read_back(tmp_path):
    mask = os.umask(0)
    try:
        made = ClusterKeys.create(tmp_path)
    finally:
        os.umask(mask)
    folder = tmp_path / KEYS_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == \
        {"cluster.key": 0o600, "cluster.key_secret": 0o600}
    assert ClusterKeys.load(tmp_path) == made
    assert list(zmq.auth.load_certificates(str(folder))) == [made.public]  # the allow-list: the public key only
    assert ClusterKeys.create(tmp_path).public != made.public  # a fresh pair each `up`


def test_missing_keys_are_one_clear_error(tmp_path):
    with pytest.raises(NumaEmuError) as err:
        ClusterKeys.load(tmp_path)
    assert err.value.code == ErrorCode.ENOENT
    assert err.value.message.startswith(f"no usable cluster keys in {tmp_path / KEYS_DIR} (")
    assert err.value.message.endswith("); restart the cluster with numa-emu down and up")


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_a_socket_bound_without_its_zap_handler_lets_nobody_in(tmp_path, transport):
    """Fail closed: libzmq admits everyone when no ZAP handler answers, unless told otherwise."""
    import zmq

    from numa_emu.protocol.reactor import bind_endpoint, connect_endpoint

    keys = ClusterKeys.create(tmp_path)
    ctx = zmq.Context()
    try:
        server = ctx.socket(zmq.ROUTER)
        endpoint = bind_endpoint(server, f"ipc://{tmp_path}/s.sock" if transport == "ipc" else "tcp://127.0.0.1:0", keys)
        client = ctx.socket(zmq.DEALER)
        connect_endpoint(client, endpoint, keys)
        client.send(b"let me in")
        assert server.poll(500) == 0
        auth = keys.authenticator(ctx)  # with the handler, the same keys get through
        try:
            again = ctx.socket(zmq.DEALER)
            connect_endpoint(again, endpoint, keys)
            again.send(b"let me in")
            assert server.poll(5000) != 0
            assert server.recv_multipart()[-1] == b"let me in"
        finally:
            auth.stop()
    finally:
        ctx.destroy(linger=0)


def _answer(keys_dir, *frames):
    import zmq

    ctx = zmq.Context()
    try:
        auth = ClusterKeys.load(keys_dir).authenticator(ctx)
        try:
            return auth.answer([b"1.0", b"7", b"numa-emu", *frames])
        finally:
            auth.stop()
    finally:
        ctx.destroy(linger=0)


def test_the_zap_handler_answers_ipc_peers_by_uid_and_tcp_peers_by_key(tmp_path):
    """protocol.keys.Gatekeeper, question by question (ZeroMQ RFC 27 frames)."""
    from zmq.utils import z85

    keys = ClusterKeys.create(tmp_path)
    me = os.geteuid()
    assert _answer(tmp_path, f"localhost:{me}:0:1".encode(), b"", b"NULL") == \
        [b"1.0", b"7", b"200", b"OK", str(me).encode(), b""]
    assert _answer(tmp_path, f"localhost:{me + 1}:0:1".encode(), b"", b"NULL")[2:4] == \
        [b"400", b"not the cluster's owner"]
    assert _answer(tmp_path, b"127.0.0.1", b"", b"CURVE", z85.decode(keys.public))[2:4] == [b"200", b"OK"]
    stranger = z85.decode(zmq.curve_keypair()[0])
    assert _answer(tmp_path, b"127.0.0.1", b"", b"CURVE", stranger)[2:4] == [b"400", b"not allowed"]
    assert _answer(tmp_path, b"127.0.0.1", b"", b"PLAIN", b"user", b"pass")[2:4] == [b"400", b"not allowed"]
    assert _answer(tmp_path)[2:4] == [b"400", b"malformed request"]


def test_the_zap_handler_admits_a_burst_of_new_connections_at_once(tmp_path):
    """100 connections made at once are all admitted: the ZAP thread answers every question
    waiting at each wake-up, not one."""
    import zmq

    from numa_emu.protocol.reactor import bind_endpoint, connect_endpoint
    from tests.helpers import poll_until

    keys = ClusterKeys.create(tmp_path)
    ctx = zmq.Context()
    try:
        auth = keys.authenticator(ctx)
        try:
            server = ctx.socket(zmq.ROUTER)
            endpoint = bind_endpoint(server, f"ipc://{tmp_path}/s.sock", keys)
            clients = []
            for i in range(100):
                sock = ctx.socket(zmq.DEALER)
                sock.linger = 0
                connect_endpoint(sock, endpoint, keys)
                sock.send(b"%d" % i)
                clients.append(sock)
            got: set[bytes] = set()

            def all_in() -> bool:
                while server.poll(10):
                    got.add(server.recv_multipart()[-1])
                return len(got) == 100

            poll_until(all_in, timeout_s=30, what="100 new connections admitted")
            assert got == {b"%d" % i for i in range(100)}
        finally:
            auth.stop()
    finally:
        ctx.destroy(linger=0)
