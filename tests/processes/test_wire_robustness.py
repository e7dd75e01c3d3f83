"""Malformed, truncated, unknown, wrong-version and oversized input thrown at a live coordinator and
a live node: each gets an error reply where one is possible, is counted, and the process keeps serving."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numa_emu.protocol import codec
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.version import TAG

pytestmark = pytest.mark.cluster

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                     st.text(max_size=20), st.binary(max_size=40))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                       max_leaves=10)
_kinds = st.sampled_from(["ping", "node.register", "cluster.status", "node.heartbeat", "ok", "error", "nope", "", "mem.fault",
                         "mem.access.forward", "reply.relay", "proc.holds"])
_maps = st.dictionaries(st.one_of(st.text(max_size=12), st.integers(-(2**63), 2**63 - 1)), _values, max_size=6)
_envelopes = st.builds(lambda kind, m, i: {**m, "kind": kind, "id": i}, _kinds, _maps,
                       st.one_of(st.integers(0, 2**31), st.text(max_size=3)))
_frames = st.one_of(
    st.lists(st.binary(max_size=64), min_size=0, max_size=4),  # raw garbage, truncated
    st.tuples(st.just(TAG), st.binary(max_size=64)).map(list),  # right tag, garbage body
    _envelopes.map(lambda env: [TAG, msgpack.packb(env, use_bin_type=True)]),  # right tag, random maps
    st.tuples(st.sampled_from([b"NUMAEMU/2", b"NUMAEMU/0", b"HTTP/1.1"]), st.binary(max_size=8)).map(list),
)


def _endpoints(c):
    st_ = c.status()
    return {"coordinator": st_.coordinator["endpoint"], "node": st_.nodes[1]["endpoint"]}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    import os
    import tempfile
    from pathlib import Path

    from numa_emu.cluster import Cluster

    base = Path(tempfile.mkdtemp(prefix="ne-fz-", dir="/tmp"))
    c = Cluster("default-4n", name=f"fuzz{os.getpid()}", base=base).start()
    yield c
    c.stop()
    import shutil

    shutil.rmtree(base, ignore_errors=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=_frames, target=st.sampled_from(["coordinator", "node"]))
def test_random_frames_get_an_error_and_the_process_keeps_serving(live, frames, target):
    endpoint = _endpoints(live)[target]
    with live.client(3.0, endpoint) as client:
        client.send_raw(frames) if frames else client.send_raw([b""])
        # every reply that comes back for garbage is an error reply (never a crash or silence-then-death)
        reply = client.recv_raw(timeout_s=0.5)
        if reply is not None:
            msg = codec.decode(reply[1:] if reply and reply[0] == b"" else reply)  # REQ-style delimiter echoed
            assert msg.kind in ("error", "pong", "ok", "cluster.status.reply", "node.register.reply", "proc.holds.reply"), msg
        pong = client.call(lc.Ping())
        assert isinstance(pong, lc.Pong)


@pytest.mark.parametrize("target", ["coordinator", "node"])
def test_wrong_version_is_refused_naming_both_versions(live, target):
    with live.client(endpoint=_endpoints(live)[target]) as client:
        client.send_raw([b"NUMAEMU/2", codec.pack({"kind": "ping", "id": 7})])
        msg = codec.decode(client.recv_raw(timeout_s=3.0))
        assert msg.kind == "error" and msg.code == "EPROTO"
        assert "NUMAEMU/2" in msg.message and "NUMAEMU/1" in msg.message
        stats = client.call(lc.ProcStats()).stats
        assert stats["bad_messages.EPROTO"] >= 1


@pytest.mark.parametrize("target", ["coordinator", "node"])
def test_oversized_unknown_and_malformed_are_counted(live, target):
    with live.client(endpoint=_endpoints(live)[target]) as client:
        before = client.call(lc.ProcStats()).stats.get("bad_messages", 0)
        cases = [
            ([TAG, b"\x00" * (codec.MAX_ENVELOPE_BYTES + 1)], "EMSGSIZE"),
            ([TAG, codec.pack({"kind": "no.such.kind", "id": 9})], "EINVAL"),
            ([TAG, codec.pack({"kind": "ping", "id": 10, "extra": 1})], "EINVAL"),
            ([TAG, b"\xc1\xc1"], "EINVAL"),
            ([TAG], "EPROTO"),
        ]
        for frames, code in cases:
            client.send_raw(frames)
            msg = codec.decode(client.recv_raw(timeout_s=3.0))
            assert (msg.kind, msg.code) == ("error", code), msg
        after = client.call(lc.ProcStats()).stats["bad_messages"]
        assert after - before == len(cases)
        assert isinstance(client.call(lc.Ping()), lc.Pong)
