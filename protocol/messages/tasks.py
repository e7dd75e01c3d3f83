"""Messages about tasks: attach and detach, task policy, cpusets; CLI and task -> coordinator,
and the coordinator's pushes to the home node that owns a task's page table."""
from __future__ import annotations

from numa_emu.protocol.messages.base import Ok, Reply, Request, message


@message
class TaskRegisterReply(Reply):
    kind = "task.register.reply"
    task_id: int
    cpu: int
    node: int
    node_endpoint: str
    cpus_allowed: list
    mems_allowed: list
    policy: dict  # Policy.to_wire()
    cpuset: str
    page_size: int
    n_nodes: int
    # node id -> endpoint of every node that is up: the task connects to each, so that the node
    # owning a page can answer the task's forwarded access itself (protocol.client.TaskChannel)
    node_endpoints: dict | None = None
    # [[host key, its CLOCK_MONOTONIC minus the task's in ns], ...] when the task's clock is one the
    # coordinator measured (protocol.delaylink: real-mode replies from other hosts held from their send)
    clocks: list | None = None
    # no agent of the cluster runs on the task's host to watch its process: the task starts its
    # own watcher (numa_emu.taskwatch), which sends task.exited if it dies without detaching
    watch_yourself: bool = False
    # [[host key, its CLOCK_MONOTONIC minus the coordinator's in ns], ...] when the task's clock is
    # not one measured (a host without nodes) and the cluster spans hosts: the task measures its own
    # against the coordinator's (ping: Pong.monotonic_ns) and converts them
    coordinator_clocks: list | None = None


@message
class TaskRegister(Request):
    """A workload process joins the cluster as a task on a CPU (None: the coordinator picks)."""

    kind = "task.register"
    reply = TaskRegisterReply
    pid: int
    comm: str
    cpu: int | None = None
    policy: dict | None = None  # inherited across exec from numactl (Policy.to_wire())
    # the effective mems `policy` was made against (None: made against the task's own): it is
    # rebound from them to the task's, as a node offline or online has rebound the parent's
    policy_mems: list | None = None
    cpuset: str | None = None
    nodes_bound: list | None = None  # numactl --cpunodebind: run on a CPU of these nodes
    cpus_bound: list | None = None  # numactl --physcpubind: run on one of these CPUs
    host: str | None = None  # the task's host (protocol.hosts): its nodes' endpoints are picked for it
    cap_sys_nice: bool = True  # the process may move pages other tasks map (MPOL_MF_MOVE_ALL)
    clock_key: int | None = None  # its clock's host key (protocol.delaylink.HOST_KEY)


@message
class TaskExit(Request):
    """Detach: the home node releases every page the task held."""

    kind = "task.exit"
    reply = Ok
    task_id: int


@message
class TaskExited(Request):
    """A task's watcher saw its process `pid` exit without detaching (numa_emu.taskwatch: a host
    with no agent of the cluster): the coordinator releases its memory as for a task it watches."""

    kind = "task.exited"
    reply = Ok
    task_id: int
    pid: int


@message
class TaskInfoReply(Reply):
    kind = "task.info.reply"
    task: dict  # task_id, pid, comm, cpu, node, cpuset, cpus_allowed, mems_allowed, policy, il_next


@message
class TaskInfo(Request):
    kind = "task.info"
    reply = TaskInfoReply
    task_id: int


@message
class TaskListReply(Reply):
    kind = "task.list.reply"
    tasks: list  # of TaskInfoReply.task dicts


@message
class TaskList(Request):
    kind = "task.list"
    reply = TaskListReply


@message
class SetMempolicy(Request):
    """set_mempolicy(2): validated against the task's cpuset by the coordinator, then pushed."""

    kind = "task.set_mempolicy"
    reply = Ok
    task_id: int
    mode: int  # Mode, optionally OR'ed with MPOL_F_STATIC_NODES / MPOL_F_RELATIVE_NODES
    nodes: list


@message
class NodeTaskAttach(Request):
    """Coordinator -> home node: create the page table of a task."""

    kind = "node.task.attach"
    reply = Ok
    task_id: int
    pid: int
    comm: str
    cpu: int
    policy: dict
    mems_allowed: list
    replication: bool = True  # the task's cpuset allows page-cache replication
    cap_sys_nice: bool = True  # MPOL_MF_MOVE_ALL allowed (else EPERM)


@message
class NodeTaskDetachReply(Reply):
    kind = "node.task.detach.reply"
    pages_freed: int


@message
class NodeTaskDetach(Request):
    kind = "node.task.detach"
    reply = NodeTaskDetachReply
    task_id: int


@message
class NodeTaskPurgeReply(Reply):
    kind = "node.task.purge.reply"
    frames_freed: int


@message
class NodeTaskPurge(Request):
    """Coordinator -> every live node, when a task's home node died: free every frame the task
    held on the receiving node (private pages, forwarded pages, migration cache, migration targets)."""

    kind = "node.task.purge"
    reply = NodeTaskPurgeReply
    task_id: int


@message
class TaskHomeReply(Reply):
    kind = "task.home.reply"
    node: int
    cpu: int
    endpoint: str


@message
class TaskHome(Request):
    """Task -> coordinator, after EREMCHG from its old home: where it lives now (answered once a
    move in progress has finished)."""

    kind = "task.home"
    reply = TaskHomeReply
    task_id: int


@message
class TaskSetAffinity(Request):
    """Task -> coordinator: sched_setaffinity(2), run on one of `cpus` (those of its cpuset). The
    task keeps its CPU if allowed, else moves to another (a node change is a task move); the
    reply is where it runs now."""

    kind = "task.set_affinity"
    reply = TaskHomeReply
    task_id: int
    cpus: list


@message
class TaskNumaMigrateReply(Reply):
    kind = "task.numa_migrate.reply"
    outcome: str  # "migrated", "swapped" (with `swapped_with`) or "stay" (nothing suits: retry later)
    node: int  # where the task runs now
    cpu: int
    swapped_with: int = 0  # the task it changed places with


@message
class TaskNumaMigrate(Request):
    """Home node -> coordinator: NUMA balancing found most of the task's hinting faults on
    `node` (its preferred node, task_numa_placement); move it there if the scheduler would
    (task_numa_migrate: an idle CPU of that node it may run on, or a swap with a task there that
    prefers the task's node). The coordinator moves it as for a cpuset change."""

    kind = "task.numa_migrate"
    reply = TaskNumaMigrateReply
    task_id: int
    node: int


@message
class NodeTaskMove(Request):
    """Coordinator -> the task's home node: the task now runs on `cpu` of node `node`. The home
    hands the task's page table to that node (node.task.adopt) and answers the task's next
    request with EREMCHG, after which the task's client asks the coordinator where it lives."""

    kind = "node.task.move"
    reply = Ok
    task_id: int
    node: int
    cpu: int


@message
class NodeTaskAdopt(Request):
    """Old home -> new home: the whole state of a moving task (nodes.taskmove.task_image)."""

    kind = "node.task.adopt"
    reply = Ok
    task: dict


@message
class NodeTaskPolicy(Request):
    """Coordinator -> home node: the task's policy or allowed mems changed (rebind regions too)."""

    kind = "node.task.policy"
    reply = Ok
    task_id: int
    policy: dict
    mems_allowed: list  # the region policies are rebound from old_mems_allowed to these (effective mems)
    old_mems_allowed: list
    replication: bool | None = None  # the task's cpuset's replication flag, when it may have changed
    migrate: bool = False  # cpuset memory_migrate: move pages off old mems to new mems (relative rule)
    # the nodes the task may allocate on (cpuset.mems.effective); None: mems_allowed. The coordinator
    # sends the effective mems in mems_allowed too: node hotplug rebinds region policies as it rebinds
    # the task policy (cgroup v2 mpol_rebind_mm against cs->effective_mems)
    effective_mems: list | None = None
    # with migrate: the nodes the pages leave, the old effective mems (None: old_mems_allowed); they
    # go to effective_mems, as cgroup v2 migrates from cs->old_mems_allowed to cs->effective_mems
    migrate_from: list | None = None


@message
class ClusterStatsReply(Reply):
    kind = "cluster.stats.reply"
    nodes: dict  # node id (int) -> {"numastat": {...}, "vmstat": {...}, "frames_free": n, "frames_total": n}


@message
class ClusterStats(Request):
    """Every node's counters, gathered by the coordinator."""

    kind = "cluster.stats"
    reply = ClusterStatsReply


@message
class NodeStatsReply(Reply):
    kind = "node.stats.reply"
    node_id: int
    numastat: dict
    vmstat: dict
    frames_free: int
    frames_total: int
    tasks: dict  # task id -> {"pages": {node: n}, "clock_ns": int}
    repl_lifetimes: dict | None = None  # histogram of replica lifetimes in this directory shard: "<2ms" -> n


@message
class NodeStats(Request):
    kind = "node.stats"
    reply = NodeStatsReply


@message
class CpusetShowReply(Reply):
    kind = "cpuset.show.reply"
    cpusets: list  # dicts: name, cpus, mems, memory_migrate, replication, tasks


@message
class CpusetShow(Request):
    """Every cpuset (name None) or one."""

    kind = "cpuset.show"
    reply = CpusetShowReply
    name: str | None = None
