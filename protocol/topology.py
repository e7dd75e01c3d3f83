"""The machine as data: nodes, CPUs, memory, the SLIT and the latency/bandwidth matrices.

Part of ``protocol/``: the coordinator loads a topology, every node process receives it
(``Topology.to_dict`` / ``from_dict``) and costs each access and copy from it. This module
holds the dataclasses, their validation and the derived matrices. The ways of building a
topology from text (TOML files under ``topologies/``, ``numa-emu up --nodes N ...``,
shape specs like "ring,8") live in ``protocol/topology_shapes.py``; ``load_topology``,
``loads_topology``, ``from_cli``, ``build_shape`` and ``SHAPES`` are re-exported from here
lazily, because every node process imports this module at start-up and needs none of
them. Stdlib only.

Topology file schema (docs/topology-format.md; a complete example: ``topologies/2s-skylake.toml``)::

    name = "2s-skylake"                # required
    description = "..."                # optional, one paragraph
    source = "..."                     # where the numbers come from (docs/machines.md, a paper)
    page_size = "4KiB"                 # optional, default 4KiB; power of two >= 512

    [slit]                             # required: the ACPI SLIT, numactl -H "node distances"
    matrix = [[10, 21], [21, 10]]      # N x N ints; diagonal 10; 10..254, 255 = unreachable

    [latency]                          # optional: idle access latency, initiator row -> target column
    local_ns = 80                      # default 80 (docs/machines.md#presets); number (ns) or "80ns"
    matrix_ns = [[80, 135], [135, 80]] # optional measured (HMAT-like) matrix; else derived:
                                       #   lat(i, j) = local_ns * d(i, j) / 10 (docs/machines.md#slit-tables)

    [bandwidth]                        # optional: link bandwidth, initiator row -> target column
    local = "110GB/s"                  # default 110GB/s; strings with units, bare numbers = MiB/s
    remote = "34GB/s"                  # default 34GB/s, every pair with distance > 10
    # matrix_mib_s = [[...], [...]]    # or a full matrix (entries may be "17.6GB/s" strings)

    [[nodes]]                          # one table per node, ids 0..N-1 in order
    id = 0
    cpus = "0-3"                       # kernel list string or array of ints; "" = memory-only
    mem = "1GiB"                       # size with unit; a whole number of pages

Semantics worth knowing:

- Asymmetric SLITs are accepted (real firmware ships them; so does ACPI).
- Derived latency of an unreachable (255) pair uses the reverse direction if that one is
  reachable, else the largest reachable distance of the machine. Derived bandwidth is
  ``local`` on the diagonal and for off-diagonal distance 10 (numa=fake nodes sharing one
  socket, docs/linux-semantics.md#numa-fake), ``remote`` everywhere else, 255 pairs included.
- A memory-only node (no CPUs, e.g. CXL) starts no accesses; give its row anyway (the
  shipped files mirror its column) so a page copy can be costed in either direction.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from numa_emu.protocol import limits
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.nodemask import format_nodelist
from numa_emu.protocol.units import parse_bandwidth_mib_s

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

LOCAL_DISTANCE = 10  # ACPI SLIT / kernel LOCAL_DISTANCE
REMOTE_DISTANCE = 20  # kernel REMOTE_DISTANCE, QEMU NUMA_DISTANCE_DEFAULT (docs/linux-semantics.md#qemu-numa)
MAX_DISTANCE = 254  # QEMU NUMA_DISTANCE_MAX
UNREACHABLE_DISTANCE = 255  # ACPI SLIT "no route", QEMU NUMA_DISTANCE_UNREACHABLE
MAX_NODES = int(limits.NODES.hi)  # QEMU MAX_NODES; each node is a process here
DEFAULT_PAGE_SIZE = 4096
MAX_PAGE_SIZE = 1 << 30
# The 2s-skylake preset of docs/machines.md#presets (Intel MLC): used when nothing else is said.
DEFAULT_LOCAL_LATENCY_NS = 80.0
DEFAULT_LOCAL_BANDWIDTH = "110GB/s"
DEFAULT_REMOTE_BANDWIDTH = "34GB/s"
DEFAULT_TOPOLOGY_NAME = "default-4n"

Matrix = tuple[tuple[float, ...], ...]


class TopologyError(NumaEmuError):
    """A topology that cannot be used; always EINVAL, the message names file and key."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.EINVAL, message)


class _Keys:
    """How errors name what they check: dataclass fields, TOML keys or CLI options.

    A plain class, not a dataclass: every dataclass costs import time in each node process.
    """

    __slots__ = ("where", "distances", "latency", "bandwidth", "page_size", "nodes", "cell_fmt", "node_fmt",
                 "node_fields")

    def __init__(self, *, where: str = "", distances: str = "distances", latency: str = "latency_ns",
                 bandwidth: str = "bandwidth_mib_s", page_size: str = "page_size", nodes: str = "nodes",
                 cell_fmt: str = "{key}[{i}][{j}]", node_fmt: str = "nodes[{i}].{field}",
                 node_fields: tuple[tuple[str, str], ...] = (("mem", "mem_bytes"),)):
        self.where, self.distances, self.latency, self.bandwidth = where, distances, latency, bandwidth
        self.page_size, self.nodes, self.cell_fmt, self.node_fmt = page_size, nodes, cell_fmt, node_fmt
        self.node_fields = dict(node_fields)

    def replace(self, **changes: Any) -> _Keys:
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields["node_fields"] = tuple(fields["node_fields"].items())
        return _Keys(**{**fields, **changes})

    def cell(self, key: str, i: int, j: int) -> str:
        return self.cell_fmt.format(key=key, i=i, j=j)

    def node(self, i: int, field: str) -> str:
        return self.node_fmt.format(i=i, field=self.node_fields.get(field, field))

    def fail(self, key: str, problem: str) -> TopologyError:
        prefix = f"{self.where}: " if self.where else ""
        return TopologyError(f"{prefix}{key}: {problem}" if key else f"{prefix}{problem}")


@dataclass(frozen=True)
class NodeSpec:
    """One NUMA node: its id, its CPUs (empty for a memory-only node) and its memory."""

    id: int
    cpus: tuple[int, ...]
    mem_bytes: int

    def __post_init__(self) -> None:
        cpus = self.cpus
        if isinstance(cpus, (list, tuple, set, frozenset)):
            cpus = tuple(sorted(cpus)) if all(_is_int(c) for c in cpus) else tuple(cpus)
            object.__setattr__(self, "cpus", cpus)


@dataclass(frozen=True)
class Topology:
    """A validated machine: ``latency_ns[i][j]`` is an access from node i's CPUs to node j's memory."""

    name: str
    description: str
    source: str
    page_size: int
    nodes: tuple[NodeSpec, ...]
    distances: tuple[tuple[int, ...], ...]
    latency_ns: Matrix
    bandwidth_mib_s: Matrix

    def __post_init__(self) -> None:
        for field in ("nodes", "distances", "latency_ns", "bandwidth_mib_s"):
            value = getattr(self, field)
            if isinstance(value, list):
                value = tuple(value)
            if field != "nodes" and isinstance(value, tuple):
                value = tuple(tuple(row) if isinstance(row, list) else row for row in value)
            object.__setattr__(self, field, value)
        validate(self)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def node_ids(self) -> frozenset[int]:
        return frozenset(range(len(self.nodes)))

    @property
    def cpus(self) -> tuple[int, ...]:
        """Every CPU of the machine, sorted."""
        return tuple(sorted(self._cpu_to_node))

    @property
    def cpu_nodes(self) -> frozenset[int]:
        """Nodes with at least one CPU."""
        return frozenset(node.id for node in self.nodes if node.cpus)

    @property
    def memory_only_nodes(self) -> frozenset[int]:
        """Nodes without CPUs (CXL expanders, PMEM): targets, never initiators."""
        return frozenset(node.id for node in self.nodes if not node.cpus)

    @cached_property
    def _cpu_to_node(self) -> dict[int, int]:
        return {cpu: node.id for node in self.nodes for cpu in node.cpus}

    def node_of_cpu(self, cpu: int) -> int:
        """The node that holds ``cpu``; EINVAL if the machine has no such CPU."""
        try:
            if isinstance(cpu, bool):
                raise KeyError(cpu)
            return self._cpu_to_node[cpu]
        except (KeyError, TypeError):
            raise NumaEmuError(ErrorCode.EINVAL, f"no cpu {cpu!r} in topology '{self.name}' "
                               f"(cpus {format_nodelist(self._cpu_to_node)})") from None

    def _node(self, node: int) -> NodeSpec:
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < len(self.nodes):
            raise NumaEmuError(ErrorCode.EINVAL, f"no node {node!r} in topology '{self.name}' "
                               f"(nodes 0-{len(self.nodes) - 1})")
        return self.nodes[node]

    def cpus_of(self, node: int) -> tuple[int, ...]:
        return self._node(node).cpus

    def pages(self, node: int) -> int:
        """Page frames of ``node`` (``mem_bytes // page_size``)."""
        return self._node(node).mem_bytes // self.page_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON/msgpack-safe dict (plain lists), read back by :meth:`from_dict`."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "page_size": self.page_size,
            "nodes": [{"id": n.id, "cpus": list(n.cpus), "mem_bytes": n.mem_bytes} for n in self.nodes],
            "distances": [list(row) for row in self.distances],
            "latency_ns": [list(row) for row in self.latency_ns],
            "bandwidth_mib_s": [list(row) for row in self.bandwidth_mib_s],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        """Rebuild (and validate) a topology from :meth:`to_dict` output.

        ``latency_ns`` and ``bandwidth_mib_s`` may be left out: they are then derived as for
        a file without ``[latency]`` / ``[bandwidth]``.
        """
        return _from_dict(data)


# --- validation --------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_square(matrix: object, n: int, key: str, keys: _Keys) -> None:
    if not isinstance(matrix, (list, tuple)):
        raise keys.fail(key, f"expected a {n} x {n} matrix (a list of rows)")
    if len(matrix) != n:
        raise keys.fail(key, f"{len(matrix)} rows, expected {n} (one per node)")
    for i, row in enumerate(matrix):
        if not isinstance(row, (list, tuple)):
            raise keys.fail(key, f"row {i} is not a list of {n} values")
        if len(row) != n:
            raise keys.fail(key, f"row {i} has {len(row)} values, expected {n}")


def _check_distances(distances: object, n: int, keys: _Keys) -> None:
    """SLIT rules: N x N ints, diagonal exactly 10, others 10..254 or 255 (unreachable)."""
    _check_square(distances, n, keys.distances, keys)
    for i, row in enumerate(distances):  # type: ignore[arg-type]
        for j, value in enumerate(row):
            where = keys.cell(keys.distances, i, j)
            if not _is_int(value):
                raise keys.fail(where, f"distance must be an integer, got {value!r}")
            if i == j and value != LOCAL_DISTANCE:
                raise keys.fail(where, f"local distance of node {i} must be {LOCAL_DISTANCE}, got {value}")
            if not LOCAL_DISTANCE <= value <= UNREACHABLE_DISTANCE:
                raise keys.fail(where, f"distance {value} is outside {LOCAL_DISTANCE}..{MAX_DISTANCE} "
                                f"({UNREACHABLE_DISTANCE} = unreachable)")


def _check_bounded_matrix(matrix: object, n: int, key: str, bound: limits.Bound, keys: _Keys) -> None:
    _check_square(matrix, n, key, keys)
    for i, row in enumerate(matrix):  # type: ignore[arg-type]
        for j, value in enumerate(row):
            try:
                bound.check(value, "")
            except NumaEmuError as exc:
                raise keys.fail(keys.cell(key, i, j), exc.message) from None


def _check_page_size(page_size: object, keys: _Keys) -> None:
    if not _is_int(page_size) or page_size < 512 or page_size > MAX_PAGE_SIZE or page_size & (page_size - 1):
        raise keys.fail(keys.page_size, f"must be a power of two between 512 and {MAX_PAGE_SIZE} bytes, "
                        f"got {page_size!r}")


def _check_nodes(nodes: object, page_size: int, keys: _Keys) -> None:
    """Ids 0..N-1 in order, CPUs unique and >= 0, memory positive and whole pages."""
    if not isinstance(nodes, (list, tuple)) or not nodes:
        raise keys.fail(keys.nodes, "a topology needs at least one node")
    if len(nodes) > MAX_NODES:
        raise keys.fail(keys.nodes, f"{len(nodes)} nodes, at most {MAX_NODES} are supported")
    owner: dict[int, int] = {}
    for i, node in enumerate(nodes):
        if not isinstance(node, NodeSpec):
            raise keys.fail(f"nodes[{i}]", f"expected a NodeSpec, got {type(node).__name__}")
        if node.id != i:
            raise keys.fail(keys.node(i, "id"), f"expected {i}, got {node.id!r} (ids are 0..N-1 in order)")
        if not isinstance(node.cpus, tuple):
            raise keys.fail(keys.node(i, "cpus"), f"expected a tuple of cpu ids, got {node.cpus!r}")
        if len(node.cpus) > limits.CPUS_PER_NODE.hi:
            raise keys.fail(keys.node(i, "cpus"), f"{len(node.cpus)} cpus, at most {int(limits.CPUS_PER_NODE.hi)} per node")
        for cpu in node.cpus:
            if not _is_int(cpu) or not limits.CPU_ID.lo <= cpu <= limits.CPU_ID.hi:
                raise keys.fail(keys.node(i, "cpus"), f"cpu {cpu!r} is not an integer in {limits.CPU_ID.describe()}")
            if cpu in owner:
                where = "twice on this node" if owner[cpu] == i else f"also on node {owner[cpu]}"
                raise keys.fail(keys.node(i, "cpus"), f"cpu {cpu} {where}")
            owner[cpu] = i
        if not _is_int(node.mem_bytes) or node.mem_bytes <= 0:
            raise keys.fail(keys.node(i, "mem"), f"memory must be a positive number of bytes, "
                            f"got {node.mem_bytes!r}")
        if node.mem_bytes % page_size:
            raise keys.fail(keys.node(i, "mem"), f"{node.mem_bytes} bytes is not a whole number of "
                            f"{page_size}-byte pages")
        if node.mem_bytes // page_size > limits.NODE_FRAMES.hi:
            raise keys.fail(keys.node(i, "mem"), f"{node.mem_bytes // page_size} pages of {page_size} bytes, expected "
                            f"{limits.NODE_FRAMES.describe()} pages per node (use larger pages or less memory)")
    if not owner:
        raise keys.fail(keys.nodes, "at least one node must have CPUs")


def validate(topology: Topology, *, keys: _Keys | None = None) -> None:
    """Raise :class:`TopologyError` (EINVAL) naming the first thing wrong with ``topology``."""
    keys = keys or _Keys(where=f"topology '{topology.name}'")
    if not isinstance(topology.name, str) or not topology.name.strip():
        raise keys.fail("name", "must be a non-empty string")
    for field in ("description", "source"):
        if not isinstance(getattr(topology, field), str):
            raise keys.fail(field, "must be a string")
    _check_page_size(topology.page_size, keys)
    _check_nodes(topology.nodes, topology.page_size, keys)
    n = len(topology.nodes)
    _check_distances(topology.distances, n, keys)
    _check_bounded_matrix(topology.latency_ns, n, keys.latency, limits.LATENCY_NS, keys)
    _check_bounded_matrix(topology.bandwidth_mib_s, n, keys.bandwidth, limits.BANDWIDTH_MIB_S, keys)


# --- building: derived matrices ----------------------------------------------------------


def derive_latency_ns(distances: Sequence[Sequence[int]], local_ns: float) -> Matrix:
    """``lat(i, j) = local_ns * d(i, j) / 10`` (docs/machines.md#slit-tables: the fallback), 255 handled.

    An unreachable pair takes the reverse direction's distance when that one is reachable
    (a CPU-less node's row is all 255 in real SLITs, its column is not), else the largest
    reachable distance in the table.
    """
    reachable = [d for row in distances for d in row if d < UNREACHABLE_DISTANCE]
    farthest = max(reachable, default=LOCAL_DISTANCE)
    rows = []
    for i, row in enumerate(distances):
        cells = []
        for j, d in enumerate(row):
            if d >= UNREACHABLE_DISTANCE:
                reverse = distances[j][i]
                d = reverse if reverse < UNREACHABLE_DISTANCE else farthest
            cells.append(local_ns * d / LOCAL_DISTANCE)
        rows.append(tuple(cells))
    return tuple(rows)


def derive_bandwidth_mib_s(distances: Sequence[Sequence[int]], local_mib_s: float,
                           remote_mib_s: float) -> Matrix:
    """``local`` where the distance is 10 (own node, numa=fake siblings), ``remote`` elsewhere."""
    return tuple(tuple(local_mib_s if d == LOCAL_DISTANCE else remote_mib_s for d in row)
                 for row in distances)


def make_topology(*, name: str, nodes: Sequence[NodeSpec], distances: Sequence[Sequence[int]],
                  description: str = "", source: str = "", page_size: int = DEFAULT_PAGE_SIZE,
                  local_latency_ns: float = DEFAULT_LOCAL_LATENCY_NS,
                  latency_ns: Sequence[Sequence[float]] | None = None,
                  local_bandwidth_mib_s: float | None = None,
                  remote_bandwidth_mib_s: float | None = None,
                  bandwidth_mib_s: Sequence[Sequence[float]] | None = None,
                  keys: _Keys | None = None) -> Topology:
    """Build a topology, deriving latency and bandwidth matrices that were not given."""
    keys = keys or _Keys(where=f"topology '{name}'")
    _check_page_size(page_size, keys)
    _check_nodes(nodes, page_size, keys)
    _check_distances(distances, len(nodes), keys)
    if latency_ns is None:
        latency_ns = derive_latency_ns(distances, local_latency_ns)
    if bandwidth_mib_s is None:
        local = parse_bandwidth_mib_s(DEFAULT_LOCAL_BANDWIDTH) if local_bandwidth_mib_s is None \
            else local_bandwidth_mib_s
        remote = parse_bandwidth_mib_s(DEFAULT_REMOTE_BANDWIDTH) if remote_bandwidth_mib_s is None \
            else remote_bandwidth_mib_s
        bandwidth_mib_s = derive_bandwidth_mib_s(distances, local, remote)
    _check_bounded_matrix(latency_ns, len(nodes), keys.latency, limits.LATENCY_NS, keys)
    _check_bounded_matrix(bandwidth_mib_s, len(nodes), keys.bandwidth, limits.BANDWIDTH_MIB_S, keys)
    return Topology(
        name=name, description=description, source=source, page_size=page_size,
        nodes=tuple(nodes),
        distances=tuple(tuple(row) for row in distances),
        latency_ns=tuple(tuple(float(v) for v in row) for row in latency_ns),
        bandwidth_mib_s=tuple(tuple(float(v) for v in row) for row in bandwidth_mib_s),
    )


# --- reading a dict (the wire, cluster.json); files are read in topology_shapes.py -------


def _reject_unknown(table: Mapping[str, Any], allowed: Sequence[str], where: str, keys: _Keys) -> None:
    for key in table:
        if key not in allowed:
            full = f"{where}.{key}" if where else key
            raise keys.fail(full, f"unknown key (expected one of: {', '.join(allowed)})")


def _require(table: Mapping[str, Any], key: str, where: str, keys: _Keys) -> Any:
    if key not in table:
        raise keys.fail(where, "missing")
    return table[key]


def _from_dict(data: Mapping[str, Any]) -> Topology:
    keys = _Keys(where="topology")
    if not isinstance(data, Mapping):
        raise keys.fail("", f"expected a mapping, got {type(data).__name__}")
    _reject_unknown(data, ("name", "description", "source", "page_size", "nodes", "distances",
                           "latency_ns", "bandwidth_mib_s"), "", keys)
    name = _require(data, "name", "name", keys)
    keys = _Keys(where=f"topology '{name}'")
    raw_nodes = _require(data, "nodes", "nodes", keys)
    if not isinstance(raw_nodes, (list, tuple)):
        raise keys.fail("nodes", "expected a list of nodes")
    nodes = []
    for i, raw in enumerate(raw_nodes):
        if not isinstance(raw, Mapping):
            raise keys.fail(f"nodes[{i}]", "expected a mapping with id, cpus, mem_bytes")
        _reject_unknown(raw, ("id", "cpus", "mem_bytes"), f"nodes[{i}]", keys)
        cpus = _require(raw, "cpus", f"nodes[{i}].cpus", keys)
        if not isinstance(cpus, (list, tuple)):
            raise keys.fail(f"nodes[{i}].cpus", f"expected a list of cpu ids, got {cpus!r}")
        nodes.append(NodeSpec(id=_require(raw, "id", f"nodes[{i}].id", keys), cpus=tuple(cpus),
                              mem_bytes=_require(raw, "mem_bytes", f"nodes[{i}].mem_bytes", keys)))
    return make_topology(
        name=name, description=data.get("description", ""), source=data.get("source", ""),
        page_size=data.get("page_size", DEFAULT_PAGE_SIZE), nodes=nodes,
        distances=_require(data, "distances", "distances", keys),
        latency_ns=data.get("latency_ns"), bandwidth_mib_s=data.get("bandwidth_mib_s"), keys=keys)


_LAZY = ("load_topology", "loads_topology", "from_cli", "build_shape", "SHAPES")


def __getattr__(name: str) -> Any:
    """The builders (file, CLI, shapes) live in protocol/topology_shapes.py; load them on use."""
    if name in _LAZY:
        from numa_emu.protocol import topology_shapes

        return getattr(topology_shapes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
