"""Forwarding (IVY's forwarding, as a task's remote access uses it): a handler may pass the
request it serves on to another process, which answers the requester itself; an answer that
cannot reach its requester from here goes back through a process that can (a relay).

Owned by protocol.reactor.Reactor, which hands it its send paths: `send(dest, frames)` for a
notice to another process (fault table, down peers), `reply(routing, request_id, result, exc)`
for this process's own reply, and the delaying link (protocol.link) for what goes out on the
bound ROUTER socket.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Callable

import zmq

from numa_emu.protocol.codec import WireError, decode, encode, encode_reply
from numa_emu.protocol.effects import Answer, Forward
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.link import DelayingLink
from numa_emu.protocol.messages import Reply
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.routing import NODE_PREFIX_BYTES
from numa_emu.protocol.timing import PEER_CALL_TIMEOUT_S
from numa_emu.protocol.version import TAG

# Forwarded requests remembered per destination, to answer them if it dies (a task has one
# request at a time, so this bounds the tasks served per node within a call's deadline).
_FORWARDS_KEPT = 4096


class Forwarding:
    def __init__(self, link: DelayingLink, stats: collections.Counter, send: Callable[[str, list[bytes]], None],
                 reply: Callable[[list[bytes], int, Any, BaseException | None], None]):
        self.link = link
        self.stats = stats
        self._send = send
        self._reply = reply
        self._forwarded: dict[str, collections.deque] = {}  # dest -> (time sent, routing, request id, what)

    def forward(self, routing: list[bytes], request_id: int, fwd: Forward) -> None:
        """Pass the request being served on to `fwd.dest`, which answers the requester itself.
        Only when it cannot even be sent does this process answer (the error)."""
        notice = fwd.notice
        notice.route, notice.request_id = routing[0], request_id
        try:
            self._send(fwd.dest, encode(notice))
        except NumaEmuError as exc:
            self._reply(routing, request_id, None, exc)
            return
        self.stats["requests_forwarded"] += 1
        sent = self._forwarded.get(fwd.dest)
        if sent is None:
            sent = self._forwarded[fwd.dest] = collections.deque(maxlen=_FORWARDS_KEPT)
        sent.append((time.monotonic(), routing, request_id, fwd.what))

    def fail(self, dest: str, why: str) -> None:
        """`dest` died: the requests forwarded to it lately may never be answered; answer them
        with EIO now (a requester that had its answer already drops this one by its id)."""
        horizon = time.monotonic() - PEER_CALL_TIMEOUT_S
        for sent, routing, request_id, what in self._forwarded.pop(dest, ()):
            if sent >= horizon:
                self.stats["forwards_failed"] += 1
                what = what() if callable(what) else what
                text = f"{why}: {what} was there and is lost" if what else why
                self._reply(routing, request_id, None, NumaEmuError(ErrorCode.EIO, text))

    def answer(self, router: zmq.Socket, ans: Answer) -> None:
        """Reply to a request another process forwarded here: straight to its requester on
        `router`, held for `ans.link` in `real` mode; through `ans.via` when the requester is not
        connected here."""
        # A node is never the requester of a forwarded request; answering into its DEALER would
        # resolve one of its own calls with a stranger's reply.
        if not ans.route or ans.route.startswith(NODE_PREFIX_BYTES):
            self.stats["bad_routes"] += 1
            return
        frames = [ans.route] + encode_reply(ans.reply, ans.request_id, self.stats)
        try:
            self.link.send(router, frames, ans.link, "a forwarded request's requester")
            return
        except NumaEmuError:
            pass
        if ans.via is None:
            self.stats["answers_dropped"] += 1
            return
        self.stats["answers_relayed"] += 1
        try:
            self._send(ans.via, encode(lc.ReplyRelay(route=ans.route, envelope=frames[2])))
        except NumaEmuError:
            pass  # as any notice: lost when it cannot be sent

    def relay(self, router: zmq.Socket, msg: lc.ReplyRelay) -> None:
        """Pass on a reply a peer could not deliver to one of our ROUTER's peers (Answer.via)."""
        try:
            reply = decode([TAG, msg.envelope])
        except WireError:
            reply = None
        if not isinstance(reply, Reply) or not msg.route or msg.route.startswith(NODE_PREFIX_BYTES):
            self.stats["bad_relays"] += 1
            return
        try:
            self.link.send(router, [msg.route, TAG, msg.envelope], None, "a relayed reply's requester")
        except NumaEmuError:
            self.stats["relays_dropped"] += 1
