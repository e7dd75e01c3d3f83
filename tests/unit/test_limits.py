"""protocol.limits: the bounds every entry checks (issue 10, item 5), and what relies on them: the
latency table from the wire, the cost model, a task's clock, and a reply that cannot be packed."""
from __future__ import annotations

import collections
import math

import pytest

from numa_emu.protocol.costmodel import CostModel
from numa_emu.nodes.mm import TaskState
from numa_emu.nodes.pagetable import AddressSpace
from numa_emu.protocol import codec, limits
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.latency import LatencyTable
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.policy import Mode, Policy

TOPO = {"latency_ns": [[80, 135], [135, 80]], "bandwidth_mib_s": [[100000, 30000], [30000, 100000]]}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e20, 0, -1, True, "80", None])
def test_a_latency_out_of_range_names_option_value_and_range(value):
    with pytest.raises(NumaEmuError) as err:
        limits.LATENCY_NS.check(value, "latency set NS")
    shown = {math.nan: "nan", math.inf: "inf", -math.inf: "-inf", 1e20: "1e+20", "80": "'80'"}.get(value, str(value))
    assert err.value.code is ErrorCode.EINVAL
    assert err.value.message == f"latency set NS {shown} is out of range: expected a number in 0.001..1e+09 ns"


def test_whole_numbers_refuse_fractions_and_print_whole_ranges():
    assert limits.CPUS_PER_NODE.check(1024, "--cpus-per-node") == 1024
    with pytest.raises(NumaEmuError) as err:
        limits.CPUS_PER_NODE.check(2.0, "--cpus-per-node")
    assert err.value.message == "--cpus-per-node 2 is out of range: expected a whole number in 1..1024"


def test_a_scale_that_pushes_a_latency_past_the_limit_changes_nothing():
    t = LatencyTable.from_topology({"latency_ns": [[80, 1e4], [1e4, 80]], "bandwidth_mib_s": TOPO["bandwidth_mib_s"]})
    with pytest.raises(NumaEmuError) as err:
        t.scale(1e6)
    assert err.value.message == "scale factor 1e+06 makes latency 0->1 1e+10 is out of range: expected a number in " \
                                "0.001..1e+09 ns"
    assert t.latency_ns == [[80, 1e4], [1e4, 80]] and t.version == 1


@pytest.mark.parametrize("part, value, message", [
    ("latency_ns", 1e20, "latency table latency_ns[0][1] 1e+20 is out of range"),
    ("bandwidth_mib_s", 0.0, "latency table bandwidth_mib_s[0][1] 0 is out of range"),
    ("dilation", math.inf, "dilation inf is out of range"),
    ("jitter", {"*": ["normal", math.nan]}, "jitter spread (a fraction of the delay) nan is out of range"),
    ("jitter", {"7,0": ["normal", 0.1]}, "malformed latency table: jitter key '7,0' is not '*' or 'SRC,DST'"),
    ("bandwidth_mib_s", [[1.0]], "malformed latency table: bandwidth_mib_s is not 2 x 2"),
])
def test_a_table_from_the_wire_is_checked_like_a_change(part, value, message):
    wire = LatencyTable.from_topology(TOPO).to_wire()
    if part in ("latency_ns", "bandwidth_mib_s") and not isinstance(value, list):
        wire[part][0][1] = value
    else:
        wire[part] = value
    with pytest.raises(NumaEmuError) as err:
        LatencyTable.from_wire(wire)
    assert err.value.code is ErrorCode.EINVAL and err.value.message.startswith(message), err.value.message


def test_the_cost_model_refuses_an_unbounded_latency():
    with pytest.raises(NumaEmuError) as err:
        CostModel([[80, 1e300], [135, 80]], TOPO["bandwidth_mib_s"], 4096)
    assert err.value.message == "latency 0->1 1e+300 is out of range: expected a number in 0.001..1e+09 ns"


def test_a_task_clock_saturates_instead_of_overflowing():
    task = TaskState(1, 2, "t", 0, 0, Policy(Mode.DEFAULT, frozenset()), frozenset({0}), AddressSpace(4096), clock_ns=5)
    assert task.clock_ns == 5
    task.clock_ns += limits.CLOCK_MAX_NS
    assert task.clock_ns == limits.CLOCK_MAX_NS
    task.clock_ns += 10**20
    assert task.clock_ns == limits.CLOCK_MAX_NS == 2**63 - 1
    assert TaskState(1, 2, "t", 0, 0, Policy(Mode.DEFAULT, frozenset()), frozenset(), AddressSpace(4096)).clock_ns == 0


def test_a_reply_that_cannot_be_packed_is_encoded_as_an_error():
    stats: collections.Counter[str] = collections.Counter()
    frames = codec.encode_reply(lc.Pong(pid=10**20, role="node", name="n", uptime_s=0.0), 9, stats)
    reply = codec.decode(frames)
    assert (reply.kind, reply.code, reply.reply_to) == ("error", "EIO", 9)
    assert reply.message == "internal error: pong cannot be packed: OverflowError: Integer value out of range"
    assert stats == {"replies_unpackable": 1}
    ok = codec.decode(codec.encode_reply(lc.Pong(pid=1, role="node", name="n", uptime_s=0.0), 10, stats))
    assert (ok.kind, ok.reply_to, ok.pid) == ("pong", 10, 1)


def test_a_request_that_cannot_be_packed_is_einval_for_the_caller():
    """A client passing a number beyond 64 bits (task.mmap(1 << 70)) gets NumaEmuError, not OverflowError."""
    from numa_emu.protocol.messages import memory as mm

    with pytest.raises(NumaEmuError) as err:
        codec.encode(mm.Mmap(task_id=1, length=1 << 70, shared=False, name=None))
    assert err.value.code is ErrorCode.EINVAL
    assert err.value.message == "mem.mmap cannot be packed: OverflowError: Integer value out of range"


def test_an_integer_of_any_size_is_refused_in_one_line():
    with pytest.raises(NumaEmuError) as err:
        limits.NODES.check(10**5000, "--nodes")
    assert err.value.message == "--nodes a 16610-bit number is out of range: expected a whole number in 1..128"
    with pytest.raises(NumaEmuError):
        limits.LATENCY_NS.check(10**400, "latency")
