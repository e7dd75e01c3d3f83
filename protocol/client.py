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

    def call(self, request: Request, timeout_s: float | None = None) -> Reply:
        request.id = next(self._ids)
        self._sock.send_multipart(encode(request))
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self._sock.poll(remaining_ms):
                raise NumaEmuError(
                    ErrorCode.ETIMEDOUT,
                    f"no reply to {request.kind} from {self.endpoint} within "
                    f"{self.timeout_s if timeout_s is None else timeout_s:g} s",
                )
            msg = decode(self._sock.recv_multipart())
            if not isinstance(msg, Reply) or msg.reply_to != request.id:
                continue
            if isinstance(msg, ErrorReply):
                raise msg.to_exception()
            return msg

    def send_raw(self, frames: list[bytes]) -> None:
        """Send frames as they are (tests of malformed input)."""
        self._sock.send_multipart(frames)

    def recv_raw(self, timeout_s: float) -> list[bytes] | None:
        if not self._sock.poll(int(timeout_s * 1000)):
            return None
        return self._sock.recv_multipart()

    def close(self) -> None:
        self._sock.close(linger=0)
        if self._own_context:
            self._ctx.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
