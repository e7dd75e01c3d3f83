"""Cluster settings an experiment file changes besides the latency: sysctl tunables (swept in the
grid, swept per workload, or fixed for every run) and the jitter of the links.

    [experiment]
    sysctl = { "vm.pagecache_replication_backoff" = 0 }        # every run
    jitter = 0.3                                               # uniform, +-30 % of each delay
    # jitter = { distribution = "normal", spread = 0.2 }

    [grid]
    sysctl = { "vm.unsafe_unreplicate" = [0, 1] }              # a parameter per key, in the product

    [workloads.kbuild]
    sysctl = { "vm.pagecache_replication" = [0, 1] }           # swept only with this workload

Keys and values are checked against the tunables of every topology of the grid
(protocol/messages/control.py, `numa-emu sysctl -a`); a value is an integer or a word, as
`numa-emu sysctl KEY=VALUE` takes it. The runner sends them with sysctl.set before each run, and
gives a key that a run does not set the value the cluster started with.
"""
from __future__ import annotations

from typing import Any

from numa_emu.protocol import limits
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.latency import JITTER_DISTRIBUTIONS
from numa_emu.protocol.messages.control import tunables
from numa_emu.protocol.topology import Topology

TABLE = "sysctl"


def quoted(prefix: str, key: str) -> str:
    """The TOML path of a dotted key: sysctl."vm.pagecache_replication"."""
    return f'{prefix}."{key}"'


def short_name(key: str) -> str:
    """A sysctl key as a column header: vm.pagecache_replication_mode -> mode."""
    name = key[3:] if key.startswith("vm.") else key
    if name.startswith("pagecache_replication_"):
        return name[len("pagecache_replication_"):]
    if name == "pagecache_replication":
        return "replication"
    return name.replace("kernel.mm.mempolicy.", "")


def check_value(c, key: str, path: str, value: Any, topologies: list[Topology]) -> int | str:
    """`value` for sysctl `key`, as the nodes would take it; EINVAL naming `path` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise c.fail(path, f"expected an integer or a word, got {show(value)}")
    for topology in topologies:
        table = tunables(topology.node_ids)
        if key not in table:
            raise c.fail(path.rsplit("[", 1)[0], f"no sysctl key '{key}' on {topology.name} (numa-emu sysctl -a)")
        try:
            table[key].check(str(value))
        except NumaEmuError as exc:  # "KEY: invalid value ..."
            raise c.fail(path, exc.message.split(": ", 1)[-1]) from None
    return value


def fixed(c, raw: Any, prefix: str, topologies: list[Topology]) -> dict:
    """A table key -> one value (the [experiment] sysctl)."""
    table = c.table(raw, prefix)
    return {k: check_value(c, k, quoted(prefix, k), v, topologies) for k, v in table.items()}


def swept(c, raw: Any, prefix: str, topologies: list[Topology]) -> dict[str, tuple]:
    """A table key -> values (a list, or one value): the [grid] or a workload's sysctl."""
    out = {}
    for k, v in c.table(raw, prefix).items():
        path = quoted(prefix, k)
        values = c.values(v, path) if isinstance(v, list) else [v]
        out[k] = tuple(check_value(c, k, f"{path}[{i}]" if isinstance(v, list) else path, x, topologies)
                       for i, x in enumerate(values))
    return out


def merged(base: Any, over: Any) -> Any:
    """[quick] sysctl tables replace the values of the keys they name."""
    return {**base, **over} if isinstance(base, dict) and isinstance(over, dict) else over


def jitter(c, raw: Any) -> dict | None:
    """{distribution, spread} of every link, from a spread (uniform) or a table; None: no jitter."""
    key = "experiment.jitter"
    if raw is None:
        return None
    if isinstance(raw, dict):
        c.table(raw, key, {"distribution", "spread"})
        distribution = c.string(raw.get("distribution", "uniform"), f"{key}.distribution", JITTER_DISTRIBUTIONS)
        spread, skey = raw.get("spread"), f"{key}.spread"
    else:
        distribution, spread, skey = "uniform", raw, key
    bound = limits.JITTER_SPREAD
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not bound.lo <= spread <= bound.hi:
        raise c.fail(skey, f"expected a spread from {bound.lo:g} to {bound.hi:g} (a fraction of each delay), "
                           f"got {show(spread)}")
    return {"distribution": distribution, "spread": float(spread)} if spread else None


def show(value: Any) -> str:
    import json

    if isinstance(value, (str, int, float, bool, list, dict)):
        return json.dumps(value, default=str)
    return type(value).__name__
