"""Synchronous request/reply clients, one request at a time: `Client` (one DEALER) for the CLI,
`TaskChannel` (one ROUTER connected to every node) for tasks.

Both connect as the cluster's daemons require (protocol.keys): with the cluster's keys, read
from the cluster folder, which only the cluster's owner can read. Error replies are raised
again as NumaEmuError on this side (dask, circus). A reply that arrives after its request timed
out is recognised by its reply_to and dropped.
"""
from __future__ import annotations

import collections
import itertools
import os
import secrets
import time

import zmq

from protocol import delaylink
from protocol.codec import decode, encode
from protocol.errors import ErrorCode, NumaEmuError
from protocol.keys import ClusterKeys
from protocol.messages import ErrorReply, Reply, Request
from protocol.reactor import connect_endpoint, make_socket, recv_frames, send_frames
from protocol.timing import CLIENT_TIMEOUT_S


class _OwnSocket:
    """One socket, and the context too when the caller gave none; closes both, also as `with`."""

    _sock: zmq.Socket
    _ctx: zmq.Context
    _own_context: bool
    _rcvtimeo_ms: int
    endpoint: str

    def _recv_by(self, deadline: float, wait_s: float, request: Request) -> list[bytes]:
        """The next message's frames, or ETIMEDOUT at `deadline` (the reply to `request`)."""
        # tenths of a second, so that the socket's timeout rarely needs setting again
        remaining_ms = int(max(0.0, round(deadline - time.monotonic(), 1)) * 1000)
        try:
            if remaining_ms <= 0:
                raise zmq.Again
            # a blocking receive with a timeout: one call, not a poll and then a receive
            if remaining_ms != self._rcvtimeo_ms:  # setting it costs pyzmq enum conversions
                self._sock.rcvtimeo = self._rcvtimeo_ms = remaining_ms
            return recv_frames(self._sock)
        except zmq.Again:
            raise NumaEmuError(
                ErrorCode.ETIMEDOUT, f"no reply to {request.kind} from {self.endpoint} within {wait_s:g} s"
            ) from None

    def close(self) -> None:
        self._sock.close(linger=0)
        if self._own_context:
            self._ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client(_OwnSocket):
    def __init__(self, endpoint: str, *, keys: ClusterKeys, timeout_s: float = CLIENT_TIMEOUT_S,
                 context: zmq.Context | None = None):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self._sock = make_socket(self._ctx, zmq.DEALER)
        connect_endpoint(self._sock, endpoint, keys)
        self._ids = itertools.count(1)
        self._rcvtimeo_ms = -1

    def call(self, request: Request, timeout_s: float | None = None) -> Reply:
        request.id = next(self._ids)
        send_frames(self._sock, encode(request))
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        while True:
            frames = self._recv_by(deadline, wait_s, request)
            msg = decode(frames)
            if not isinstance(msg, Reply) or msg.reply_to != request.id:
                continue
            if isinstance(msg, ErrorReply):
                raise msg.to_exception()
            return msg

    def send_raw(self, frames: list[bytes]) -> None:
        """Send frames as they are (tests of malformed input)."""
        self._sock.send_multipart(frames)

    def recv_raw(self, timeout_s: float) -> list[bytes] | None:
        self._sock.rcvtimeo = self._rcvtimeo_ms = int(timeout_s * 1000)
        try:
            return self._sock.recv_multipart()
        except zmq.Again:
            return None



class TaskChannel(_OwnSocket):
    """A task's one socket to the nodes: a ROUTER named `task:PID:RANDOM`, connected to every
    node's ROUTER (ROUTER to ROUTER; this side names each peer `node:N`), so that every node can
    answer the task under the same routing id. Requests go to the home node, one at a time; the
    reply comes from the home node, or, for an access it forwarded (mem.access `direct`), from
    the node that owns the page (IVY forwarding, docs/protocol.md#forwarded-access). A reply stamped by a delaying link
    (`real` mode) is held here until due, as a node holds its messages (protocol.delaylink)."""

    def __init__(self, home: int, endpoints: dict[int, str], *, keys: ClusterKeys,
                 timeout_s: float = CLIENT_TIMEOUT_S, context: zmq.Context | None = None):
        self.endpoint = endpoints[home]
        self._endpoints = dict(endpoints)
        self.timeout_s = timeout_s
        self.identity = f"task:{os.getpid()}:{secrets.token_hex(6)}".encode()
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self._sock = make_socket(self._ctx, zmq.ROUTER)
        self._sock.setsockopt(zmq.ROUTING_ID, self.identity)
        # A request sent before the connection to the home node is up raises (and is sent again)
        # instead of vanishing.
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for node, endpoint in sorted(endpoints.items()):
            self._sock.setsockopt(zmq.CONNECT_ROUTING_ID, f"node:{node}".encode())
            connect_endpoint(self._sock, endpoint, keys)
        self._home = f"node:{home}".encode()
        self._ids = itertools.count(1)
        self._rcvtimeo_ms = -1
        # (hold_ns, delay_ns) of the last held replies: delay from the sender's send to delivery here
        self.holds: collections.deque[tuple[int, int]] = collections.deque(maxlen=4096)

    def rehome(self, node: int) -> None:
        """Send requests to `node` from now on (the task moved there); it is connected already."""
        self.endpoint = self._endpoints[node]
        self._home = f"node:{node}".encode()

    def _send(self, frames: list[bytes], deadline: float, request: Request) -> None:
        while True:
            try:
                send_frames(self._sock, frames)
                return
            except zmq.ZMQError as exc:  # EHOSTUNREACH: the connection to the home node is not up yet
                if exc.errno != zmq.EHOSTUNREACH or time.monotonic() > deadline:
                    raise NumaEmuError(ErrorCode.ECONNREFUSED, f"cannot send {request.kind} to {self.endpoint}: "
                                                               f"{exc.strerror}") from None
                time.sleep(0.0005)

    def call(self, request: Request, timeout_s: float | None = None) -> Reply:
        request.id = next(self._ids)
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        self._send([self._home, *encode(request)], deadline, request)
        while True:
            frames = self._recv_by(deadline, wait_s, request)
            stamp = frames[-1] if len(frames) > 3 and delaylink.is_stamp(frames[-1]) else None
            try:
                msg = decode(frames[1:-1] if stamp is not None else frames[1:])
            except NumaEmuError:
                continue  # not ours to answer: a node never sends us anything else than replies
            if not isinstance(msg, Reply) or msg.reply_to != request.id:
                continue
            if stamp is not None:
                self._hold(stamp)
            if isinstance(msg, ErrorReply):
                raise msg.to_exception()
            return msg

    def _hold(self, stamp: bytes) -> None:
        now_ns = time.monotonic_ns()
        hold_s, sent_ns = delaylink.read_stamp(stamp, now_ns)
        delaylink.wait_until(delaylink.due_s(hold_s, sent_ns, now_ns))
        if sent_ns is not None:
            self.holds.append((round(hold_s * 1e9), time.monotonic_ns() - sent_ns))

