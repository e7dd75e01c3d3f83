"""The coordinator's pure core for tasks: which task runs on which CPU, under which policy,
inside which cpuset. The coordinator is the policy authority (docs/design.md#coordinator); it validates here and
pushes the result to the task's home node. The cpusets and their rules: coordinator.cpusets.

A change of cpuset (attach, or new cpus/mems) is planned for every task it touches before
anything is changed, so a refusal (EBUSY, EINVAL) leaves every task and set as it was; the plan,
a TaskChange per task, is what the server pushes to the home nodes.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

from numa_emu.coordinator.cpusets import ROOT, Cpuset, CpusetTable, migration_needed
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.nodemask import format_nodelist
from numa_emu.protocol.policy import DEFAULT_POLICY, Policy, make_policy, rebind

__all__ = ["HOST_SHIFT", "ROOT", "Cpuset", "TaskChange", "TaskRecord", "TaskTable", "task_id_of"]

# Task ids are unique cluster-wide while pids are only unique per host: a task's id is its pid
# with its host's index above the pid's bits (Linux's PID_MAX_LIMIT is 2**22). Index 0 is the
# coordinator's host, so there a task id is the pid, as before hosts and as users expect.
HOST_SHIFT = 22
# kernel/sched/fair.c: a NUMA move may leave the destination node up to this many running tasks
# busier than the source (a small imbalance that keeps a task near its memory is allowed)
NUMA_IMBALANCE_MIN = 2


def task_id_of(pid: int, host_index: int) -> int:
    if not 0 < pid < 1 << HOST_SHIFT:
        raise NumaEmuError(ErrorCode.EINVAL, f"pid {pid} is not a Linux pid (1 to {(1 << HOST_SHIFT) - 1})")
    return host_index << HOST_SHIFT | pid


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
    # sched_setaffinity's mask (an explicit CPU at attach is one: `taskset -c N`); None: the
    # cpuset's cpus. A cpuset change resets it, as set_cpus_allowed_ptr did before Linux 6.2.
    affinity: frozenset[int] | None = None
    numa_preferred: int = -1  # the node NUMA balancing last asked it to run on (task.numa_migrate)


@dataclass(frozen=True)
class TaskChange:
    """What a cpuset change does to one task, for its home node `node`."""

    task_id: int
    node: int
    old_cpu: int
    cpu: int
    old_mems: frozenset[int]
    mems: frozenset[int]
    old_policy: Policy
    policy: Policy
    migrate: bool = False  # memory_migrate: the home node moves the pages from old mems to new mems
    new_node: int = -1  # the task's home after the change (the node of `cpu`)
    # the effective mems before and after (cgroup v2 cpuset.mems.effective): the policies are rebound
    # from the one to the other, and memory_migrate moves the pages off old_effective
    # (cs->old_mems_allowed) to effective: an offline node neither gives nor takes pages
    old_effective: frozenset[int] = frozenset()
    effective: frozenset[int] = frozenset()

    @property
    def cpu_moved(self) -> bool:
        return self.cpu != self.old_cpu

    @property
    def node_moved(self) -> bool:
        """The task leaves its home node: the old home hands it over (node.task.move)."""
        return self.new_node != self.node

    @property
    def rebound(self) -> bool:
        """The home node must hear of new mems or a new policy (node.task.policy)."""
        return self.mems != self.old_mems or self.effective != self.old_effective or self.policy != self.old_policy


class TaskTable:
    def __init__(self, topology: dict):
        self.cpu_node = {cpu: n["id"] for n in topology["nodes"] for cpu in n["cpus"]}
        self.node_cpus = {n["id"]: frozenset(n["cpus"]) for n in topology["nodes"]}
        self.possible = frozenset(self.node_cpus)
        self.cpusets = CpusetTable(self.cpu_node, self.possible)
        self.tasks: dict[int, TaskRecord] = {}
        self.offline_cpus: frozenset[int] = frozenset()  # CPUs of offline nodes (coordinator/offline.py)
        self.offline_nodes: frozenset[int] = frozenset()

    def set_offline_cpus(self, cpus: frozenset[int]) -> None:
        """The CPUs of offline nodes: no task is placed on them while another CPU will do."""
        self.offline_cpus = frozenset(cpus)

    def set_offline_nodes(self, nodes: frozenset[int]) -> None:
        """The offline nodes: they leave every cpuset's effective mems (effective_mems)."""
        self.offline_nodes = frozenset(nodes)

    def effective_mems(self, cs: Cpuset) -> frozenset[int]:
        """cpuset.mems.effective (cgroup v2): the mems without offline nodes; when none is left, the
        root's (guarantee_online_mems: the nearest ancestor's, and every cpuset is the root's child).
        What the cpuset's tasks may allocate on; cpuset.mems keeps the configured value."""
        return self._effective(cs.mems)

    def _effective(self, mems: frozenset[int]) -> frozenset[int]:
        online = self.cpusets.all_mems - self.offline_nodes
        return (mems & online) or online

    def effective_cpus(self, cs: Cpuset) -> frozenset[int]:
        """cpuset.cpus.effective: the cpus without those of offline nodes (the root's when none is left)."""
        online = self.cpusets.all_cpus - self.offline_cpus
        return (cs.cpus & online) or online

    def _online(self, cpus: frozenset[int]) -> frozenset[int]:
        return (cpus - self.offline_cpus) or cpus

    def cpuset(self, name: str | None) -> Cpuset:
        return self.cpusets.get(name)

    def get(self, task_id: int) -> TaskRecord:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise NumaEmuError(ErrorCode.ESRCH, f"no task {task_id} in this cluster") from None

    def by_pid(self, pid: int) -> TaskRecord:
        """The task of pid `pid`: the coordinator's host's first (its task id is the pid)."""
        if pid in self.tasks:
            return self.tasks[pid]
        for rec in self.tasks.values():
            if rec.pid == pid:
                return rec
        raise NumaEmuError(ErrorCode.ESRCH, f"no task with pid {pid} in this cluster (see: numa-emu status)")

    def members(self, name: str) -> list[TaskRecord]:
        """The tasks in cpuset `name`, by task id."""
        return sorted((t for t in self.tasks.values() if t.cpuset == name), key=lambda t: t.task_id)

    def _load(self) -> collections.Counter[int]:
        return collections.Counter(t.cpu for t in self.tasks.values())

    def _pick_cpu(self, cpus: frozenset[int], prefer_nodes: frozenset[int] = frozenset()) -> int:
        """The least loaded CPU, lowest id first: deterministic placement of new tasks; on a CPU of
        `prefer_nodes` (the task's own host) when it may run on one."""
        near = cpus & frozenset().union(*(self.node_cpus[n] for n in prefer_nodes if n in self.node_cpus))
        cpus = near or cpus
        load = self._load()
        return min(cpus, key=lambda c: (load[c], c))

    def register(self, *, pid: int, comm: str, cpu: int | None, policy: dict | None, cpuset: str | None,
                 nodes_bound: list | None, cpus_bound: list | None = None,
                 create_time: float | None = None, prefer_nodes: frozenset[int] = frozenset(),
                 host: str = "", host_index: int = 0, policy_mems: list | None = None) -> TaskRecord:
        """A task joins, with the policy it inherited (`policy`, made against the effective mems
        `policy_mems`; None: against its cpuset's): it is checked as set_mempolicy checks it, then
        rebound from those mems to its cpuset's effective mems, as a forked child inherits its
        parent's policy after a node offline or online rebound it (rebind_to_effective)."""
        task_id = task_id_of(pid, host_index)
        if task_id in self.tasks:
            raise NumaEmuError(ErrorCode.EEXIST, f"pid {pid}{f' of host {host}' if host else ''} is attached already "
                                                 f"as a task")
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
        explicit = cpu is not None
        if cpu is not None:
            if cpu not in cpus:
                raise NumaEmuError(ErrorCode.EINVAL, f"cpu {cpu} is not one this task may run on "
                                                     f"(cpuset {cs.name} cpus {format_nodelist(cs.cpus)})")
            if cpu in self.offline_cpus:
                raise NumaEmuError(ErrorCode.EINVAL, f"cpu {cpu} is on node {self.cpu_node[cpu]}, which is offline "
                                                     f"(numa-emu node online {self.cpu_node[cpu]})")
        else:
            cpu = self._pick_cpu(self._online(cpus), prefer_nodes)
        pol = DEFAULT_POLICY
        if policy:
            inherited = Policy.from_wire(policy)
            effective = self.effective_mems(cs)
            made_on = effective if policy_mems is None else self.cpusets.check_mems(policy_mems)
            pol = rebind(make_policy(int(inherited.mode) | inherited.flags, inherited.user_nodes or inherited.nodes,
                                     allowed=made_on, possible=self.possible), effective, made_on)
        rec = TaskRecord(task_id, pid, comm, cpu, self.cpu_node[cpu], cs.name, pol, create_time,
                         affinity=frozenset((cpu,)) if explicit else cpus if cpus != cs.cpus else None)
        if host:
            rec.extra["host"] = host
        self.tasks[task_id] = rec
        return rec

    def set_policy(self, task_id: int, mode: int, nodes: list) -> Policy:
        """set_mempolicy(2): the nodes are checked against the task's mems_allowed, its cpuset's
        effective mems (mpol_set_nodemask), so a mask of offline nodes alone is EINVAL."""
        rec = self.get(task_id)
        rec.policy = make_policy(mode, frozenset(nodes), allowed=self.effective_mems(self.cpuset(rec.cpuset)),
                                 possible=self.possible)
        return rec.policy

    def set_affinity(self, task_id: int, cpus: list) -> TaskChange:
        """sched_setaffinity(2): the task runs on a CPU of `cpus` within its cpuset; none there is
        EINVAL (CPUs the machine lacks are ignored, as the kernel does with a wider mask).
        Remembered until a change of its cpuset's cpus, which places the task by those alone."""
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cpus):
            raise NumaEmuError(ErrorCode.EINVAL, f"an affinity is a list of CPU numbers, not {cpus!r}")
        rec = self.get(task_id)
        cs = self.cpuset(rec.cpuset)
        allowed = cs.cpus & frozenset(cpus)
        if not allowed:
            raise NumaEmuError(ErrorCode.EINVAL, f"cpus {format_nodelist(cpus)} have none of cpuset {cs.name}'s "
                                                 f"cpus {format_nodelist(cs.cpus)}")
        change = self._plan(rec, allowed, cs.mems, cs.mems, self._load())
        self._apply([change])
        rec.affinity = allowed
        return change

    def allowed_cpus(self, rec: TaskRecord) -> frozenset[int]:
        """The online CPUs the task may run on: its affinity within its cpuset's effective cpus."""
        cpus = self.effective_cpus(self.cpuset(rec.cpuset))
        return cpus & rec.affinity if rec.affinity is not None else cpus

    def numa_migrate(self, task_id: int, node: int) -> tuple[str, list[TaskChange]]:
        """task_numa_migrate (kernel/sched/fair.c), for a task whose hinting faults prefer `node`:
        "migrated" to an idle CPU of `node` it may run on when the move leaves the two nodes' running
        tasks within NUMA_IMBALANCE_MIN of each other; else "swapped" with a task on a CPU of `node`
        that prefers the task's node and may run on the task's CPU (each takes the other's CPU); else
        "stay". Planned and applied here (both tasks, for a swap); the server moves them."""
        rec = self.get(task_id)
        if node not in self.node_cpus:
            raise NumaEmuError(ErrorCode.EINVAL, f"task.numa_migrate: no node {node} in this machine")
        rec.numa_preferred = node
        if node == rec.node:
            return "stay", []
        allowed = self.allowed_cpus(rec)
        there = allowed & self.node_cpus[node]
        load = self._load()
        src_running, dst_running = (sum(load[c] for c in self.node_cpus[n]) for n in (rec.node, node))
        idle = sorted(c for c in there if load[c] == 0)
        cs = self.cpuset(rec.cpuset)
        if idle and (dst_running + 1) - (src_running - 1) <= NUMA_IMBALANCE_MIN:
            change = self._plan(rec, frozenset(idle[:1]), cs.mems, cs.mems, load)
            self._apply([change])
            return "migrated", [change]
        for other in sorted(self.tasks.values(), key=lambda t: t.task_id):
            if (other.cpu in there and other.numa_preferred == rec.node
                    and rec.cpu in self.allowed_cpus(other)):
                mine, theirs, other_mems = rec.cpu, other.cpu, self.cpuset(other.cpuset).mems
                changes = [self._plan(rec, frozenset((theirs,)), cs.mems, cs.mems, load),
                           self._plan(other, frozenset((mine,)), other_mems, other_mems, load)]
                self._apply(changes)
                return "swapped", changes
        return "stay", []

    def remove(self, task_id: int) -> TaskRecord | None:
        return self.tasks.pop(task_id, None)

    # ---- cpusets -----------------------------------------------------------------------
    def create_cpuset(self, name: str, cpus: list, mems: list, *, memory_migrate: bool = False,
                      replication: bool | None = None) -> Cpuset:
        return self.cpusets.create(name, cpus, mems, memory_migrate=memory_migrate, replication=replication)

    def delete_cpuset(self, name: str) -> Cpuset:
        return self.cpusets.delete(name, len(self.members(self.cpuset(name).name)))

    def _plan(self, rec: TaskRecord, cpus: frozenset[int], old_mems: frozenset[int], mems: frozenset[int],
              load: collections.Counter[int], migrate: bool = False) -> TaskChange:
        """The task's CPU within `cpus` and its policy rebound from the effective mems of `old_mems`
        to those of `mems` (b1; cpuset_update_tasks_nodemask rebinds to cs->effective_mems); with
        `migrate` (memory_migrate) its pages follow, when the remap moves any node."""
        try:
            cpu = self.cpusets.cpu_within(rec.cpu, self._online(cpus), load)
        except NumaEmuError as exc:
            raise NumaEmuError(exc.code, f"task {rec.task_id} ({rec.comm}): {exc.message}") from None
        load[rec.cpu] -= 1
        load[cpu] += 1
        old_effective, effective = self._effective(old_mems), self._effective(mems)
        return TaskChange(rec.task_id, rec.node, rec.cpu, cpu, old_mems, mems, rec.policy,
                          rebind(rec.policy, effective, old_effective),
                          migrate and migration_needed(old_effective, effective),
                          self.cpu_node[cpu], old_effective, effective)

    def rebind_to_effective(self, before: dict[str, frozenset[int]]) -> list[TaskChange]:
        """Node hotplug changed the offline nodes (set_offline_nodes): every task of a cpuset whose
        effective mems differ from `before` (cpuset name -> effective mems) has its policy rebound
        from those to the new ones, as cpuset_hotplug_workfn -> hotplug_update_tasks ->
        cpuset_update_tasks_nodemask does (online rebinds back: a default remap need not come back
        where it was, a static mask does). The tasks stay on their CPUs; pages do not move here."""
        changes = []
        for rec in sorted(self.tasks.values(), key=lambda r: r.task_id):
            cs = self.cpuset(rec.cpuset)
            new = self.effective_mems(cs)
            old = before.get(cs.name, new)  # a cpuset made meanwhile met the new offline nodes already
            if old != new:
                changes.append(TaskChange(rec.task_id, rec.node, rec.cpu, rec.cpu, cs.mems, cs.mems, rec.policy,
                                          rebind(rec.policy, new, old), new_node=rec.node, old_effective=old,
                                          effective=new))
        self._apply(changes)
        return changes

    def _apply(self, changes: list[TaskChange], cpuset: str | None = None) -> None:
        for ch in changes:
            rec = self.tasks[ch.task_id]
            rec.cpu, rec.node, rec.policy = ch.cpu, ch.new_node, ch.policy
            if cpuset is not None:
                rec.cpuset = cpuset

    def change_cpuset(self, name: str, *, cpus: list | None = None, mems: list | None = None,
                      memory_migrate: bool | None = None, replication: bool | None = None
                      ) -> tuple[Cpuset, list[TaskChange]]:
        """Write cpus, mems or flags of a cpuset. Tasks whose CPU leaves the set move to another
        CPU of their node, else to a CPU of another node; new mems rebind every task's policy.
        With memory_migrate on (or being turned on), the tasks' pages follow the new mems
        (docs/linux-semantics.md#cpusets: relative placement), moved by their home nodes."""
        cs, new_cpus, new_mems = self.cpusets.check_change(name, cpus=cpus, mems=mems)
        tasks = self.members(cs.name)
        migrate = cs.memory_migrate if memory_migrate is None else bool(memory_migrate)
        load = self._load()
        changes = [self._plan(rec, new_cpus, cs.mems, new_mems, load, migrate) for rec in tasks]
        cs.cpus, cs.mems, cs.memory_migrate = new_cpus, new_mems, migrate
        if replication is not None:
            cs.replication = bool(replication)
        self._apply(changes)
        if cpus is not None:  # update_tasks_cpumask: the cpuset's cpus replace every member's affinity
            for rec in tasks:
                rec.affinity = None
        return cs, [ch for ch in changes if ch.cpu_moved or ch.rebound]

    def attach(self, pid: int, name: str) -> tuple[TaskRecord, Cpuset, TaskChange]:
        """Move the running task `pid` into cpuset `name` (cpuset_attach): its CPU as for a
        change of cpus, its policy rebound from the old set's mems to the new set's, and with the
        new set's memory_migrate its pages moved from the old mems to the new ones."""
        rec = self.by_pid(pid)
        new, old = self.cpuset(name), self.cpuset(rec.cpuset)
        change = self._plan(rec, new.cpus, old.mems, new.mems, self._load(), new.memory_migrate)
        self._apply([change], new.name)
        rec.affinity = None  # cpuset_attach: the task may run on every cpu of its new set
        return rec, old, change

    def cpuset_info(self, cs: Cpuset) -> dict:
        out = cs.to_dict()
        out["effective_cpus"], out["effective_mems"] = sorted(self.effective_cpus(cs)), sorted(self.effective_mems(cs))
        out["tasks"] = [t.task_id for t in self.members(cs.name)]
        return out

    def info(self, rec: TaskRecord) -> dict:
        cs = self.cpuset(rec.cpuset)
        return {"task_id": rec.task_id, "pid": rec.pid, "comm": rec.comm, "cpu": rec.cpu, "node": rec.node,
                "cpuset": rec.cpuset, "cpus_allowed": sorted(cs.cpus), "mems_allowed": sorted(self.effective_mems(cs)),
                "policy": rec.policy.to_wire(), "host": rec.extra.get("host", ""),
                "affinity": sorted(self.allowed_cpus(rec)), "numa_preferred": rec.numa_preferred}
