"""The server loop every daemon runs: one ZeroMQ poller, a dispatch table, timers, deadlines.

A daemon binds one ROUTER socket for the requests it serves and sends its own requests on one
more ROUTER socket, connected to every destination it calls (ROUTER to ROUTER, each connection
named locally with CONNECT_ROUTING_ID, as protocol.client.TaskChannel does): the poll has two
sockets however large the cluster (measured here: zmq_poll costs about 0.9 us per socket per
call, and a wake-up calls it twice). Handlers are plain functions of a message (they never touch a
socket, docs/conventions.md#handlers-never-touch-a-socket); a handler returns its reply, raises NumaEmuError, or is a
generator that yields effects (protocol.effects) and returns its reply later. This is the only
place with a broad `except` (with protocol.codec.encode_reply, for a reply that cannot be packed):
whatever a handler raises becomes an error reply, a failing timer or callback a log line, and the
loop goes on serving (docs/design.md#wire: malformed input never kills the process that received it).
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import os
import signal
import time
import types
from typing import Any, Callable

import zmq

from numa_emu.protocol.codec import WireError, decode, encode, encode_reply
from numa_emu.protocol import delaylink
from numa_emu.protocol.forwarding import Forwarding
from numa_emu.protocol.link import DelayingLink
from numa_emu.protocol.peercalls import PeerCalls
from numa_emu.protocol.routing import NODE_PREFIX, NODE_PREFIX_BYTES
from numa_emu.protocol.effects import Answer, Call, Forward, Future, Sleep, Spawn, answer_locally, as_error, drive, gather
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.keys import ClusterKeys, check_bind
from numa_emu.protocol.messages import ErrorReply, Message, Notice, Ok, Reply, Request
from numa_emu.protocol.timing import DAEMON_CALL_TIMEOUT_S, PEER_CALL_TIMEOUT_S

log = logging.getLogger(__name__)

Handler = Callable[[Message], Any]
_DRAIN_BUDGET = 256  # messages taken from one socket per wake-up, so no socket starves another
_SPIN_S = delaylink.SPIN_S
# Plain ints: pyzmq's enum members cost a conversion at every call on the hot path.
_NOBLOCK, _EVENTS, _POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)


def recv_frames(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """socket.recv_multipart without its per-frame option enums; the parts of a message arrive
    together, so only the first receive can raise zmq.Again. Each part is received as a Frame,
    which knows whether more follow: for a message of 3 parts, 3.8 us instead of 5.1 us with a
    getsockopt(RCVMORE) after each (measured, pyzmq 27); .bytes copies it once, as copy=True does."""
    recv = sock.recv
    frame = recv(flags, False)
    frames = [frame.bytes]
    while frame.more:
        frame = recv(flags, False)
        frames.append(frame.bytes)
    return frames


def make_socket(ctx: zmq.Context, kind: int) -> zmq.Socket:
    """Every socket of ours: linger 0, so closing never hangs on a dead peer (zguide). It binds
    with bind_endpoint and connects with connect_endpoint, which authenticate every peer."""
    sock = ctx.socket(kind)
    sock.linger = 0
    return sock


def connect_endpoint(sock: zmq.Socket, endpoint: str, keys: ClusterKeys) -> None:
    """Connect to a daemon of the cluster, as its ZAP handler requires (protocol.keys)."""
    keys.before_connect(sock, endpoint)
    sock.connect(endpoint)


def bind_endpoint(sock: zmq.Socket, endpoint: str, keys: ClusterKeys | None) -> str:
    """Bind `endpoint` for the cluster's own processes only (protocol.keys; the context's ZAP
    handler must be running); a tcp endpoint with port 0 gets a free port. The bound address.
    Without keys, only a loopback address (check_bind)."""
    check_bind(endpoint, keys)
    if keys is not None:
        keys.before_bind(sock, endpoint)
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        port = sock.bind_to_random_port(endpoint[: endpoint.rindex(":")])
        return f"{endpoint[: endpoint.rindex(':')]}:{port}"
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


class Reactor(PeerCalls):
    """The loop (this module) with its node-to-node retries, deduplication and faults
    (protocol.peercalls), owning its delaying link (protocol.link: the one send path, holding
    and stamping) and its forwarding (protocol.forwarding): one set of sockets and counters."""

    def __init__(self, name: str, identity: str | None = None, *, keys: ClusterKeys,
                 ignore_requests_of_the_dead: bool = False):
        """`identity` names this process on its outgoing connections (e.g. "node:3"), so that a
        receiver can tell which peer a request came from and delay its reply on the right link.
        `keys`: the cluster's CURVE keys, for both sockets and the ZAP handler (protocol.keys).
        `ignore_requests_of_the_dead`: a request of a peer marked down is not served (a node's:
        the coordinator serves a restarted node's registration, which marks it up again)."""
        self.name = name
        self._ignore_the_dead = ignore_requests_of_the_dead
        self.keys = keys
        self._auth = None  # the ZAP handler, started by bind()
        self.identity = identity.encode() if identity else None
        self._me = identity  # a Call to this destination is answered here, without a message
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        self.router: zmq.Socket | None = None
        self.endpoint = ""
        self.handlers: dict[str, Handler] = {}
        self.routes: dict[str, str] = {}  # destination name -> endpoint
        self.stats: collections.Counter[str] = collections.Counter()
        self.link = DelayingLink(self.stats)  # docs/design.md#real-injection
        self.forwarding = Forwarding(self.link, self.stats, self._send, self._reply)
        self.messages_in = 0  # a plain attribute: counted on every message
        self.running = False
        self.started = time.monotonic()
        # The socket of our own requests: named `identity` at every destination, which answers on
        # the same connection. ROUTER_MANDATORY: a full queue raises instead of dropping silently.
        self.outgoing = make_socket(self.ctx, zmq.ROUTER)
        if self.identity is not None:
            self.outgoing.setsockopt(zmq.ROUTING_ID, self.identity)
        self.outgoing.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.poller.register(self.outgoing, zmq.POLLIN)
        self._link_ids: dict[str, bytes] = {}  # destination -> its connection's routing id on `outgoing`
        self._link_endpoints: dict[str, str] = {}  # destination -> the endpoint it is connected to
        self._link_seq = itertools.count()
        self._pending: dict[int, Future] = {}
        self._pending_dest: dict[int, str] = {}  # request id -> its destination, while pending
        self._down: dict[str, str] = {}  # destination known dead -> the error text of a call to it
        self._deadlines: list[tuple[float, int]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._fd_handlers: dict[int, Callable[[], None]] = {}
        # Request ids start at the clock in microseconds: a peer that deduplicates by id
        # (protocol.peercalls) sees them only grow, across a restart of this process too (no
        # process sends a request per microsecond).
        self._ids = itertools.count(time.time_ns() // 1000)
        self._timer_seq = itertools.count()
        self._signal_actions: dict[int, Callable[[], None]] = {}
        self._signal_pipe: tuple[int, int] | None = None
        self.handlers["proc.holds"] = self.link.on_holds
        self.handlers["reply.relay"] = lambda msg: self.forwarding.relay(self.router, msg)
        self._init_peer_calls()

    # ---- set-up -------------------------------------------------------------------------
    def bind(self, endpoint: str) -> str:
        # The ZAP handler first: a connection that arrives before it would be let in unchecked.
        self._auth = self.keys.authenticator(self.ctx)
        self.router = make_socket(self.ctx, zmq.ROUTER)
        # A reply to a peer that is not connected raises instead of vanishing: a forwarded access
        # whose task is not connected here is answered through its home node (Answer.via).
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.endpoint = bind_endpoint(self.router, endpoint, self.keys)
        if self.endpoint.startswith("ipc://"):  # owner only, whatever the umask (its folder is too)
            os.chmod(self.endpoint[len("ipc://"):], 0o600)
        self.poller.register(self.router, zmq.POLLIN)
        return self.endpoint

    def bind_also(self, endpoint: str) -> str:
        """Serve on one more endpoint, on the same socket (after bind()): a process of a cluster
        on several hosts takes its host's peers over ipc and the others over tcp (protocol.hosts).
        Bind ipc first: the tcp bind turns CURVE on for the binds that follow."""
        assert self.router is not None, "bind() first"
        return bind_endpoint(self.router, endpoint, self.keys)

    def on(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def set_link_delay(self, delay: Callable[[str, int], float] | None) -> None:
        """The delaying link of `real` mode: peer name, bytes -> seconds to hold a message back
        (None: no delay)."""
        self.link.set_delay(delay)

    def set_clock_offsets(self, offsets: dict[int, int]) -> None:
        """Other hosts' clocks against ours (protocol.link.DelayingLink.set_clock_offsets)."""
        self.link.set_clock_offsets(offsets)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self._fd_handlers[fd] = callback
        self.poller.register(fd, zmq.POLLIN)

    def remove_reader(self, fd: int) -> None:
        if self._fd_handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._timer_seq), fn))

    def call_every(self, interval_s: float, fn: Callable[[], None]) -> None:
        def tick() -> None:
            self.call_later(interval_s, tick)
            fn()

        self.call_later(interval_s, tick)

    def on_signal(self, signum: int, action: Callable[[], None]) -> None:
        """Run `action` from the loop when `signum` arrives; the handler only records and wakes."""
        if self._signal_pipe is None:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._signal_pipe = (r, w)
            signal.set_wakeup_fd(w)
            self.add_reader(r, self._drain_signals)
        self._signal_actions[signum] = action
        signal.signal(signum, lambda *_: None)

    def _drain_signals(self) -> None:
        assert self._signal_pipe is not None
        try:
            data = os.read(self._signal_pipe[0], 64)
        except BlockingIOError:
            return
        for signum in data:
            action = self._signal_actions.get(signum)
            if action is not None:
                action()

    # ---- sending ------------------------------------------------------------------------
    def _link(self, dest: str) -> bytes:
        """The routing id of the connection to `dest` on `outgoing`, connecting on first use."""
        rid = self._link_ids.get(dest)
        if rid is None:
            endpoint = self.routes.get(dest)
            if endpoint is None:
                raise NumaEmuError(ErrorCode.ENODEV, f"no route to {dest}: unknown destination")
            # A fresh name for every connection: libzmq asserts that a connect routing id is not
            # in use, and the pipe of a connection dropped by forget() goes away asynchronously.
            rid = f"{dest}#{next(self._link_seq)}".encode()
            self.outgoing.setsockopt(zmq.CONNECT_ROUTING_ID, rid)
            try:
                connect_endpoint(self.outgoing, endpoint, self.keys)
            except zmq.ZMQError as exc:  # a malformed endpoint (node.peers takes them from the wire)
                raise NumaEmuError(ErrorCode.ENODEV, f"cannot connect to {dest} at {endpoint!r}: {exc}") from None
            self._link_ids[dest] = rid
            self._link_endpoints[dest] = endpoint
        return rid

    def forget(self, dest: str) -> None:
        """Drop the connection to `dest` (a dead peer), failing its outstanding calls lazily."""
        if self._link_ids.pop(dest, None) is None:
            return
        endpoint = self._link_endpoints.pop(dest)
        if endpoint in self._link_endpoints.values():
            return  # another destination's connection too (disconnect drops every one to it)
        try:
            self.outgoing.disconnect(endpoint)
        except zmq.ZMQError:
            pass

    def mark_down(self, dest: str, why: str) -> None:
        """`dest` is known dead: its outstanding calls fail now and later ones at once, with EIO
        and `why` (a call would otherwise wait for its deadline)."""
        self._down[dest] = why
        self.forget(dest)
        self.forwarding.fail(dest, why)
        for request_id in [i for i, d in self._pending_dest.items() if d == dest]:
            fut = self._pending.pop(request_id, None)
            if fut is not None:
                fut.set_exception(NumaEmuError(ErrorCode.EIO, why))

    def mark_up(self, dest: str) -> None:
        """`dest` is back (registered again): calls to it go out again."""
        self._down.pop(dest, None)

    def _send(self, dest: str, frames: list[bytes]) -> None:
        """Send a request or notice to `dest`, held back for its link in `real` mode."""
        why = self._down.get(dest)
        if why is not None:
            raise NumaEmuError(ErrorCode.EIO, why)
        if self.faults is not None and dest.startswith(NODE_PREFIX) and self._faulty(dest, lambda: self._send_out(dest, frames)):
            return
        self._send_out(dest, frames)

    def _send_out(self, dest: str, frames: list[bytes]) -> None:
        self.link.send(self.outgoing, [self._link(dest)] + frames, dest, dest)

    def notify(self, dest: str, notice: Notice) -> None:
        """Send a one-way message; a full queue drops it (heartbeats tolerate loss)."""
        try:
            self._send(dest, encode(notice))
        except NumaEmuError:
            pass

    def call(self, dest: str, request: Request, timeout_s: float | None = None) -> Future:
        """Send `request`; the future resolves with its reply or fails with NumaEmuError."""
        fut = Future()
        request.id = request_id = next(self._ids)
        try:
            frames = encode(request)
            self._send(dest, frames)
        except NumaEmuError as exc:
            fut.set_exception(exc)
            return fut
        self._pending[request_id] = fut
        self._pending_dest[request_id] = dest
        fut.add_done_callback(self._call_done(request_id))
        if timeout_s is None:
            timeout_s = PEER_CALL_TIMEOUT_S if self._retries_to(dest) else DAEMON_CALL_TIMEOUT_S
        deadline = time.monotonic() + timeout_s
        heapq.heappush(self._deadlines, (self._first_due(request_id, dest, frames, request.kind, deadline), request_id))
        return fut

    def _call_done(self, request_id: int) -> Callable[[Future], None]:
        def done(_f: Future) -> None:
            self._pending_dest.pop(request_id, None)
            self._retrying.pop(request_id, None)

        return done

    # ---- coroutines ---------------------------------------------------------------------
    def _as_future(self, effect: Any) -> Future:
        if isinstance(effect, Future):
            return effect
        if isinstance(effect, Call):
            if effect.dest == self._me:
                return self._call_self(effect.request)
            return self.call(effect.dest, effect.request, effect.timeout_s)
        if isinstance(effect, (list, tuple)):
            return gather([self._as_future(e) for e in effect])
        if isinstance(effect, Sleep):
            fut = Future()
            self.call_later(effect.seconds, lambda: fut.set_result(None))
            return fut
        if isinstance(effect, Spawn):
            self.spawn(effect.gen, lambda _r, exc: exc is not None and log.warning("spawned coroutine failed: %s", exc))
            done = Future()
            done.set_result(None)
            return done
        raise TypeError(f"a handler yielded {effect!r}; expected Call, list of Call, or Future")

    def _call_self(self, request: Request) -> Future:
        """A call to this process itself, answered from its handler table (protocol.effects)."""
        handler = self.handlers.get(request.kind)
        if handler is None:
            fut = Future()
            fut.set_exception(NumaEmuError(ErrorCode.EINVAL, f"{self.name} does not serve {request.kind!r}"))
            return fut
        self.stats["calls_to_self"] += 1
        return answer_locally(handler, request, self.spawn, self._crashed)

    def _crashed(self, exc: BaseException) -> None:
        log.error("handler failed", exc_info=exc)
        self.stats["handler_crashes"] += 1

    def spawn(self, gen: types.GeneratorType, done: Callable[[Any, BaseException | None], None]) -> None:
        """Drive a handler generator until it returns; `done(result, exception)` then."""
        drive(gen, self._as_future, done)

    # ---- receiving ----------------------------------------------------------------------
    def _reply(self, routing: list[bytes], request_id: int, result: Any, exc: BaseException | None) -> None:
        if exc is not None:
            if not isinstance(exc, NumaEmuError):
                self._crashed(exc)
            err = as_error(exc)
            reply: Reply = ErrorReply(code=err.code.value, message=err.message)
        elif result is None:
            reply = Ok()
        else:
            reply = result
        assert self.router is not None
        frames = routing + encode_reply(reply, request_id, self.stats)
        peer = routing[0]
        if peer.startswith(NODE_PREFIX_BYTES):
            self._remember_reply(peer, request_id, frames)
        self._reply_out(frames, peer)

    def _reply_out(self, frames: list[bytes], peer: bytes) -> None:
        """Send a reply's frames to `peer`: through the fault table to a node, held in `real` mode."""
        if self.faults is not None and peer.startswith(NODE_PREFIX_BYTES):
            if self._faulty(peer.decode(errors="replace"), lambda: self._reply_send(frames, peer)):
                return
        self._reply_send(frames, peer)

    def _reply_send(self, frames: list[bytes], peer: bytes) -> None:
        try:
            self.link.send(self.router, frames, peer, "the requester")
        except NumaEmuError:
            pass  # counted; the requester is gone (a CLI that gave up, a dead task) or too slow

    def _serve(self, frames: list[bytes]) -> None:
        cut = 2 if len(frames) > 1 and frames[1] == b"" else 1  # REQ peers add an empty delimiter
        routing, body = frames[:cut], frames[cut:]
        self.messages_in += 1
        try:
            msg = decode(body)
        except WireError as err:
            self.stats[f"bad_messages.{err.code.value}"] += 1
            self.stats["bad_messages"] += 1
            self._reply(routing, err.request_id or 0, None, err)
            return
        handler = self.handlers.get(msg.kind)
        if handler is None or isinstance(msg, Reply):
            self.stats["bad_messages"] += 1
            self.stats["bad_messages.EINVAL"] += 1
            if not isinstance(msg, (Notice, Reply)):
                err = NumaEmuError(ErrorCode.EINVAL, f"{self.name} does not serve {msg.kind!r}")
                self._reply(routing, msg.id, None, err)
            return
        if isinstance(msg, Notice):
            try:
                result = handler(msg)
                if isinstance(result, Answer):
                    self.forwarding.answer(self.router, result)
            except Exception:
                log.exception("notice handler failed for %s", msg.kind)
                self.stats["handler_crashes"] += 1
            return
        if self._ignore_the_dead and self._down and routing[0].decode(errors="replace") in self._down:
            # sent by a peer before it died, delivered after its death was heard here: what it
            # would change may be rebuilt without it already (docs/protocol.md#a-nodes-death), and
            # nobody waits for the answer. Not remembered as served: the same peer restarted sends
            # its requests again until this node hears it is up (node.peers)
            self.stats["requests_from_dead"] += 1
            return
        if self._duplicate(routing, msg.id):
            return
        try:
            result = handler(msg)
        except Exception as err:
            self._reply(routing, msg.id, None, err)
            return
        if isinstance(result, types.GeneratorType):
            self.spawn(result, lambda res, exc: self._reply(routing, msg.id, res, exc))
        elif isinstance(result, Forward):
            self.forwarding.forward(routing, msg.id, result)
        elif isinstance(result, Future):
            result.add_done_callback(lambda f: self._reply(routing, msg.id, f.result, f.exception))
        else:
            self._reply(routing, msg.id, result, None)

    def _on_reply(self, frames: list[bytes]) -> None:
        try:
            msg = decode(frames[1:])  # after the routing id of the connection it came over
        except WireError:
            self.stats["bad_replies"] += 1
            return
        fut = self._pending.pop(msg.reply_to, None) if isinstance(msg, Reply) else None
        if fut is None:
            self.stats["stray_replies"] += 1  # late reply of a timed-out call
            return
        if isinstance(msg, ErrorReply):
            fut.set_exception(msg.to_exception())
        else:
            fut.set_result(msg)

    def _drain(self, sock: zmq.Socket) -> None:
        """Serve what `sock` holds; poll said it is readable, so the first receive needs no check."""
        router = sock is self.router
        serve = self._serve if router else self._on_reply
        for i in range(_DRAIN_BUDGET):
            # asking EVENTS is cheaper than the zmq.Again exception that ends every burst otherwise;
            # the first receive needs neither, poll said the socket is readable
            if i and not sock.getsockopt(_EVENTS) & _POLLIN:
                return
            try:
                frames = recv_frames(sock, _NOBLOCK)
            except zmq.Again:  # a spurious wake-up
                return
            self.link.take_in(frames, serve, router)

    # ---- the loop -----------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, request_id = heapq.heappop(self._deadlines)
            if request_id not in self._pending or self._resend(request_id, now):
                continue
            error = self._timeout_error(request_id, now)
            fut = self._pending.pop(request_id)
            self.stats["calls_timed_out"] += 1
            fut.set_exception(error)

    def _run_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()

    def _timeout_ms(self) -> int:
        now = time.monotonic()
        due = now + 1.0
        if self._timers:
            due = min(due, self._timers[0][0])
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._pending:  # answered: no wake-up for it
            heapq.heappop(deadlines)
        if deadlines:
            due = min(due, deadlines[0][0])
        held = self.link.next_due()
        if held is not None:
            if held - now < _SPIN_S:
                return 0  # spin: the next held-back message is due within the sleep's error
            due = min(due, held - _SPIN_S)
        return max(0, int((due - now) * 1000) + 1)

    def run(self) -> None:
        self.running = True
        while self.running:
            try:
                self.run_once(self._timeout_ms())
            except Exception:  # a bug outside any handler (a timer, a callback): log it, keep serving
                log.exception("%s: a turn of the loop failed", self.name)
                self.stats["loop_errors"] += 1

    def run_once(self, timeout_ms: int) -> None:
        """One turn of the loop: wait up to `timeout_ms` for input, serve it, then whatever is
        due (held messages, timers, deadlines). Tests drive several reactors in one thread with it."""
        for what, _event in self.poller.poll(timeout_ms):
            if isinstance(what, int):
                self._fd_handlers[what]()
            else:
                self._drain(what)
        now = time.monotonic()
        self.link.flush(now)
        if self._timers and self._timers[0][0] <= now:
            self._run_timers(now)
        if self._deadlines and self._deadlines[0][0] <= now:
            self._expire(now)

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        if self._signal_pipe is not None:
            signal.set_wakeup_fd(-1)
            for fd in self._signal_pipe:
                os.close(fd)
            self._signal_pipe = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self.ctx.destroy(linger=0)

    def counters(self) -> dict[str, int]:
        """The process's own counters (proc.stats): messages served, malformed input by code, ..."""
        return dict(self.stats, messages_in=self.messages_in)

    def uptime_s(self) -> float:
        return time.monotonic() - self.started
