"""The [faults] table of experiment files (numa_emu/experiments/faults.py)."""
from __future__ import annotations

import pytest

from numa_emu.experiments.spec import load_spec
from numa_emu.protocol.errors import NumaEmuError

BASE = '[experiment]\nname = "f"\n[grid]\nworkload = ["chase"]\n'


def load(tmp_path, faults: str):
    path = tmp_path / "exp.toml"
    path.write_text(BASE + "[faults]\n" + faults)
    return load_spec(path)


def test_faults_become_the_coordinators_changes_in_order(tmp_path):
    spec = load(tmp_path, 'seed = 7\ndrop = 0.1\ndup = { p = 0.5, node = 1 }\n'
                          'delay = [{ p = 0.5, ms = 5 }, { p = 1, ms = 50, link = [0, 3] }]\n'
                          'partition = [[0, 1], [2, 3]]\n')
    assert spec.faults == (("seed", {"seed": 7}), ("drop", {"p": 0.1}), ("dup", {"p": 0.5, "node": 1}),
                           ("delay", {"p": 0.5, "ms": 5}), ("delay", {"p": 1, "ms": 50, "src": 0, "dst": 3}),
                           ("partition", {"a": [0, 1], "b": [2, 3]}))
    assert spec.to_dict()["faults"][0] == ["seed", {"seed": 7}]


@pytest.mark.parametrize("faults, text", [
    ("drop = 2", "faults.drop: probability 2 is out of range"),
    ("burn = 0.1", "faults.burn: unknown key"),
    ("dup = { node = 1 }", "faults.dup.p: missing"),
    ("dup = { p = 0.1, node = 9 }", "node 9 is not a node of this cluster (0..3) (on default-4n)"),
    ("reorder = { p = 0.1, link = [1] }", "faults.reorder.link: expected [SRC, DST]"),
    ("partition = [[0], [0]]", "on both sides"),
    ("seed = -1", "--seed -1 is out of range"),
])
def test_bad_faults_name_the_key(tmp_path, faults, text):
    with pytest.raises(NumaEmuError) as err:
        load(tmp_path, faults + "\n")
    assert text in err.value.message, err.value.message
