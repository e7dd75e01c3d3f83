"""On a real cluster: sysctl -w sets several keys at once (procps's spelling), latency jitter none
clears a jitter as spread 0 does, latency scale replaces an earlier set (as its help says),
hardware --json matches the text form's numbers."""
from __future__ import annotations

import json

import pytest

from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.topology_shapes import from_cli

pytestmark = pytest.mark.cluster
W0, W1 = cm.weight_key(0), cm.weight_key(1)


@pytest.fixture
def two(cluster_factory):
    return cluster_factory(from_cli(2, 1, "16MiB"))


def test_sysctl_w_sets_several_keys_at_once(two, cli):
    proc = cli("sysctl", "--name", two.name, "-w", f"{W0}=5", f"{W1}=2", "vm.numa_stat=0", check=True)
    assert proc.stdout == f"{W0} = 5\n{W1} = 2\nvm.numa_stat = 0\n"
    assert cli("sysctl", "--name", two.name, "-n", W0, W1, "vm.numa_stat", check=True).stdout == "5\n2\n0\n"
    proc = cli("sysctl", "--name", two.name, "-w", f"{W0}=7", f"{W1}=300")  # all or nothing
    assert proc.returncode == 3 and proc.stderr.startswith(f"numa-emu: error: {W1}: weight 300 outside 1..255")
    assert cli("sysctl", "--name", two.name, "-n", W0, check=True).stdout == "5\n"


def _latency(cli, c, *args: str) -> dict:
    return json.loads(cli("latency", "--name", c.name, *args, "--json", check=True).stdout)


def test_jitter_none_clears_and_scale_replaces_an_earlier_set(two, cli):
    assert _latency(cli, two, "jitter", "normal", "0.2")["jitter"] == {"*": ["normal", 0.2]}
    assert _latency(cli, two, "jitter", "uniform", "0.1", "0", "1")["jitter"] == {"*": ["normal", 0.2],
                                                                                   "0,1": ["uniform", 0.1]}
    assert _latency(cli, two, "jitter", "none", "0", "1")["jitter"] == {"*": ["normal", 0.2]}
    assert _latency(cli, two, "jitter", "none")["jitter"] == {}
    base = two.topology.latency_ns
    assert _latency(cli, two, "set", "0", "1", "1000")["latency_ns"][0][1] == 1000.0
    table = _latency(cli, two, "scale", "2")
    assert table["latency_ns"] == [[2.0 * v for v in row] for row in base]  # the set is undone: x2 of the topology's
    assert _latency(cli, two, "scale", "2")["latency_ns"] == table["latency_ns"]  # twice is still x2
    _latency(cli, two, "set", "0", "0", "50")
    remote_only = _latency(cli, two, "scale", "3", "--remote-only")["latency_ns"]
    assert remote_only == [[50.0, 3.0 * base[0][1]], [3.0 * base[1][0], 2.0 * base[1][1]]]  # locals kept


def test_hardware_json_has_the_clusters_free_memory(two, cli):
    got = json.loads(cli("hardware", "--name", two.name, "--json", check=True).stdout)
    text = cli("hardware", "--name", two.name, check=True).stdout
    assert [n["id"] for n in got["nodes"]] == [0, 1] and got["fallback"] == [[0, 1], [1, 0]]
    for n in got["nodes"]:
        assert f"node {n['id']} size: {n['size_bytes'] >> 20} MB" in text
        assert f"node {n['id']} free: {n['free_bytes'] >> 20} MB" in text
        assert 0 < n["free_bytes"] <= n["size_bytes"] == 16 << 20
