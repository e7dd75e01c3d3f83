"""`numa-emu node offline N` / `node online N`, the coordinator's side
(docs/linux-semantics.md#node-offline, docs/protocol.md#node-offline).

Offline N, as the kernel offlines a node's memory and CPUs (offline_pages fails with EBUSY when
it cannot migrate everything): first every check, with nothing changed, each failure EBUSY with
its reason on one line: N up and online; another online node with CPUs; every task homed on N
keeps a CPU of its cpuset off the offline nodes (a cpuset whose mems are all offline takes its
parent's effective mems, as cgroup v2 does: its tasks' pages go there); the other online nodes'
free frames hold what N holds (replicas aside: they are dropped); and no master on N has an
object policy (a file's shared policy, the shm policies the nodes report with node.evacuate
check) that binds it to offline nodes alone (N's check): the kernel does not rebind shared
policies. Task and region policies never refuse: they are rebound first, as the kernel rebinds
them. Then: the tasks of every cpuset that had N in its effective mems (cpuset.mems.effective)
have their task and region policies rebound from the old effective mems to the new ones (the
path a change of cpuset.mems takes: cpuset_hotplug_workfn -> cpuset_update_tasks_nodemask),
every node drops N from its zonelists (node.set_offline), the tasks homed on N move to a CPU of
their cpuset elsewhere (as sched_setaffinity: the task service's own path), every node moves its
tasks' private pages off N where the rebound policies place them, and N hands on its masters,
each where its object's policy places it, and drops its replicas (node.evacuate). Online N: the
policies are rebound back the same way and every node takes N back into its zonelists; tasks
stay where they are.
"""
from __future__ import annotations

import logging

from numa_emu.coordinator.state import ClusterState
from numa_emu.coordinator.taskserver import TaskService
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.timing import MIGRATE_CALL_TIMEOUT_S

log = logging.getLogger("coordinator.offline")


def _busy(node: int, why: str) -> NumaEmuError:
    return NumaEmuError(ErrorCode.EBUSY, f"node {node} cannot go offline: {why}; nothing was moved")


class OfflineService:
    def __init__(self, state: ClusterState, tasks: TaskService):
        self.state = state
        self.tasks = tasks
        self.offline: set[int] = set()
        self.node_cpus = {n["id"]: frozenset(n["cpus"]) for n in state.topology["nodes"]}

    def handlers(self) -> dict:
        return {"node.offline": self.take_offline, "node.online": self.bring_online}

    def _node(self, node: object) -> int:
        if not isinstance(node, int) or isinstance(node, bool) or node not in self.state.nodes:
            raise NumaEmuError(ErrorCode.ENODEV, f"no node {node!r} in cluster {self.state.name} "
                                                 f"(nodes 0-{len(self.state.nodes) - 1})")
        return node

    def _reply(self, node: int, **kw) -> ns.NodeStateReply:
        return ns.NodeStateReply(node_id=node, offline=sorted(self.offline), **kw)

    def _offline_cpus(self) -> dict[str, frozenset[int]]:
        """The task table hears of the offline nodes and their CPUs; returns every cpuset's
        effective mems as they were before."""
        table = self.tasks.table
        before = {cs.name: table.effective_mems(cs) for cs in table.cpusets}
        table.set_offline_cpus(frozenset().union(*(self.node_cpus[n] for n in self.offline)))
        table.set_offline_nodes(frozenset(self.offline))
        return before

    def push_all(self) -> list[Call]:
        """node.set_offline with the offline nodes now, to every live node (a restarted one too)."""
        return [Call(f"node:{r.id}", ns.NodeSetOffline(offline=sorted(self.offline))) for r in self.state.live_nodes()]

    def bring_online(self, msg: ns.NodeOnline):
        node = self._node(msg.node_id)
        if node not in self.offline:
            raise NumaEmuError(ErrorCode.EINVAL, f"node {node} is online already")
        self.offline.discard(node)
        # the policies are rebound in the same step as the table changes (no request between
        # them may rebind from the wrong base); the zonelists take N back right after
        yield from self.tasks.effective_mems_changed(self._offline_cpus())
        yield self.push_all()
        log.info("node %d online again", node)
        return self._reply(node)

    def take_offline(self, msg: ns.NodeOffline):
        node = self._node(msg.node_id)
        if node in self.offline:
            raise NumaEmuError(ErrorCode.EINVAL, f"node {node} is offline already (numa-emu node online {node})")
        live = [r.id for r in self.state.live_nodes()]
        if node not in live:
            raise _busy(node, f"it is {self.state.nodes[node].state}, not up")
        after = self.offline | {node}
        online = [n for n in live if n not in after]
        if not any(self.node_cpus[n] for n in online):
            raise _busy(node, "no other online node has CPUs")
        moves = self._plan_tasks(node, after)
        yield from self._check_room(node, online)
        replies = yield [Call(f"node:{i}", ns.NodeEvacuate(node=node, check=True)) for i in live]
        problems = [p for r in replies for p in r.problems]
        if problems:
            raise _busy(node, problems[0])
        # an shm object's policy is kept by the tasks that mbind it: N places its masters by them
        shm_policies = [p for r in replies for p in r.shm_policies or []]
        mine = yield Call(f"node:{node}", ns.NodeEvacuate(node=node, check=True, shm_policies=shm_policies))
        if mine.problems:
            raise _busy(node, mine.problems[0])
        # every check passed: from here on the node goes
        self.offline.add(node)
        # the tasks' policies are rebound to the online mems of their cpusets at their homes, in
        # the same step as the table changes (no request between them may rebind from the wrong
        # base); tasks that move below carry them, and the private pages on N go where they say
        yield from self.tasks.effective_mems_changed(self._offline_cpus())
        yield self.push_all()
        moved_tasks = []
        for task_id, old_cpu, cpus in moves:
            home = yield from self.tasks.set_affinity(tm.TaskSetAffinity(task_id=task_id, cpus=cpus))
            moved_tasks.append([task_id, old_cpu, home.cpu])
        others = [i for i in live if i != node]
        replies = yield [Call(f"node:{i}", ns.NodeEvacuate(node=node), MIGRATE_CALL_TIMEOUT_S) for i in others]
        own = yield Call(f"node:{node}", ns.NodeEvacuate(node=node, shm_policies=shm_policies), MIGRATE_CALL_TIMEOUT_S)
        replies.append(own)
        moved, failed = sum(r.moved for r in replies), sum(r.failed for r in replies)
        log.info("node %d offline: %d page(s) moved, %d not, %d replica(s) dropped, tasks moved %s", node, moved,
                 failed, own.replicas_dropped, moved_tasks)
        if failed:
            raise NumaEmuError(ErrorCode.EBUSY, f"node {node} is offline, but {failed} page(s) could not leave it "
                                                f"(see the nodes' logs); numa-emu node online {node} takes it back")
        return self._reply(node, pages_moved=moved, replicas_dropped=own.replicas_dropped, tasks_moved=moved_tasks)

    def _plan_tasks(self, node: int, after: set[int]) -> list[tuple[int, int, list[int]]]:
        """The tasks homed on `node` and the CPUs they may move to; EBUSY for a task that
        would be left without a CPU. A policy bound to offline nodes alone is no reason: it is
        rebound to the effective mems (TaskTable.rebind_to_effective), and a task whose cpuset
        keeps no online mems allocates on its parent's effective mems (cgroup v2)."""
        table = self.tasks.table
        moves = []
        for rec in sorted(table.tasks.values(), key=lambda r: r.task_id):
            if rec.node == node:
                cs = table.cpuset(rec.cpuset)
                cpus = sorted(c for c in cs.cpus if not any(c in self.node_cpus[n] for n in after))
                if not cpus:
                    raise _busy(node, f"task {rec.task_id}'s cpuset '{cs.name}' has CPUs on offline nodes only")
                moves.append((rec.task_id, rec.cpu, cpus))
        return moves

    def _check_room(self, node: int, online: list[int]):
        stats = yield [Call(f"node:{i}", tm.NodeStats()) for i in [node] + online]
        mine = stats[0]
        held = mine.frames_total - mine.frames_free - int(mine.vmstat.get("nr_repl_pages", 0))
        room = sum(s.frames_free for s in stats[1:])
        if held > room:
            raise _busy(node, f"it holds {held} page(s) and the other online nodes have room for {room}")
