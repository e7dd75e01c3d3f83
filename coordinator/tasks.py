"""The coordinator's pure core for tasks and cpusets: which task runs on which CPU, under which
policy, inside which cpuset. The coordinator is the policy authority (DESIGN.md); it validates
here and pushes the result to the task's home node."""
from __future__ import annotations

from dataclasses import dataclass, field

from protocol.errors import ErrorCode, NumaEmuError
from protocol.nodemask import format_nodelist
from protocol.policy import DEFAULT_POLICY, Policy, make_policy

ROOT = "/"


@dataclass
class Cpuset:
    name: str
    cpus: frozenset[int]
    mems: frozenset[int]
    memory_migrate: bool = False
    replication: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "cpus": sorted(self.cpus), "mems": sorted(self.mems),
                "memory_migrate": self.memory_migrate, "replication": self.replication}


@dataclass
class TaskRecord:
    task_id: int
    pid: int
    comm: str
    cpu: int
    node: int
    cpuset: str
    policy: Policy = DEFAULT_POLICY
    create_time: float | None = None
    extra: dict = field(default_factory=dict)


class TaskTable:
    def __init__(self, topology: dict):
        self.cpu_node = {cpu: n["id"] for n in topology["nodes"] for cpu in n["cpus"]}
        self.node_cpus = {n["id"]: frozenset(n["cpus"]) for n in topology["nodes"]}
        self.possible = frozenset(self.node_cpus)
        self.cpusets = {ROOT: Cpuset(ROOT, frozenset(self.cpu_node), self.possible)}
        self.tasks: dict[int, TaskRecord] = {}

    def cpuset(self, name: str | None) -> Cpuset:
        try:
            return self.cpusets[name or ROOT]
        except KeyError:
            raise NumaEmuError(ErrorCode.ENOENT, f"no cpuset '{name}' (see: numa-emu cpuset show)") from None

    def get(self, task_id: int) -> TaskRecord:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise NumaEmuError(ErrorCode.ESRCH, f"no task {task_id} in this cluster") from None

    def _pick_cpu(self, cpus: frozenset[int]) -> int:
        """The least loaded CPU, lowest id first: deterministic placement of new tasks."""
        load = {c: 0 for c in cpus}
        for t in self.tasks.values():
            if t.cpu in load:
                load[t.cpu] += 1
        return min(cpus, key=lambda c: (load[c], c))

    def register(self, *, pid: int, comm: str, cpu: int | None, policy: dict | None, cpuset: str | None,
                 nodes_bound: list | None, cpus_bound: list | None = None,
                 create_time: float | None = None) -> TaskRecord:
        if pid in self.tasks:
            raise NumaEmuError(ErrorCode.EEXIST, f"pid {pid} is attached already as a task")
        cs = self.cpuset(cpuset)
        cpus = cs.cpus
        if nodes_bound:
            unknown = set(nodes_bound) - self.possible
            if unknown:
                raise NumaEmuError(ErrorCode.EINVAL, f"no node(s) {sorted(unknown)} in this machine")
            cpus = cpus & frozenset().union(*(self.node_cpus[n] for n in nodes_bound))
            if not cpus:
                raise NumaEmuError(ErrorCode.EINVAL, f"nodes {format_nodelist(nodes_bound)} have no CPU in cpuset {cs.name}")
        if cpus_bound:
            cpus = cpus & frozenset(cpus_bound)
            if not cpus:
                raise NumaEmuError(ErrorCode.EINVAL, f"cpus {format_nodelist(cpus_bound)} are not in cpuset {cs.name}")
        if cpu is not None:
            if cpu not in cpus:
                raise NumaEmuError(ErrorCode.EINVAL, f"cpu {cpu} is not one this task may run on "
                                                     f"(cpuset {cs.name} cpus {format_nodelist(cs.cpus)})")
        else:
            cpu = self._pick_cpu(cpus)
        pol = DEFAULT_POLICY
        if policy:
            inherited = Policy.from_wire(policy)
            pol = make_policy(int(inherited.mode) | inherited.flags, inherited.user_nodes or inherited.nodes,
                              allowed=cs.mems, possible=self.possible)
        rec = TaskRecord(pid, pid, comm, cpu, self.cpu_node[cpu], cs.name, pol, create_time)
        self.tasks[pid] = rec
        return rec

    def set_policy(self, task_id: int, mode: int, nodes: list) -> Policy:
        rec = self.get(task_id)
        rec.policy = make_policy(mode, frozenset(nodes), allowed=self.cpuset(rec.cpuset).mems, possible=self.possible)
        return rec.policy

    def remove(self, task_id: int) -> TaskRecord | None:
        return self.tasks.pop(task_id, None)

    def cpuset_info(self, cs: Cpuset) -> dict:
        out = cs.to_dict()
        out["tasks"] = sorted(t.task_id for t in self.tasks.values() if t.cpuset == cs.name)
        return out

    def info(self, rec: TaskRecord) -> dict:
        cs = self.cpuset(rec.cpuset)
        return {"task_id": rec.task_id, "pid": rec.pid, "comm": rec.comm, "cpu": rec.cpu, "node": rec.node,
                "cpuset": rec.cpuset, "cpus_allowed": sorted(cs.cpus), "mems_allowed": sorted(cs.mems),
                "policy": rec.policy.to_wire()}
