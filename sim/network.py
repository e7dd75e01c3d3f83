"""A seeded, in-process network between processes that serve handler tables, with virtual time.

Every message travels encoded (protocol.codec), as on the wire, on a FIFO link per (sender,
receiver, direction): ZeroMQ keeps the order of one connection and nothing else, so requests and
notices from A to B stay in order, replies from B to A stay in order, and everything else is
interleaved as the seed decides. At each step the seed picks one non-empty link and delivers its
head; virtual time advances by a seeded delay per delivery, and a due timer (Sleep) fires before
the next delivery. No sockets, threads or sleeps.

With `drop` or `dup` (probabilities), a message between two nodes may be lost or delivered twice;
node-to-node calls then behave as protocol.peercalls makes them: a call without its reply is sent
again with the same id (after PEER_RETRY_FIRST_S, then twice that, up to PEER_RETRY_MAX_S), and a
node serves a request id of a peer once, answering a duplicate with the same reply. A re-sent
request overtakes nothing in the order of its link: it joins the link's tail.

With `deadlines` (sim.faults turns them on for partitions and stops, faults that outlast them),
every call fails with ETIMEDOUT after the deadline its real sender gives it (protocol.timing: a
task's CLIENT_TIMEOUT_S, a daemon's DAEMON_CALL_TIMEOUT_S, a node's PEER_CALL_TIMEOUT_S, or the
Call's own), node-to-node calls are re-sent and deduplicated as above (at most PEER_MAX_ATTEMPTS
sends), a partition (`cut`, `heal`) loses every message between its two sides at the sender, as
the fault table does (protocol.faults), and a stopped process (`stop`, `resume`: SIGSTOP, SIGCONT)
takes no message and runs nothing, not even its timers, until it is continued: then its queue is
delivered, and a call whose reply waits in that queue is not timed out (the reactor's loop drains
its input before it looks at deadlines).

Handlers are driven as protocol.reactor.Reactor drives them: a plain return is the reply, a
NumaEmuError an error reply, a generator yields effects (protocol.effects: Call, list of Calls,
Future, Sleep, Spawn) and is resumed with the results or has the errors thrown in; Forward passes a
request on to a process that answers the requester itself (Answer). A Call a process addresses to
itself is answered from its own table at once, with no message (protocol.effects.answer_locally).
"""
from __future__ import annotations

import collections
import heapq
import itertools
import random
import types
from dataclasses import dataclass
from typing import Any, Callable

from numa_emu.protocol.codec import decode, encode, encode_reply
from numa_emu.protocol.effects import Answer, Call, Forward, Future, Sleep, Spawn, answer_locally, drive, gather
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import ErrorReply, Message, Notice, Ok, Reply
from numa_emu.protocol.peercalls import PEER_MAX_ATTEMPTS
from numa_emu.protocol.timing import (CLIENT_TIMEOUT_S, DAEMON_CALL_TIMEOUT_S, PEER_CALL_TIMEOUT_S, PEER_RETRY_FIRST_S,
                                      PEER_RETRY_MAX_S)

Handler = Callable[[Message], Any]
REQUEST, REPLY = "req", "rep"  # the two directions of a pair of processes: two FIFO links


class Violation(Exception):
    """An invariant broken: the run stops at the message that broke it."""


class Crash(Exception):
    """A handler raised something other than NumaEmuError: a bug the run reports."""


@dataclass(slots=True)
class Envelope:
    seq: int
    src: str
    dest: str
    frames: list[bytes]
    kind: str
    request_id: int  # of a request, or of the request a reply answers
    route: str = ""  # a forwarded notice: the requester its answer goes to
    notice: bool = False  # one-way: never re-sent, so never dropped or duplicated either


class Process:
    """One simulated process: a name ("node:1", "coordinator", "task:3"), its handler table and
    its calls in flight."""

    def __init__(self, name: str, handlers: dict[str, Handler]):
        self.name = name
        self.handlers = handlers
        self.ids = itertools.count(1)
        self.pending: dict[int, tuple[Future, str]] = {}  # request id -> (its future, its destination)
        self.served: dict[tuple[str, int], Envelope | None] = {}  # a peer node's request -> its reply (None: serving)
        self.alive = True


class Network:
    def __init__(self, seed: int, *, max_delay_us: int = 20, trace: bool = True, drop: float = 0.0, dup: float = 0.0):
        self.rng = random.Random(seed)
        self.drop, self.dup = drop, dup
        self.seed = seed
        self.max_delay_us = max_delay_us
        self.now_ns = 0
        self.procs: dict[str, Process] = {}
        self.links: dict[tuple[str, str, str], collections.deque[Envelope]] = {}
        self.busy: list[tuple[str, str, str]] = []  # links holding messages, in the order they filled
        # (due, sequence, the process whose timer it is or "", what to do)
        self.timers: list[tuple[int, int, str, Callable[[], None]]] = []
        self.resending = bool(drop or dup)  # node calls re-sent, node requests deduplicated
        self.deadlines = False
        self._knows_dead: Callable[[str, str], bool] | None = None
        self.cuts: list[tuple[frozenset[str], frozenset[str]]] = []  # partitions in force
        self.stopped: dict[str, list[Callable[[], None]]] = {}  # a stopped process -> what it runs when continued
        self.seq = itertools.count(1)
        self.delivered = 0
        self.dropped_ns: list[int] = []  # when each message was lost to `drop` (sim.faults counts them)
        self.trace: list[str] | None = [] if trace else None
        self.after_delivery: Callable[[], None] | None = None  # the invariant checks
        self.after_timer: Callable[[], None] | None = None  # sim.faults: a timeout may leave something to send again
        self.closed = False  # the run is over: coroutines closed now change nothing
        self.running: set[types.GeneratorType] = set()  # coroutines not finished, closed by close()

    # ---- processes ----------------------------------------------------------------------
    def add(self, name: str, handlers: dict[str, Handler]) -> Process:
        proc = self.procs[name] = Process(name, handlers)
        return proc

    def use_deadlines(self) -> None:
        """Calls time out, and node calls are re-sent and deduplicated, as on real sockets."""
        self.deadlines = self.resending = True

    def clock_ns(self) -> int:
        return self.now_ns

    def note(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(f"{self.now_ns / 1000:10.3f}us  {text}")

    # ---- sending ------------------------------------------------------------------------
    def _post(self, env: Envelope, direction: str) -> None:
        if self.cuts and self.is_cut(env.src, env.dest):
            self.note(f"{env.src} -> {env.dest} {env.kind} #{env.request_id} CUT")
            return
        key = (env.src, env.dest, direction)
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = collections.deque()
        if not link:
            self.busy.append(key)
        link.append(env)

    def call(self, src: str, dest: str, request, timeout_s: float | None = None) -> Future:
        """Send `request` from `src` to `dest`; the future gets its reply (or the error);
        with deadlines, ETIMEDOUT after `timeout_s` (default: the sender's, as in protocol.timing)."""
        fut = Future()
        proc = self.procs[src]
        request.id = request_id = next(proc.ids)
        target = self.procs.get(dest)
        if target is None or not target.alive:
            fut.set_exception(NumaEmuError(ErrorCode.EIO, f"{dest} is dead" if target else f"no process {dest}"))
            return fut
        proc.pending[request_id] = (fut, dest)
        env = Envelope(next(self.seq), src, dest, encode(request), request.kind, request_id)
        self._post(env, REQUEST)
        final = None
        if self.deadlines:
            if timeout_s is None:
                timeout_s = (PEER_CALL_TIMEOUT_S if _between_nodes(src, dest) else
                             CLIENT_TIMEOUT_S if src.startswith("task:") else DAEMON_CALL_TIMEOUT_S)
            final = self.now_ns + int(timeout_s * 1e9)
            self.call_later(timeout_s, self._expiry(env, fut, timeout_s), owner=src)
        if self.resending and _between_nodes(src, dest):
            self._retry_later(env, PEER_RETRY_FIRST_S, final)
        return fut

    def _retry_later(self, env: Envelope, interval_s: float, final: int | None, attempts: int = 1) -> None:
        """protocol.peercalls' retry: the same request again while it has no reply (with
        deadlines: at most PEER_MAX_ATTEMPTS sends, none at or past the deadline)."""
        def again() -> None:
            src, dest = self.procs[env.src], self.procs[env.dest]
            if final is not None and (self.now_ns >= final or attempts >= PEER_MAX_ATTEMPTS):
                return
            if env.request_id in src.pending and src.alive and dest.alive:
                self.note(f"{env.src} sends {env.kind} #{env.request_id} to {env.dest} again")
                self._post(env, REQUEST)
                self._retry_later(env, min(interval_s * 2, PEER_RETRY_MAX_S), final, attempts + 1)
        self.call_later(interval_s, again, owner=env.src)

    def _expiry(self, env: Envelope, fut: Future, timeout_s: float) -> Callable[[], None]:
        """The deadline of one call: ETIMEDOUT naming the silent process, unless its reply came,
        or waits in the caller's queue (a caller just continued serves its input first)."""
        def expire() -> None:
            proc = self.procs[env.src]
            entry = proc.pending.get(env.request_id)
            if entry is None or entry[0] is not fut:
                return
            if any(e.request_id == env.request_id for e in self.links.get((env.dest, env.src, REPLY), ())):
                self.call_later(PEER_RETRY_FIRST_S, expire, owner=env.src)  # unless that reply is lost too
                return
            del proc.pending[env.request_id]
            self.note(f"{env.src}: {env.kind} #{env.request_id} to {env.dest} TIMED OUT")
            fut.set_exception(NumaEmuError(ErrorCode.ETIMEDOUT, f"{env.dest.replace(':', ' ')} did not answer "
                                                                f"{env.kind} (request {env.request_id}) in {timeout_s:g} s"))
        return expire

    def _notify(self, src: str, dest: str, notice: Notice, route: str) -> None:
        request_id = getattr(notice, "request_id", 0)  # a forwarded request's id; other notices have none
        self._post(Envelope(next(self.seq), src, dest, encode(notice), notice.kind, request_id, route, True), REQUEST)

    def _reply(self, src: str, dest: str, request_id: int, result: Any, exc: BaseException | None) -> None:
        if exc is not None:
            if not isinstance(exc, NumaEmuError):
                raise Crash(f"{src}: handler failed: {exc.__class__.__name__}: {exc}") from exc
            reply: Reply = ErrorReply(code=exc.code.value, message=exc.message)
        else:
            reply = Ok() if result is None else result
        frames = encode_reply(reply, request_id, collections.Counter())
        env = Envelope(next(self.seq), src, dest, frames, reply.kind, request_id)
        if (dest, request_id) in self.procs[src].served:
            self.procs[src].served[(dest, request_id)] = env
        self._post(env, REPLY)

    def ignore_requests_of_the_dead(self, knows_dead: Callable[[str, str], bool]) -> None:
        """A request from a process its receiver knows dead is not served (knows_dead(receiver,
        sender)), as protocol.reactor.Reactor._serve ignores one from a peer marked down."""
        self._knows_dead = knows_dead

    def kill(self, name: str, why: str) -> None:
        """`name` dies: it takes no message any more, and every call to it fails with EIO (as the
        reactor fails them once node.down says so, protocol.reactor.Reactor.mark_down)."""
        self.procs[name].alive = False
        self.note(f"CRASH {name}: {why}")
        self.stopped.pop(name, None)  # a stopped process killed: what it would have run dies with it
        for proc in self.procs.values():
            for request_id, (fut, dest) in list(proc.pending.items()):
                if dest == name:
                    del proc.pending[request_id]
                    fail = _failer(fut, NumaEmuError(ErrorCode.EIO, f"{name} is dead ({why})"))
                    if proc.name in self.stopped:  # it learns of the death once continued
                        self.stopped[proc.name].append(fail)
                    else:
                        fail()

    def notify(self, src: str, dest: str, notice: Notice) -> None:
        self._notify(src, dest, notice, "")

    # ---- partitions and stops (sim.faults decides when) -----------------------------------
    def cut(self, a: set[str], b: set[str]) -> None:
        """Lose every message between a process of `a` and one of `b`, both ways, from now on."""
        self.cuts.append((frozenset(a), frozenset(b)))
        self.note(f"PARTITION {' '.join(sorted(a))} | {' '.join(sorted(b))}")

    def heal(self) -> None:
        self.cuts.clear()
        self.note("PARTITION healed")

    def is_cut(self, src: str, dest: str) -> bool:
        return any((src in a and dest in b) or (src in b and dest in a) for a, b in self.cuts)

    def stop(self, name: str) -> None:
        """SIGSTOP: `name` takes no message and runs nothing until resume()."""
        if self.procs[name].alive and name not in self.stopped:
            self.stopped[name] = []
            self.note(f"STOP {name}")

    def resume(self, name: str) -> None:
        """SIGCONT: what came due meanwhile runs now, in order, and its queue is delivered."""
        deferred = self.stopped.pop(name, None)
        if deferred is None:
            return
        self.note(f"CONTINUE {name}")
        for fn in deferred:
            self.call_later(0.0, fn, owner=name)

    # ---- timers -------------------------------------------------------------------------
    def call_later(self, seconds: float, fn: Callable[[], None], owner: str = "") -> None:
        """Run `fn` in `seconds` of virtual time; a timer of a stopped `owner` waits for its resume."""
        heapq.heappush(self.timers, (self.now_ns + int(seconds * 1e9), next(self.seq), owner, fn))

    # ---- coroutines (as protocol.reactor.Reactor.spawn) ---------------------------------
    def _as_future(self, name: str, effect: Any) -> Future:
        if isinstance(effect, Future):
            return effect
        if isinstance(effect, Call):
            if effect.dest == name:
                return self._call_self(name, effect.request)
            return self.call(name, effect.dest, effect.request, effect.timeout_s)
        if isinstance(effect, (list, tuple)):
            return gather([self._as_future(name, e) for e in effect])
        if isinstance(effect, Sleep):
            fut = Future()
            self.call_later(effect.seconds, lambda: fut.set_result(None), owner=name)
            return fut
        if isinstance(effect, Spawn):
            self.spawn(name, effect.gen, self._spawned_done(name))
            done = Future()
            done.set_result(None)
            return done
        raise TypeError(f"a handler yielded {effect!r}; expected Call, list of Call, or Future")

    def _call_self(self, name: str, request) -> Future:
        """A call to the process itself, answered from its handler table without a message, as
        the reactor answers it (protocol.effects.answer_locally): no other delivery comes in
        between, so the seed cannot interleave what a real node runs in one go."""
        handler = self.procs[name].handlers.get(request.kind)
        if handler is None:
            raise Crash(f"{name} does not serve {request.kind!r} (a call to itself)")
        self.note(f"{name} calls itself: {request.kind}")

        def crashed(exc: BaseException) -> None:
            raise Crash(f"{name}: {request.kind} (a call to itself) failed: {exc.__class__.__name__}: {exc}") from exc

        return answer_locally(handler, request, lambda gen, done: self.spawn(name, gen, done), crashed)

    @staticmethod
    def _spawned_done(name: str) -> Callable[[Any, BaseException | None], None]:
        def done(_result: Any, exc: BaseException | None) -> None:
            if exc is not None and not isinstance(exc, NumaEmuError):
                raise Crash(f"{name}: spawned coroutine failed: {exc.__class__.__name__}: {exc}") from exc
        return done

    def spawn(self, name: str, gen: types.GeneratorType, done: Callable[[Any, BaseException | None], None]) -> None:
        self.running.add(gen)

        def finished(result: Any, exc: BaseException | None) -> None:
            self.running.discard(gen)
            done(result, exc)

        # a Violation or Crash is the run's end, not the handler's error: it goes up to deliver()
        drive(gen, lambda effect: self._as_future(name, effect), finished, passes=(Violation, Crash),
              alive=lambda: not self.closed)

    def close(self) -> None:
        """The run is over: the coroutines still waiting are closed now, while the memory their
        cleanup touches is still there (not later, whenever the garbage collector finds them)."""
        self.closed = True
        while self.running:
            gen = self.running.pop()
            try:
                gen.close()
            except Exception:  # noqa: BLE001 - a run that stopped mid-protocol: its cleanup may fail
                pass

    # ---- receiving ----------------------------------------------------------------------
    def _deliver(self, env: Envelope, direction: str) -> None:
        proc = self.procs[env.dest]
        if not proc.alive:
            self.note(f"{env.src} -> {env.dest} {env.kind} #{env.request_id} lost (dead)")
            if env.route:  # a forwarded request: its requester gets EIO (Reactor._fail_forwarded)
                self._reply(env.src, env.route, env.request_id, None,
                            NumaEmuError(ErrorCode.EIO, f"{env.dest} is dead: the {env.kind} forwarded there is lost"))
            return
        msg = decode(env.frames)
        if direction == REPLY:
            self.note(f"{env.src} -> {env.dest} {env.kind} #{env.request_id}"
                      + (f" {msg.code} {msg.message}" if isinstance(msg, ErrorReply) else ""))
            fut, _dest = proc.pending.pop(env.request_id, (None, ""))
            if fut is None:
                return  # the call was failed already (its destination died)
            if isinstance(msg, ErrorReply):
                fut.set_exception(msg.to_exception())
            else:
                fut.set_result(msg)
            return
        self.note(f"{env.src} -> {env.dest} {env.kind} #{env.request_id}")
        handler = proc.handlers.get(msg.kind)
        if handler is None:
            raise Crash(f"{env.dest} does not serve {msg.kind!r} (sent by {env.src})")
        if isinstance(msg, Notice):
            result = self._run_notice(env.dest, handler, msg)
            if isinstance(result, Answer):
                self._post(Envelope(next(self.seq), env.dest, env.route,
                                    encode_reply(result.reply, result.request_id, collections.Counter()),
                                    result.reply.kind, result.request_id), REPLY)
            return
        requester, request_id = env.src, env.request_id
        if self._knows_dead is not None and self._knows_dead(env.dest, requester):
            self.note(f"{env.dest}: {env.kind} #{request_id} from {requester}, dead, ignored")  # Reactor._serve
            return
        if self.resending and _between_nodes(requester, env.dest):
            key = (requester, request_id)
            if key in proc.served:  # a duplicate: served once, its reply sent again
                answered = proc.served[key]
                self.note(f"{env.dest}: duplicate of {env.kind} #{request_id} from {requester}"
                          + (", answered again" if answered else ", still being served"))
                if answered is not None:
                    self._post(answered, REPLY)
                return
            proc.served[key] = None
        try:
            result = handler(msg)
        except NumaEmuError as err:
            self._reply(env.dest, requester, request_id, None, err)
            return
        except Exception as err:
            raise Crash(f"{env.dest}: {msg.kind} failed: {err.__class__.__name__}: {err}") from err
        if isinstance(result, types.GeneratorType):
            self.spawn(env.dest, result, lambda res, exc: self._reply(env.dest, requester, request_id, res, exc))
        elif isinstance(result, Forward):
            notice = result.notice
            notice.route, notice.request_id = requester.encode(), request_id
            self._notify(env.dest, result.dest, notice, requester)
        elif isinstance(result, Future):
            result.add_done_callback(lambda f: self._reply(env.dest, requester, request_id, f.result, f.exception))
        else:
            self._reply(env.dest, requester, request_id, result, None)

    @staticmethod
    def _run_notice(name: str, handler: Handler, msg: Notice) -> Any:
        try:
            return handler(msg)
        except NumaEmuError:
            return None  # a notice has no one to answer; the reactor logs it likewise
        except Exception as err:
            raise Crash(f"{name}: notice {msg.kind} failed: {err.__class__.__name__}: {err}") from err

    # ---- the loop -----------------------------------------------------------------------
    def step(self) -> bool:
        """Deliver one message (or fire one due timer); False when nothing is left to do."""
        # the links a message can be delivered on now: none to a stopped process
        ready = ([i for i, k in enumerate(self.busy) if k[1] not in self.stopped] if self.stopped
                 else range(len(self.busy)))
        if self.timers and (not ready or self.timers[0][0] <= self.now_ns):
            due, _seq, owner, fn = heapq.heappop(self.timers)
            self.now_ns = max(self.now_ns, due)
            if owner in self.procs and not self.procs[owner].alive:
                pass  # a crashed process runs nothing more (its coroutines' sleeps and retries died with it)
            elif owner in self.stopped:
                self.stopped[owner].append(fn)
            else:
                fn()
                if self.after_timer is not None:
                    self.after_timer()
            return True
        if not ready:
            return False
        i = ready[self.rng.randrange(len(ready))]
        key = self.busy[i]
        link = self.links[key]
        env = link.popleft()
        if not link:
            self.busy.pop(i)
        self.now_ns += self.rng.randint(1, self.max_delay_us) * 1000
        if (self.drop or self.dup) and _between_nodes(env.src, env.dest) and not env.notice:
            if self.drop and self.rng.random() < self.drop:
                self.note(f"{env.src} -> {env.dest} {env.kind} #{env.request_id} DROPPED")
                self.dropped_ns.append(self.now_ns)
                return True
            if self.dup and self.rng.random() < self.dup:
                self.note(f"{env.src} -> {env.dest} {env.kind} #{env.request_id} DUPLICATED")
                self._post(env, key[2])
        self.delivered += 1
        self._deliver(env, key[2])
        if self.after_delivery is not None:
            self.after_delivery()
        return True

    def run(self, max_steps: int) -> None:
        """Deliver until nothing is in flight and no timer is left; a Violation past `max_steps`."""
        for _ in range(max_steps):
            if not self.step():
                return
        raise Violation(f"no quiescence after {max_steps} deliveries (a livelock, or a scenario too large)")


def _failer(fut: Future, exc: BaseException) -> Callable[[], None]:
    return lambda: fut.set_exception(exc)


def _between_nodes(a: str, b: str) -> bool:
    """Whether a message goes from one node to another: only those calls are retried and
    deduplicated by the reactor (protocol.peercalls), so only those are dropped or duplicated."""
    return a[:5] == "node:" and b[:5] == "node:" and a != b
