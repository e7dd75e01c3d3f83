"""The codec and the message registry: every kind round-trips; bad envelopes are refused with codes."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_emu.protocol import codec
from numa_emu.protocol.errors import ErrorCode
from numa_emu.protocol.messages import REGISTRY
from numa_emu.protocol.version import TAG

_BY_TYPE = {
    int: st.integers(-(2**63), 2**63 - 1),
    float: st.floats(allow_nan=False, allow_infinity=False),
    str: st.text(max_size=30),
    bytes: st.binary(max_size=64),
    bool: st.booleans(),
    list: st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
    dict: st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=5),
}


def _strategy_for(cls):
    fields = {}
    for name, accepted, _required in cls._fields:
        options = [_BY_TYPE[t] for t in accepted if t in _BY_TYPE]
        if type(None) in accepted:
            options.append(st.none())
        fields[name] = st.one_of(*options) if options else st.none()
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


@pytest.mark.parametrize("kind", sorted(REGISTRY))
@given(data=st.data())
def test_every_kind_round_trips(kind, data):
    msg = data.draw(_strategy_for(REGISTRY[kind]))
    assert codec.decode(codec.encode(msg)) == msg


def test_every_request_declares_its_reply_class():
    from numa_emu.protocol.messages import Reply, Request

    for cls in REGISTRY.values():
        if issubclass(cls, Request):
            assert issubclass(cls.reply, Reply), cls


@pytest.mark.parametrize(
    "frames, code, fragment",
    [
        ([TAG], ErrorCode.EPROTO, "truncated"),
        ([b"NUMAEMU/9", b""], ErrorCode.EPROTO, "peer speaks NUMAEMU/9, this process speaks NUMAEMU/1"),
        ([b"GET /", b""], ErrorCode.EPROTO, "not a numa-emu message"),
        ([TAG, b"\xc1"], ErrorCode.EINVAL, "malformed envelope"),
        ([TAG, codec.pack([1, 2])], ErrorCode.EINVAL, "expected a map"),
        ([TAG, codec.pack({"id": 1})], ErrorCode.EINVAL, "no 'kind'"),
        ([TAG, codec.pack({"kind": "zzz", "id": 4})], ErrorCode.EINVAL, "unknown message kind 'zzz'"),
        ([TAG, codec.pack({"kind": "node.heartbeat", "id": 4, "node_id": "x", "frames_free": 1, "frames_total": 1})],
         ErrorCode.EINVAL, "field 'node_id' has type str"),
        ([TAG, codec.pack({"kind": "node.heartbeat", "id": 4, "node_id": True, "frames_free": 1, "frames_total": 1})],
         ErrorCode.EINVAL, "field 'node_id' has type bool"),
        ([TAG, codec.pack({"kind": "node.heartbeat", "id": 4})], ErrorCode.EINVAL, "missing field"),
    ],
)
def test_bad_frames_are_refused_with_a_code(frames, code, fragment):
    with pytest.raises(codec.WireError) as err:
        codec.decode(frames)
    assert err.value.code == code
    assert fragment in err.value.message


def test_request_id_survives_a_bad_field_so_the_sender_can_be_answered():
    with pytest.raises(codec.WireError) as err:
        codec.decode([TAG, codec.pack({"kind": "ping", "id": 42, "bogus": 1})])
    assert err.value.request_id == 42


def test_a_field_too_many_in_place_of_a_missing_one_is_refused():
    """As many fields as the kind has, one of them unknown: refused for the unknown one, and
    not taken as a complete message."""
    with pytest.raises(codec.WireError) as err:
        codec.decode([TAG, codec.pack({"kind": "node.heartbeat", "id": 4, "node_id": 1, "frames_free": 1,
                                       "bogus": 2})])
    assert err.value.code == ErrorCode.EINVAL
    assert err.value.message == "node.heartbeat: unknown field(s) bogus"
    assert err.value.request_id == 4


def test_a_request_id_that_is_not_an_integer_is_not_reported():
    with pytest.raises(codec.WireError) as err:
        codec.decode([TAG, codec.pack({"kind": "ping", "id": True, "bogus": 1})])
    assert err.value.request_id is None


def test_a_message_with_every_field_and_one_with_defaults_decode_alike():
    from numa_emu.protocol.messages import memory as mm

    full = mm.Access(task_id=3, vaddr=4096, length=8, data=None, direct=False, id=9)
    sparse = codec.decode([TAG, codec.pack({"kind": "mem.access", "id": 9, "task_id": 3, "vaddr": 4096, "length": 8})])
    assert codec.decode(codec.encode(full)) == sparse == full
    assert sparse.__dict__.keys() == full.__dict__.keys()


def test_a_message_that_cannot_be_packed_leaves_the_next_one_whole():
    """The codec keeps one msgpack Packer per thread: a failed pack must not leave bytes behind."""
    import threading

    import msgpack

    from numa_emu.protocol.errors import NumaEmuError
    from numa_emu.protocol.messages import memory as mm

    with pytest.raises(NumaEmuError) as err:
        codec.encode(mm.Access(task_id=1 << 70, vaddr=0, length=8))
    assert err.value.code == ErrorCode.EINVAL
    assert err.value.message == "mem.access cannot be packed: OverflowError: Integer value out of range"
    ok = mm.Access(task_id=3, vaddr=4096, length=8, id=5)
    expected = [TAG, msgpack.packb(ok.to_wire(), use_bin_type=True)]
    assert codec.encode(ok) == expected
    elsewhere: list = []
    thread = threading.Thread(target=lambda: elsewhere.append(codec.encode(ok)))
    thread.start()
    thread.join()
    assert elsewhere == [expected]


def test_messages_are_dataclasses_with_id():
    for cls in REGISTRY.values():
        assert dataclasses.is_dataclass(cls)
        assert "id" in {f.name for f in dataclasses.fields(cls)}
