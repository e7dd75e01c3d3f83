"""A task's memory policy on its home node: the task policy pushed by the coordinator (and its
rebinding on a cpuset change), mbind on a range of regions, and get_mempolicy in all its forms
(set_mempolicy(2), mbind(2), get_mempolicy(2); docs/linux-semantics.md#policies, #mbind, #get_mempolicy)."""
from __future__ import annotations

from numa_emu.nodes.core import NodeCore
from numa_emu.nodes.migration import Migration
from numa_emu.nodes.mm import MemoryManager
from numa_emu.nodes.pagetable import SHM, ZEROPAGE
from numa_emu.nodes.placement import InterleaveCursor, interleave_target, next_interleave_index
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import Ok
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import (DEFAULT_POLICY, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED, MPOL_F_NODE, MPOL_MF_LAZY, MPOL_MF_MOVE,
                             MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, MPOL_MF_VALID, Mode, Policy, make_policy, rebind)


class PolicyOps:
    def __init__(self, core: NodeCore, mmgr: MemoryManager, migration: Migration):
        self.core = core
        self.mm = mmgr
        self.migration = migration

    def handlers(self) -> dict:
        return {"node.task.policy": self.set_policy, "mem.mbind": self.mbind, "mem.get_mempolicy": self.get_mempolicy}

    def set_policy(self, msg: tm.NodeTaskPolicy):
        task = self.mm.task(msg.task_id)
        new_mems, old_mems = frozenset(msg.mems_allowed), frozenset(msg.old_mems_allowed)
        new_policy = Policy.from_wire(msg.policy)
        if new_policy != task.policy:
            task.il_cursor = InterleaveCursor()
        task.policy, task.mems = new_policy, new_mems if msg.effective_mems is None else frozenset(msg.effective_mems)
        if msg.replication is not None:
            task.replication = msg.replication
        if self.core.trace.on:
            self.core.trace.emit("policy", task=task.task_id, vns=task.clock_ns, scope="task",
                                 policy=new_policy.to_wire(), mems=sorted(task.mems))
        if new_mems != old_mems:
            # an shm range's policy is its object's shared policy, which the kernel never rebinds
            # (mpol_rebind_mm rebinds vma->vm_policy; shmem allocates by the inode's shared policy)
            for region in task.space.regions:
                if region.policy is not None and region.kind != SHM:
                    region.policy = rebind(region.policy, new_mems, old_mems)
        task.placements.clear()
        src = old_mems if msg.migrate_from is None else frozenset(msg.migrate_from)
        if msg.migrate and src != task.mems and src:
            # cpuset memory_migrate (cpuset_migrate_mm): do_migrate_pages from the old effective
            # mems to the new ones, shared pages too (MPOL_MF_MOVE_ALL); the reply waits for the moves.
            return self.mm.locked(task, self._cpuset_migrate(task, src, task.mems))
        return Ok()

    def _cpuset_migrate(self, task, old_mems: frozenset[int], new_mems: frozenset[int]):
        yield from self.migration.migrate_task(task, old_mems, new_mems, True, "cpuset")
        return Ok()

    # ---- policy -------------------------------------------------------------------------
    def mbind(self, msg: mm.Mbind):
        task = self.mm.task(msg.task_id)
        flags = msg.flags
        if flags & ~(MPOL_MF_VALID | MPOL_MF_LAZY):
            raise NumaEmuError(ErrorCode.EINVAL, f"mbind flags {flags:#x} not valid (MPOL_MF_STRICT|MOVE|MOVE_ALL, "
                                                 "and MPOL_MF_LAZY with a move flag)")
        move = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)
        if flags & MPOL_MF_LAZY and not move:
            raise NumaEmuError(ErrorCode.EINVAL, "MPOL_MF_LAZY modifies MPOL_MF_MOVE or MPOL_MF_MOVE_ALL; give one of them")
        if flags & MPOL_MF_MOVE_ALL:
            self.migration.check_move_all(task, "mbind")
        policy = make_policy(msg.mode, frozenset(msg.nodes), allowed=task.mems, possible=self.core.possible)
        return self.mm.locked(task, self._mbind(task, msg, policy))

    def _mbind(self, task, msg: mm.Mbind, policy: Policy):
        flags = msg.flags
        move = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)
        lazy = bool(move and flags & MPOL_MF_LAZY)
        regions = task.space.isolate(msg.vaddr, msg.length)
        if flags & MPOL_MF_STRICT and not move and policy.mode not in (Mode.DEFAULT, Mode.LOCAL):
            allowed = policy.nodes or task.mems
            for region in regions:
                if any(n >= 0 and n not in allowed for _, n in region.node.items()):
                    raise NumaEmuError(ErrorCode.EIO, "MPOL_MF_STRICT: a page of the range is on a node the policy excludes")
        for region in regions:
            region.policy = None if policy.mode == Mode.DEFAULT else policy
        task.placements.clear()
        if self.core.trace.on:
            self.core.trace.emit("policy", task=task.task_id, vns=task.clock_ns, scope="mbind", addr=msg.vaddr,
                                 length=msg.length, policy=policy.to_wire(), flags=flags)
        if lazy:
            yield from self.migration.mbind_lazy(task, regions, bool(flags & MPOL_MF_MOVE_ALL))
        elif move:
            failed = yield from self.migration.mbind_move(task, regions, policy, flags)
            if failed and flags & MPOL_MF_STRICT:
                raise NumaEmuError(ErrorCode.EIO, f"MPOL_MF_STRICT: {failed} page(s) of the range could not be moved "
                                                  "where the policy wants them")
        return Ok()

    def get_mempolicy(self, msg: mm.GetMempolicy):
        task = self.mm.task(msg.task_id)
        return self.mm.locked(task, self._get_mempolicy(task, msg))

    def _get_mempolicy(self, task, msg: mm.GetMempolicy):
        flags = msg.flags
        if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED):
            raise NumaEmuError(ErrorCode.EINVAL, f"get_mempolicy flags {flags:#x} not valid")
        if flags & MPOL_F_MEMS_ALLOWED:
            if flags & (MPOL_F_NODE | MPOL_F_ADDR):
                raise NumaEmuError(ErrorCode.EINVAL, "MPOL_F_MEMS_ALLOWED cannot be combined with MPOL_F_NODE or MPOL_F_ADDR")
            return mm.GetMempolicyReply(mode=0, nodes=sorted(task.mems), node=None)
        if not flags & MPOL_F_ADDR:
            if msg.addr is not None:
                raise NumaEmuError(ErrorCode.EINVAL, "an address needs MPOL_F_ADDR")
            policy = task.policy
            node = None
            if flags & MPOL_F_NODE:
                if policy.mode != Mode.INTERLEAVE:
                    raise NumaEmuError(ErrorCode.EINVAL, "MPOL_F_NODE without MPOL_F_ADDR needs an interleave task policy")
                index, _ = next_interleave_index(policy, task.il_cursor, allowed=task.mems, weights=self.core.weights)
                node = interleave_target(policy, index, allowed=task.mems, weights=self.core.weights)
            return mm.GetMempolicyReply(mode=int(policy.mode) | policy.flags, nodes=sorted(policy.reported_nodes), node=node)
        if msg.addr is None:
            raise NumaEmuError(ErrorCode.EINVAL, "MPOL_F_ADDR needs an address")
        region = task.space.find(msg.addr)
        policy = region.policy or DEFAULT_POLICY  # no VMA policy reads as MPOL_DEFAULT (do_get_mempolicy)
        node = None
        if flags & MPOL_F_NODE:
            p = (msg.addr - region.start) // self.core.page_size
            if region.node[p] < 0 and region.node[p] != ZEROPAGE:  # faults it in "as if read"
                yield from self.mm.fault(task, region, [p], False, None)
            node = region.node[p]
            if node == ZEROPAGE:  # a private page only read maps the zero page, which every node has here
                node = task.node
        return mm.GetMempolicyReply(mode=int(policy.mode) | policy.flags, nodes=sorted(policy.reported_nodes), node=node)
