"""Forwarding inside the reactor (IVY's forwarding, as a task's remote access uses it): a handler
may pass the request it serves on to another process, which answers the requester itself; an
answer that cannot reach its requester from here goes back through a process that can (a relay).

A mixin of protocol.reactor.Reactor: it uses the reactor's sockets, counters and send path.
"""
from __future__ import annotations

import collections
import time

from protocol import delaylink
from protocol.codec import WireError, decode, encode, encode_reply
from protocol.effects import Answer, Forward
from protocol.errors import ErrorCode, NumaEmuError
from protocol.messages import Reply
from protocol.messages import lifecycle as lc
from protocol.timing import PEER_CALL_TIMEOUT_S
from protocol.version import TAG

# Forwarded requests remembered per destination, to answer them if it dies (a task has one
# request at a time, so this bounds the tasks served per node within a call's deadline).
_FORWARDS_KEPT = 4096


class Forwarding:
    _forwarded: dict  # destination -> deque of (time sent, requester's routing, request id, what)

    def _forward(self, routing: list[bytes], request_id: int, fwd: Forward) -> None:
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

    def _fail_forwarded(self, dest: str, why: str) -> None:
        """`dest` died: the requests forwarded to it lately may never be answered; answer them
        with EIO now (a requester that had its answer already drops this one by its id)."""
        horizon = time.monotonic() - PEER_CALL_TIMEOUT_S
        for sent, routing, request_id, what in self._forwarded.pop(dest, ()):
            if sent >= horizon:
                self.stats["forwards_failed"] += 1
                text = f"{why}: {what} was there and is lost" if what else why
                self._reply(routing, request_id, None, NumaEmuError(ErrorCode.EIO, text))

    def _answer(self, ans: Answer) -> None:
        """Reply to a request another process forwarded here: straight to its requester, held
        for `ans.link` in `real` mode; through `ans.via` when the requester is not connected here."""
        # A node is never the requester of a forwarded request; answering into its DEALER would
        # resolve one of its own calls with a stranger's reply.
        if not ans.route or ans.route[:5] == b"node:":
            self.stats["bad_routes"] += 1
            return
        frames = [ans.route] + encode_reply(ans.reply, ans.request_id, self.stats)
        delay = self._delay_s(ans.link, frames) if ans.link is not None else 0.0
        try:
            if delay > 0:
                self.stats["messages_delayed"] += 1
                self._send_now(self.router, frames + [delaylink.stamp(delay)], "a forwarded request's requester")
            else:
                self._send_now(self.router, frames, "a forwarded request's requester")
            return
        except NumaEmuError:
            pass
        if ans.via is None:
            self.stats["answers_dropped"] += 1
            return
        self.stats["answers_relayed"] += 1
        self.notify(ans.via, lc.ReplyRelay(route=ans.route, envelope=frames[2]))

    def _on_relay(self, msg: lc.ReplyRelay) -> None:
        """Pass on a reply a peer could not deliver to one of our ROUTER's peers (Answer.via)."""
        try:
            reply = decode([TAG, msg.envelope])
        except WireError:
            reply = None
        if not isinstance(reply, Reply) or not msg.route or msg.route[:5] == b"node:":
            self.stats["bad_relays"] += 1
            return
        try:
            self._send_now(self.router, [msg.route, TAG, msg.envelope], "a relayed reply's requester")
        except NumaEmuError:
            self.stats["relays_dropped"] += 1
