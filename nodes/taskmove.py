"""A task moving to another node (a cpuset change or attach that leaves its node's CPUs): the old
home hands the whole task, page table included, to the new home, which serves it from then on.

The old home takes the task's lock first, so no request of the task and no migration of its
pages is half done. Private pages keep their frames wherever they are; the task's shared
mappings are dropped on the old home and fault again through their directory entries on the new
one, so every reverse map stays exact. The old home keeps a note that the task moved and answers
its next request with EREMCHG; the task's client then asks the coordinator for its new home and
sends the request again (nothing was done with it).

Auto-migration (Lee Schermerhorn's 2006 series, docs/protocol.md#task-moves): with vm.auto_migrate on,
the new home puts every private page that is not on its node into the migration cache, and the
task's next touch of each moves it where its policy wants it (a default policy: the new node),
or maps it again where it is; a trace of it says mode "auto".
"""
from __future__ import annotations

from numa_emu.nodes.balancing import TaskScan
from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.mm import MemoryManager, TaskState
from numa_emu.nodes.pagemove import PageMoves
from numa_emu.nodes.pagetable import ANON, MIGCACHE, AddressSpace
from numa_emu.nodes.pcache import PageCacheView
from numa_emu.nodes.placement import InterleaveCursor
from numa_emu.protocol.effects import Call
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import Policy
from numa_emu.protocol.routing import node_dest


def task_image(task: TaskState) -> dict:
    """Everything a node keeps of a task, as msgpack-able data (caches left out)."""
    return {"task_id": task.task_id, "pid": task.pid, "comm": task.comm, "cpu": task.cpu,
            "policy": task.policy.to_wire(), "mems": sorted(task.mems), "space": task.space.to_wire(),
            "clock_ns": task.clock_ns, "faults": task.faults, "il_prev": task.il_cursor.prev,
            "il_weight_left": task.il_cursor.weight_left, "replication": task.replication,
            "away": list(task.away.items()), "direct": [task.direct_reads, task.direct_writes],
            "cap_sys_nice": task.cap_sys_nice,
            # pages lost with a dead node stay lost at the new home: EIO, never a fresh zero page
            "lost": [[vaddr, node, why] for vaddr, (node, why) in task.lost.items()],
            "numa": task.numa.to_wire() if task.numa is not None else None}


def task_from_image(image: dict, node: int, cpu: int) -> TaskState:
    try:
        return TaskState(image["task_id"], image["pid"], image["comm"], cpu, node, Policy.from_wire(image["policy"]),
                         frozenset(image["mems"]), AddressSpace.from_wire(image["space"]), image["clock_ns"],
                         image["faults"], InterleaveCursor(image["il_prev"], image["il_weight_left"]),
                         replication=image["replication"], away={int(v): int(n) for v, n in image["away"]},
                         direct_reads=int(image["direct"][0]), direct_writes=int(image["direct"][1]),
                         cap_sys_nice=bool(image.get("cap_sys_nice", True)),
                         lost={int(v): (int(n), str(why)) for v, n, why in image.get("lost", ())},
                         numa=TaskScan.from_wire(image["numa"]) if image.get("numa") is not None else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise NumaEmuError(ErrorCode.EINVAL, f"node.task.adopt: not a task image ({exc!r})") from None


class TaskMoves:
    def __init__(self, core: NodeCore, mmgr: MemoryManager, pcache: PageCacheView, moves: PageMoves):
        self.core = core
        self.mm = mmgr
        self.pcache = pcache
        self.moves = moves

    def handlers(self) -> dict:
        return {"node.task.move": self.move, "node.task.adopt": self.adopt}

    def move(self, msg: tm.NodeTaskMove):
        core = self.core
        task = self.mm.task(msg.task_id)
        if msg.node == core.node_id or msg.node not in core.possible or core.cpu_node.get(msg.cpu) != msg.node:
            raise NumaEmuError(ErrorCode.EINVAL, f"cannot move task {msg.task_id} to cpu {msg.cpu} of node "
                                                 f"{msg.node} from node {core.node_id}")
        return self.mm.locked(task, self._move(task, msg))

    def _move(self, task: TaskState, msg: tm.NodeTaskMove):
        core, ps = self.core, self.core.page_size
        self.mm.close_table(task)  # its direct path stops here; the new home makes a new table
        for region in task.space.regions:
            for p, node in region.node.items():
                if region.kind == ANON:
                    if node == MIGCACHE:  # this node's migration cache lets go; the new home decides
                        self.moves.cache_take(task, region, p, why="move")
                elif node >= 0:  # shared mappings fault again on the new home
                    self.pcache.unmap((region.obj, region.obj_offset + p), task.task_id, region.start + p * ps)
                    region.node[p] = -1
                    region.wr[p] = 0
        if core.trace.on:  # before the hand-over, so that the story reads move, then adopt
            core.trace.emit("task", task=task.task_id, vns=task.clock_ns, what="move", to=msg.node, cpu=msg.cpu)
        yield Call(node_dest(msg.node), tm.NodeTaskAdopt(task=task_image(task) | {"cpu": msg.cpu}))
        self.mm.moved_away(task, msg.node)
        return Ok()

    def adopt(self, msg: tm.NodeTaskAdopt) -> Ok:
        core = self.core
        if not isinstance(msg.task.get("cpu"), int) or core.cpu_node.get(msg.task["cpu"]) != core.node_id:
            raise NumaEmuError(ErrorCode.EINVAL, f"node.task.adopt: the task's cpu is not on node {core.node_id}")
        task = task_from_image(msg.task, core.node_id, msg.task["cpu"])
        self.mm.adopt(task)
        if core.trace.on:
            core.trace.emit("task", task=task.task_id, vns=task.clock_ns, what="adopt", cpu=task.cpu)
        self.moves.auto_follow(task)
        return Ok()
