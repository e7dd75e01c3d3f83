"""The architecture of docs/design.md#layout-and-the-dependency-rule, checked: one top-level
import name (numa_emu) whose parts live in the folders at the top of the repository, protocol
imports nothing of ours, nodes and coordinator never import each other, and the CLI never imports
the daemons' internals. Inside a node: no service sets an attribute on another (collaborators are
constructor arguments) or uses its private methods, and its handler table has one handler per
kind."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# folder at the top of the repository -> its import name (pyproject.toml maps one to the other)
FOLDERS = {
    "protocol": "numa_emu.protocol",
    "nodes": "numa_emu.nodes",
    "coordinator": "numa_emu.coordinator",
    "sim": "numa_emu.sim",
    "numa_emu": "numa_emu",
    "topologies": "numa_emu.topologies",
    "experiments": "numa_emu.experiment_specs",
}
FORBIDDEN = {
    "protocol": {"nodes", "coordinator", "numa_emu", "sim"},
    "nodes": {"coordinator", "numa_emu", "sim"},
    "coordinator": {"nodes", "numa_emu", "sim"},
    "numa_emu": {"nodes", "coordinator", "sim"},  # `numa-emu sim` starts `python -m numa_emu.sim`
    "sim": {"numa_emu"},  # the simulator runs nodes/ and coordinator/ in one process; only its tests import it
}
_PARTS = {name.split(".")[1]: folder for folder, name in FOLDERS.items() if "." in name}


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_every_part_resolves_to_its_folder(folder):
    module = importlib.import_module(FOLDERS[folder])
    assert Path(module.__file__).resolve().parent == ROOT / folder


def test_every_package_folder_is_installed():
    """A package folder missing from pyproject's list would work here and be absent when installed."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed


def test_the_only_top_level_import_name_is_numa_emu(tmp_path):
    """A user's own protocol.py, nodes.py, coordinator.py or experiments.py beside a workload
    script does not break numa_emu (Python puts the script's folder first on sys.path)."""
    for name in ("protocol", "nodes", "coordinator", "experiments", "topologies"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('the user\\'s own module was imported')\n")
    script = ("import numa_emu, numa_emu.protocol.reactor, numa_emu.nodes.server, numa_emu.coordinator.server, sys; "
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'protocol', 'nodes', 'coordinator', "
              "'experiments', 'topologies'}))")
    (tmp_path / "workload.py").write_text(script + "\n")
    out = subprocess.run([sys.executable, str(tmp_path / "workload.py")], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, "[]\n", "")


def _imports(path: Path):
    """The parts of ours (by folder name) and the other top-level names that `path` imports."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"numa_emu.{a.name}" for a in node.names] if node.module == "numa_emu" else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "numa_emu" and len(parts) > 1 and parts[1] in _PARTS:
                yield _PARTS[parts[1]]
            else:
                yield parts[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_rule(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_nothing_imports_a_folder_by_its_own_name():
    """Folders are parts of numa_emu: `import protocol` would work in the repository only."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if {".venv", ".git", "build"} & set(path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in set(FOLDERS) - {"numa_emu"}]
    assert not bad, bad


def test_every_module_opens_with_a_docstring():
    missing = []
    for package in FOLDERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text())) is None:
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, missing


# The plain records a node's services share and update field by field (a task, its address
# space and regions, a directory entry, a cached page, a file's state, the replication switches):
# every other object's attributes are set only by its own class (docs/design.md#pure-cores-and-effects).
# scan: a task's NUMA balancing scanner state (nodes.balancing.TaskScan)
RECORDS = {"task", "space", "region", "entry", "page", "state", "tunables", "args", "scan"}  # args: argparse


def _foreign_attribute_writes(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            targets = [ast.Attribute(value=node.args[0], attr="?")]
            ast.copy_location(targets[0], node)
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                if not isinstance(t, ast.Attribute):
                    continue
                owner = t.value
                if isinstance(owner, ast.Name) and (owner.id == "self" or owner.id in RECORDS):
                    continue
                yield f"{path.relative_to(ROOT)}:{t.lineno}: {ast.unparse(t)}"


def test_no_service_attribute_is_assigned_from_outside_its_class():
    """`pcache.replication = ...` after construction hid who needs whom: a service gets its
    collaborators as constructor arguments (nodes/node.py builds them in order) and changes
    another only through its methods."""
    bad = [w for path in sorted((ROOT / "nodes").rglob("*.py")) for w in _foreign_attribute_writes(path)]
    assert bad == []


def _private_reaches(path: Path):
    """`self.<collaborator>._<private>`: one service reaching into another's private parts."""
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"):
            yield f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"


def test_services_use_each_others_public_methods_only():
    """`self.repl._collapse(...)` from master_move.py tied two services by a private detail."""
    bad = [w for path in sorted((ROOT / "nodes").rglob("*.py")) for w in _private_reaches(path)]
    assert bad == []


def test_the_attribute_check_bites():
    probe = ROOT / "nodes" / "_probe_layout.py"
    try:
        probe.write_text("def f(self, core, entry):\n    self.core.cost = 1\n    core.forwarding = False\n"
                         "    entry.node = 3\n    setattr(core, 'weights', {})\n")
        assert [w.split(": ", 1)[1] for w in _foreign_attribute_writes(probe)] == [
            "self.core.cost", "core.forwarding", "core.?"]
    finally:
        probe.unlink()


def test_a_handler_table_is_keyed_by_message_class_and_refuses_one_registered_twice():
    from numa_emu.nodes.node import HandlerTable
    from numa_emu.protocol.messages import REGISTRY, Ok

    table = HandlerTable()
    table.add("frame.read", print)
    with pytest.raises(ValueError, match="two handlers for 'frame.read'"):
        table.add(REGISTRY["frame.read"], repr)
    with pytest.raises(ValueError, match="two handlers for 'frame.read'"):
        table.add_all({"frame.write": repr, "frame.read": repr})
    with pytest.raises(ValueError, match="'no.such.kind' is not a request or notice"):
        table.add("no.such.kind", repr)
    with pytest.raises(ValueError, match="is not a request or notice"):
        table.add(Ok, repr)
    assert table[REGISTRY["frame.read"]] is print and table.by_kind()["frame.read"] is print


def test_a_node_has_one_handler_per_message_kind():
    """Building a Node registers every service's table once (a kind twice would raise); every
    kind it serves is a request or notice class of protocol.messages."""
    from numa_emu.nodes.framepool import FramePool
    from numa_emu.nodes.node import Node
    from numa_emu.protocol.messages import REGISTRY, Reply
    from numa_emu.protocol.topology import from_cli

    pool = FramePool(4, 4096)
    try:
        node = Node(0, from_cli(2, 1, "16KiB").to_dict(), pool, None, lambda: 0)
        kinds = set(node.handlers.by_kind())
        assert {"dir.read", "pte.shootdown", "mem.access", "dir.migrate", "mem.move_pages", "frame.alloc",
                "node.stats", "node.sysctl", "node.task.adopt", "mem.fsync"} <= kinds
        assert all(REGISTRY[cls.kind] is cls and not issubclass(cls, Reply) for cls in node.handlers)
    finally:
        pool.close()
