"""The architecture of docs/design.md#layout-and-the-dependency-rule, checked: the top-level
packages resolve inside this project,
protocol imports nothing of ours, nodes and coordinator never import each other, and the CLI
never imports the daemons' internals."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "protocol": {"nodes", "coordinator", "numa_emu", "sim"},
    "nodes": {"coordinator", "numa_emu", "sim"},
    "coordinator": {"nodes", "numa_emu", "sim"},
    "numa_emu": {"nodes", "coordinator", "sim"},  # `numa-emu sim` starts `python -m sim`
    "sim": {"numa_emu"},  # the simulator runs nodes/ and coordinator/ in one process; only its tests import it
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN) + ["topologies", "experiments"])
def test_top_level_packages_resolve_inside_the_project(package):
    module = importlib.import_module(package)
    assert Path(module.__file__).resolve().parent == ROOT / package


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_rule(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_every_module_opens_with_a_docstring():
    missing = []
    for package in list(FORBIDDEN) + ["topologies", "experiments"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text())) is None:
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, missing
