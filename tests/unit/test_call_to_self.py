"""A Call a process addresses to itself is answered from its own handler table
(protocol.effects.answer_locally): the handler's reply whatever its form (a value, None, a
generator, a Future), its NumaEmuError as is, and a crash as the EIO an error reply would carry."""
from __future__ import annotations

import pytest

from numa_emu.protocol.effects import Future, answer_locally
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import memory as mm


def spawn_sync(gen, done):
    """Drive a generator whose effects are all settled futures (enough for these handlers)."""
    value = None
    while True:
        try:
            fut = gen.send(value)
        except StopIteration as stop:
            done(stop.value, None)
            return
        except Exception as exc:  # noqa: BLE001 - handed to `done`, as the reactor does
            done(None, exc)
            return
        value = fut.result


def answer(handler, crashes=None):
    fut = answer_locally(handler, mm.FrameRead(frame=1, offset=0, length=2), spawn_sync,
                         (crashes if crashes is not None else []).append)
    assert fut.done
    return fut


def test_a_plain_reply_and_none_as_ok():
    reply = mm.FrameReadReply(data=b"ab")
    assert answer(lambda msg: reply).result is reply
    assert answer(lambda msg: None).result == Ok()


def test_a_generator_handler_is_driven_to_its_reply():
    def handler(msg):
        ready = Future()
        ready.set_result(3)
        n = yield ready
        return mm.FrameReadReply(data=bytes(n))

    assert answer(handler).result == mm.FrameReadReply(data=b"\0\0\0")


def test_a_future_handler_resolves_the_call_later():
    later = Future()
    fut = answer_locally(lambda msg: later, mm.FrameRead(frame=1, offset=0, length=2), spawn_sync, print)
    assert not fut.done
    later.set_result(Ok())
    assert fut.done and fut.result == Ok()


@pytest.mark.parametrize("generator", [False, True])
def test_errors_reach_the_caller_and_a_crash_is_eio(generator):
    def refuse(msg):
        if generator:
            yield from ()
        raise NumaEmuError(ErrorCode.ESTALE, "frame 1 was freed")

    def crash(msg):
        if generator:
            yield from ()
        raise KeyError(7)

    crashes: list = []
    assert answer(refuse, crashes).exception.code == ErrorCode.ESTALE and crashes == []
    err = answer(crash, crashes).exception
    assert (err.code, err.message) == (ErrorCode.EIO, "internal error: KeyError: 7")
    assert [type(c) for c in crashes] == [KeyError]
