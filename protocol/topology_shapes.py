"""Building a Topology from text: TOML files, ``numa-emu up`` options and shape specs.

Part of ``protocol/``, beside ``protocol/topology.py`` (the data model, its validation and
the file schema, documented at the top of that module). Three front ends, one rule: every
error names where it comes from (the file and key, the CLI option, the shape spec).

- :func:`load_topology` / :func:`loads_topology`: the files under ``topologies/``. Data
  only, read with ``tomllib`` and never executed (gem5's Python loader is the thing not
  to do, docs/conventions.md#topologies-are-data).
- :func:`from_cli`: ``numa-emu up --nodes N --cpus-per-node C --mem-per-node SIZE
  [--distance D | --distances 'ROW;ROW;...']``.
- :data:`SHAPES` / :func:`build_shape`: parametric shapes picked with a Mininet-like spec,
  ``"ring,8,mem=256MiB,cpus=2"`` (mininet/mininet ``topolib.py``, ``--topo name,arg,key=val``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from numa_emu.protocol import limits
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.nodemask import parse_cpulist
from numa_emu.protocol.topology import (DEFAULT_LOCAL_BANDWIDTH, DEFAULT_LOCAL_LATENCY_NS, DEFAULT_PAGE_SIZE,
                               DEFAULT_REMOTE_BANDWIDTH, LOCAL_DISTANCE, MAX_DISTANCE, MAX_NODES,
                               REMOTE_DISTANCE, NodeSpec, Topology, TopologyError, _Keys,
                               _reject_unknown, _require, make_topology)
from numa_emu.protocol.units import format_size, parse_bandwidth_mib_s, parse_duration_ns, parse_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

# --- TOML files --------------------------------------------------------------------------

_TOML_NODE_FIELDS = (("id", "id"), ("cpus", "cpus"), ("mem", "mem"))


def _convert(value: Any, convert: Callable[[Any], Any], where: str, keys: _Keys) -> Any:
    """Apply a unit parser, re-raising its complaint under the key being read."""
    try:
        return convert(value)
    except NumaEmuError as exc:
        raise keys.fail(where, exc.message) from None


def _table(data: Mapping[str, Any], key: str, keys: _Keys) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise keys.fail(key, f"expected a table [{key}], got {type(value).__name__}")
    return value


def _read_matrix(raw: Any, key: str, convert: Callable[[Any], float], keys: _Keys) -> list[list[float]]:
    if not isinstance(raw, list) or not all(isinstance(row, list) for row in raw):
        raise keys.fail(key, "expected a matrix: a list of rows, each a list of values")
    return [[_convert(v, convert, keys.cell(key, i, j), keys) for j, v in enumerate(row)]
            for i, row in enumerate(raw)]


def _check_diagonal(matrix: list[list[float]], local: float, key: str, local_key: str, keys: _Keys) -> None:
    for i, row in enumerate(matrix):
        if i < len(row) and row[i] != local:
            raise keys.fail(keys.cell(key, i, i), f"{row[i]:g} differs from {local_key} = {local:g} "
                            f"(give only the matrix if local values differ per node)")


def _read_toml_nodes(raw: Any, keys: _Keys) -> list[NodeSpec]:
    if not isinstance(raw, list) or not raw or not all(isinstance(t, Mapping) for t in raw):
        raise keys.fail("nodes", "expected one or more [[nodes]] tables")
    nodes = []
    for i, table in enumerate(raw):
        _reject_unknown(table, ("id", "cpus", "mem"), f"nodes[{i}]", keys)
        node_id = _require(table, "id", f"nodes[{i}].id", keys)
        cpus = _require(table, "cpus", f"nodes[{i}].cpus", keys)
        if isinstance(cpus, str):
            cpus = tuple(sorted(_convert(cpus, parse_cpulist, f"nodes[{i}].cpus", keys)))
        elif not isinstance(cpus, list):
            raise keys.fail(f"nodes[{i}].cpus", f"expected a list string like \"0-3\" or an array, got {cpus!r}")
        mem = _convert(_require(table, "mem", f"nodes[{i}].mem", keys), parse_size, f"nodes[{i}].mem", keys)
        nodes.append(NodeSpec(id=node_id, cpus=tuple(cpus), mem_bytes=mem))
    return nodes


def _read_toml_costs(data: Mapping[str, Any], keys: _Keys) -> dict[str, Any]:
    """The [latency] and [bandwidth] tables, as keyword arguments of make_topology."""
    latency, bandwidth = _table(data, "latency", keys), _table(data, "bandwidth", keys)
    _reject_unknown(latency, ("local_ns", "matrix_ns"), "latency", keys)
    _reject_unknown(bandwidth, ("local", "remote", "matrix_mib_s"), "bandwidth", keys)
    out: dict[str, Any] = {
        "local_latency_ns": _convert(latency.get("local_ns", DEFAULT_LOCAL_LATENCY_NS), parse_duration_ns,
                                     "latency.local_ns", keys),
        "local_bandwidth_mib_s": _convert(bandwidth.get("local", DEFAULT_LOCAL_BANDWIDTH),
                                          parse_bandwidth_mib_s, "bandwidth.local", keys),
        "remote_bandwidth_mib_s": _convert(bandwidth.get("remote", DEFAULT_REMOTE_BANDWIDTH),
                                           parse_bandwidth_mib_s, "bandwidth.remote", keys),
    }
    for where, arg in (("latency.local_ns", "local_latency_ns"), ("bandwidth.local", "local_bandwidth_mib_s"),
                       ("bandwidth.remote", "remote_bandwidth_mib_s")):
        if out[arg] <= 0:
            raise keys.fail(where, "must be positive")
    if "matrix_ns" in latency:
        out["latency_ns"] = _read_matrix(latency["matrix_ns"], keys.latency, parse_duration_ns, keys)
        if "local_ns" in latency:
            _check_diagonal(out["latency_ns"], out["local_latency_ns"], keys.latency, "latency.local_ns", keys)
    if "matrix_mib_s" in bandwidth:
        if "remote" in bandwidth:
            raise keys.fail("bandwidth.remote", "give either local/remote or matrix_mib_s, not both")
        out["bandwidth_mib_s"] = _read_matrix(bandwidth["matrix_mib_s"], keys.bandwidth,
                                              parse_bandwidth_mib_s, keys)
        if "local" in bandwidth:
            _check_diagonal(out["bandwidth_mib_s"], out["local_bandwidth_mib_s"], keys.bandwidth,
                            "bandwidth.local", keys)
    return out


def _from_toml(data: Mapping[str, Any], keys: _Keys) -> Topology:
    # [hosts] is where the nodes run, not the machine: protocol.hosts reads it (numa-emu up)
    _reject_unknown(data, ("name", "description", "source", "page_size", "slit", "latency",
                           "bandwidth", "nodes", "hosts"), "", keys)
    text = {}
    for key in ("name", "description", "source"):
        text[key] = data.get(key, "")
        if not isinstance(text[key], str) or (key == "name" and not text[key].strip()):
            raise keys.fail(key, "missing" if key not in data else "must be a non-empty string")
    page_size = _convert(data.get("page_size", DEFAULT_PAGE_SIZE), parse_size, "page_size", keys)
    slit = _table(data, "slit", keys)
    _reject_unknown(slit, ("matrix",), "slit", keys)
    distances = _require(slit, "matrix", "slit.matrix", keys)
    return make_topology(name=text["name"], description=text["description"], source=text["source"],
                         page_size=page_size, nodes=_read_toml_nodes(data.get("nodes"), keys),
                         distances=distances, keys=keys, **_read_toml_costs(data, keys))


def loads_topology(text: str, *, where: str = "<string>") -> Topology:
    """Parse topology TOML text; every error starts with ``where`` (the file name)."""
    import tomllib  # here, not at the top: node processes import the topology at start-up

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{where}: not valid TOML: {exc}") from None
    keys = _Keys(where=where, distances="slit.matrix", latency="latency.matrix_ns",
                 bandwidth="bandwidth.matrix_mib_s", node_fields=_TOML_NODE_FIELDS)
    return _from_toml(data, keys)


def load_topology(path: Any) -> Topology:
    """Read and validate a topology file: a path, or an ``importlib.resources`` Traversable.

    Every error names the file and the key, e.g.
    ``topologies/foo.toml: nodes[2].cpus: cpu 3 also on node 0``; a missing file is ENOENT.
    """
    label = str(path)
    try:
        if hasattr(path, "read_bytes"):
            raw = path.read_bytes()
        else:
            with open(path, "rb") as handle:
                raw = handle.read()
    except OSError as exc:
        code = "ENOENT" if isinstance(exc, FileNotFoundError) else "EIO"
        raise NumaEmuError(code, f"{label}: cannot read topology file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TopologyError(f"{label}: not UTF-8 text") from None
    return loads_topology(text, where=label)


# --- numa-emu up --nodes N ... -----------------------------------------------------------

_CLI_KEYS = _Keys(distances="--distances", cell_fmt="{key}: row {i}, column {j}", node_fmt="{field}",
                  node_fields=(("id", "--nodes"), ("cpus", "--cpus-per-node"), ("mem", "--mem-per-node")),
                  nodes="--nodes", page_size="--page-size", latency="--local-latency",
                  bandwidth="bandwidth")


def _whole(value: int | str, option: str, minimum: int, maximum: int | None = None) -> int:
    """An integer option given as int or text, within [minimum, maximum]."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 20:
        number = int(value.strip())
    if number is None or number < minimum or (maximum is not None and number > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise TopologyError(f"{option}: expected an integer of at least {minimum}{upper}, got {value!r}")
    return number


def parse_cli_distances(text: str, n_nodes: int) -> list[list[int]]:
    """``'10,16;16,10'``: rows separated by ';', SLIT values by ','; N rows of N values."""
    rows = [row for row in text.strip().rstrip(";").split(";")]
    if len(rows) != n_nodes:
        raise TopologyError(f"--distances: {len(rows)} rows, expected {n_nodes} (one per node)")
    matrix = []
    for i, row in enumerate(rows):
        values = [value.strip() for value in row.split(",")]
        if len(values) != n_nodes:
            raise TopologyError(f"--distances: row {i} has {len(values)} values, expected {n_nodes}")
        for value in values:
            if not value.isdigit():
                raise TopologyError(f"--distances: row {i}: {value!r} is not a whole number")
        matrix.append([int(value) for value in values])
    return matrix


def from_cli(nodes: int | str, cpus_per_node: int | str, mem_per_node: str | int,
             distance: int | str | None = None, distances: str | None = None,
             page_size: str | int = DEFAULT_PAGE_SIZE,
             local_latency_ns: float | str = DEFAULT_LOCAL_LATENCY_NS) -> Topology:
    """The machine of ``numa-emu up --nodes N --cpus-per-node C --mem-per-node SIZE``.

    Node i holds CPUs ``i*C .. i*C+C-1``. Distances: ``--distance D`` for every remote pair
    (default 20, QEMU's NUMA_DISTANCE_DEFAULT), or ``--distances`` with N rows of N SLIT
    values. Latency is derived from the SLIT, bandwidth is the 2s-skylake default.
    Errors name the option, e.g. ``--distances: row 2 has 3 values, expected 4``.
    """
    n = _whole(nodes, "--nodes", 1, MAX_NODES)
    c = _whole(cpus_per_node, "--cpus-per-node", 1, int(limits.CPUS_PER_NODE.hi))
    mem = _convert(mem_per_node, parse_size, "--mem-per-node", _CLI_KEYS)
    page = _convert(page_size, parse_size, "--page-size", _CLI_KEYS)
    local_ns = _convert(local_latency_ns, parse_duration_ns, "--local-latency", _CLI_KEYS)
    if local_ns <= 0:
        raise TopologyError(f"--local-latency: must be positive, got {local_latency_ns!r}")
    if distance is not None and distances is not None:
        raise TopologyError("--distance and --distances cannot be used together")
    keys = _CLI_KEYS
    if distances is not None:
        matrix = parse_cli_distances(distances, n)
        slit = f"SLIT {distances.strip()}"
    else:
        d = REMOTE_DISTANCE if distance is None else _whole(distance, "--distance", 0)
        keys = _CLI_KEYS.replace(distances="--distance", cell_fmt="{key}")
        matrix = [[LOCAL_DISTANCE if i == j else d for j in range(n)] for i in range(n)]
        slit = f"SLIT 10 local, {d} remote"
    node_specs = [NodeSpec(id=i, cpus=tuple(range(i * c, (i + 1) * c)), mem_bytes=mem) for i in range(n)]
    return make_topology(
        name=f"cli-{n}n", description=f"{n} nodes x {c} cpus x {format_size(mem)}, {slit}",
        source="numa-emu up command-line options; latency derived from the SLIT (docs/machines.md#slit-tables)",
        page_size=page, nodes=node_specs, distances=matrix, local_latency_ns=local_ns, keys=keys)


# --- parametric shapes -------------------------------------------------------------------

# SLIT added per interconnect hop: 6, after the AMD Opteron 6272 tables (docs/machines.md#slit-tables:
# 16 for one HyperTransport hop, 22 for two), i.e. 10 + 6 * hops.
DEFAULT_HOP_DISTANCE = 6
DEFAULT_SHAPE_MEM = "1GiB"  # lazily committed by the node processes
DEFAULT_SHAPE_CPUS = 2
FAKE_NODE_MIN_BYTES = 32 << 20  # mm/numa_emulation.c FAKE_NODE_MIN_SIZE (docs/linux-semantics.md#numa-fake)


def _uniform(name: str, description: str, source: str, distances: list[list[int]], *, mem: str | int,
             cpus: int | str, local_ns: float | str, page_size: str | int,
             min_mem_bytes: int = 1) -> Topology:
    """A machine of identical nodes (``cpus`` CPUs and ``mem`` each) with these distances."""
    keys = _Keys(where=f"shape '{name}'", node_fmt="{field}",
                 node_fields=(("id", "nodes"), ("cpus", "cpus"), ("mem", "mem")))
    per_node = _whole(cpus, f"shape '{name}': cpus", 1, int(limits.CPUS_PER_NODE.hi))
    mem_bytes = _convert(mem, parse_size, "mem", keys)
    if mem_bytes < min_mem_bytes:
        raise keys.fail("mem", f"{format_size(mem_bytes)} is below the minimum {format_size(min_mem_bytes)}")
    latency = _convert(local_ns, parse_duration_ns, "local_ns", keys)
    if latency <= 0:
        raise keys.fail("local_ns", "must be positive")
    nodes = [NodeSpec(id=i, cpus=tuple(range(i * per_node, (i + 1) * per_node)), mem_bytes=mem_bytes)
             for i in range(len(distances))]
    return make_topology(name=name, description=description, source=source,
                         page_size=_convert(page_size, parse_size, "page_size", keys), nodes=nodes,
                         distances=distances, local_latency_ns=latency, keys=keys)


def _hop_distances(hops: list[list[int]], hop: int | str, name: str) -> list[list[int]]:
    step = _whole(hop, f"shape '{name}': hop", 1)
    worst = max(max(row) for row in hops)
    if LOCAL_DISTANCE + step * worst > MAX_DISTANCE:
        raise TopologyError(f"shape '{name}': {worst} hops at hop={step} give distance "
                            f"{LOCAL_DISTANCE + step * worst}, above {MAX_DISTANCE}; use a smaller hop")
    return [[LOCAL_DISTANCE + step * h for h in row] for row in hops]


def ring(n_nodes: int | str, *, hop: int | str = DEFAULT_HOP_DISTANCE, mem: str | int = DEFAULT_SHAPE_MEM,
         cpus: int | str = DEFAULT_SHAPE_CPUS, local_ns: float | str = DEFAULT_LOCAL_LATENCY_NS,
         page_size: str | int = DEFAULT_PAGE_SIZE, name: str | None = None) -> Topology:
    """``ring,N``: N nodes on a ring (HyperTransport/UPI daisy chain closed on itself).

    d(i, j) = 10 + hop * min(|i - j|, N - |i - j|); hop defaults to 6 (Opteron 6272's
    10/16/22). Latency is SLIT-scaled from ``local_ns``.
    """
    n = _whole(n_nodes, "shape 'ring': nodes", 1, MAX_NODES)
    name = name or f"ring,{n}"
    hops = [[min(abs(i - j), n - abs(i - j)) for j in range(n)] for i in range(n)]
    return _uniform(name, f"{n} nodes on a ring, SLIT 10 + {hop} per hop", "built-in shape 'ring' "
                    "(protocol/topology_shapes.py); hop distance after Opteron 6272 10/16/22 "
                    "(docs/machines.md#slit-tables)",
                    _hop_distances(hops, hop, name), mem=mem, cpus=cpus, local_ns=local_ns, page_size=page_size)


def mesh(rows: int | str, cols: int | str | None = None, *, hop: int | str = DEFAULT_HOP_DISTANCE,
         mem: str | int = DEFAULT_SHAPE_MEM, cpus: int | str = DEFAULT_SHAPE_CPUS,
         local_ns: float | str = DEFAULT_LOCAL_LATENCY_NS, page_size: str | int = DEFAULT_PAGE_SIZE,
         name: str | None = None) -> Topology:
    """``mesh,RxC`` (or ``mesh,R,C``; ``mesh,R`` is square): a 2-D grid without wrap-around.

    Node r*C + c sits at (r, c); d = 10 + hop * Manhattan hops, hop defaulting to 6 as for
    ``ring``. Latency is SLIT-scaled from ``local_ns``.
    """
    if cols is None and isinstance(rows, str) and "x" in rows.lower():
        rows, cols = rows.lower().split("x", 1)
    r = _whole(rows, "shape 'mesh': rows", 1, MAX_NODES)
    c = _whole(r if cols is None else cols, "shape 'mesh': columns", 1, MAX_NODES)
    if r * c > MAX_NODES:
        raise TopologyError(f"shape 'mesh': {r}x{c} is {r * c} nodes, at most {MAX_NODES} are supported")
    name = name or f"mesh,{r}x{c}"
    hops = [[abs(a // c - b // c) + abs(a % c - b % c) for b in range(r * c)] for a in range(r * c)]
    return _uniform(name, f"{r}x{c} grid of nodes, SLIT 10 + {hop} per hop", "built-in shape 'mesh' "
                    "(protocol/topology_shapes.py); hop distance after Opteron 6272 10/16/22 "
                    "(docs/machines.md#slit-tables)",
                    _hop_distances(hops, hop, name), mem=mem, cpus=cpus, local_ns=local_ns, page_size=page_size)


def full(n_nodes: int | str, *, distance: int | str = REMOTE_DISTANCE, mem: str | int = DEFAULT_SHAPE_MEM,
         cpus: int | str = DEFAULT_SHAPE_CPUS, local_ns: float | str = DEFAULT_LOCAL_LATENCY_NS,
         page_size: str | int = DEFAULT_PAGE_SIZE, name: str | None = None) -> Topology:
    """``full,N``: every node one hop from every other, all remote distances equal (default 20).

    The flat SLIT of the Opteron 6174 and of the 8-node 2013 NUMA-balancing box
    (docs/machines.md#slit-tables), and QEMU's default for pairs with no ``-numa dist``.
    """
    n = _whole(n_nodes, "shape 'full': nodes", 1, MAX_NODES)
    d = _whole(distance, f"shape 'full,{n}': distance", 0)
    matrix = [[LOCAL_DISTANCE if i == j else d for j in range(n)] for i in range(n)]
    return _uniform(name or f"full,{n}", f"{n} fully connected nodes, SLIT 10 local, {d} remote",
                    "built-in shape 'full' (protocol/topology_shapes.py); flat SLIT as on the Opteron 6174 "
                    "(docs/machines.md#slit-tables), QEMU NUMA_DISTANCE_DEFAULT 20 "
                    "(docs/linux-semantics.md#qemu-numa)",
                    matrix, mem=mem, cpus=cpus, local_ns=local_ns, page_size=page_size)


def fake(n_nodes: int | str, *, distance: int | str = LOCAL_DISTANCE, mem: str | int = DEFAULT_SHAPE_MEM,
         cpus: int | str = DEFAULT_SHAPE_CPUS, local_ns: float | str = DEFAULT_LOCAL_LATENCY_NS,
         page_size: str | int = DEFAULT_PAGE_SIZE, name: str | None = None) -> Topology:
    """``fake,N``: ``numa=fake=N`` on a one-socket machine (mm/numa_emulation.c, docs/linux-semantics.md#numa-fake).

    Fake nodes carved from one physical node get that node's distance to itself, 10, so
    every pair is at distance 10 and accesses cost the same everywhere ("latency is not
    changed"). ``distance=D`` plays the ``numa=fake=N:D,...`` override for every remote pair;
    latency then scales with it. Nodes are at least 32 MiB (FAKE_NODE_MIN_SIZE).
    """
    n = _whole(n_nodes, "shape 'fake': nodes", 1, MAX_NODES)
    d = _whole(distance, f"shape 'fake,{n}': distance", 0)
    matrix = [[LOCAL_DISTANCE if i == j else d for j in range(n)] for i in range(n)]
    return _uniform(name or f"fake,{n}", f"numa=fake={n} on one socket: {n} equally fast nodes",
                    "built-in shape 'fake' (protocol/topology_shapes.py); Linux mm/numa_emulation.c "
                    "(docs/linux-semantics.md#numa-fake)", matrix, mem=mem, cpus=cpus, local_ns=local_ns,
                    page_size=page_size, min_mem_bytes=FAKE_NODE_MIN_BYTES)


SHAPES: dict[str, Callable[..., Topology]] = {"ring": ring, "mesh": mesh, "full": full, "fake": fake}


def build_shape(spec: str) -> Topology:
    """Build a shape from ``"name,arg,...,key=value,..."``, e.g. ``"ring,8,mem=256MiB,cpus=2"``.

    Positional arguments and options are handed to ``SHAPES[name]`` as text; each builder
    documents its own. The topology is named after the spec.
    """
    parts = [part.strip() for part in spec.split(",")] if isinstance(spec, str) else []
    if not parts or parts[0] not in SHAPES:
        shown = parts[0] if parts else spec
        raise TopologyError(f"unknown shape {shown!r}: known shapes are {', '.join(sorted(SHAPES))}")
    builder = SHAPES[parts[0]]
    args: list[str] = []
    options: dict[str, str] = {"name": spec.strip()}
    known = [key for key in (builder.__kwdefaults__ or {}) if key != "name"]
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            if options.keys() - {"name"}:
                raise TopologyError(f"shape '{spec}': positional argument {part!r} after options")
            args.append(part)
        elif key.strip() not in known:
            raise TopologyError(f"shape '{spec}': unknown option {key.strip()!r} "
                                f"(known: {', '.join(known)})")
        else:
            options[key.strip()] = value.strip()
    most = builder.__code__.co_argcount
    least = most - len(builder.__defaults__ or ())
    if not least <= len(args) <= most:
        expected = str(least) if least == most else f"{least} to {most}"
        usage = (builder.__doc__ or "").splitlines()[0]
        raise TopologyError(f"shape '{spec}': expected {expected} argument(s) before the options, "
                            f"got {len(args)}; usage: {usage}")
    return builder(*args, **options)
