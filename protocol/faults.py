"""Faults on purpose (`numa-emu fault ...`): the table in force and the seeded decision per message.

The coordinator owns the table and pushes it to every node (node.faults); each node's reactor asks
its FaultInjector about every message it sends to another node (requests, replies and notices to
a `node:N` peer) and drops, duplicates or delays it accordingly (protocol.peercalls). A decision
is a pure function of (seed, source, destination, the message's number on that link), so a run
with the same seed and the same messages makes the same decisions (docs/protocol.md#faults).

Kinds: drop (the message is lost), dup (sent twice), delay (held MS, in order: later messages of
the link wait behind it) and reorder (held MS while later ones overtake it). A rule applies to one
link (src -> dst), to every link of a node (either end), or to every link; the most specific rule
of a kind wins. A partition cuts two sets of nodes from each other both ways until cleared.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from numa_emu.protocol import limits
from numa_emu.protocol.errors import einval
from numa_emu.protocol.routing import node_of

KINDS = ("drop", "dup", "delay", "reorder")
DELAYING = ("delay", "reorder")
DEFAULT_DELAY_MS = 10.0
_KEY = struct.Struct("<QqqQ")



@dataclass(frozen=True)
class Decision:
    """What happens to one message: lost, or sent `copies` times after `delay_s`; `overtake`
    lets later messages of the link pass it (reorder), else they queue behind it."""

    drop: bool = False
    copies: int = 1
    delay_s: float = 0.0
    overtake: bool = False
    partitioned: bool = False


PASS = Decision()


def uniforms(seed: int, src: int, dst: int, n: int) -> tuple[float, float, float, float]:
    """Four numbers in [0, 1) for the n-th message from src to dst: the same inputs, the same numbers."""
    digest = hashlib.blake2b(_KEY.pack(seed, src, dst, n), digest_size=16).digest()
    return tuple(v / 4294967296.0 for v in struct.unpack("<4I", digest))  # type: ignore[return-value]


def _scope_key(src: int | None, dst: int | None, node: int | None) -> tuple:
    if src is not None:
        return ("link", src, dst)
    if node is not None:
        return ("node", node)
    return ("all",)


class FaultTable:
    """The rules and partitions in force, with the seed of their decisions and a version."""

    def __init__(self, n_nodes: int, seed: int = 1):
        self.n_nodes = n_nodes
        self.seed = seed
        self.version = 0
        # kind -> scope key -> (probability, delay ms)
        self.rules: dict[str, dict[tuple, tuple[float, float]]] = {k: {} for k in KINDS}
        self.partitions: list[tuple[frozenset[int], frozenset[int]]] = []

    # ---- changes (checked: the coordinator's handlers and the wire go through them) ----
    def check_node(self, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.n_nodes:
            raise einval(f"fault: {what} {value!r} is not a node of this cluster (0..{self.n_nodes - 1})")
        return value

    def set_seed(self, seed: Any) -> None:
        self.seed = int(limits.FAULT_SEED.check(seed, "--seed"))

    def set_rule(self, kind: str, p: Any, ms: Any = None, src: Any = None, dst: Any = None, node: Any = None) -> None:
        """Probability `p` of `kind` on one link (src, dst), every link of `node`, or every link;
        p = 0 removes the rule."""
        if kind not in KINDS:
            raise einval(f"fault: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        p = float(limits.FAULT_PROBABILITY.check(p, "probability"))
        ms = float(limits.FAULT_DELAY_MS.check(DEFAULT_DELAY_MS if ms is None else ms, "--ms"))
        if (src is None) != (dst is None):
            raise einval("fault: --link needs both SRC and DST")
        if src is not None:
            if node is not None:
                raise einval("fault: give --link or --node, not both")
            src, dst = self.check_node(src, "link source"), self.check_node(dst, "link destination")
            if src == dst:
                raise einval(f"fault: link {src} -> {dst} is not between two nodes")
        elif node is not None:
            node = self.check_node(node, "node")
        key = _scope_key(src, dst, node)
        if p == 0:
            self.rules[kind].pop(key, None)
        else:
            self.rules[kind][key] = (p, ms if kind in DELAYING else 0.0)
        self.version += 1

    def partition(self, a: Any, b: Any) -> None:
        sa = frozenset(self.check_node(n, "partition node") for n in a)
        sb = frozenset(self.check_node(n, "partition node") for n in b)
        if not sa or not sb:
            raise einval("fault partition: both sides need at least one node")
        if sa & sb:
            raise einval(f"fault partition: node(s) {sorted(sa & sb)} on both sides")
        self.partitions.append((sa, sb))
        self.version += 1

    def clear(self) -> None:
        for rules in self.rules.values():
            rules.clear()
        self.partitions.clear()
        self.version += 1

    @property
    def active(self) -> bool:
        return bool(self.partitions) or any(self.rules.values())

    # ---- decisions ---------------------------------------------------------------------
    def _rule(self, kind: str, src: int, dst: int) -> tuple[float, float] | None:
        rules = self.rules[kind]
        if not rules:
            return None
        for key in (("link", src, dst), ("node", src), ("node", dst), ("all",)):
            rule = rules.get(key)
            if rule is not None:
                return rule
        return None

    def cut(self, src: int, dst: int) -> bool:
        return any((src in a and dst in b) or (src in b and dst in a) for a, b in self.partitions)

    def decide(self, src: int, dst: int, n: int) -> Decision:
        """The fate of the n-th message sent from node src to node dst."""
        if self.cut(src, dst):
            return Decision(drop=True, partitioned=True)
        u_drop, u_dup, u_delay, u_reorder = uniforms(self.seed, src, dst, n)
        rule = self._rule("drop", src, dst)
        if rule is not None and u_drop < rule[0]:
            return Decision(drop=True)
        copies, delay_s, overtake = 1, 0.0, False
        rule = self._rule("dup", src, dst)
        if rule is not None and u_dup < rule[0]:
            copies = 2
        rule = self._rule("delay", src, dst)
        if rule is not None and u_delay < rule[0]:
            delay_s += rule[1] / 1000.0
        rule = self._rule("reorder", src, dst)
        if rule is not None and u_reorder < rule[0]:
            delay_s, overtake = delay_s + rule[1] / 1000.0, True
        if copies == 1 and delay_s == 0.0:
            return PASS
        return Decision(copies=copies, delay_s=delay_s, overtake=overtake)

    # ---- the wire and the screen ----------------------------------------------------------
    def to_wire(self) -> dict:
        rules = []
        for kind, scoped in self.rules.items():
            for key, (p, ms) in sorted(scoped.items()):
                rule: dict[str, Any] = {"kind": kind, "p": p}
                if kind in DELAYING:
                    rule["ms"] = ms
                if key[0] == "link":
                    rule["src"], rule["dst"] = key[1], key[2]
                elif key[0] == "node":
                    rule["node"] = key[1]
                rules.append(rule)
        return {"seed": self.seed, "version": self.version, "n_nodes": self.n_nodes, "rules": rules,
                "partitions": [[sorted(a), sorted(b)] for a, b in self.partitions]}

    @classmethod
    def from_wire(cls, wire: Any) -> "FaultTable":
        """A table from its wire form, every field checked (EINVAL on anything malformed)."""
        try:
            n_nodes = int(limits.NODES.check(wire["n_nodes"], "n_nodes"))
            table = cls(n_nodes)
            table.set_seed(wire["seed"])
            for rule in wire["rules"]:
                table.set_rule(rule["kind"], rule["p"], rule.get("ms"), rule.get("src"), rule.get("dst"), rule.get("node"))
            for a, b in wire["partitions"]:
                table.partition(a, b)
            table.version = int(limits.FAULT_SEED.check(wire["version"], "version"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise einval(f"malformed fault table: {exc.__class__.__name__}: {exc}") from None
        return table


def format_table(wire: dict) -> str:
    """`fault show`: one line per rule and partition."""
    lines = [f"faults (seed {wire['seed']}, version {wire['version']}):"]
    for rule in wire["rules"]:
        if "src" in rule:
            scope = f"link {rule['src']}->{rule['dst']}"
        elif "node" in rule:
            scope = f"every link of node {rule['node']}"
        else:
            scope = "every link"
        extra = f" by {rule['ms']:g} ms" if "ms" in rule else ""
        lines.append(f"  {rule['kind']:<8} {rule['p']:g}{extra}  on {scope}")
    for a, b in wire["partitions"]:
        lines.append(f"  partition {','.join(map(str, a))} | {','.join(map(str, b))}")
    for node, until in sorted(wire.get("stopped", {}).items()):
        lines.append(f"  node {node} stopped for {until:g} s more")
    if len(lines) == 1:
        lines.append("  none")
    return "\n".join(lines)


class FaultInjector:
    """One node's view of the table: numbers the messages of each outgoing link and decides."""

    def __init__(self, table: FaultTable, src: int):
        self.table = table
        self.src = src
        self.sent: dict[int, int] = {}  # destination node -> messages decided so far

    @property
    def active(self) -> bool:
        return self.table.active

    def decide(self, peer: str) -> Decision:
        """The fate of the next message to `peer` ("node:N"); a peer that is no node passes."""
        try:
            dst = node_of(peer)
        except ValueError:
            return PASS
        if not 0 <= dst < self.table.n_nodes or dst == self.src:
            return PASS
        n = self.sent.get(dst, 0)
        self.sent[dst] = n + 1
        return self.table.decide(self.src, dst, n)
