"""The architecture of docs/design.md#layout-and-the-dependency-rule, checked: the top-level
packages resolve inside this project,
protocol imports nothing of ours, nodes and coordinator never import each other, and the CLI
never imports the daemons' internals. Inside a node: no service sets an attribute on another
(collaborators are constructor arguments) or uses its private methods, and its handler table has
one handler per kind."""
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


# The plain records a node's services share and update field by field (a task, its address
# space and regions, a directory entry, a cached page, a file's state, the replication switches):
# every other object's attributes are set only by its own class (docs/design.md#pure-cores-and-effects).
RECORDS = {"task", "space", "region", "entry", "page", "state", "tunables", "args"}  # args: argparse


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


def test_a_handler_table_refuses_a_kind_registered_twice():
    from numa_emu.nodes.node import HandlerTable

    table = HandlerTable()
    table.add("frame.read", print)
    with pytest.raises(ValueError, match="two handlers for 'frame.read'"):
        table.add("frame.read", repr)
    with pytest.raises(ValueError, match="two handlers for 'frame.read'"):
        table.add_all({"frame.write": repr, "frame.read": repr})
    assert table["frame.read"] is print


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
        kinds = set(node.handlers)
        assert {"dir.read", "pte.shootdown", "mem.access", "dir.migrate", "mem.move_pages", "frame.alloc",
                "node.stats", "node.sysctl", "node.task.adopt", "mem.fsync"} <= kinds
        assert [k for k in sorted(kinds) if k not in REGISTRY or issubclass(REGISTRY[k], Reply)] == []
    finally:
        pool.close()
