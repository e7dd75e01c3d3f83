"""Placement of nodes on hosts and the endpoint a peer is reached at (protocol/hosts.py), the
refusal to bind beyond loopback without keys (protocol.keys.check_bind): plain function calls."""
from __future__ import annotations

import pytest

from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.hosts import Host, hosts_from_table, parse_hosts, pick_endpoint, place, socket_groups
from numa_emu.protocol.keys import check_bind
from numa_emu.protocol.topology import build_shape


def _nodes(hosts):
    return {h.name: list(h.nodes) for h in hosts}


def test_sockets_are_the_groups_at_distance_ten():
    d = [[10, 10, 21, 21], [10, 10, 21, 21], [21, 21, 10, 10], [21, 21, 10, 10]]
    assert socket_groups(d) == [[0, 1], [2, 3]]
    assert socket_groups([[10, 20], [20, 10]]) == [[0], [1]]


def test_default_spread_in_order_as_evenly_as_sockets_allow():
    ring8 = build_shape("ring,8").distances
    assert _nodes(place(parse_hosts("a,b"), ring8)) == {"a": [0, 1, 2, 3], "b": [4, 5, 6, 7]}
    assert _nodes(place(parse_hosts("a,b,c"), ring8)) == {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7]}
    two_sockets = [[10, 10, 10, 21, 21, 21]] * 3 + [[21, 21, 21, 10, 10, 10]] * 3
    assert _nodes(place(parse_hosts("a,b"), two_sockets)) == {"a": [0, 1, 2], "b": [3, 4, 5]}
    # more hosts than sockets: a socket is never split, the hosts left over get nothing
    assert _nodes(place(parse_hosts("a,b,c"), two_sockets)) == {"a": [0, 1, 2], "b": [3, 4, 5]}


def test_a_hosts_table_places_as_it_says_and_keeps_sockets_whole():
    table = {"x": {"address": "127.0.0.2", "nodes": "0,2", "home": "/h/x"}, "y": {"nodes": "1,3", "python": "/py"}}
    hosts = place(hosts_from_table(table, 4), [[10, 20, 20, 20], [20, 10, 20, 20], [20, 20, 10, 20], [20, 20, 20, 10]])
    assert hosts == [Host("x", "127.0.0.2", (0, 2), "/h/x", ""), Host("y", "y", (1, 3), "", "/py")]
    fake = [[10, 10], [10, 10]]
    with pytest.raises(NumaEmuError) as err:
        place(hosts_from_table({"x": {"nodes": "0"}, "y": {"nodes": "1"}}, 2), fake)
    assert err.value.message == "[hosts]: nodes [0, 1] share a socket (distance 10) but are placed on x, y"


@pytest.mark.parametrize("table, message", [
    ({"x": {"nodes": "0"}, "y": {}}, "[hosts]: give nodes for every host or for none"),
    ({"x": {"nodes": "0-1"}, "y": {"nodes": "1"}}, "[hosts]: node 1 is on both x and y"),
    ({"x": {"nodes": "0"}, "y": {"nodes": "9"}}, "[hosts].y.nodes: no node 9 (nodes 0-1)"),
    ({"x": {"port": 22}}, "[hosts].x.port: unknown key (expected one of: address, nodes, home, python)"),
    ({"x": {"address": 7}}, "[hosts].x.address: expected a string, got 7"),
    ({"x": "127.0.0.2"}, "[hosts].x: expected a table with address, nodes, home, python"),
    ({}, "[hosts]: expected one [hosts.NAME] table per host"),
])
def test_bad_hosts_tables_say_what_is_wrong(table, message):
    with pytest.raises(NumaEmuError) as err:
        place(hosts_from_table(table, 2), [[10, 20], [20, 10]])
    assert err.value.message == message


def test_a_node_placed_on_no_host_is_refused():
    with pytest.raises(NumaEmuError) as err:
        place(hosts_from_table({"x": {"nodes": "0"}}, 2), [[10, 20], [20, 10]])
    assert err.value.message == "[hosts]: node 1 is on no host"


def test_user_at_host_keeps_the_user_for_ssh_and_binds_the_address():
    assert parse_hosts("me@node1,node2") == [Host("me@node1", "node1"), Host("node2", "node2")]


def test_ipc_on_the_same_host_tcp_from_another():
    ipc, tcp = "ipc:///h/a/c/run/node-0.sock", "tcp://127.0.0.2:5000"
    assert pick_endpoint("a", ipc, tcp, "a") == ipc
    assert pick_endpoint("a", ipc, tcp, "b") == tcp
    assert pick_endpoint("", ipc, "", "") == ipc  # a single-host cluster
    assert pick_endpoint("a", ipc, "", "b") == ipc  # nothing else to offer


def test_binding_beyond_loopback_needs_the_keys():
    for ok in ("tcp://127.0.0.1:0", "tcp://127.0.0.3:5000", "tcp://localhost:1", "tcp://[::1]:0", "ipc:///tmp/x"):
        check_bind(ok, None)
    with pytest.raises(NumaEmuError) as err:
        check_bind("tcp://10.1.2.3:0", None)
    assert err.value.message == ("refusing to bind tcp://10.1.2.3:0 without the cluster's CURVE keys: anyone on the "
                                 "network could talk to it; start it through numa-emu up")
    with pytest.raises(NumaEmuError):
        check_bind("tcp://*:5555", None)


def test_a_cluster_of_another_host_in_a_shared_home_is_reached_over_tcp_and_never_cleaned(tmp_path, monkeypatch):
    import json

    from numa_emu import cluster
    from numa_emu.protocol.clusterdir import MARKER_FILE

    monkeypatch.setenv("NUMA_EMU_HOST", "login1")
    cdir = tmp_path / "c1"
    cdir.mkdir()
    (cdir / MARKER_FILE).write_text("")
    data = {"name": "c1", "coordinator": {"pid": 1, "endpoint": "ipc:///x/run/coordinator.sock", "host": "login0",
                                          "tcp_endpoint": "tcp://10.0.0.1:5000"}, "nodes": [], "agents": []}
    (cdir / "cluster.json").write_text(json.dumps(data))
    info = cluster.find("c1", tmp_path)
    assert (info.endpoint, info.host) == ("tcp://10.0.0.1:5000", "login1")
    assert (cdir / "cluster.json").exists()  # pid 1 is not its coordinator here, and that is no staleness
