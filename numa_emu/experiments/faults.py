"""The [faults] table of an experiment file: faults set on every cluster once it is up
(docs/experiment-format.md, `numa-emu fault`).

    [faults]
    seed = 7                                         # the decisions' seed (default 1)
    drop = 0.1                                       # every link
    dup = { p = 0.5, node = 1 }                      # every link of node 1
    reorder = { p = 0.3, ms = 20, link = [0, 1] }    # one link, 0 -> 1
    delay = [{ p = 0.5, ms = 5 }, { p = 1, ms = 50, link = [0, 3] }]
    partition = [[0, 1], [2, 3]]                     # cut until the run ends

Checked against every topology of the grid with the coordinator's own checks (protocol.faults).
"""
from __future__ import annotations

from typing import Any

from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.faults import KINDS, FaultTable
from numa_emu.protocol.topology import Topology

TABLE = "faults"
_RULE_KEYS = {"p", "ms", "node", "link"}


def changes(c, raw: Any, topologies: list[Topology]) -> tuple[tuple[str, dict], ...]:
    """The fault.change requests (op, args) of the table, in order; SpecError naming the key."""
    table = c.table(raw, TABLE, set(KINDS) | {"seed", "partition"})
    out: list[tuple[str, dict]] = []
    seed = table.get("seed")
    for kind in KINDS:
        if kind not in table:
            continue
        value = table[kind]
        rules = value if isinstance(value, list) else [value]
        for i, rule in enumerate(rules):
            path = f"{TABLE}.{kind}" + (f"[{i}]" if isinstance(value, list) else "")
            if not isinstance(rule, dict):
                rule = {"p": rule}
            c.table(rule, path, _RULE_KEYS)
            if "p" not in rule:
                raise c.fail(f"{path}.p", "missing: the probability of each message, 0..1")
            args = {k: rule[k] for k in ("p", "ms", "node") if k in rule}
            if "link" in rule:
                link = rule["link"]
                if not isinstance(link, list) or len(link) != 2:
                    raise c.fail(f"{path}.link", "expected [SRC, DST]")
                args["src"], args["dst"] = link
            out.append((kind, args))
    if "partition" in table:
        part = table["partition"]
        if not isinstance(part, list) or len(part) != 2 or not all(isinstance(s, list) for s in part):
            raise c.fail(f"{TABLE}.partition", "expected [[nodes...], [nodes...]]")
        out.append(("partition", {"a": part[0], "b": part[1]}))
    if seed is not None:
        out.insert(0, ("seed", {"seed": seed}))
    for topology in topologies:  # the coordinator's checks, against each machine of the grid
        check = FaultTable(len(topology.node_ids))
        for op, args in out:
            try:
                _apply(check, op, args)
            except NumaEmuError as exc:
                raise c.fail(f"{TABLE}.{op}", f"{exc.message} (on {topology.name})") from None
    return tuple(out)


def _apply(table: FaultTable, op: str, args: dict) -> None:
    if op == "seed":
        table.set_seed(args["seed"])
    elif op == "partition":
        table.partition(args["a"], args["b"])
    else:
        table.set_rule(op, args["p"], args.get("ms"), args.get("src"), args.get("dst"), args.get("node"))
