"""Node-to-node messages that survive faults (docs/protocol.md#faults), inside the reactor: the one
place where a call to a peer node is retried and a request from one is deduplicated, and where
the fault table in force (protocol.faults) drops, duplicates or delays what a node sends to another.

- A node's call to another node is re-sent with the SAME request id when no reply came within
  PEER_RETRY_FIRST_S (then twice that, up to PEER_RETRY_MAX_S), at most PEER_MAX_ATTEMPTS times and
  never past its deadline; then it fails with ETIMEDOUT naming the node.
- A node serving a request from another node remembers its id per peer: a duplicate of a request
  still being served is ignored (its reply will go out once), a duplicate of one answered gets
  the same reply again; the operation is applied once. Bounded per peer: SERVED_PER_PEER ids,
  SERVED_BYTES of replies, none older than SERVED_AGE_S (longer than any deadline a retry runs
  in). A peer's ids only grow (protocol.reactor starts them at the clock), so a request at or
  below the highest id forgotten is refused with ETIMEDOUT, never applied a second time.

A mixin of protocol.reactor.Reactor: it uses the reactor's sockets, counters, timers and send path.
"""
from __future__ import annotations

import collections
import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.faults import FaultInjector
from numa_emu.protocol.routing import NODE_PREFIX, NODE_PREFIX_BYTES
from numa_emu.protocol.timing import PEER_RETRY_FIRST_S, PEER_RETRY_MAX_S, SERVED_AGE_S

log = logging.getLogger(__name__)
PEER_MAX_ATTEMPTS = 16  # sends of one call at most (a 5 s call unanswered is sent 14 times)
SERVED_PER_PEER = 16384
SERVED_BYTES = 16 << 20  # replies kept per peer (a frame.read reply holds up to a page)


@dataclass(slots=True)
class _Served:
    """What one peer node asked of this process lately: request id -> [first seen, reply frames or
    None while being served], oldest first; the bytes those replies hold; the highest id forgotten."""

    entries: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    bytes: int = 0
    floor: int = 0
    aged: float = 0.0  # when ages were last looked at: once a second is enough for a 135 s bound

    def trim(self, now: float) -> None:
        entries = self.entries
        if len(entries) <= SERVED_PER_PEER and self.bytes <= SERVED_BYTES and now - self.aged < 1.0:
            return
        self.aged = now
        while entries:
            oldest_id, (seen, frames) = next(iter(entries.items()))
            if len(entries) <= SERVED_PER_PEER and self.bytes <= SERVED_BYTES and now - seen <= SERVED_AGE_S:
                return
            del entries[oldest_id]
            self.bytes -= _size(frames)
            self.floor = max(self.floor, oldest_id)


def _size(frames: list[bytes] | None) -> int:
    return sum(len(f) for f in frames) if frames else 0


@dataclass(slots=True)
class _Retry:
    dest: str
    frames: list[bytes]
    kind: str
    started: float
    final: float
    interval: float
    attempts: int = 1


class PeerCalls:
    def _init_peer_calls(self) -> None:
        self.faults: FaultInjector | None = None
        self._retrying: dict[int, _Retry] = {}  # request id -> its re-sending state, while pending
        self._served: dict[bytes, _Served] = {}  # peer node's routing id -> its requests served lately
        self._fault_fifo: dict[str, float] = {}  # link -> due time of its last in-order delayed message

    def set_faults(self, injector: FaultInjector | None) -> None:
        """The fault table this process applies to what it sends to other nodes (None: none)."""
        self.faults = injector if injector is not None and injector.active else None

    # ---- the caller: re-sending ----------------------------------------------------------------
    def _retries_to(self, dest: str) -> bool:
        return dest.startswith(NODE_PREFIX) and self.identity is not None and self.identity.startswith(NODE_PREFIX_BYTES)

    def _first_due(self, request_id: int, dest: str, frames: list[bytes], kind: str, deadline: float) -> float:
        """When the deadline heap wakes first for a new call: its first re-send, or its deadline."""
        if not self._retries_to(dest):
            return deadline
        now = time.monotonic()
        self._retrying[request_id] = _Retry(dest, frames, kind, now, deadline, PEER_RETRY_FIRST_S)
        return min(now + PEER_RETRY_FIRST_S, deadline)

    def _resend(self, request_id: int, now: float) -> bool:
        """Re-send a pending call whose wake-up came before its deadline; False: it has timed out."""
        r = self._retrying.get(request_id)
        if r is None or now >= r.final:
            return False
        if r.attempts < PEER_MAX_ATTEMPTS:
            r.attempts += 1
            self.stats["calls_retried"] += 1
            try:
                self._send(r.dest, r.frames)
            except NumaEmuError:
                pass  # not reachable now: the next attempt or the deadline settles it
            r.interval = min(r.interval * 2, PEER_RETRY_MAX_S)
            due = min(now + r.interval, r.final)
        else:
            due = r.final
        heapq.heappush(self._deadlines, (due, request_id))
        return True

    def _timeout_error(self, request_id: int, now: float) -> NumaEmuError:
        dest = self._pending_dest.get(request_id, "the peer")
        r = self._retrying.get(request_id)
        if r is None:
            return NumaEmuError(ErrorCode.ETIMEDOUT, f"{dest.replace(':', ' ')} did not answer request {request_id} in time")
        error = NumaEmuError(ErrorCode.ETIMEDOUT, f"{dest.replace(':', ' ')} did not answer {r.kind} (request "
                                                  f"{request_id}) in {now - r.started:.1f} s, {r.attempts} attempt(s)")
        log.warning("%s: %s", self.name, error.message)
        return error

    # ---- the server: each request from a peer node served once -----------------------------------
    def _duplicate(self, routing: list[bytes], request_id: int) -> bool:
        """Whether a peer node's request was seen before (then answered again, ignored or refused here)."""
        peer = routing[0]
        if not peer.startswith(NODE_PREFIX_BYTES) or not request_id:
            return False
        served = self._served.get(peer)
        if served is None:
            served = self._served[peer] = _Served()
        entry = served.entries.get(request_id)
        if entry is None:
            now = time.monotonic()
            served.trim(now)
            if request_id <= served.floor:
                self.stats["duplicates_refused"] += 1
                self._reply(routing, request_id, None, NumaEmuError(
                    ErrorCode.ETIMEDOUT, f"{self.name}: request {request_id} of {peer.decode(errors='replace')} is "
                                         f"older than those it remembers; not served again"))
                return True
            served.entries[request_id] = [now, None]
            return False
        if entry[1] is None:
            self.stats["duplicates_ignored"] += 1  # still being served: its one reply is to come
        else:
            self.stats["duplicates_answered"] += 1
            self._reply_out(entry[1], peer)
        return True

    def _remember_reply(self, peer: bytes, request_id: int, frames: list[bytes]) -> None:
        served = self._served.get(peer)
        entry = served.entries.get(request_id) if served is not None else None
        if entry is not None and entry[1] is None:
            entry[1] = frames
            served.bytes += _size(frames)

    # ---- faults on what this node sends to other nodes --------------------------------------------
    def _faulty(self, peer: str, send: Callable[[], None]) -> bool:
        """Apply the fault table to one message to `peer`: True when it was dropped or sent (or
        scheduled) here, False when it passes untouched and the caller sends it."""
        d = self.faults.decide(peer)  # type: ignore[union-attr]
        now = time.monotonic()
        queued = self._fault_fifo.get(peer, 0.0)
        if d.copies == 1 and d.delay_s == 0.0 and not d.drop and queued <= now:
            return False
        if d.drop:
            self.stats["fault_partitioned" if d.partitioned else "fault_dropped"] += 1
            return True
        if d.copies > 1:
            self.stats["fault_duplicated"] += d.copies - 1
        if d.overtake:  # reorder: held while later messages of the link pass it
            self.stats["fault_reordered"] += 1
            due = now + d.delay_s
        else:  # in order: behind whatever this link still holds
            if d.delay_s:
                self.stats["fault_delayed"] += 1
            due = max(now + d.delay_s, queued)
            if due > now:
                self._fault_fifo[peer] = due
        for _ in range(d.copies):
            if due > now:
                self.call_later(due - now, lambda: self._send_late(send))
            else:
                send()
        return True

    def _send_late(self, send: Callable[[], None]) -> None:
        try:
            send()
        except NumaEmuError:
            self.stats["fault_late_unsent"] += 1  # the peer went away meanwhile; a retry or the deadline settles it
