"""Forwarded remote access (IVY forwarding) and the delaying link on a real cluster: a task's
access of a private page on another node is served by that node, which answers the task directly;
every read returns the last data written, from every node, also under `real` mode with jitter;
a held message is never delivered before its hold; a bad forward gets one clear error (or is
counted when there is nobody to answer) and the node keeps serving."""
from __future__ import annotations

import msgpack
import pytest
import zmq

import numa_emu
from numa_emu.protocol.reactor import connect_endpoint, make_socket
from numa_emu.protocol.errors import ErrorCode
from numa_emu.protocol.messages import ErrorReply
from numa_emu.protocol.messages import latency as lm
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.version import TAG
from tests.helpers import poll_until

pytestmark = pytest.mark.cluster
PAGE = 4096


def _stats(c, node: int) -> dict:
    with c.client(endpoint=c.status().nodes[node]["endpoint"]) as client:
        return client.call(lc.ProcStats()).stats


def _latency(c, op: str, **args) -> None:
    with c.client() as client:
        client.call(lm.LatencyChange(op=op, args=args))


def _pages_on_every_node(puppet, n_nodes: int) -> None:
    """Regions r0..r{n-1} of two private pages each, bound to node 0..n-1, filled with the node id."""
    for node in range(n_nodes):
        puppet.do("mmap", length=2 * PAGE, **{"as": f"r{node}"})
        puppet.do("mbind", mode="bind", nodes=[node], **{"as": f"r{node}"})
        puppet.do("touch", fill=node, **{"as": f"r{node}"})
        assert puppet.do("where", **{"as": f"r{node}"}) == [node, node]


def _write(p, owner: int, offset: int, data: bytes) -> None:
    p.do("write", offset=offset, data=data.hex(), **{"as": f"r{owner}"})


def _read(p, owner: int, offset: int, length: int) -> bytes:
    return bytes.fromhex(p.do("read", offset=offset, length=length, **{"as": f"r{owner}"}))


def test_reads_and_writes_from_every_node_return_the_last_data_written(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    tasks = [puppets(c, cpu) for cpu in range(4)]
    for p in tasks:
        _pages_on_every_node(p, 4)
    forwarded = {n: _stats(c, n).get("requests_forwarded", 0) for n in range(4)}
    for round_ in range(3):
        for p in tasks:
            for owner in range(4):
                data = bytes([p.node, owner, round_]) * 3
                _write(p, owner, PAGE - 5, data[:5])  # within the first page: forwarded when remote
                _write(p, owner, PAGE + 7, data)  # within the second page
                _write(p, owner, PAGE - 2, data[5:9])  # across both pages: through the home node
        for p in tasks:
            for owner in range(4):
                data = bytes([p.node, owner, round_]) * 3
                assert _read(p, owner, PAGE - 5, 3) == data[:3]
                assert _read(p, owner, PAGE - 2, 4) == data[5:9]
                assert _read(p, owner, PAGE + 7, 9) == data
                assert _read(p, owner, 0, 8) == bytes([owner]) * 8
    for n in range(4):  # each home node forwarded the one-page accesses to the three other nodes' pages
        stats = _stats(c, n)
        assert stats["requests_forwarded"] - forwarded[n] == 3 * 3 * (2 + 3)
        assert stats.get("handler_crashes", 0) == 0 and stats.get("answers_relayed", 0) == 0


def test_forwarded_clock_is_the_modeled_cost(cluster_factory):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        remote = task.mmap(PAGE)
        remote.mbind("bind", [2])
        remote.touch(write=True)
        bw = c.topology.bandwidth_mib_s[0][2] * 1048576 / 1e9
        t0 = task.clock_ns()
        remote.read(0, 8)
        assert task._clock - t0 == round(c.topology.latency_ns[0][2] + 8 / bw)  # the forwarded answer's clock
        remote.write(0, b"x" * 8)
        assert task.clock_ns() - t0 == 2 * round(c.topology.latency_ns[0][2] + 8 / bw)


def test_forwarded_accesses_keep_each_tasks_order_under_real_mode_with_jitter(cluster_factory, puppets):
    c = cluster_factory("default-4n")
    tasks = [puppets(c, cpu) for cpu in (0, 3)]
    for p in tasks:
        _pages_on_every_node(p, 4)
    _latency(c, "jitter", distribution="uniform", spread=0.9)
    _latency(c, "inject", mode="real", dilation=2000.0)  # 100-300 ns -> 0.2-0.6 ms a message, ±90 %
    try:
        for i in range(15):
            for p in tasks:
                for owner in range(4):
                    value = bytes([i, owner, p.node, 7]) * 2
                    _write(p, owner, 8 * (i % 4), value)
                    if i % 5 == 0:
                        _write(p, owner, PAGE - 4, value)  # across two pages: the home node's own path
                    assert _read(p, owner, 8 * (i % 4), 8) == value
                    assert _read(p, owner, PAGE - 4, 8)[:4] == bytes([5 * (i // 5), owner, p.node, 7])
        assert all(_stats(c, n).get("messages_delayed", 0) > 0 for n in range(4))
    finally:
        _latency(c, "inject", mode="virtual")


def test_a_held_message_is_delivered_no_sooner_than_its_hold(cluster_factory):
    c = cluster_factory("default-4n")
    with numa_emu.attach(0, cluster=c.name) as task:
        remote = task.mmap(PAGE)
        remote.mbind("bind", [1])
        remote.touch(fill=3)
        _latency(c, "inject", mode="real", dilation=3000.0)
        try:
            for _ in range(30):
                assert remote.read(0, 8) == b"\3" * 8
        finally:
            _latency(c, "inject", mode="virtual")
        with c.client(endpoint=c.status().nodes[1]["endpoint"]) as node1:
            held = node1.call(lc.ProcHolds(clear=True))
        pairs = list(zip(held.hold_ns, held.delay_ns)) + list(task._home.holds)  # forwards to 1, answers to the task
        assert len(held.hold_ns) >= 30 and len(task._home.holds) >= 30
        lat = c.topology.latency_ns
        for hold, delay in pairs:
            assert hold >= min(lat[0][1], lat[1][0]) * 3000 * 0.99
            assert delay >= hold - 1000  # ns: a clock read's rounding, never an early delivery


def _task_socket(c, endpoint: str, node: int, identity: bytes) -> zmq.Socket:
    """A raw ROUTER connected to one node, as a task's channel is (tests of malformed forwards)."""
    sock = make_socket(zmq.Context.instance(), zmq.ROUTER)
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.CONNECT_ROUTING_ID, f"node:{node}".encode())
    connect_endpoint(sock, endpoint, c.info.keys)
    return sock


def _send_when_connected(sock: zmq.Socket, frames: list[bytes]) -> None:
    def sent():
        try:
            sock.send_multipart(frames)
            return True
        except zmq.ZMQError:
            return False

    poll_until(sent, timeout_s=5, what="the connection to the node")


def test_a_bad_forward_gets_one_clear_error_and_the_node_keeps_serving(cluster_factory):
    c = cluster_factory("default-4n")
    endpoint = c.status().nodes[1]["endpoint"]
    sock = _task_socket(c, endpoint, 1, b"task:test:bad")
    try:
        base = {"kind": "mem.access.forward", "id": 0, "route": b"task:test:bad", "home": 0, "frame": 0,
                "offset": 0, "length": 8, "data": None, "clock_ns": 5}
        bad = [{"frame": 1 << 40}, {"offset": PAGE - 4}, {"length": 0}, {"home": 99}, {"home": 1},
               {"data": b"x" * 8, "offset": PAGE - 4, "length": 0}]
        for i, change in enumerate(bad):
            _send_when_connected(sock, [b"node:1", TAG, msgpack.packb({**base, **change, "request_id": 100 + i})])
            assert sock.poll(5000), change
            peer, tag, body = sock.recv_multipart()
            reply = msgpack.unpackb(body)
            assert (peer, tag, reply["kind"], reply["reply_to"], reply["code"]) == \
                (b"node:1", TAG, ErrorReply.kind, 100 + i, ErrorCode.EINVAL.value), change
            assert reply["message"]
        assert not sock.poll(300)  # exactly one answer each
        with c.client(endpoint=endpoint) as node1:
            assert node1.call(lc.Ping()).name == "node 1"
        assert _stats(c, 1).get("handler_crashes", 0) == 0
    finally:
        sock.close()


def test_an_answer_the_owner_cannot_deliver_goes_through_the_home_node(cluster_factory):
    c = cluster_factory("default-4n")
    nodes = c.status().nodes
    with numa_emu.attach(0, cluster=c.name) as task:
        remote = task.mmap(PAGE)
        remote.mbind("bind", [1])
        remote.touch(fill=0x42)
        # A client connected to the home node only asks for a direct answer: node 1 cannot reach
        # it, so its answer comes back through node 0, once.
        with c.client(endpoint=nodes[0]["endpoint"]) as home:
            reply = home.call(mm.Access(task_id=task.task_id, vaddr=remote.vaddr + 8, length=4, direct=True))
            assert reply.data == b"\x42" * 4
            assert home.recv_raw(0.3) is None
        assert _stats(c, 1)["answers_relayed"] == 1
        # A route nobody knows: node 1 relays it to node 0, which counts it and drops it.
        with c.client(endpoint=nodes[1]["endpoint"]) as node1:
            node1.send_raw([TAG, msgpack.packb({"kind": "mem.access.forward", "id": 0, "route": b"task:nobody",
                                                "request_id": 1, "home": 0, "frame": 0, "offset": 0,
                                                "length": 8, "clock_ns": 0})])
            # a node's name as the route: never answered (a node is not a requester)
            node1.send_raw([TAG, msgpack.packb({"kind": "mem.access.forward", "id": 0, "route": b"node:0",
                                                "request_id": 1, "home": 0, "frame": 0, "offset": 0,
                                                "length": 8, "clock_ns": 0})])
            poll_until(lambda: _stats(c, 0).get("relays_dropped", 0) == 1, what="node 0 dropping the relay")
            poll_until(lambda: _stats(c, 1).get("bad_routes", 0) == 1, what="node 1 refusing a node's route")
            assert node1.call(lc.Ping()).name == "node 1"
        assert remote.read(8, 4) == b"\x42" * 4  # both nodes keep serving the task
        assert _stats(c, 0).get("handler_crashes", 0) == 0 and _stats(c, 1).get("handler_crashes", 0) == 0
