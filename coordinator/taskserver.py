"""The coordinator's task handlers: attach and detach, task policy, cpusets, the sysctl tunables,
cluster-wide counters, and the watch that releases the memory of a task whose process died
(even by SIGKILL). The rules live in the pure cores (coordinator.tasks, coordinator.cpusets);
these handlers apply them and push the results to the nodes."""
from __future__ import annotations

import logging
from collections.abc import Callable

import psutil

from numa_emu.coordinator.state import ClusterState
from numa_emu.coordinator.tasks import TaskChange, TaskRecord, TaskTable
from numa_emu.protocol.effects import Call, Future
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import control as cm
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.nodemask import format_nodelist
from numa_emu.protocol.policy import Policy
from numa_emu.protocol.reactor import Reactor
from numa_emu.protocol.routing import node_dest
from numa_emu.protocol.timing import MIGRATE_CALL_TIMEOUT_S

log = logging.getLogger("coordinator.tasks")


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class TaskService:
    def __init__(self, reactor: Reactor, state: ClusterState,
                 watch_elsewhere: Callable[[str, int, int], bool] = lambda host, task_id, pid: False,
                 clocks: Callable[[], dict[int, int]] = dict):
        self.reactor = reactor
        self.state = state
        # (host, task id, pid; 0: stop) -> whether that host's agent watches the task's process
        self.watch_elsewhere = watch_elsewhere
        self.host_indexes: dict[str, int] = {}  # host -> the high bits of its tasks' ids
        self.clocks = clocks  # () -> host key -> its clock minus the coordinator's (ns), on several hosts
        self.table = TaskTable(state.topology)
        self.moving: dict[int, list[Future]] = {}  # task id -> TaskHome requests waiting for its move
        self.sysctl = SysctlService(state)

    def handlers(self) -> dict:
        return {"task.register": self.register, "task.exit": self.exit, "task.exited": self.exited, "task.info": self.info,
                "task.list": self.list, "task.set_mempolicy": self.set_mempolicy, "cluster.stats": self.stats,
                "cpuset.show": self.cpuset_show, "cpuset.create": self.cpuset_create, "cpuset.set": self.cpuset_set,
                "cpuset.attach": self.cpuset_attach, "cpuset.delete": self.cpuset_delete,
                "task.migrate_pages": self.migrate_pages, "task.home": self.home,
                "task.numa_migrate": self.numa_migrate,
                "task.set_affinity": self.set_affinity} | self.sysctl.handlers()

    def _endpoint(self, node: int, host: str) -> str:
        """Where a task on `host` reaches node `node` (ipc on its own host, else tcp)."""
        rec = self.state.nodes[node]
        if rec.state not in ("up", "suspect"):
            raise NumaEmuError(ErrorCode.ENODEV, f"home node {node} is {rec.state}; cannot reach a task there")
        return self.state.endpoints_from(host, [rec])[node]

    def _clocks_for(self, key: int | None) -> list | None:
        """Every other host's clock against the task's, when the task's is one measured."""
        clocks = self.clocks()
        if key not in clocks or len(clocks) < 2:
            return None
        return [[k, off - clocks[key]] for k, off in clocks.items() if k != key]

    def _coordinator_clocks_for(self, key: int | None) -> list | None:
        """Every host's clock against the coordinator's, when the task's is not one measured (a
        host without nodes): the task converts them itself."""
        clocks = self.clocks()
        if key is None or key in clocks:
            return None
        return [[k, off] for k, off in clocks.items()]

    def _host_index(self, host: str) -> int:
        """The high bits of the task ids of `host` (coordinator.tasks.task_id_of): 0 for the
        coordinator's, then the hosts of the nodes in node order, then others as they attach."""
        if not self.host_indexes:
            for h in [self.state.host] + [r.host for r in sorted(self.state.nodes.values(), key=lambda r: r.id)]:
                self.host_indexes.setdefault(h, len(self.host_indexes))
        return self.host_indexes.setdefault(host, len(self.host_indexes))

    def _host(self, task_id: int) -> str:
        return self.table.get(task_id).extra.get("host", self.state.host)

    def register(self, msg: tm.TaskRegister):
        if self.state.state != "up":
            raise NumaEmuError(ErrorCode.EBUSY, f"the cluster is {self.state.state}, not up")
        host = msg.host or self.state.host
        here = host == self.state.host  # else its pid is another host's: not watched from here
        rec = self.table.register(pid=msg.pid, comm=msg.comm, cpu=msg.cpu, policy=msg.policy, cpuset=msg.cpuset,
                                  policy_mems=msg.policy_mems,
                                  nodes_bound=msg.nodes_bound, cpus_bound=msg.cpus_bound,
                                  create_time=_create_time(msg.pid) if here else None,
                                  prefer_nodes=frozenset(r.id for r in self.state.nodes.values() if r.host == host),
                                  host=host, host_index=self._host_index(host))
        try:
            endpoint = self._endpoint(rec.node, host)
            info = self.table.info(rec)
            yield Call(node_dest(rec.node), tm.NodeTaskAttach(task_id=rec.task_id, pid=rec.pid, comm=rec.comm, cpu=rec.cpu,
                                                             policy=rec.policy.to_wire(), mems_allowed=info["mems_allowed"],
                                                             replication=self.table.cpuset(rec.cpuset).replication,
                                                             cap_sys_nice=bool(msg.cap_sys_nice)))
        except NumaEmuError:
            self.table.remove(rec.task_id)
            raise
        log.info("task %d (%s) attached on cpu %d, node %d", rec.task_id, rec.comm, rec.cpu, rec.node)
        watch_yourself = not here and not self.watch_elsewhere(host, rec.task_id, rec.pid)
        if watch_yourself:
            log.info("task %d: host %s has no agent to watch it; the task starts its own watcher", rec.task_id, host)
        return tm.TaskRegisterReply(watch_yourself=watch_yourself, task_id=rec.task_id, cpu=rec.cpu, node=rec.node, node_endpoint=endpoint,
                                    cpus_allowed=info["cpus_allowed"], mems_allowed=info["mems_allowed"],
                                    policy=rec.policy.to_wire(), cpuset=rec.cpuset,
                                    page_size=self.state.page_size, n_nodes=len(self.state.nodes),
                                    node_endpoints=self.state.endpoints_from(host, self.state.live_nodes()),
                                    clocks=self._clocks_for(msg.clock_key),
                                    coordinator_clocks=self._coordinator_clocks_for(msg.clock_key))

    def _detach(self, task_id: int):
        rec = self.table.remove(task_id)
        if rec is None:
            raise NumaEmuError(ErrorCode.ESRCH, f"no task {task_id} in this cluster")
        if rec.extra.get("host", self.state.host) != self.state.host:
            self.watch_elsewhere(rec.extra["host"], task_id, 0)
        if "home_died" in rec.extra:
            return (yield from self._purge(rec))
        reply = yield Call(node_dest(rec.node), tm.NodeTaskDetach(task_id=task_id))
        log.info("task %d detached: %d pages released", task_id, reply.pages_freed)
        return reply.pages_freed

    def home_died(self, node: int, why: str) -> None:
        """Node `node` died: its tasks' memory died with it; they stay listed until they detach
        (or their process is found gone), and then every live node frees what they held."""
        for rec in self.table.tasks.values():
            if rec.node == node:
                rec.extra["home_died"] = f"home node {node} died ({why})"

    def _purge(self, rec: TaskRecord):
        """Detach a task whose home node died: its page table died there, so every live node
        frees the frames it remembers the task by (nodes.core.purge_task)."""
        live = [n.id for n in self.state.live_nodes()]
        try:
            replies = yield self.state.broadcast(tm.NodeTaskPurge(task_id=rec.task_id))
        except NumaEmuError as exc:  # the others freed theirs; detach goes on (the task is gone)
            log.warning("task %d: not every node freed what it held: %s", rec.task_id, exc)
            return 0
        freed = sum(r.frames_freed for r in replies)
        log.info("task %d detached (%s): %d frames freed on nodes %s", rec.task_id, rec.extra["home_died"], freed, live)
        return freed

    def exit(self, msg: tm.TaskExit):
        yield from self._detach(msg.task_id)
        return Ok()

    def info(self, msg: tm.TaskInfo) -> tm.TaskInfoReply:
        return tm.TaskInfoReply(task=self.table.info(self.table.get(msg.task_id)))

    def list(self, msg: tm.TaskList) -> tm.TaskListReply:
        return tm.TaskListReply(tasks=[self.table.info(r) for r in self.table.tasks.values()])

    def set_mempolicy(self, msg: tm.SetMempolicy):
        rec = self.table.get(msg.task_id)
        old = rec.policy
        policy = self.table.set_policy(msg.task_id, msg.mode, msg.nodes)
        mems = self.table.cpuset(rec.cpuset).mems
        try:
            yield Call(node_dest(rec.node), self.task_policy(rec.task_id, policy, mems, mems))
        except NumaEmuError:
            rec.policy = old
            raise
        return Ok()

    def migrate_pages(self, msg: mg.TaskMigratePages):
        """migratepages PID FROM TO: the task's home node moves the pages (and checks the nodes
        against the task's cpuset, as migrate_pages(2) does)."""
        for attempt in range(3):
            rec = self.table.by_pid(msg.pid)
            try:
                reply = yield Call(node_dest(rec.node), mg.MigratePages(
                    task_id=rec.task_id, old_nodes=msg.old_nodes, new_nodes=msg.new_nodes, move_all=msg.move_all),
                                   MIGRATE_CALL_TIMEOUT_S)
                break
            except NumaEmuError as exc:
                # the task moved itself to another node meanwhile (sched_setaffinity): the table
                # names its new home already, ask that one
                if exc.code != ErrorCode.EREMCHG or attempt == 2:
                    raise
        log.info("task %d (%s): migrate_pages %s -> %s moved %d page(s), %d not moved", rec.task_id, rec.comm,
                 format_nodelist(msg.old_nodes), format_nodelist(msg.new_nodes), reply.moved, reply.not_moved)
        return reply

    # ---- cpusets -----------------------------------------------------------------------
    def cpuset_show(self, msg: tm.CpusetShow) -> tm.CpusetShowReply:
        sets = [self.table.cpuset(msg.name)] if msg.name else list(self.table.cpusets)
        return tm.CpusetShowReply(cpusets=[self.table.cpuset_info(cs) for cs in sets])

    def cpuset_create(self, msg: cm.CpusetCreate) -> tm.CpusetShowReply:
        cs = self.table.create_cpuset(msg.name, msg.cpus, msg.mems, memory_migrate=msg.memory_migrate,
                                      replication=msg.replication)
        log.info("cpuset %s created: cpus %s mems %s", cs.name, format_nodelist(cs.cpus), format_nodelist(cs.mems))
        return tm.CpusetShowReply(cpusets=[self.table.cpuset_info(cs)])

    def cpuset_delete(self, msg: cm.CpusetDelete) -> Ok:
        cs = self.table.delete_cpuset(msg.name)
        log.info("cpuset %s deleted", cs.name)
        return Ok()

    def _push_changes(self, what: str, changes: list[TaskChange]):
        """Tell each home node what a cpuset change did to its tasks: first the tasks that leave
        their node are handed to their new home (node.task.move, answered once adopted); then a
        new CPU (same node), new mems and the rebound policy (the node rebinds region policies
        from the old effective mems to the new, as the task policy was, and with memory_migrate
        moves the pages). The change is made already: the coordinator is the authority, a node
        that cannot be told is reported."""
        moves = [ch for ch in changes if ch.node_moved]
        if moves:
            yield from self._move_tasks(what, moves)
        calls = []
        for ch in changes:
            dest = node_dest(ch.new_node)
            if ch.cpu_moved and not ch.node_moved:
                calls.append(Call(dest, cm.NodeTaskCpu(task_id=ch.task_id, cpu=ch.cpu)))
            if ch.rebound:
                calls.append(Call(dest, self.task_policy(ch.task_id, ch.policy, ch.effective, ch.old_effective,
                                                         replication=self._replication_of(ch.task_id),
                                                         migrate=ch.migrate, migrate_from=sorted(ch.old_effective)),
                                  MIGRATE_CALL_TIMEOUT_S if ch.migrate else None))
        if not calls:
            return
        try:
            yield calls
        except NumaEmuError as exc:
            raise NumaEmuError(ErrorCode.EIO, f"{what} is done, but not every home node heard of it: {exc}") from None

    def _move_tasks(self, what: str, moves: list[TaskChange]):
        for ch in moves:
            self.moving.setdefault(ch.task_id, [])
            log.info("task %d moves from node %d to cpu %d of node %d", ch.task_id, ch.node, ch.cpu, ch.new_node)
        try:
            yield [Call(node_dest(ch.node), tm.NodeTaskMove(task_id=ch.task_id, node=ch.new_node, cpu=ch.cpu),
                        MIGRATE_CALL_TIMEOUT_S) for ch in moves]
        except NumaEmuError as exc:
            raise NumaEmuError(ErrorCode.EIO, f"{what}: not every task could move to its new node: {exc}") from None
        finally:
            for ch in moves:  # the tasks that asked where they live meanwhile are answered now
                for fut in self.moving.pop(ch.task_id, []):
                    fut.set_result(None)

    def home(self, msg: tm.TaskHome):
        """Where task lives; during a move, once the new home has adopted it."""
        if msg.task_id in self.moving:
            fut = Future()
            self.moving[msg.task_id].append(fut)
            yield fut
        rec = self.table.get(msg.task_id)
        if "home_died" in rec.extra:
            raise NumaEmuError(ErrorCode.EIO, f"task {rec.task_id}: its {rec.extra['home_died']} with its memory; "
                                              "detach it")
        return tm.TaskHomeReply(node=rec.node, cpu=rec.cpu, endpoint=self._endpoint(rec.node, self._host(rec.task_id)))

    def set_affinity(self, msg: tm.TaskSetAffinity):
        change = self.table.set_affinity(msg.task_id, msg.cpus)
        if change.cpu_moved:
            log.info("task %d: affinity %s, cpu %d -> %d", msg.task_id, format_nodelist(msg.cpus), change.old_cpu,
                     change.cpu)
            yield from self._push_changes(f"the affinity change of task {msg.task_id}", [change])
        return tm.TaskHomeReply(node=change.new_node, cpu=change.cpu,
                                endpoint=self._endpoint(change.new_node, self._host(msg.task_id)))

    def numa_migrate(self, msg: tm.TaskNumaMigrate):
        """NUMA balancing's task placement: the task's home asks to run it on its preferred node."""
        outcome, changes = self.table.numa_migrate(msg.task_id, msg.node)
        if changes:
            log.info("task %d %s toward node %d (its NUMA faults)", msg.task_id, outcome, msg.node)
            yield from self._push_changes(f"the NUMA move of task {msg.task_id}", changes)
        rec = self.table.get(msg.task_id)
        return tm.TaskNumaMigrateReply(outcome=outcome, node=rec.node, cpu=rec.cpu,
                                       swapped_with=changes[1].task_id if outcome == "swapped" else 0)

    def task_policy(self, task_id: int, policy: Policy, mems: frozenset[int], old_mems: frozenset[int],
                    **kw) -> tm.NodeTaskPolicy:
        """node.task.policy for a task: its policy, the mems its region policies are rebound from
        (`old_mems`) and to (`mems`), and the effective mems of its cpuset, which it allocates on."""
        effective = self.table.effective_mems(self.table.cpuset(self.table.get(task_id).cpuset))
        return tm.NodeTaskPolicy(task_id=task_id, policy=policy.to_wire(), mems_allowed=sorted(mems),
                                 old_mems_allowed=sorted(old_mems), effective_mems=sorted(effective), **kw)

    def effective_mems_changed(self, before: dict[str, frozenset[int]]):
        """Node hotplug changed the offline nodes: every task of a cpuset whose effective mems
        differ from `before` (cpuset name -> effective mems) has its task and region policies
        rebound from those to the new ones and hears of them at its home node, as a change of
        cpuset.mems delivers them (TaskTable.rebind_to_effective)."""
        changes = self.table.rebind_to_effective(before)
        for ch in changes:
            if ch.policy != ch.old_policy:
                log.info("task %d: policy rebound to the effective mems %s", ch.task_id, format_nodelist(ch.effective))
        yield from self._push_changes("the change of the effective mems", changes)

    def _replication_of(self, task_id: int) -> bool:
        return self.table.cpuset(self.table.get(task_id).cpuset).replication

    def cpuset_set(self, msg: cm.CpusetSet):
        cs, changes = self.table.change_cpuset(msg.name, cpus=msg.cpus, mems=msg.mems,
                                               memory_migrate=msg.memory_migrate, replication=msg.replication)
        log.info("cpuset %s now cpus %s mems %s memory_migrate %d replication %d; %d task(s) changed", cs.name,
                 format_nodelist(cs.cpus), format_nodelist(cs.mems), cs.memory_migrate, cs.replication, len(changes))
        yield from self._push_changes(f"the change of cpuset '{cs.name}'", changes)
        if msg.replication is not None:  # the flag reaches the home node of every task of the cpuset
            rebound = {ch.task_id for ch in changes if ch.rebound}
            calls = [Call(node_dest(t.node), self.task_policy(t.task_id, t.policy, cs.mems, cs.mems,
                                                              replication=cs.replication))
                     for t in self.table.tasks.values() if t.cpuset == cs.name and t.task_id not in rebound]
            if calls:
                yield calls
        return cm.CpusetSetReply(cpuset=self.table.cpuset_info(cs),
                                 rebound=[ch.task_id for ch in changes if ch.rebound],
                                 moved=[[ch.task_id, ch.old_cpu, ch.cpu] for ch in changes if ch.cpu_moved],
                                 migrated=[ch.task_id for ch in changes if ch.migrate])

    def cpuset_attach(self, msg: cm.CpusetAttach):
        rec, old, change = self.table.attach(msg.pid, msg.name)
        log.info("task %d moved from cpuset %s to %s, cpu %d -> %d", rec.task_id, old.name, rec.cpuset,
                 change.old_cpu, change.cpu)
        yield from self._push_changes(f"the move of task {rec.task_id} to cpuset '{rec.cpuset}'", [change])
        return cm.CpusetAttachReply(task=self.table.info(rec), old_cpuset=old.name, old_cpu=change.old_cpu)

    # ---- counters -----------------------------------------------------------------------
    def stats(self, msg: tm.ClusterStats):
        replies = yield self.state.broadcast(tm.NodeStats())
        return tm.ClusterStatsReply(nodes={r.node_id: {"numastat": r.numastat, "vmstat": r.vmstat,
                                                       "frames_free": r.frames_free, "frames_total": r.frames_total,
                                                       "tasks": r.tasks, "repl_lifetimes": r.repl_lifetimes or {}}
                                                   for r in replies})

    def watch(self) -> None:
        """Release the memory of tasks whose process is gone (exit without detach, SIGKILL)."""
        for rec in list(self.table.tasks.values()):
            if _create_time(rec.pid) == rec.create_time and rec.create_time is not None:
                continue
            if rec.extra.get("host", self.state.host) != self.state.host:
                continue  # a task of another host: its agent watches it (gone)
            self._died(rec)

    def gone(self, task_id: int) -> None:
        """The agent of a task's host saw its process exit (supervisor.watch_task)."""
        rec = self.table.tasks.get(task_id)
        if rec is not None and rec.extra.get("host", self.state.host) != self.state.host:
            self._died(rec)

    def exited(self, msg: tm.TaskExited) -> None:
        """A task's own watcher saw its process exit (a host without an agent): as gone(). A task
        that detached meanwhile, or another process's id, is no error: nothing to release."""
        rec = self.table.tasks.get(msg.task_id)
        if rec is not None and rec.pid == msg.pid and rec.extra.get("host", self.state.host) != self.state.host:
            self._died(rec)

    def _died(self, rec: TaskRecord) -> None:
        log.info("task %d (%s) died without detaching; releasing its memory", rec.task_id, rec.comm)
        self.reactor.spawn(self._detach(rec.task_id), lambda _r, exc: exc and log.warning("detach failed: %s", exc))


class SysctlService:
    """The cluster's tunables (protocol.messages.control.tunables): the coordinator keeps every
    value; those that apply on the nodes are pushed to every live node before the reply, so
    they hold for the next allocation anywhere."""

    def __init__(self, state: ClusterState):
        self.state = state
        self.table = cm.tunables(n["id"] for n in state.topology["nodes"])
        self.values = {key: t.default for key, t in self.table.items()}

    def handlers(self) -> dict:
        return {"sysctl.get": self.get, "sysctl.set": self.set}

    def _tunable(self, key: object) -> cm.Tunable:
        if not isinstance(key, str) or key not in self.table:
            raise NumaEmuError(ErrorCode.ENOENT, f"unknown key {key!r} (see: numa-emu sysctl -a)")
        return self.table[key]

    def preset(self, assignments: list[str]) -> None:
        """Values given at start (`up --sysctl KEY=VALUE`, `--unsafe-unreplicate`); they reach the
        nodes with `push_all` once every node is up. EINVAL on a bad one: the cluster does not start."""
        self.values.update(cm.parse_assignments(self.table, assignments))

    def push_all(self):
        """Effects that give every live node the node-scope values that differ from the defaults."""
        values = {k: v for k, v in self.values.items()
                  if self.table[k].scope == cm.SCOPE_NODES and v != self.table[k].default}
        return self.state.broadcast(cm.NodeSysctl(values=values)) if values else []

    def get(self, msg: cm.SysctlGet) -> cm.SysctlReply:
        keys = list(self.table) if msg.keys is None else [self._tunable(k).key for k in msg.keys]
        return cm.SysctlReply(values={k: self.values[k] for k in keys})

    def set(self, msg: cm.SysctlSet):
        new = {}
        for key, text in msg.values.items():
            if isinstance(text, bool) or not isinstance(text, (str, int)):
                raise NumaEmuError(ErrorCode.EINVAL, f"{key}: expected a value as text, got {text!r}")
            tunable = self._tunable(key)
            new[tunable.key] = tunable.check(text)
        if not new:
            raise NumaEmuError(ErrorCode.EINVAL, "nothing to set")
        self.values.update(new)  # the coordinator's word is the value in force, as for cpusets
        log.info("sysctl %s", " ".join(f"{k}={v}" for k, v in new.items()))
        pushed = {k: v for k, v in new.items() if self.table[k].scope == cm.SCOPE_NODES}
        if pushed:
            try:
                yield self.state.broadcast(cm.NodeSysctl(values=pushed))
            except NumaEmuError as exc:
                raise NumaEmuError(ErrorCode.EIO, f"set, but not every node took {', '.join(pushed)}: {exc}") from None
        return cm.SysctlReply(values=new)
