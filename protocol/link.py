"""The one path every message a reactor sends takes, and the delaying link of `real` mode
(docs/design.md#real-injection) on it: whether a message is held back, and how long, is decided
here once, for requests, replies and answers to forwarded requests alike.

A held message is sent at once with a stamp (protocol.delaylink) and held by its receiver until
the send instant plus the hold, FIFO per link, on a heap the reactor's loop flushes; every
receiver keeps the requested hold and the measured delay of the last held messages (proc.holds).
Holding at the receiver is what makes short delays accurate: it has the message in hand and
spins to the end of the hold, instead of waking from an idle sleep when the message arrives
(100-300 us here).
"""
from __future__ import annotations

import collections
import heapq
import itertools
import time
from typing import Callable

import zmq
from zmq.backend import Socket as _BackendSocket  # the compiled socket under zmq.Socket

from numa_emu.protocol import delaylink
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.routing import NODE_PREFIX

# Below this size a copying send beats pyzmq's zero-copy frames (their bookkeeping costs more).
_ZERO_COPY_BYTES = 64 * 1024
_HOLD_RECORDS = 4096  # the last held messages' (hold, delay) pairs kept for proc.holds
# Plain ints: pyzmq's enum members cost a conversion at every call on the hot path.
_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)
_send_frame = _BackendSocket.send


def send_frames(sock: zmq.Socket, frames: list[bytes], flags: int = 0, copy: bool = True) -> None:
    """socket.send_multipart without its per-frame flag enums (measured: 3 frames sent and
    received in 9 us instead of 16 us). Only the first frame can fail: once it is taken, ZeroMQ
    takes the whole message. pyzmq's Socket.send is a Python wrapper (routing ids and groups of
    draft sockets) around its compiled send, which is called directly: 0.3 us a frame instead
    of 1 us (measured, pyzmq 27)."""
    send = _send_frame if isinstance(sock, _BackendSocket) else type(sock).send
    for frame in frames[:-1]:
        send(sock, frame, flags | _SNDMORE, copy)
    send(sock, frames[-1], flags, copy)


class DelayingLink:
    """Sending (stamped for the receiver to hold when the link delays) and holding what arrives
    stamped. `stats`: the reactor's counters."""

    def __init__(self, stats: collections.Counter):
        self.stats = stats
        self.delay: Callable[[str, int], float] | None = None  # peer name, bytes -> seconds to hold back
        self._held: list[tuple[float, int, Callable[[], None]]] = []  # (due, seq, action)
        self._seq = itertools.count()
        self._last_due: dict[tuple[bool, bytes], float] = {}  # link (see take_in) -> last due time
        # (hold_ns, delay_ns) of the last held messages from this host: delay is send to delivery
        self.holds: collections.deque[tuple[int, int]] = collections.deque(maxlen=_HOLD_RECORDS)

    def set_delay(self, delay: Callable[[str, int], float] | None) -> None:
        """Peer name, bytes -> seconds to hold a message to it back (`real` mode); None: none."""
        self.delay = delay

    # ---- sending --------------------------------------------------------------------------
    def hold_s(self, peer: bytes | str | None, frames: list[bytes]) -> float:
        """How long a message to `peer` is held back: 0 when not in `real` mode or when the peer's
        name is not a node's (a client may name its connection anything)."""
        if self.delay is None or peer is None:
            return 0.0
        try:
            name = peer.decode() if isinstance(peer, bytes) else peer
            return self.delay(name, sum(len(f) for f in frames)) if name.startswith(NODE_PREFIX) else 0.0
        except Exception:  # "node:x", "node:99" from a stranger: no such link, no delay
            self.stats["bad_links"] += 1
            return 0.0

    def send(self, sock: zmq.Socket, frames: list[bytes], peer: bytes | str | None, what: str) -> None:
        """Send `frames` (routing id first) on `sock` now, never blocking; stamped with the hold of
        the link to `peer` when it delays (the receiver holds the message). ENODEV naming `what`
        when the peer's queue is full or it is not connected."""
        if self.delay is not None:
            hold = self.hold_s(peer, frames)
            if hold > 0:
                self.stats["messages_delayed"] += 1
                frames = frames + [delaylink.stamp(hold)]
        try:
            send_frames(sock, frames, _NOBLOCK, len(frames[-1]) < _ZERO_COPY_BYTES)
        except zmq.Again:
            # Never block the loop on a slow or dead peer: its queue is full, the message is lost.
            self.stats["send_dropped"] += 1
            raise NumaEmuError(ErrorCode.ENODEV, f"{what} is not taking messages (queue full)") from None
        except zmq.ZMQError as exc:  # EHOSTUNREACH: a ROUTER peer that is not (or no longer) connected
            self.stats["send_unroutable"] += 1
            raise NumaEmuError(ErrorCode.ENODEV, f"{what} cannot be reached: {exc.strerror}") from None

    # ---- receiving ------------------------------------------------------------------------
    def take_in(self, frames: list[bytes], serve: Callable[[list[bytes]], None], incoming: bool) -> None:
        """Serve received frames now, or once their hold is over when the sender's link stamped
        them. `incoming`: they came to the bound ROUTER (else to the outgoing socket); with the
        sender's routing id, it names the link they came over. On the same host the hold runs
        from the send instant (one CLOCK_MONOTONIC for every process), from another host from
        the arrival (protocol.delaylink)."""
        last = frames[-1]
        if len(frames) > 2 and delaylink.is_stamp(last):
            frames = frames[:-1]
            now_ns = time.monotonic_ns()
            hold_s, sent_ns = delaylink.read_stamp(last, now_ns)
            # FIFO per link, as on a real interconnect: jitter never lets a later message overtake.
            link = (incoming, frames[0])
            due = max(delaylink.due_s(hold_s, sent_ns, now_ns), self._last_due.get(link, 0.0))
            self._last_due[link] = due
            heapq.heappush(self._held, (due, next(self._seq), lambda: self._deliver(frames, serve, hold_s, sent_ns)))
            return
        serve(frames)

    def _deliver(self, frames: list[bytes], serve: Callable[[list[bytes]], None], hold_s: float,
                 sent_ns: int | None) -> None:
        if sent_ns is not None:
            self.holds.append((round(hold_s * 1e9), time.monotonic_ns() - sent_ns))
        serve(frames)

    def next_due(self) -> float | None:
        """When the next held message is due (time.monotonic()), or None."""
        return self._held[0][0] if self._held else None

    def flush(self, now: float) -> None:
        """Serve the held messages due by `now`."""
        held = self._held
        while held and held[0][0] <= now:
            _, _, action = heapq.heappop(held)
            action()

    def on_holds(self, msg: lc.ProcHolds) -> lc.ProcHoldsReply:
        """proc.holds: the requested hold and the measured delay (send to delivery to the handler)
        of the last held messages sent from this host, oldest first; `clear` empties the record."""
        reply = lc.ProcHoldsReply(hold_ns=[h for h, _ in self.holds], delay_ns=[d for _, d in self.holds])
        if msg.clear:
            self.holds.clear()
        return reply
