"""The machine as data (protocol/topology.py, protocol/topology_shapes.py): shipped files,
validation, the TOML loader's error messages, the CLI builder and the parametric shapes."""
from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.topology import (DEFAULT_TOPOLOGY_NAME, SHAPES, NodeSpec, Topology, TopologyError, build_shape,
                               derive_latency_ns, from_cli, load_topology, loads_topology, make_topology,
                               validate)
from numa_emu.protocol.units import parse_bandwidth_mib_s

GB_S = parse_bandwidth_mib_s("1GB/s")
EXPECTED_NODES = {"default-4n": 4, "2s-skylake": 2, "2s-icelake": 2, "4s-opteron-2007": 4, "2s-epyc-nps4": 8,
                  "cxl-expander": 3, "16n-large": 16, "4s-clx-pmem": 8}


def shipped() -> dict[str, object]:
    return {entry.name[:-5]: entry for entry in resources.files("numa_emu.topologies").iterdir()
            if entry.name.endswith(".toml")}


# --- shipped files -----------------------------------------------------------------------


def test_every_shipped_file_loads_and_is_sane():
    files = shipped()
    assert set(EXPECTED_NODES) <= set(files)
    for name, entry in files.items():
        topo = load_topology(entry)
        assert topo.name == name, "a file's name key matches its file name"
        assert topo.n_nodes == EXPECTED_NODES.get(name, topo.n_nodes)
        assert all(topo.distances[i][i] == 10 for i in range(topo.n_nodes))
        assert topo.source.strip() and topo.description.strip(), f"{name} must cite its sources"
        assert topo.cpu_nodes, name
        assert Topology.from_dict(json.loads(json.dumps(topo.to_dict()))) == topo


def test_default_topology_is_the_observed_qemu_machine():
    topo = load_topology(shipped()[DEFAULT_TOPOLOGY_NAME])
    assert topo.n_nodes == 4
    assert topo.distances == ((10, 16, 21, 21), (16, 10, 21, 21), (21, 21, 10, 16), (21, 21, 16, 10))
    assert [node.cpus for node in topo.nodes] == [(0,), (1,), (2,), (3,)]
    assert [node.mem_bytes for node in topo.nodes] == [512 << 20] * 4
    assert topo.latency_ns[0] == (74.0, 146.0, 190.0, 190.0)


def test_shipped_numbers_come_through():
    files = shipped()
    sky = load_topology(files["2s-skylake"])
    assert sky.latency_ns == ((80.0, 135.0), (135.0, 80.0))
    assert sky.bandwidth_mib_s[0] == (110 * GB_S, 34 * GB_S)
    assert sky.cpus == tuple(range(8)) and sky.node_of_cpu(5) == 1 and sky.pages(0) == 262144
    opteron = load_topology(files["4s-opteron-2007"])
    assert opteron.latency_ns[0] == (80.0, 128.0, 128.0, 176.0)  # derived: 80 * d / 10
    cxl = load_topology(files["cxl-expander"])
    assert cxl.memory_only_nodes == {2} and cxl.cpus_of(2) == ()
    assert cxl.distances[2] == (255, 255, 10)
    assert cxl.latency_ns[0][2] == 279.0 and cxl.latency_ns[1][2] == 364.0
    assert cxl.bandwidth_mib_s[0][2] == pytest.approx(17.6 * GB_S)
    pmem = load_topology(files["4s-clx-pmem"])
    assert pmem.memory_only_nodes == {4, 5, 6, 7} and pmem.pages(4) == 1536 * 256


# --- the dataclass -----------------------------------------------------------------------


def two_nodes(**overrides) -> dict:
    data = {"name": "t", "description": "", "source": "", "page_size": 4096,
            "nodes": [{"id": 0, "cpus": [0, 1], "mem_bytes": 1 << 20}, {"id": 1, "cpus": [2, 3], "mem_bytes": 1 << 20}],
            "distances": [[10, 20], [20, 10]], "latency_ns": [[80, 160], [160, 80]],
            "bandwidth_mib_s": [[100, 50], [50, 100]]}
    data.update(overrides)
    return data


def test_topology_api():
    topo = Topology.from_dict(two_nodes())
    assert topo.n_nodes == 2 and topo.node_ids == {0, 1} and topo.cpus == (0, 1, 2, 3)
    assert [topo.node_of_cpu(c) for c in range(4)] == [0, 0, 1, 1]
    assert topo.pages(1) == 256 and topo.cpus_of(1) == (2, 3)
    assert topo.latency_ns == ((80.0, 160.0), (160.0, 80.0))
    assert isinstance(topo.latency_ns[0][0], float)
    assert json.loads(json.dumps(topo.to_dict())) == topo.to_dict()
    assert hash(topo) == hash(Topology.from_dict(topo.to_dict()))
    for bad in (4, -1, "0", None, True):
        with pytest.raises(NumaEmuError) as err:
            topo.node_of_cpu(bad)
        assert err.value.code is ErrorCode.EINVAL
    with pytest.raises(NumaEmuError, match="no node 2"):
        topo.pages(2)


def test_from_dict_derives_missing_matrices():
    data = two_nodes()
    del data["latency_ns"], data["bandwidth_mib_s"]
    topo = Topology.from_dict(data)
    assert topo.latency_ns == ((80.0, 160.0), (160.0, 80.0))
    assert topo.bandwidth_mib_s[0] == (110 * GB_S, 34 * GB_S)


def test_nodespec_sorts_cpus():
    assert NodeSpec(id=0, cpus=[3, 1, 2], mem_bytes=4096).cpus == (1, 2, 3)


@pytest.mark.parametrize("overrides, message", [
    ({"distances": [[12, 20], [20, 10]]}, "distances[0][0]: local distance of node 0 must be 10, got 12"),
    ({"distances": [[10, 9], [20, 10]]}, "distances[0][1]: distance 9 is outside 10..254 (255 = unreachable)"),
    ({"distances": [[10, 256], [20, 10]]}, "distances[0][1]: distance 256 is outside"),
    ({"distances": [[10, 20], [20]]}, "distances: row 1 has 1 values, expected 2"),
    ({"distances": [[10, 20]]}, "distances: 1 rows, expected 2 (one per node)"),
    ({"distances": [[10, 20.0], [20, 10]]}, "distances[0][1]: distance must be an integer, got 20.0"),
    ({"distances": [[10, True], [20, 10]]}, "distances[0][1]: distance must be an integer, got True"),
    ({"distances": [[10, 20], [20, 255]]}, "distances[1][1]: local distance of node 1 must be 10, got 255"),
    ({"latency_ns": [[80, 0], [160, 80]]}, "latency_ns[0][1]: 0 is out of range: expected a number in 0.001..1e+09 ns"),
    ({"latency_ns": [[80, -1], [160, 80]]}, "latency_ns[0][1]: -1 is out of range"),
    ({"latency_ns": [[80, math.nan], [160, 80]]}, "latency_ns[0][1]: nan is out of range"),
    ({"latency_ns": [[80, 1e308], [160, 80]]}, "latency_ns[0][1]: 1e+308 is out of range"),
    ({"latency_ns": [[80, math.inf], [160, 80]]}, "latency_ns[0][1]: inf is out of range"),
    ({"bandwidth_mib_s": [[100, 1e-300], [100, 100]]},
     "bandwidth_mib_s[0][1]: 1e-300 is out of range: expected a number in 1..1e+09 MiB/s"),
    ({"nodes": [{"id": 0, "cpus": list(range(1025)), "mem_bytes": 4096}, {"id": 1, "cpus": [2000], "mem_bytes": 4096}]},
     "nodes[0].cpus: 1025 cpus, at most 1024 per node"),
    ({"nodes": [{"id": 0, "cpus": [0], "mem_bytes": 4096}, {"id": 1, "cpus": [8192], "mem_bytes": 4096}]},
     "nodes[1].cpus: cpu 8192 is not an integer in 0..8191"),
    ({"nodes": [{"id": 0, "cpus": [0], "mem_bytes": 4096 << 24}, {"id": 1, "cpus": [1], "mem_bytes": 4096 << 25}]},
     "nodes[1].mem_bytes: 33554432 pages of 4096 bytes, expected 1..16777216 pages per node"),
    ({"latency_ns": [[80, 160]]}, "latency_ns: 1 rows, expected 2"),
    ({"bandwidth_mib_s": [[100, 50], [0, 100]]}, "bandwidth_mib_s[1][0]: 0 is out of range"),
    ({"page_size": 1000}, "page_size: must be a power of two between 512"),
    ({"page_size": 256}, "page_size: must be a power of two"),
    ({"nodes": []}, "nodes: a topology needs at least one node"),
    ({"nodes": [{"id": 1, "cpus": [0], "mem_bytes": 4096}, {"id": 0, "cpus": [1], "mem_bytes": 4096}]},
     "nodes[0].id: expected 0, got 1"),
    ({"nodes": [{"id": 0, "cpus": [0, 3], "mem_bytes": 4096}, {"id": 1, "cpus": [3], "mem_bytes": 4096}]},
     "nodes[1].cpus: cpu 3 also on node 0"),
    ({"nodes": [{"id": 0, "cpus": [1, 1], "mem_bytes": 4096}, {"id": 1, "cpus": [2], "mem_bytes": 4096}]},
     "nodes[0].cpus: cpu 1 twice on this node"),
    ({"nodes": [{"id": 0, "cpus": [-1], "mem_bytes": 4096}, {"id": 1, "cpus": [2], "mem_bytes": 4096}]},
     "nodes[0].cpus: cpu -1 is not an integer in 0..8191"),
    ({"nodes": [{"id": 0, "cpus": [0], "mem_bytes": 0}, {"id": 1, "cpus": [2], "mem_bytes": 4096}]},
     "nodes[0].mem_bytes: memory must be a positive number of bytes, got 0"),
    ({"nodes": [{"id": 0, "cpus": [0], "mem_bytes": 4096}, {"id": 1, "cpus": [2], "mem_bytes": 6000}]},
     "nodes[1].mem_bytes: 6000 bytes is not a whole number of 4096-byte pages"),
    ({"nodes": [{"id": 0, "cpus": [], "mem_bytes": 4096}, {"id": 1, "cpus": [], "mem_bytes": 4096}]},
     "nodes: at least one node must have CPUs"),
    ({"nodes": [{"id": 0, "cpus": "0", "mem_bytes": 4096}]}, "nodes[0].cpus: expected a list of cpu ids"),
    ({"colour": "blue"}, "colour: unknown key"),
])
def test_validation_rejects(overrides, message):
    with pytest.raises(TopologyError) as err:
        Topology.from_dict(two_nodes(**overrides))
    assert err.value.code is ErrorCode.EINVAL
    assert message in err.value.message, err.value.message


def test_direct_construction_is_validated_too():
    good = Topology.from_dict(two_nodes())
    with pytest.raises(TopologyError, match=r"topology 't': distances\[1\]\[1\]"):
        Topology(name="t", description="", source="", page_size=4096, nodes=good.nodes,
                 distances=((10, 20), (20, 11)), latency_ns=good.latency_ns, bandwidth_mib_s=good.bandwidth_mib_s)
    validate(good)


def test_asymmetric_slit_and_off_diagonal_ten_are_allowed():
    topo = Topology.from_dict(two_nodes(distances=[[10, 10], [30, 10]], latency_ns=None, bandwidth_mib_s=None))
    assert topo.latency_ns == ((80.0, 80.0), (240.0, 80.0))
    assert topo.bandwidth_mib_s[0][1] == topo.bandwidth_mib_s[0][0]  # distance 10: numa=fake siblings


def test_derived_latency_of_unreachable_pairs():
    # CPU-less node 1: its row is 255 (no initiator); cost copies out of it like copies in.
    assert derive_latency_ns([[10, 50], [255, 10]], 100.0) == ((100.0, 500.0), (500.0, 100.0))
    # both directions unreachable: the farthest reachable distance of the machine (60).
    lat = derive_latency_ns([[10, 60, 50], [60, 10, 255], [50, 255, 10]], 100.0)
    assert lat[1][2] == lat[2][1] == 600.0


@st.composite
def slits(draw, max_nodes: int = 6):
    n = draw(st.integers(min_value=1, max_value=max_nodes))
    cells = st.integers(min_value=10, max_value=255)
    return [[10 if i == j else draw(cells) for j in range(n)] for i in range(n)]


def nodes_for(n: int) -> list[NodeSpec]:
    return [NodeSpec(id=i, cpus=(i,), mem_bytes=1 << 20) for i in range(n)]


@given(slits())
def test_any_valid_slit_is_accepted_and_round_trips(matrix):
    topo = make_topology(name="h", nodes=nodes_for(len(matrix)), distances=matrix)
    assert Topology.from_dict(topo.to_dict()) == topo
    assert all(v > 0 for row in topo.latency_ns for v in row)


@given(slits(), st.data())
def test_every_broken_slit_is_rejected(matrix, data):
    n = len(matrix)
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1))
    if i == j:
        bad = data.draw(st.integers(-5, 300).filter(lambda v: v != 10))
    else:
        bad = data.draw(st.one_of(st.integers(-5, 9), st.integers(256, 10**6), st.floats(10, 200),
                                  st.booleans(), st.text(max_size=2)))
    matrix[i][j] = bad
    with pytest.raises(TopologyError, match=rf"distances\[{i}\]\[{j}\]"):
        make_topology(name="h", nodes=nodes_for(n), distances=matrix)


@given(slits(), st.integers(0, 5), st.sampled_from(["drop_row", "short_row", "long_row"]))
def test_every_misshapen_slit_is_rejected(matrix, k, how):
    n = len(matrix)
    if how == "drop_row":
        del matrix[k % n]
    elif how == "short_row":
        matrix[k % n].pop()
    else:
        matrix[k % n].append(20)
    with pytest.raises(TopologyError):
        make_topology(name="h", nodes=nodes_for(n), distances=matrix)


# --- TOML files: every error names the file and the key ----------------------------------

GOOD = """
name = "t"
source = "test"
[slit]
matrix = [[10, 20], [20, 10]]
[[nodes]]
id = 0
cpus = "0-1"
mem = "1MiB"
[[nodes]]
id = 1
cpus = [2, 3]
mem = 1048576
"""


def test_minimal_file_gets_defaults():
    topo = loads_topology(GOOD)
    assert topo.page_size == 4096 and topo.description == ""
    assert topo.latency_ns == ((80.0, 160.0), (160.0, 80.0))
    assert topo.bandwidth_mib_s == ((110 * GB_S, 34 * GB_S), (34 * GB_S, 110 * GB_S))


@pytest.mark.parametrize("old, new, message", [
    ('cpus = [2, 3]', 'cpus = [1, 3]', "nodes[1].cpus: cpu 1 also on node 0"),
    ('cpus = [2, 3]', 'cpus = "2-x"', "nodes[1].cpus: invalid cpu list '2-x'"),
    ('cpus = [2, 3]', 'cpus = 2', "nodes[1].cpus: expected a list string"),
    ('mem = 1048576', 'mem = "1 GB/s"', "nodes[1].mem: invalid size '1 GB/s'"),
    ('mem = 1048576', 'mem = "5000"', "nodes[1].mem: 5000 bytes is not a whole number of 4096-byte pages"),
    ('mem = 1048576', 'size = 1', "nodes[1].size: unknown key (expected one of: id, cpus, mem)"),
    ('id = 1', 'id = 2', "nodes[1].id: expected 1, got 2"),
    ('[[10, 20], [20, 10]]', '[[10, 20], [20, 11]]', "slit.matrix[1][1]: local distance of node 1 must be 10"),
    ('[[10, 20], [20, 10]]', '[[10, 20], [20]]', "slit.matrix: row 1 has 1 values, expected 2"),
    ('[[10, 20], [20, 10]]', '[[10, 20]]', "slit.matrix: 1 rows, expected 2 (one per node)"),
    ('[slit]', '[slot]', "slot: unknown key"),
    ('matrix =', 'table =', "slit.table: unknown key"),
    ('name = "t"', 'name = ""', "name: must be a non-empty string"),
    ('name = "t"', '', "name: missing"),
    ('source = "test"', 'page_size = "3KiB"', "page_size: must be a power of two"),
    ('source = "test"', 'page_size = "big"', "page_size: invalid size 'big'"),
])
def test_file_errors_name_file_and_key(tmp_path, old, new, message):
    path = tmp_path / "broken.toml"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    assert err.value.message.startswith(f"{path}: "), err.value.message
    assert message in err.value.message, err.value.message


@pytest.mark.parametrize("extra, message", [
    ('[latency]\nlocal_ns = 0\n', "latency.local_ns: must be positive"),
    ('[latency]\nlocal_ns = "fast"\n', "latency.local_ns: invalid duration 'fast'"),
    ('[latency]\nmatrix_ns = [[80, "slow"], [90, 80]]\n', "latency.matrix_ns[0][1]: invalid duration 'slow'"),
    ('[latency]\nmatrix_ns = [[80, 0], [90, 80]]\n', "latency.matrix_ns[0][1]: 0 is out of range"),
    ('[latency]\nmatrix_ns = [[80, 1e308], [90, 80]]\n',
     "latency.matrix_ns[0][1]: 1e+308 is out of range: expected a number in 0.001..1e+09 ns"),
    ('[latency]\nmatrix_ns = [[80, 90]]\n', "latency.matrix_ns: 1 rows, expected 2"),
    ('[latency]\nlocal_ns = 80\nmatrix_ns = [[80, 90], [90, 81]]\n', "latency.matrix_ns[1][1]: 81 differs from "
                                                                      "latency.local_ns = 80"),
    ('[latency]\nremote_ns = 80\n', "latency.remote_ns: unknown key (expected one of: local_ns, matrix_ns)"),
    ('[bandwidth]\nremote = "34GB"\n', "bandwidth.remote: invalid bandwidth '34GB'"),
    ('[bandwidth]\nremote = "1GB/s"\nmatrix_mib_s = [[1, 1], [1, 1]]\n', "bandwidth.remote: give either"),
    ('[bandwidth]\nmatrix_mib_s = [[1, -1], [1, 1]]\n', "bandwidth.matrix_mib_s[0][1]: invalid bandwidth"),
    ('[bandwidth]\nmatrix_mib_s = 5\n', "bandwidth.matrix_mib_s: expected a matrix"),
    ('latency = 5\n', "latency: expected a table [latency], got int"),
])
def test_cost_table_errors(extra, message):
    if not extra.startswith("["):
        text = extra + GOOD
    else:
        text = GOOD.replace("[[nodes]]", extra + "[[nodes]]", 1)
    with pytest.raises(TopologyError) as err:
        loads_topology(text, where="x.toml")
    assert err.value.message.startswith("x.toml: "), err.value.message
    assert message in err.value.message, err.value.message


def test_cost_tables_in_files():
    text = GOOD.replace("[[nodes]]", '[latency]\nlocal_ns = "90ns"\n[bandwidth]\nlocal = "1GiB/s"\n'
                        'matrix_mib_s = [["1GiB/s", 5], [5, 1024]]\n[[nodes]]', 1)
    topo = loads_topology(text)
    assert topo.latency_ns == ((90.0, 180.0), (180.0, 90.0))
    assert topo.bandwidth_mib_s == ((1024.0, 5.0), (5.0, 1024.0))


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(TopologyError, match=r"^EINVAL: y.toml: not valid TOML"):
        loads_topology("name = ", where="y.toml")
    missing = tmp_path / "nope.toml"
    with pytest.raises(NumaEmuError) as err:
        load_topology(missing)
    assert err.value.code is ErrorCode.ENOENT and str(missing) in err.value.message
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(TopologyError, match="not UTF-8"):
        load_topology(binary)


# --- numa-emu up --nodes N ... -----------------------------------------------------------

EPYC_ROWS = "10,16,21,21;16,10,21,21;21,21,10,16;21,21,16,10"


def test_from_cli():
    topo = from_cli(4, 2, "256MiB", distances=EPYC_ROWS)
    assert topo.distances[1] == (16, 10, 21, 21)
    assert [n.cpus for n in topo.nodes] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert topo.pages(3) == 65536 and topo.latency_ns[0][2] == 168.0
    flat = from_cli("2", "1", 1 << 20)
    assert flat.distances == ((10, 20), (20, 10)) and flat.name == "cli-2n"
    assert from_cli(3, 1, "1MiB", distance=16).distances[2] == (16, 16, 10)
    assert from_cli(1, 1, "64KiB", page_size="64KiB", local_latency_ns="100ns").latency_ns == ((100.0,),)


@pytest.mark.parametrize("kwargs, message", [
    ({"distances": "10,16,21,21;16,10,21;21,21,10,16;21,21,16,10"}, "--distances: row 1 has 3 values, expected 4"),
    ({"distances": "10,16,21,21;16,10,21,21;21,21,10,16"}, "--distances: 3 rows, expected 4 (one per node)"),
    ({"distances": "10,16,21,21;16,10,21,21;21,21,10,16;21,21,16,x"}, "--distances: row 3: 'x' is not a whole"),
    ({"distances": EPYC_ROWS.replace("16,10,21,21", "16,12,21,21")},
     "--distances: row 1, column 1: local distance of node 1 must be 10, got 12"),
    ({"distances": EPYC_ROWS.replace("10,16,21,21", "10,9,21,21")}, "--distances: row 0, column 1: distance 9"),
    ({"distance": 5}, "--distance: distance 5 is outside 10..254"),
    ({"distance": 20, "distances": EPYC_ROWS}, "--distance and --distances cannot be used together"),
    ({"nodes": 0}, "--nodes: expected an integer of at least 1 and at most 128, got 0"),
    ({"nodes": 129}, "--nodes: expected an integer"),
    ({"cpus_per_node": 0}, "--cpus-per-node: expected an integer of at least 1"),
    ({"mem_per_node": "lots"}, "--mem-per-node: invalid size 'lots'"),
    ({"mem_per_node": "1000"}, "--mem-per-node: 1000 bytes is not a whole number of 4096-byte pages"),
    ({"mem_per_node": 0}, "--mem-per-node: memory must be a positive number"),
    ({"page_size": 100}, "--page-size: must be a power of two"),
    ({"local_latency_ns": 0}, "--local-latency: must be positive"),
])
def test_from_cli_errors_name_the_option(kwargs, message):
    args = {"nodes": 4, "cpus_per_node": 1, "mem_per_node": "1MiB", **kwargs}
    with pytest.raises(TopologyError) as err:
        from_cli(**args)
    assert err.value.message.startswith(message), err.value.message


# --- parametric shapes -------------------------------------------------------------------


def test_shapes():
    assert set(SHAPES) == {"ring", "mesh", "full", "fake"}
    ring = build_shape("ring,8")
    assert ring.name == "ring,8" and ring.distances[0] == (10, 16, 22, 28, 34, 28, 22, 16)
    assert ring.latency_ns[0][1] == 128.0 and ring.cpus == tuple(range(16)) and ring.pages(0) == 262144
    small = build_shape("ring,4,mem=256MiB,cpus=1,hop=10")
    assert small.distances[0] == (10, 20, 30, 20) and small.cpus == (0, 1, 2, 3) and small.pages(0) == 65536
    mesh = build_shape("mesh,3x3")
    assert mesh.distances[0] == (10, 16, 22, 16, 22, 28, 22, 28, 34)
    assert mesh.distances[4] == (22, 16, 22, 16, 10, 16, 22, 16, 22)
    assert build_shape("mesh,2,3").n_nodes == 6 and build_shape("mesh,2").n_nodes == 4
    full = build_shape("full,4")
    assert all(d == 20 for i, row in enumerate(full.distances) for j, d in enumerate(row) if i != j)
    assert build_shape("full,3,distance=32").distances[0] == (10, 32, 32)
    fake = build_shape("fake,4")
    assert all(d == 10 for row in fake.distances for d in row)
    assert len({v for row in fake.latency_ns for v in row}) == 1
    assert len({v for row in fake.bandwidth_mib_s for v in row}) == 1
    assert build_shape(" ring , 3 ").n_nodes == 3


@pytest.mark.parametrize("spec, message", [
    ("star,4", "unknown shape 'star': known shapes are fake, full, mesh, ring"),
    ("", "unknown shape ''"),
    ("ring", "shape 'ring': expected 1 argument(s) before the options, got 0"),
    ("ring,4,5", "shape 'ring,4,5': expected 1 argument(s)"),
    ("ring,4,colour=red", "shape 'ring,4,colour=red': unknown option 'colour' (known: hop, mem, cpus"),
    ("ring,mem=1GiB,4", "shape 'ring,mem=1GiB,4': positional argument '4' after options"),
    ("ring,100", "shape 'ring,100': 50 hops at hop=6 give distance 310, above 254; use a smaller hop"),
    ("ring,0", "shape 'ring': nodes: expected an integer of at least 1"),
    ("ring,x", "shape 'ring': nodes: expected an integer"),
    ("ring,4,cpus=0", "shape 'ring,4,cpus=0': cpus: expected an integer of at least 1"),
    ("ring,4,mem=lots", "shape 'ring,4,mem=lots': mem: invalid size 'lots'"),
    ("mesh,12x12", "shape 'mesh': 12x12 is 144 nodes, at most 128"),
    ("fake,4,mem=16MiB", "shape 'fake,4,mem=16MiB': mem: 16MiB is below the minimum 32MiB"),
    ("full,4,distance=5", "shape 'full,4,distance=5': distances[0][1]: distance 5 is outside"),
])
def test_shape_errors(spec, message):
    with pytest.raises(TopologyError) as err:
        build_shape(spec)
    assert err.value.code is ErrorCode.EINVAL
    assert err.value.message.startswith(message), err.value.message


# --- layering: stdlib only, and cheap to import ------------------------------------------

MINE = ["units.py", "nodemask.py", "topology.py", "topology_shapes.py", "zonelist.py"]


def test_modules_import_only_stdlib_and_protocol():
    root = Path(__file__).resolve().parents[2] / "protocol"
    for name in MINE:
        tree = ast.parse((root / name).read_text())
        assert ast.get_docstring(tree), f"{name} needs a docstring saying its place"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top == "protocol" or top in sys.stdlib_module_names or top == "__future__", (name, module)


def test_importing_the_core_does_not_load_toml_or_the_builders():
    code = ("import sys, protocol.topology, protocol.zonelist, protocol.units, protocol.nodemask; "
            "print(sorted(m for m in ('tomllib', 'numa_emu.protocol.topology_shapes', 'typing') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
