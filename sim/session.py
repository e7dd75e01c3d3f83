"""A simulated cluster driven one request at a time, as tests drive task puppets on a real cluster:
each `do` runs one task's request (or a short script of them) until nothing is in flight, with
every invariant checked after every message, and returns its result. Counters are read straight
off the nodes. For step-by-step protocol tests with exact outcomes (tests/sim)."""
from __future__ import annotations

from numa_emu.sim import invariants
from numa_emu.sim.cluster import SimCluster
from numa_emu.sim.network import Violation
from numa_emu.sim.tasks import SimTask

MAX_STEPS = 20_000


class Session:
    def __init__(self, *, nodes: int, cpus: list[int], files: dict[str, bytes] | None = None, frames: int = 32,
                 seed: int = 0, sysctl: list[str] = (), direct: bool = False):
        self.cluster = SimCluster(seed, n_nodes=nodes, frames=frames, sysctl=list(sysctl))
        self.tasks: list[SimTask] = []
        try:
            self.tasks = [SimTask(self.cluster, i + 1, cpu, direct) for i, cpu in enumerate(cpus)]
            self.cluster.net.after_delivery = lambda: invariants.after_message(self.cluster)
            self.cluster.boot(files or {}, [(t.task_id, t.cpu) for t in self.tasks])
        except BaseException:
            self.close()
            raise

    def do(self, task: SimTask, gen):
        """Run `gen` (a SimTask request, or a generator yielding from several) to its end: its
        result, or its NumaEmuError raised; Violation if an invariant broke on the way."""
        out: list = []
        self.cluster.net.spawn(task.name, gen, lambda result, exc: out.append((result, exc)))
        self.cluster.net.run(MAX_STEPS)
        if not out:
            raise Violation(f"{task.name}'s request never finished")
        result, exc = out[0]
        if exc is not None:
            raise exc
        return result

    def quiescent(self) -> None:
        """The checks of a cluster at rest: counters and every frame accounted for."""
        invariants.at_quiescence(self.cluster)

    def vmstat(self, node: int) -> dict[str, int]:
        return self.cluster.nodes[node].vmstat()

    def counters(self) -> dict[int, dict[str, int]]:
        """Per node: numastat, vmstat and frames_free in one dict (as tests read node.stats)."""
        return {node.node_id: {**node.core.numastat, **node.vmstat(), "frames_free": node.pool.free}
                for node in self.cluster.nodes}

    def total(self, name: str) -> int:
        return sum(self.vmstat(n)[name] for n in range(len(self.cluster.nodes)))

    def close(self) -> None:
        for task in self.tasks:
            task.close()
        self.cluster.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
