"""The coordinator's task handlers: attach and detach, task policy, cluster-wide counters, and
the watch that releases the memory of a task whose process died (even by SIGKILL)."""
from __future__ import annotations

import logging

import psutil

from coordinator.state import ClusterState
from coordinator.tasks import TaskTable
from protocol.effects import Call
from protocol.errors import ErrorCode, NumaEmuError
from protocol.messages import Ok
from protocol.messages import tasks as tm
from protocol.reactor import Reactor

log = logging.getLogger("coordinator.tasks")


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class TaskService:
    def __init__(self, reactor: Reactor, state: ClusterState):
        self.reactor = reactor
        self.state = state
        self.table = TaskTable(state.topology)

    def handlers(self) -> dict:
        return {"task.register": self.register, "task.exit": self.exit, "task.info": self.info,
                "task.list": self.list, "task.set_mempolicy": self.set_mempolicy, "cluster.stats": self.stats,
                "cpuset.show": self.cpuset_show}

    def _endpoint(self, node: int) -> str:
        rec = self.state.nodes[node]
        if rec.state not in ("up", "suspect"):
            raise NumaEmuError(ErrorCode.ENODEV, f"node {node} is {rec.state}; cannot attach a task there")
        return rec.endpoint

    def register(self, msg: tm.TaskRegister):
        if self.state.state != "up":
            raise NumaEmuError(ErrorCode.EBUSY, f"the cluster is {self.state.state}, not up")
        rec = self.table.register(pid=msg.pid, comm=msg.comm, cpu=msg.cpu, policy=msg.policy, cpuset=msg.cpuset,
                                  nodes_bound=msg.nodes_bound, cpus_bound=msg.cpus_bound,
                                  create_time=_create_time(msg.pid))
        try:
            endpoint = self._endpoint(rec.node)
            info = self.table.info(rec)
            yield Call(f"node:{rec.node}", tm.NodeTaskAttach(task_id=rec.task_id, pid=rec.pid, comm=rec.comm, cpu=rec.cpu,
                                                             policy=rec.policy.to_wire(), mems_allowed=info["mems_allowed"]))
        except NumaEmuError:
            self.table.remove(rec.task_id)
            raise
        log.info("task %d (%s) attached on cpu %d, node %d", rec.task_id, rec.comm, rec.cpu, rec.node)
        return tm.TaskRegisterReply(task_id=rec.task_id, cpu=rec.cpu, node=rec.node, node_endpoint=endpoint,
                                    cpus_allowed=info["cpus_allowed"], mems_allowed=info["mems_allowed"],
                                    policy=rec.policy.to_wire(), cpuset=rec.cpuset,
                                    page_size=self.state.page_size, n_nodes=len(self.state.nodes))

    def _detach(self, task_id: int):
        rec = self.table.remove(task_id)
        if rec is None:
            raise NumaEmuError(ErrorCode.ESRCH, f"no task {task_id} in this cluster")
        reply = yield Call(f"node:{rec.node}", tm.NodeTaskDetach(task_id=task_id))
        log.info("task %d detached: %d pages released", task_id, reply.pages_freed)
        return reply.pages_freed

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
        mems = sorted(self.table.cpuset(rec.cpuset).mems)
        try:
            yield Call(f"node:{rec.node}", tm.NodeTaskPolicy(task_id=rec.task_id, policy=policy.to_wire(),
                                                             mems_allowed=mems, old_mems_allowed=mems))
        except NumaEmuError:
            rec.policy = old
            raise
        return Ok()

    def cpuset_show(self, msg: tm.CpusetShow) -> tm.CpusetShowReply:
        sets = [self.table.cpuset(msg.name)] if msg.name else list(self.table.cpusets.values())
        return tm.CpusetShowReply(cpusets=[self.table.cpuset_info(cs) for cs in sets])

    def stats(self, msg: tm.ClusterStats):
        live = [rec.id for rec in self.state.live_nodes()]
        replies = yield [Call(f"node:{n}", tm.NodeStats()) for n in live]
        return tm.ClusterStatsReply(nodes={r.node_id: {"numastat": r.numastat, "vmstat": r.vmstat,
                                                       "frames_free": r.frames_free, "frames_total": r.frames_total,
                                                       "tasks": r.tasks} for r in replies})

    def watch(self) -> None:
        """Release the memory of tasks whose process is gone (exit without detach, SIGKILL)."""
        for rec in list(self.table.tasks.values()):
            if _create_time(rec.pid) == rec.create_time and rec.create_time is not None:
                continue
            log.info("task %d (%s) died without detaching; releasing its memory", rec.task_id, rec.comm)
            self.reactor.spawn(self._detach(rec.task_id), lambda _r, exc: exc and log.warning("detach failed: %s", exc))
