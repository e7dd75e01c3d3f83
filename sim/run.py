"""One seed of one scenario, start to end: the verdict and the message trace."""
from __future__ import annotations

from dataclasses import dataclass, field

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.sim import invariants
from numa_emu.sim.cluster import SimCluster
from numa_emu.sim.faults import Faults
from numa_emu.sim.network import Crash, Violation
from numa_emu.sim.scenarios import Scenario
from numa_emu.sim.tasks import SimTask

MAX_STEPS = 20_000  # deliveries of one run; a scenario that needs more is a livelock
# What a task may get once a node died: its home or its memory died (docs/protocol.md#a-nodes-death).
DEATH_ERRORS = (ErrorCode.EIO, ErrorCode.ESRCH, ErrorCode.ENODEV, ErrorCode.ETIMEDOUT)
CRASH_WITHIN = 150  # deliveries after the tasks start: a crash (a partition, a stop) lands in the middle of the shipped scenarios


@dataclass
class Result:
    scenario: str
    seed: int
    violation: str | None
    delivered: int
    trace: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # every node's vmstat events, summed, at the end
    started: int = 0  # deliveries before the tasks started (the boot)
    faults: list[str] = field(default_factory=list)  # the partitions and stops that happened (sim.faults)

    @property
    def ok(self) -> bool:
        return self.violation is None

    def verdict(self) -> str:
        return (f"{self.scenario} seed {self.seed}: ok, {self.delivered} messages" if self.ok else
                f"{self.scenario} seed {self.seed}: VIOLATION after {self.delivered} messages: {self.violation}")


def run(scenario: Scenario, seed: int, sysctl: list[str] = (), *, trace: bool = True, drop: float = 0.0,
        dup: float = 0.0, crash: bool = False, partition: bool = False, stop: bool = False,
        direct: bool = False) -> Result:
    """Run `scenario` under `seed`; `drop` and `dup`: the probability that a message between two
    nodes is lost or delivered twice (sim.network); `crash`: one node, chosen by the seed, dies
    at a delivery the seed chooses (within CRASH_WITHIN of the tasks' start); `partition`, `stop`:
    a partition of the nodes, a stop of one node, for a span the seed chooses (sim.faults), at a
    delivery drawn among those the same run makes without them (so that it lands while the tasks
    run, whatever the scenario's length); `direct`: the tasks read and write through the direct path
    where it allows (sim.tasks.SimTask). NumaEmuError (EINVAL, ENOENT) for a bad sysctl assignment."""
    direct = direct or scenario.direct
    within = 0
    if partition or stop:
        bare = run(scenario, seed, sysctl, trace=False, drop=drop, dup=dup, crash=crash, direct=direct)
        within = max(1, bare.delivered - bare.started)
    cluster = SimCluster(seed, n_nodes=scenario.nodes, frames=scenario.frames, sysctl=list(sysctl), trace=trace,
                         drop=drop, dup=dup)
    net = cluster.net
    tasks: list[SimTask] = []
    try:
        cluster.history.initial.update(scenario.initial())
        tasks = [SimTask(cluster, i + 1, cpu, direct) for i, (cpu, _script) in enumerate(scenario.tasks)]
        net.after_delivery = lambda: invariants.after_message(cluster)
        violation, started, faults = None, 0, None
        try:
            cluster.boot(scenario.files, [(t.task_id, t.cpu) for t in tasks])
            started = net.delivered
            at = victim = None
            if crash:
                at, victim = net.delivered + net.rng.randint(1, CRASH_WITHIN), net.rng.randrange(scenario.nodes)
            faults = Faults(cluster, partition=partition, stop=stop, within=within)
            if crash or faults.events:
                def check() -> None:
                    if net.delivered == at:
                        cluster.crash(victim)
                    faults.after_delivery()
                    invariants.after_message(cluster)
                net.after_delivery = check
            finished: dict[int, BaseException | None] = {}
            failed_ns: dict[int, int] = {}  # when each task that failed did
            for task, (_cpu, script) in zip(tasks, scenario.tasks):
                net.note(f"{task.name} starts on node {task.home}")
                net.spawn(task.name, script(task), _finisher(net, task, finished, failed_ns))
            net.run(MAX_STEPS)
            for task in tasks:
                if task.task_id not in finished:
                    raise Violation(f"{task.name} never finished: it waits for an answer that no message brings")
                exc = finished[task.task_id]
                if exc is None or (cluster.dead and exc.code in DEATH_ERRORS):
                    continue
                if exc.code == ErrorCode.ETIMEDOUT and faults.timeouts_expected(failed_ns[task.task_id]):
                    continue  # the real client's deadline: the fault outlasted it
                raise Violation(f"{task.name} failed: {exc}")
            invariants.at_quiescence(cluster)
        except (Violation, Crash) as exc:
            violation = str(exc)
            net.note(f"VIOLATION: {violation}")
        totals: dict[str, int] = {}
        for node in cluster.nodes:
            for name, value in node.core.events.items():
                totals[name] = totals.get(name, 0) + value
        totals["direct_reads"] = sum(task.direct_counts()[0] for task in tasks)
        totals["direct_writes"] = sum(task.direct_counts()[1] for task in tasks)
        return Result(scenario.name, seed, violation, net.delivered, net.trace or [], totals, started,
                      faults.applied if faults is not None else [])
    finally:
        for task in tasks:
            task.close()
        cluster.close()


def _finisher(net, task: SimTask, finished: dict, failed_ns: dict):
    def done(_result, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, NumaEmuError):
            raise exc
        finished[task.task_id] = exc
        if exc is not None:
            failed_ns[task.task_id] = net.now_ns
        net.note(f"{task.name} " + ("done" if exc is None else f"failed: {exc}"))
    return done
