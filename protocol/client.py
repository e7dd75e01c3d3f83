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
import math
import os
import secrets
import time
from typing import Callable

import zmq

from numa_emu.protocol import delaylink
from numa_emu.protocol.codec import decode, encode
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.link import send_frames
from numa_emu.protocol.messages import ErrorReply, Reply, Request
from numa_emu.protocol.reactor import connect_endpoint, make_socket, recv_frames
from numa_emu.protocol.routing import node_dest
from numa_emu.protocol.timing import CLIENT_TIMEOUT_S, SILENCE_PROBE_FIRST_S, SILENCE_PROBE_MAX_S

# What a caller runs when its request has had no reply for a while (Task: ask the coordinator
# whether the home node died); it raises to give up the wait, or returns to wait on.
OnSilence = Callable[[], None]


class _Silence:
    """When to run a call's on_silence next: soon after the send, then at doubling intervals."""

    def __init__(self, on_silence: OnSilence | None, deadline: float):
        self.on_silence, self.deadline = on_silence, deadline
        self.interval = SILENCE_PROBE_FIRST_S
        self.due = time.monotonic() + self.interval if on_silence is not None else deadline

    def wake(self) -> float:
        return min(self.due, self.deadline)

    def check(self, now: float) -> None:
        if self.on_silence is not None and now >= self.due:
            self.interval = min(self.interval * 2, SILENCE_PROBE_MAX_S)
            self.due = now + self.interval
            self.on_silence()


class _OwnSocket:
    """One socket, and the context too when the caller gave none; closes both, also as `with`."""

    _sock: zmq.Socket
    _ctx: zmq.Context
    _own_context: bool
    _rcvtimeo_ms: int
    endpoint: str

    def _recv_by(self, deadline: float, wait_s: float, request: Request, silence: _Silence) -> list[bytes]:
        """The next message's frames, or ETIMEDOUT at `deadline` (the reply to `request`); while
        none comes, `silence` runs its check when due (which may raise instead)."""
        while True:
            # tenths of a second (rounded up: no spinning short of a wake-up), so that the socket's
            # timeout rarely needs setting again
            remaining_ms = max(0, math.ceil((silence.wake() - time.monotonic()) * 10)) * 100
            try:
                if remaining_ms <= 0:
                    raise zmq.Again
                # a blocking receive with a timeout: one call, not a poll and then a receive
                if remaining_ms != self._rcvtimeo_ms:  # setting it costs pyzmq enum conversions
                    self._sock.rcvtimeo = self._rcvtimeo_ms = remaining_ms
                return recv_frames(self._sock)
            except zmq.Again:
                now = time.monotonic()
                if now >= deadline:
                    raise NumaEmuError(
                        ErrorCode.ETIMEDOUT, f"no reply to {request.kind} from {self.endpoint} within {wait_s:g} s"
                    ) from None
                silence.check(now)

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

    def call(self, request: Request, timeout_s: float | None = None, *, on_silence: OnSilence | None = None) -> Reply:
        """The reply to `request`, its error raised, or ETIMEDOUT; `on_silence` runs while the
        reply is awaited (soon, then at doubling intervals) and may raise to stop waiting."""
        request.id = next(self._ids)
        send_frames(self._sock, encode(request))
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        silence = _Silence(on_silence, deadline)
        while True:
            frames = self._recv_by(deadline, wait_s, request, silence)
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
                 timeout_s: float = CLIENT_TIMEOUT_S, context: zmq.Context | None = None,
                 clock_offsets: dict[int, int] | None = None, clock_within_ns: int = 0):
        self.endpoint = endpoints[home]
        self.clock_offsets = dict(clock_offsets or {})  # another host's key -> its clock minus ours (ns)
        # how far our own estimate may put them off (half its fastest round trip; 0: the coordinator's)
        self.clock_within_ns = clock_within_ns
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
            self._sock.setsockopt(zmq.CONNECT_ROUTING_ID, node_dest(node).encode())
            connect_endpoint(self._sock, endpoint, keys)
        self._home = node_dest(home).encode()
        self._ids = itertools.count(1)
        self._rcvtimeo_ms = -1
        # (hold_ns, delay_ns) of the last held replies: delay from the sender's send to delivery here
        self.holds: collections.deque[tuple[int, int]] = collections.deque(maxlen=4096)

    def rehome(self, node: int) -> None:
        """Send requests to `node` from now on (the task moved there); it is connected already."""
        self.endpoint = self._endpoints[node]
        self._home = node_dest(node).encode()

    def _send(self, frames: list[bytes], deadline: float, request: Request, silence: _Silence) -> None:
        while True:
            try:
                send_frames(self._sock, frames)
                return
            except zmq.ZMQError as exc:  # EHOSTUNREACH: the connection to the home node is not up (yet, or any more)
                now = time.monotonic()
                if exc.errno != zmq.EHOSTUNREACH or now > deadline:
                    raise NumaEmuError(ErrorCode.ECONNREFUSED, f"cannot send {request.kind} to {self.endpoint}: "
                                                               f"{exc.strerror}") from None
                silence.check(now)
                time.sleep(0.0005)

    def call(self, request: Request, timeout_s: float | None = None, *, on_silence: OnSilence | None = None) -> Reply:
        """As Client.call."""
        request.id = next(self._ids)
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        silence = _Silence(on_silence, deadline)
        self._send([self._home, *encode(request)], deadline, request, silence)
        while True:
            frames = self._recv_by(deadline, wait_s, request, silence)
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
        hold_s, sent_ns = delaylink.read_stamp(stamp, now_ns, offsets=self.clock_offsets)
        delaylink.wait_until(delaylink.due_s(hold_s, sent_ns, now_ns))
        if sent_ns is not None:
            self.holds.append((round(hold_s * 1e9), time.monotonic_ns() - sent_ns))

