"""Virtual time: what each memory operation costs, from the topology (docs/design.md#virtual-time).

Pure and deterministic: the same operations on the same topology always cost the same integer
nanoseconds. An access of n bytes from a CPU on node c to memory on node m costs
latency[c][m] + n / bandwidth[c][m]; a fault adds the kernel's fault overhead and the zeroing of
the page; a page copy between nodes costs the link's latency plus the page over its bandwidth.
Nodes and tasks both charge with it: a task's direct access (protocol/directpath.py) costs exactly
what its home node would have charged for the same access by message.
"""
from __future__ import annotations

from numa_emu.protocol import limits

# A minor anonymous fault on current x86 kernels costs about 0.5-1 us before zeroing
# (trap, handle_mm_fault, page-table update); we charge the middle of that.
FAULT_OVERHEAD_NS = 700
SHOOTDOWN_NS = 1500  # one TLB-shootdown IPI round, for later issues
TOUCH_BYTES = 64  # a touch without fill reads or writes one cache line of each page


def transfer_ns(latency_ns: float, bytes_per_ns: float, nbytes: int) -> int | float:
    """An access of `nbytes` at `latency_ns` over a link of `bytes_per_ns`, unrounded."""
    return latency_ns + nbytes / bytes_per_ns


class CostModel:
    def __init__(self, latency_ns: list[list[float]], bandwidth_mib_s: list[list[float]], page_size: int):
        # Bounded inputs keep every cost finite and far below what a clock can hold (protocol.limits).
        for name, matrix, bound in (("latency", latency_ns, limits.LATENCY_NS),
                                    ("bandwidth", bandwidth_mib_s, limits.BANDWIDTH_MIB_S)):
            for i, row in enumerate(matrix):
                for j, value in enumerate(row):
                    bound.check(value, f"{name} {i}->{j}")
        self.latency_ns = latency_ns
        self.page_size = page_size
        # bytes per nanosecond: MiB/s * 2^20 / 1e9
        self.bytes_per_ns = [[bw * 1048576 / 1e9 for bw in row] for row in bandwidth_mib_s]
        self._page_ns = [[self._transfer(c, m, page_size) for m in range(len(row))] for c, row in enumerate(latency_ns)]

    def _transfer(self, cpu: int, mem: int, nbytes: int) -> float:
        return transfer_ns(self.latency_ns[cpu][mem], self.bytes_per_ns[cpu][mem], nbytes)

    def local(self, node: int) -> tuple[float, float]:
        """(latency ns, bytes per ns) of an access by a CPU of `node` to its own memory: what a
        task's direct path charges with (transfer_ns)."""
        return float(self.latency_ns[node][node]), float(self.bytes_per_ns[node][node])

    def access_ns(self, cpu: int, mem: int, nbytes: int) -> int:
        """A read or write of `nbytes` (within one page) by a CPU on `cpu` to memory on `mem`."""
        if nbytes == self.page_size:
            return round(self._page_ns[cpu][mem])
        return round(self._transfer(cpu, mem, nbytes))

    def fault_ns(self, cpu: int, mem: int) -> int:
        """A first-touch fault: overhead plus zeroing the new page (written by the faulting CPU)."""
        return FAULT_OVERHEAD_NS + round(self._page_ns[cpu][mem])

    def copy_ns(self, src: int, dst: int) -> int:
        """Copying one page from `src` to `dst` (replication, migration)."""
        return round(self._page_ns[src][dst])
