"""A node taken out of service and brought back (`numa-emu node offline N` / `online N`;
docs/linux-semantics.md#node-offline, docs/protocol.md#node-offline), the node's side:

- node.set_offline: the offline nodes leave every zonelist here (the kernel rebuilds its
  zonelists without a node whose memory went offline), so no new allocation lands on them; every
  task's placement cache is dropped. Online again, the zonelists built at start come back.
- node.evacuate N (check): the shm policies this node's tasks set by mbind (an shm object's
  policy lives in the regions of the tasks that mbind it). The coordinator asks every node
  before it changes anything, then N with every node's shm policies: a master on N whose
  object's policy binds it to offline nodes alone stops it (the kernel rebinds no shared
  policy). EBUSY, nothing moved. A private page is never stuck: by the time its pages move, its
  task's and region policies are rebound to the effective mems without N (node.task.policy).
- node.evacuate N: this node's tasks' private pages on N move where their rebound policies
  place them (nearest allowed node first); on N itself, the masters of shared pages it holds move
  where their object's policy places them among the online nodes (a file's shared policy, the
  shm policy, else the nearest online node; falling back by distance from N: their directory
  homes move them, every mapping shot down) and its replicas are dropped (the masters serve
  their readers).
Pure: no sockets; generators yield protocol.effects.Call as every handler does.
"""
from __future__ import annotations

import logging

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.filetable import FileTable
from numa_emu.nodes.migration import Migration
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.pagetable import SHM
from numa_emu.nodes.placement import place
from numa_emu.nodes.reclaim import Reclaim
from numa_emu.nodes.store import FILE_PREFIX, store_name
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import nodestate as ns
from numa_emu.protocol.policy import DEFAULT_POLICY, Mode, Policy

log = logging.getLogger("node.offline")


class NodeOffline:
    def __init__(self, core: NodeCore, mm: MemoryManager, migration: Migration, reclaim: Reclaim, files: FileTable):
        self.core = core
        self.mm = mm
        self.migration = migration
        self.reclaim = reclaim
        self.files = files  # the files' shared policies place their masters
        self.offline: frozenset[int] = frozenset()

    def handlers(self) -> dict:
        return {"node.set_offline": self.set_offline, "node.evacuate": self.evacuate}

    def set_offline(self, msg: ns.NodeSetOffline) -> Ok:
        c = self.core
        if not isinstance(msg.offline, list) or not all(isinstance(n, int) and 0 <= n < c.n_nodes for n in msg.offline):
            raise NumaEmuError(ErrorCode.EINVAL, f"node.set_offline: {msg.offline!r} is not a list of nodes")
        self.offline = frozenset(msg.offline)
        c.set_offline(self.offline)
        for task in self.mm.tasks.values():
            task.placements.clear()
        log.info("node %d: offline nodes now %s", c.node_id, sorted(self.offline))
        return Ok()

    def evacuate(self, msg: ns.NodeEvacuate):
        c = self.core
        if not isinstance(msg.node, int) or not 0 <= msg.node < c.n_nodes:
            raise NumaEmuError(ErrorCode.EINVAL, f"node.evacuate: no node {msg.node!r}")
        shm = None if msg.shm_policies is None else ShmPolicies(msg.shm_policies)
        if msg.check:
            problems = self._masters_stuck(shm) if shm is not None and msg.node == c.node_id else []
            return ns.EvacuateReply(problems=problems, shm_policies=self._shm_policies())
        return self._evacuate(msg.node, shm or ShmPolicies([]))

    def _shm_policies(self) -> list:
        """[obj, first index, pages, policy, task id] of every shm range a task here has mbound."""
        return [[r.obj, r.obj_offset, r.npages, r.policy.to_wire(), t.task_id]
                for t in sorted(self.mm.tasks.values(), key=lambda t: t.task_id)
                for r in t.space.regions if r.kind == SHM and r.policy is not None]

    def master_policy(self, obj: str, idx: int, shm: "ShmPolicies") -> Policy:
        """The policy of shared page (obj, idx)'s object: a file's shared policy, the shm
        policy a task set by mbind, else the default (the nearest node)."""
        if obj.startswith(FILE_PREFIX):
            return self.files.policy(store_name(obj)) or DEFAULT_POLICY
        return shm.policy(obj, idx) or DEFAULT_POLICY

    def _masters_stuck(self, shm: "ShmPolicies") -> list[str]:
        """Masters here whose object's policy binds them to offline nodes (this one counted) alone."""
        c = self.core
        stuck: dict[str, int] = {}
        for obj, idx in c.master_frames.values():
            policy = self.master_policy(obj, idx, shm)
            if policy.mode == Mode.BIND and not policy.nodes - self.offline - {c.node_id}:
                stuck[obj] = stuck.get(obj, 0) + 1
        return [f"{n} page(s) of {obj} are bound to node(s) {sorted(self.offline | {c.node_id})} alone by its policy"
                for obj, n in sorted(stuck.items())]

    def _evacuate(self, node: int, shm: "ShmPolicies"):
        c = self.core
        moved = failed = dropped = 0
        for task in list(self.mm.tasks.values()):
            m, f = yield from self.mm.locked(task, self.migration.evacuate_task(task, node))
            moved, failed = moved + m, failed + f
        if node == c.node_id:
            m, f = yield from self._masters_away(shm)
            moved, failed = moved + m, failed + f
            while c.replica_frames:
                freed = yield from self.reclaim.shrink(len(c.replica_frames), "direct", replicas_only=True)
                if not freed:
                    break
                dropped += freed
            failed += len(c.replica_frames)
        return ns.EvacuateReply(problems=[], moved=moved, failed=failed, replicas_dropped=dropped)

    def _masters_away(self, shm: "ShmPolicies"):
        """Every master this node holds, where its object's policy places it among the online
        nodes (alloc_pages_mpol with no task: distances from this node), falling back by distance."""
        c = self.core
        moved = failed = 0
        online = c.possible - self.offline - set(c.dead) - {c.node_id}
        for frame, (obj, idx) in list(c.master_frames.items()):
            if c.master_frames.get(frame) != (obj, idx):
                continue  # moved or freed meanwhile
            # interleave by the page's index in its object, as its faults do (mm.placement)
            order = place(self.master_policy(obj, idx, shm), task_node=c.node_id, allowed=online,
                          fallback_orders=c.fallback, interleave_index=idx, weights=c.weights).order
            for target in order:
                status = yield from self.migration.move_master(obj, idx, target, "offline")
                if status == target:
                    moved += 1
                    break
            else:
                failed += 1
        return moved, failed


class ShmPolicies:
    """The shm policies every node's tasks set by mbind (EvacuateReply.shm_policies): the policy
    of an shm page is that of the first range, in task order, that covers it (Linux keeps one
    shared policy per shm object; here each mapping task keeps its own)."""

    def __init__(self, wire: list):
        self.ranges: dict[str, list[tuple[int, int, Policy]]] = {}
        if not isinstance(wire, list):
            raise NumaEmuError(ErrorCode.EINVAL, f"node.evacuate: shm_policies {wire!r} is not a list")
        for item in sorted(wire, key=_task_of):
            if not (isinstance(item, list) and len(item) == 5 and isinstance(item[0], str)
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in item[1:3]) and isinstance(item[3], dict)):
                raise NumaEmuError(ErrorCode.EINVAL, f"node.evacuate: shm policy {item!r} is not "
                                                     "[obj, first index, pages, policy, task id]")
            self.ranges.setdefault(item[0], []).append((item[1], item[1] + item[2], Policy.from_wire(item[3])))

    def policy(self, obj: str, idx: int) -> Policy | None:
        return next((pol for first, end, pol in self.ranges.get(obj, ()) if first <= idx < end), None)


def _task_of(item: object) -> int:
    task = item[4] if isinstance(item, list) and len(item) == 5 else None
    return task if isinstance(task, int) and not isinstance(task, bool) else -1
