"""A synchronous request/reply client for the CLI and for tasks: one DEALER, one request at a time.

Error replies are raised again as NumaEmuError on this side (dask, circus). A reply that arrives
after its request timed out is recognised by its reply_to and dropped.
"""
from __future__ import annotations

import itertools
import time

import zmq

from protocol.codec import decode, encode
from protocol.errors import ErrorCode, NumaEmuError
from protocol.messages import ErrorReply, Reply, Request
from protocol.reactor import make_socket
from protocol.timing import CLIENT_TIMEOUT_S


class Client:
    def __init__(self, endpoint: str, *, timeout_s: float = CLIENT_TIMEOUT_S, context: zmq.Context | None = None):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self._sock = make_socket(self._ctx, zmq.DEALER)
        self._sock.connect(endpoint)
        self._ids = itertools.count(1)
        self._rcvtimeo_ms = -1

    def call(self, request: Request, timeout_s: float | None = None) -> Reply:
        request.id = next(self._ids)
        self._sock.send_multipart(encode(request))
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        while True:
            # tenths of a second, so that the socket's timeout rarely needs setting again
            remaining_ms = int(max(0.0, round(deadline - time.monotonic(), 1)) * 1000)
            try:
                if remaining_ms <= 0:
                    raise zmq.Again
                # a blocking receive with a timeout: one call, not a poll and then a receive
                if remaining_ms != self._rcvtimeo_ms:  # setting it costs pyzmq enum conversions
                    self._sock.rcvtimeo = self._rcvtimeo_ms = remaining_ms
                frames = self._sock.recv_multipart()
            except zmq.Again:
                raise NumaEmuError(
                    ErrorCode.ETIMEDOUT, f"no reply to {request.kind} from {self.endpoint} within {wait_s:g} s"
                ) from None
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

    def close(self) -> None:
        self._sock.close(linger=0)
        if self._own_context:
            self._ctx.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
