"""The reactor's own requests travel on one ROUTER socket connected to every destination
(protocol.reactor): replies from several peers come back on it, the poll stays at two sockets,
a dead peer's calls time out, a peer that restarts on the same endpoint is reached again after
forget(), and a destination that cannot be connected to fails the call instead of the process.
Reactors here run in this process, turned by hand (Reactor.run_once), over ipc in a temp dir."""
from __future__ import annotations

import time

import pytest

from numa_emu.protocol.effects import Future
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.keys import KEYS_DIR, ClusterKeys
from numa_emu.protocol.reactor import Reactor


def _peer(tmp_path, node: int) -> Reactor:
    keys = ClusterKeys.load(tmp_path) if (tmp_path / KEYS_DIR).is_dir() else ClusterKeys.create(tmp_path)
    r = Reactor(f"node {node}", identity=f"node:{node}", keys=keys, ignore_requests_of_the_dead=True)
    r.bind(f"ipc://{tmp_path}/node-{node}.sock")
    r.on("ping", lambda m, node=node: lc.Pong(pid=node, role="node", name=f"node {node}", uptime_s=0.0))
    return r


def _settle(fut: Future, reactors: list[Reactor], timeout_s: float = 5.0) -> Future:
    deadline = time.monotonic() + timeout_s
    while not fut.done:
        if time.monotonic() > deadline:
            raise AssertionError("the call neither got a reply nor timed out")
        for r in reactors:
            r.run_once(1)
    return fut


@pytest.fixture
def reactors():
    made: list[Reactor] = []
    yield made
    for r in made:
        r.close()


def test_replies_from_several_peers_come_back_on_one_socket(tmp_path, reactors):
    caller, *peers = made = [_peer(tmp_path, n) for n in range(4)]
    reactors.extend(made)
    for p in peers:
        caller.routes[f"node:{p.name[-1]}"] = p.endpoint
    for _ in range(3):  # every call goes out and comes back, several times over each connection
        futs = [caller.call(f"node:{n}", lc.Ping()) for n in (1, 2, 3)]
        for f in futs:
            _settle(f, made)
        assert [f.result.pid for f in futs] == [1, 2, 3]
    assert len(caller.poller.sockets) == 2  # the bound ROUTER and the one for our own requests
    assert caller.counters().get("stray_replies", 0) == 0


def test_a_dead_peer_times_out_and_a_restarted_one_is_reached_after_forget(tmp_path, reactors):
    caller, peer = _peer(tmp_path, 0), _peer(tmp_path, 1)
    reactors.append(caller)
    caller.routes["node:1"] = peer.endpoint
    assert _settle(caller.call("node:1", lc.Ping()), [caller, peer]).result.pid == 1
    peer.close()  # dies
    fut = _settle(caller.call("node:1", lc.Ping(), timeout_s=0.2), [caller])
    assert isinstance(fut.exception, NumaEmuError) and fut.exception.code == ErrorCode.ETIMEDOUT
    caller.forget("node:1")
    caller.forget("node:1")  # twice is harmless
    again = _peer(tmp_path, 1)  # restarts on the same endpoint
    reactors.append(again)
    # at once after forget: a new connection under a fresh local name (libzmq refuses a name in use)
    assert _settle(caller.call("node:1", lc.Ping()), [caller, again]).result.pid == 1
    assert caller.counters()["calls_timed_out"] == 1


def test_a_destination_that_cannot_be_connected_fails_the_call(tmp_path, reactors):
    caller = _peer(tmp_path, 0)
    reactors.append(caller)
    caller.routes["node:5"] = "not an endpoint"
    fut = caller.call("node:5", lc.Ping())
    assert fut.done and fut.exception.code == ErrorCode.ENODEV
    fut = caller.call("node:6", lc.Ping())  # no route at all
    assert fut.done and fut.exception.code == ErrorCode.ENODEV
    caller.routes["node:5"] = f"ipc://{tmp_path}/node-5.sock"
    peer = _peer(tmp_path, 5)
    reactors.append(peer)
    assert _settle(caller.call("node:5", lc.Ping()), [caller, peer]).result.pid == 5


# ---- issue 10, item 5: an exception while building or sending a reply is an error reply ----------

_UNPACKABLE = "internal error: pong cannot be packed: OverflowError: Integer value out of range"


@pytest.mark.parametrize("as_generator", [False, True])
def test_a_reply_that_cannot_be_packed_becomes_an_error_reply(tmp_path, reactors, as_generator):
    """A value beyond msgpack's 64 bits (an overflowed virtual clock did this) used to escape the
    reactor while packing, and the node exited. Now: EIO to the requester, and the loop serves on."""
    caller, peer = _peer(tmp_path, 0), _peer(tmp_path, 1)
    reactors.extend([caller, peer])
    caller.routes["node:1"] = peer.endpoint

    def huge(msg):
        return lc.Pong(pid=1 << 70, role="node", name="node 1", uptime_s=0.0)

    def huge_later(msg):
        yield []
        return huge(msg)

    peer.on("ping", huge_later if as_generator else huge)
    fut = _settle(caller.call("node:1", lc.Ping()), [caller, peer])
    assert isinstance(fut.exception, NumaEmuError)
    assert (fut.exception.code, fut.exception.message) == (ErrorCode.EIO, _UNPACKABLE)
    assert peer.counters()["replies_unpackable"] == 1
    peer.on("ping", lambda m: lc.Pong(pid=1, role="node", name="node 1", uptime_s=0.0))
    assert _settle(caller.call("node:1", lc.Ping()), [caller, peer]).result.pid == 1


def test_a_stranger_named_like_a_node_gets_its_reply_in_real_mode(tmp_path, reactors):
    """In `real` mode a reply to a peer called "node:..." is held back for its link; a client that
    names its connection "node:x" (no such link) gets its reply at once instead of crashing the loop."""
    import zmq

    from numa_emu.protocol import codec

    peer = _peer(tmp_path, 1)
    reactors.append(peer)
    peer.set_link_delay(lambda name, nbytes: [0.0, 0.0][int(name[5:])])  # links to nodes 0 and 1 only
    sock = peer.ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.ROUTING_ID, b"node:x")
    sock.connect(peer.endpoint)
    try:
        ping = lc.Ping()
        ping.id = 5
        sock.send_multipart(codec.encode(ping))
        deadline = time.monotonic() + 5.0
        while not sock.poll(0):
            assert time.monotonic() < deadline, "no reply"
            peer.run_once(10)
        reply = codec.decode(sock.recv_multipart())
        assert (reply.kind, reply.reply_to, reply.pid) == ("pong", 5, 1)
        assert peer.counters()["bad_links"] == 1
    finally:
        sock.close()


def test_a_failing_timer_does_not_end_the_loop(tmp_path, reactors):
    import threading

    from numa_emu.protocol.client import Client

    peer = _peer(tmp_path, 1)
    reactors.append(peer)
    peer.call_later(0.0, lambda: 1 / 0)
    loop = threading.Thread(target=peer.run)
    loop.start()
    try:
        with Client(peer.endpoint, keys=ClusterKeys.load(tmp_path), timeout_s=5.0) as client:
            assert client.call(lc.Ping()).pid == 1
    finally:
        peer.stop()
        loop.join(timeout=5.0)
    assert not loop.is_alive() and peer.counters()["loop_errors"] == 1


def test_a_request_of_a_peer_known_dead_is_not_served_until_it_is_up_again(tmp_path, reactors):
    """Sent before its sender died, heard of after the death: ignored (what it would change may
    be rebuilt without it already), and nobody waits for its answer; a restarted peer is served."""
    caller, peer = _peer(tmp_path, 0), _peer(tmp_path, 1)
    reactors.extend([caller, peer])
    caller.routes["node:1"] = peer.endpoint
    assert _settle(caller.call("node:1", lc.Ping()), [caller, peer]).result.pid == 1
    peer.mark_down("node:0", "node 0 is dead (killed)")
    fut = _settle(caller.call("node:1", lc.Ping(), timeout_s=0.3), [caller, peer])
    assert isinstance(fut.exception, NumaEmuError) and fut.exception.code == ErrorCode.ETIMEDOUT
    assert peer.counters()["requests_from_dead"] >= 1  # and each re-send of it
    fut = caller.call("node:1", lc.Ping(), timeout_s=3.0)
    deadline = time.monotonic() + 5.0
    while peer.counters()["requests_from_dead"] < 2:  # ignored, and not remembered as served
        assert time.monotonic() < deadline, "the call was not sent again"
        for r in (caller, peer):
            r.run_once(1)
    peer.mark_up("node:0")  # restarted: its re-sends of the same request are served now
    assert _settle(fut, [caller, peer]).result.pid == 1
