"""Numbers out of range thrown at a live cluster (issue 10, item 5): `latency set 0 1 1e20` used to
overflow the virtual clock while the node packed its reply, and the node exited for good. The CLI
refuses such a value with one line, the coordinator and the nodes refuse it over the wire alike,
and afterwards every node is alive and serves a remote read at exactly the modeled cost."""
from __future__ import annotations

import json
import math

import pytest

import numa_emu
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.latency import LatencyTable
from numa_emu.protocol.messages import latency as lm

pytestmark = pytest.mark.cluster
PAGE = 4096


def _every_node_serves_a_remote_read(c) -> None:
    status = c.status()
    assert [n["state"] for n in status.nodes] == ["up"] * c.topology.n_nodes
    topo = c.topology
    for node in range(topo.n_nodes):
        far = (node + 1) % topo.n_nodes
        with numa_emu.attach(topo.cpus_of(node)[0], cluster=c.name) as task:
            region = task.mmap(PAGE)
            region.mbind("bind", [far])
            region.write(0, b"still-up")
            t0 = task.clock_ns()
            assert region.read(0, 8) == b"still-up"
            bw = topo.bandwidth_mib_s[node][far] * 1048576 / 1e9
            assert task.clock_ns() - t0 == round(topo.latency_ns[node][far] + 8 / bw)


def test_latency_set_1e20_is_refused_and_every_node_still_serves(cluster_factory, cli):
    c = cluster_factory("default-4n")
    before = cli("latency", "--name", c.name, "show", "--json", check=True).stdout
    proc = cli("latency", "--name", c.name, "set", "0", "1", "1e20")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("numa-emu latency set: error: argument ns: 1e+20 is out of range: "
                                   "expected a number in 0.001..1e+09 ns")
    assert cli("latency", "--name", c.name, "show", "--json", check=True).stdout == before
    _every_node_serves_a_remote_read(c)


@pytest.mark.parametrize("op, args, message", [
    ("set", {"src": 0, "dst": 1, "ns": 1e20}, "latency 1e+20 is out of range: expected a number in 0.001..1e+09 ns"),
    ("set", {"src": 0, "dst": 1, "ns": math.inf}, "latency inf is out of range: expected a number in 0.001..1e+09 ns"),
    ("set", {"src": 0, "dst": 1, "ns": math.nan}, "latency nan is out of range: expected a number in 0.001..1e+09 ns"),
    ("set", {"src": 0, "dst": 1, "ns": "80"}, "latency '80' is out of range: expected a number in 0.001..1e+09 ns"),
    ("scale", {"factor": 1e300}, "scale factor 1e+300 is out of range: expected a number in 0.001..1e+06"),
    ("inject", {"mode": "real", "dilation": math.inf}, "dilation inf is out of range: expected a number in 0.001..1e+06"),
    ("jitter", {"distribution": "normal", "spread": 1e20},
     "jitter spread (a fraction of the delay) 1e+20 is out of range: expected a number in 0..10"),
])
def test_a_crafted_latency_change_over_the_wire_is_refused(cluster_factory, op, args, message):
    c = cluster_factory("default-4n")
    with c.client() as client:
        before = client.call(lm.LatencyShow()).table
        with pytest.raises(NumaEmuError) as err:
            client.call(lm.LatencyChange(op=op, args=args))
        assert err.value.code is ErrorCode.EINVAL and message in err.value.message, err.value.message
        assert client.call(lm.LatencyShow()).table == before
    _every_node_serves_a_remote_read(c)


@pytest.mark.parametrize("cell", [1e20, math.inf])
def test_a_crafted_latency_table_sent_to_a_node_is_refused(cluster_factory, cell):
    """The coordinator is not the only one who can reach a node: the node checks a table itself."""
    c = cluster_factory("default-4n")
    with c.client() as client:
        table = client.call(lm.LatencyShow()).table
    bad = json.loads(json.dumps(table))
    bad["latency_ns"][0][1] = cell
    for node in c.status().nodes:
        with c.client(endpoint=node["endpoint"]) as client:
            with pytest.raises(NumaEmuError) as err:
                client.call(lm.NodeLatency(table=bad))
        assert err.value.code is ErrorCode.EINVAL
        assert err.value.message == (f"latency table latency_ns[0][1] {cell:g} is out of range: "
                                     f"expected a number in 0.001..1e+09 ns")
    assert LatencyTable.from_wire(table).latency_ns[0][1] == c.topology.latency_ns[0][1]
    _every_node_serves_a_remote_read(c)
