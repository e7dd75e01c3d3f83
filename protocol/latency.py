"""The latency model in force: per-pair latency and bandwidth, the injection mode, the dilation
and the jitter of each link. Pure data with its rules; the coordinator owns the authoritative
copy and pushes it to every node, which costs virtual time from it and, in `real` mode, holds
every inter-node message back by it (docs/design.md#real-injection).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from numa_emu.protocol import limits
from numa_emu.protocol.errors import einval

VIRTUAL, REAL = "virtual", "real"
JITTER_DISTRIBUTIONS = ("uniform", "normal", "exponential")



@dataclass
class LatencyTable:
    latency_ns: list[list[float]]
    bandwidth_mib_s: list[list[float]]
    base_latency_ns: list[list[float]]  # the topology's, for reset
    mode: str = VIRTUAL
    dilation: float = 1.0
    jitter: dict[str, list] = field(default_factory=dict)  # "src,dst" or "*" -> [distribution, spread]
    version: int = 0

    @classmethod
    def from_topology(cls, topology: dict, mode: str = VIRTUAL, dilation: float = 1.0) -> "LatencyTable":
        table = cls([list(map(float, r)) for r in topology["latency_ns"]],
                    [list(map(float, r)) for r in topology["bandwidth_mib_s"]],
                    [list(map(float, r)) for r in topology["latency_ns"]])
        table.set_mode(mode, dilation)
        return table

    @property
    def n_nodes(self) -> int:
        return len(self.latency_ns)

    def _node(self, node: int, what: str) -> int:
        if not isinstance(node, int) or not 0 <= node < self.n_nodes:
            raise einval(f"{what} node {node} does not exist (nodes 0-{self.n_nodes - 1})")
        return node

    # ---- changes (each validates everything before changing anything) --------------------
    def set_mode(self, mode: str, dilation: float | None = None) -> None:
        if mode not in (VIRTUAL, REAL):
            raise einval(f"injection mode must be '{VIRTUAL}' or '{REAL}', not {mode!r}")
        if dilation is not None:
            limits.DILATION.check(dilation, "dilation")
        self.mode = mode
        if dilation is not None:
            self.dilation = float(dilation)
        self.version += 1

    def set(self, src: int, dst: int, latency_ns: float, symmetric: bool = False) -> None:
        self._node(src, "source")
        self._node(dst, "destination")
        limits.LATENCY_NS.check(latency_ns, "latency")
        self.latency_ns[src][dst] = float(latency_ns)
        if symmetric:
            self.latency_ns[dst][src] = float(latency_ns)
        self.version += 1

    def scale(self, factor: float, remote_only: bool = False) -> None:
        """Every latency (or every remote one) becomes the topology's times `factor`: relative to
        the topology, not to the current table, so `scale 1` restores it and sweeps are idempotent."""
        limits.LATENCY_SCALE.check(factor, "scale factor")
        scaled = [[base * factor if not (remote_only and i == j) else self.latency_ns[i][j]
                   for j, base in enumerate(row)] for i, row in enumerate(self.base_latency_ns)]
        for i, row in enumerate(scaled):
            for j, ns in enumerate(row):
                limits.LATENCY_NS.check(ns, f"scale factor {factor:g} makes latency {i}->{j}")
        self.latency_ns = scaled
        self.version += 1

    def set_jitter(self, distribution: str, spread: float, src: int | None = None, dst: int | None = None) -> None:
        """Jitter of a link (or every link): the delay is multiplied by 1 + a sample of
        `distribution` with this relative spread, never below zero. spread 0 removes it."""
        if distribution not in JITTER_DISTRIBUTIONS:
            raise einval(f"jitter distribution must be one of {', '.join(JITTER_DISTRIBUTIONS)}, not {distribution!r}")
        limits.JITTER_SPREAD.check(spread, "jitter spread (a fraction of the delay)")
        if (src is None) != (dst is None):
            raise einval("give both a source and a destination node, or neither for every link")
        key = "*" if src is None else f"{self._node(src, 'source')},{self._node(dst, 'destination')}"
        if spread == 0:
            self.jitter.pop(key, None)
        else:
            self.jitter[key] = [distribution, float(spread)]
        self.version += 1

    def reset(self) -> None:
        self.latency_ns = [list(r) for r in self.base_latency_ns]
        self.jitter = {}
        self.version += 1

    # ---- reading ------------------------------------------------------------------------
    def delay_s(self, src: int, dst: int, nbytes: int, rng: random.Random | None = None) -> float:
        """How long `real` mode holds a message of `nbytes` from src to dst back (0 in virtual mode)."""
        if self.mode != REAL or src == dst:
            return 0.0
        ns = self.latency_ns[src][dst] + nbytes / (self.bandwidth_mib_s[src][dst] * 1048576 / 1e9)
        jitter = self.jitter.get(f"{src},{dst}") or self.jitter.get("*")
        if jitter and rng is not None:
            ns *= max(0.0, 1.0 + _sample(rng, jitter[0], jitter[1]))
        return ns * self.dilation * 1e-9

    def to_wire(self) -> dict[str, Any]:
        return {"latency_ns": self.latency_ns, "bandwidth_mib_s": self.bandwidth_mib_s,
                "base_latency_ns": self.base_latency_ns, "mode": self.mode, "dilation": self.dilation,
                "jitter": self.jitter, "version": self.version}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> "LatencyTable":
        """The table a peer sent, every value checked against protocol.limits (EINVAL otherwise):
        a node must not take from the wire what the CLI would refuse."""
        try:
            table = cls([list(map(float, r)) for r in d["latency_ns"]], [list(map(float, r)) for r in d["bandwidth_mib_s"]],
                        [list(map(float, r)) for r in d["base_latency_ns"]], str(d["mode"]), float(d["dilation"]),
                        {str(k): [str(v[0]), float(v[1])] for k, v in d["jitter"].items()}, int(d["version"]))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            raise einval(f"malformed latency table: {exc}") from None
        table.validate()
        return table

    def validate(self) -> None:
        """EINVAL naming the first value outside protocol.limits or the first malformed part."""
        n = self.n_nodes
        for name, matrix, bound in (("latency_ns", self.latency_ns, limits.LATENCY_NS),
                                    ("base_latency_ns", self.base_latency_ns, limits.LATENCY_NS),
                                    ("bandwidth_mib_s", self.bandwidth_mib_s, limits.BANDWIDTH_MIB_S)):
            if len(matrix) != n or any(len(row) != n for row in matrix):
                raise einval(f"malformed latency table: {name} is not {n} x {n}")
            for i, row in enumerate(matrix):
                for j, value in enumerate(row):
                    bound.check(value, f"latency table {name}[{i}][{j}]")
        if self.mode not in (VIRTUAL, REAL):
            raise einval(f"injection mode must be '{VIRTUAL}' or '{REAL}', not {self.mode!r}")
        limits.DILATION.check(self.dilation, "dilation")
        for key, (distribution, spread) in self.jitter.items():
            src, _, dst = key.partition(",")
            if key != "*" and not (src.isdigit() and dst.isdigit() and int(src) < n and int(dst) < n):
                raise einval(f"malformed latency table: jitter key {key[:32]!r} is not '*' or 'SRC,DST'")
            if distribution not in JITTER_DISTRIBUTIONS:
                raise einval(f"jitter distribution must be one of {', '.join(JITTER_DISTRIBUTIONS)}, "
                              f"not {distribution[:32]!r}")
            limits.JITTER_SPREAD.check(spread, "jitter spread (a fraction of the delay)")


def _sample(rng: random.Random, distribution: str, spread: float) -> float:
    if distribution == "uniform":
        return rng.uniform(-spread, spread)
    if distribution == "normal":
        return rng.gauss(0.0, spread)
    return rng.expovariate(1.0 / spread) - spread  # exponential tail, mean zero
