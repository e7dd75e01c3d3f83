"""The receiving and sending halves of the delaying link (`real` mode, docs/design.md#real-injection) inside the
reactor: a held message is sent at once with a stamp (protocol.delaylink) and held by its
receiver until the send instant plus the hold, FIFO per link, on a heap the loop flushes; every
receiver keeps the requested hold and the measured delay of the last held messages (proc.holds).

A mixin of protocol.reactor.Reactor: it uses the reactor's sockets, counters and send path.
"""
from __future__ import annotations

import heapq
import time
from typing import Callable

import zmq

from protocol import delaylink
from protocol.errors import NumaEmuError
from protocol.messages import lifecycle as lc


class HeldMessages:
    def _hold(self, delay_s: float, sock: zmq.Socket, frames: list, dest: str) -> None:
        """Send at once, stamped with how long the receiver must hold the message back (the
        delaying link), when it was sent and from which host. Holding at the receiver is what
        makes short delays accurate: it has the message in hand and spins to the end of the hold,
        instead of waking from an idle sleep when the message arrives (100-300 us here). On the
        same host the hold runs from the send instant (one CLOCK_MONOTONIC for every process), so
        the transport and the receiver's turn-around are part of the delay, not added to it;
        from another host it runs from the arrival (protocol.delaylink)."""
        self.stats["messages_delayed"] += 1
        try:
            self._send_now(sock, frames + [delaylink.stamp(delay_s)], dest)
        except NumaEmuError:
            pass  # counted in send_dropped; the caller's deadline will fire

    def _take_in(self, frames: list[bytes], serve: Callable[[list[bytes]], None], incoming: bool) -> None:
        """Serve received frames now, or once their hold is over when a delaying link stamped them.
        `incoming`: they came to our bound ROUTER (else to `outgoing`); with the sender's routing
        id, it names the link they came over."""
        last = frames[-1]
        if len(frames) > 2 and delaylink.is_stamp(last):
            frames = frames[:-1]
            now_ns = time.monotonic_ns()
            hold_s, sent_ns = delaylink.read_stamp(last, now_ns)
            # FIFO per link, as on a real interconnect: jitter never lets a later message overtake.
            link = (incoming, frames[0])
            due = max(delaylink.due_s(hold_s, sent_ns, now_ns), self._link_last.get(link, 0.0))
            self._link_last[link] = due
            heapq.heappush(self._delayed, (due, next(self._timer_seq),
                                           lambda: self._deliver_held(frames, serve, hold_s, sent_ns)))
            return
        serve(frames)

    def _deliver_held(self, frames: list[bytes], serve: Callable[[list[bytes]], None], hold_s: float,
                      sent_ns: int | None) -> None:
        if sent_ns is not None:
            self.holds.append((round(hold_s * 1e9), time.monotonic_ns() - sent_ns))
        serve(frames)

    def _on_holds(self, msg: lc.ProcHolds) -> lc.ProcHoldsReply:
        """The requested hold and the measured delay (send to delivery to the handler) of the
        last held messages sent from this host, oldest first; `clear` empties the record."""
        reply = lc.ProcHoldsReply(hold_ns=[h for h, _ in self.holds], delay_ns=[d for _, d in self.holds])
        if msg.clear:
            self.holds.clear()
        return reply

    def _flush_delayed(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, action = heapq.heappop(self._delayed)
            action()
