"""The shipped data: built-in topologies and experiments, found with importlib.resources so that
`numa-emu up -t NAME` works from any folder; and the one resolver from a user's topology
argument (name, file path or shape spec) to a validated Topology."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.topology import SHAPES, Topology, build_shape, load_topology

DEFAULT_TOPOLOGY = "default-4n"


def builtin_topologies() -> dict[str, Path]:
    out = {}
    for entry in resources.files("numa_emu.topologies").iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = Path(str(entry))
    return dict(sorted(out.items()))


def resolve_topology(spec: str | None) -> Topology:
    """A topology from a built-in name, a TOML file path, or a shape spec like 'ring,8'."""
    spec = spec or DEFAULT_TOPOLOGY
    builtins = builtin_topologies()
    if spec in builtins:
        return load_topology(builtins[spec])
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise NumaEmuError(ErrorCode.ENOENT, f"topology file {spec} does not exist")
        return load_topology(path)
    if spec.split(",", 1)[0] in SHAPES:
        return build_shape(spec)
    raise NumaEmuError(
        ErrorCode.ENOENT,
        f"unknown topology '{spec}': not a file, not one of {', '.join(builtins)}, "
        f"and not a shape ({', '.join(sorted(SHAPES))}, e.g. 'ring,8')",
    )
