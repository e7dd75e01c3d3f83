"""What a pure core asks its server to do while a handler waits: effects and futures.

A handler of a pure core may be a generator. It yields a `Call` (send this request to that
destination, resume me with the reply), a list of Calls (send them all, resume me with the list
of replies), or a `Future` (resume me when it is resolved). A failed call is thrown into the
generator as a NumaEmuError. The server (protocol.reactor) performs the effects with real sockets;
a simulator could perform the same effects with a seeded, in-process network
(docs/design.md#pure-cores-and-effects). The core itself never touches a socket or a clock.
"""
from __future__ import annotations

from dataclasses import dataclass
import types
from typing import Any, Callable

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Notice, Ok, Reply, Request


@dataclass(frozen=True)
class Call:
    """Send `request` to `dest` ("coordinator", "node:3", ...) and wait for its reply."""

    dest: str
    request: Request
    timeout_s: float | None = None


@dataclass(frozen=True)
class Sleep:
    """Resume me after `seconds` (wall time on a real server; simulated time in a simulator)."""

    seconds: float


@dataclass(frozen=True)
class Spawn:
    """Start `gen` as a handler coroutine of its own and resume me at once (fire and forget:
    its result and errors are only logged). The unsafe 2007 ordering uses it to send unmaps
    without waiting for them."""

    gen: Any


@dataclass(frozen=True)
class Forward:
    """A request handler's answer "another process answers": send `notice` to `dest`, with the
    requester's routing id and request id filled in (its `route` and `request_id` fields); the
    receiver answers the requester directly, so this process sends no reply (IVY forwarding,
    docs/protocol.md#forwarded-access). The request's one reply is the receiver's."""

    dest: str
    notice: Notice
    # what the request reaches there ("page 0x... of task 7"), for the error if `dest` dies; or a
    # function that says it, called only then (naming it costs more than forwarding it)
    what: str | Callable[[], str] = ""


@dataclass(frozen=True)
class Answer:
    """A notice handler's reply to a request that another process forwarded to it: send `reply`
    to `route` (a peer of this process's ROUTER) as the reply to request `request_id`. In `real`
    mode it is held back for the link to `link` ("node:3"). When `route` is not connected here,
    the reply goes to `via` instead, which passes it on (a ReplyRelay)."""

    route: bytes
    request_id: int
    reply: Reply
    link: str | None = None
    via: str | None = None


class Future:
    """A value that arrives later; resolved exactly once, with a result or an exception."""

    __slots__ = ("done", "result", "exception", "_callbacks")

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self.exception: BaseException | None = None
        self._callbacks: list[Callable[["Future"], None]] = []

    def set_result(self, value: Any) -> None:
        if not self.done:
            self.done, self.result = True, value
            self._fire()

    def set_exception(self, exc: BaseException) -> None:
        if not self.done:
            self.done, self.exception = True, exc
            self._fire()

    def add_done_callback(self, fn: Callable[["Future"], None]) -> None:
        if self.done:
            fn(self)
        else:
            self._callbacks.append(fn)

    def _fire(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)


def gather(futures: list[Future]) -> Future:
    """A future of the list of results; fails with the first exception (after all settle)."""
    out = Future()
    remaining = [len(futures)]
    if not futures:
        out.set_result([])
        return out

    def settle(_: Future) -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            failed = next((f.exception for f in futures if f.exception is not None), None)
            if failed is not None:
                out.set_exception(failed)
            else:
                out.set_result([f.result for f in futures])

    for f in futures:
        f.add_done_callback(settle)
    return out


def drive(gen: types.GeneratorType, as_future: Callable[[Any], Future],
          done: Callable[[Any, BaseException | None], None], *, passes: tuple[type[BaseException], ...] = (),
          alive: Callable[[], bool] | None = None) -> None:
    """Run a handler generator to its end, the one way for the reactor and the simulator: each
    effect it yields becomes a Future (`as_future`), whose result or exception is sent back in;
    `done(result, exception)` at the end. An exception of a type in `passes` is not the handler's
    (the simulator's violations): it goes up to the caller. `alive()` false: the owner closed,
    the generator is left where it waits."""

    def step(value: Any = None, exc: BaseException | None = None) -> None:
        while alive is None or alive():
            try:
                effect = gen.throw(exc) if exc is not None else gen.send(value)
            except StopIteration as stop:
                done(stop.value, None)
                return
            except passes:
                raise
            except Exception as err:  # becomes an error reply in `done`
                done(None, err)
                return
            try:
                fut = as_future(effect)
            except passes:
                raise
            except Exception as err:
                value, exc = None, err
                continue
            if not fut.done:
                fut.add_done_callback(lambda f: step(f.result, f.exception))
                return
            value, exc = fut.result, fut.exception

    step()


def as_error(exc: BaseException) -> NumaEmuError:
    """What a caller sees of a handler's failure: its own NumaEmuError, or EIO naming the bug
    (the same text an error reply over the wire carries)."""
    if isinstance(exc, NumaEmuError):
        return exc
    return NumaEmuError(ErrorCode.EIO, f"internal error: {exc.__class__.__name__}: {exc}")


def answer_locally(handler: Callable[[Request], Any], request: Request,
                   spawn: Callable[[Any, Callable[[Any, BaseException | None], None]], None],
                   crashed: Callable[[BaseException], None]) -> Future:
    """A Call addressed to the process that yields it, answered from its own handler table
    without a message: the future of the reply the handler gives (a plain value, a generator
    driven by `spawn`, or a Future), or of its error. None becomes Ok, as on the wire;
    `crashed` hears of an exception that is not a NumaEmuError (a bug) before the caller does.
    One rule for every effect runner (the reactor, a simulator): services never ask "is that
    node me?" (docs/design.md#pure-cores-and-effects)."""
    fut = Future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if exc is not None:
            if not isinstance(exc, NumaEmuError):
                crashed(exc)
            fut.set_exception(as_error(exc))
        else:
            fut.set_result(Ok() if result is None else result)

    try:
        result = handler(request)
    except Exception as exc:  # noqa: BLE001 - handed to the caller as its call's error
        settle(None, exc)
        return fut
    if isinstance(result, types.GeneratorType):
        spawn(result, settle)
    elif isinstance(result, Future):
        result.add_done_callback(lambda f: settle(f.result, f.exception))
    elif isinstance(result, Forward):
        settle(None, NumaEmuError(ErrorCode.EINVAL, f"{request.kind} to itself cannot be forwarded"))
    else:
        settle(result, None)
    return fut
