"""The bounds of every number a person or a peer can give: the one place they are written.

The CLI (argparse types), topology files and shapes, experiment files and the daemons'
handlers all check through here, so `latency set 0 1 1e20` and the same value sent over the
wire are refused alike. Each bound is a closed range of finite numbers with a physical reason;
NaN, infinities and booleans are refused everywhere. Errors are EINVAL and one line that names
the option, the value and the allowed range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

# The largest virtual time a clock may show: int64 nanoseconds (292 years). msgpack packs at most
# a uint64, and the costs below keep a clock far from this; clocks saturate at it (clamp_clock_ns).
CLOCK_MAX_NS = (1 << 63) - 1


@dataclass(frozen=True)
class Bound:
    """A closed range [lo, hi] of finite numbers, in `unit`; `integer` refuses fractions."""

    lo: float
    hi: float
    unit: str = ""
    integer: bool = False

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.integer:
            return f"{int(self.lo)}..{int(self.hi)}{unit}"
        return f"{self.lo:g}..{self.hi:g}{unit}"

    def check(self, value: object, option: str) -> float | int:
        """`value` when it is a number within the range, else EINVAL naming `option`."""
        ok = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        finite = ok and (isinstance(value, int) or math.isfinite(value))  # an int of any size compares exactly
        if isinstance(value, bool) or not finite or not self.lo <= value <= self.hi:
            kind = "a whole number" if self.integer else "a number"
            subject = f"{option} {_show(value)}" if option else _show(value)
            raise NumaEmuError(ErrorCode.EINVAL, f"{subject} is out of range: expected {kind} in {self.describe()}")
        return value

    def argtype(self):
        """An argparse `type=`: a number within this range, else argparse's one-line usage error
        (exit 2) naming the option, the value and the range. NaN and infinities never pass."""
        import argparse  # only command lines need it

        def parse(text: str) -> float | int:
            try:
                value = int(text) if self.integer else float(text)
            except ValueError:
                kind = "a whole number" if self.integer else "a number"
                raise argparse.ArgumentTypeError(f"{text!r} is not {kind}, expected one in {self.describe()}") from None
            try:
                return self.check(value, "")
            except NumaEmuError as exc:
                raise argparse.ArgumentTypeError(exc.message) from None

        return parse


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and value.bit_length() > 128:  # str() of thousands of digits raises
        return f"a {value.bit_length()}-bit number"
    return repr(value)[:40] if isinstance(value, str) else str(value)[:40]


# Latency of one access or message: above zero, at most 1 s (a page over the slowest link costs
# about 4 ms; a second is a thousand times slower than any memory).
LATENCY_NS = Bound(0.001, 1e9, "ns")
# Bandwidth of a link: 1 MiB/s (slower than any memory bus) to about 1 PB/s.
BANDWIDTH_MIB_S = Bound(1.0, 1e9, "MiB/s")
# `latency scale`: relative to the topology; the scaled latencies must also stay in LATENCY_NS.
LATENCY_SCALE = Bound(0.001, 1e6)
# `real` mode: wall delay = modeled delay x dilation (a message held at most 1e15 ns = 11 days).
DILATION = Bound(0.001, 1e6)
# Jitter spread: a fraction of the delay (10 = up to 11 times the delay).
JITTER_SPREAD = Bound(0.0, 10.0)
# Nodes are processes: QEMU's MAX_NODES.
NODES = Bound(1, 128, integer=True)
NODE_ID = Bound(0, NODES.hi - 1, integer=True)
# CPUs of one node (the largest sockets today have a few hundred threads), and CPU ids
# (Linux's largest NR_CPUS, CONFIG_NR_CPUS_RANGE_END); each CPU costs memory in every process.
CPUS_PER_NODE = Bound(1, 1024, integer=True)
CPU_ID = Bound(0, 8191, integer=True)
# Frames of one node: the pool keeps 5 bytes of metadata per frame from the start (80 MiB at
# this limit, which is 64 GiB of 4 KiB pages).
NODE_FRAMES = Bound(1, 1 << 24, integer=True)
# One mapping: at most the 128 TiB of an x86-64 task's 47-bit address space (TASK_SIZE).
MAPPING_BYTES = Bound(1, 1 << 47, "bytes", integer=True)
# Durations a command waits or records for (trace record --duration, experiment timeout): a week.
DURATION_S = Bound(0.0, 7 * 86400.0, "s")
# Pauses and windows in milliseconds (sysctl *_ms, writeshare --pause-ms): up to an hour.
MILLISECONDS = Bound(0, 3_600_000, "ms")
# Tasks a workload team starts on each node: each is a process on this host.
TASKS_PER_NODE = Bound(1, 256, integer=True)
# How often a live view refreshes (top --interval): visible to a person, not a busy loop.
REFRESH_S = Bound(0.01, 3600.0, "s")
# Repetitions of an experiment's configuration.
REPETITIONS = Bound(1, 10_000, integer=True)

# Faults on purpose (`numa-emu fault`): a probability per message; a delay of at most 10 s (the
# delaying link's own cap, protocol.delaylink.MAX_HOLD_S); a stopped node for at most an hour;
# a seed that fits the decisions' 64-bit key.
FAULT_PROBABILITY = Bound(0.0, 1.0)
FAULT_DELAY_MS = Bound(0.0, 10_000.0, "ms")
FAULT_STOP_S = Bound(0.01, 3600.0, "s")
FAULT_SEED = Bound(0, (1 << 63) - 1, integer=True)


def clamp_clock_ns(ns: int) -> int:
    """A virtual clock never runs past CLOCK_MAX_NS: it saturates instead of overflowing the wire."""
    return ns if ns <= CLOCK_MAX_NS else CLOCK_MAX_NS
