"""The coordinator's pure core for cpusets: the sets themselves and the cgroup-v1 rules for
making, changing and removing them (docs/linux-semantics.md#cpusets; man7 cpuset(7)).

Flat: every cpuset is a child of the root "/", which holds every CPU and node and cannot be
changed or removed. Which tasks are in a set, and what a change does to them, is the business
of coordinator.tasks (TaskTable), which asks the rules here.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError, einval
from numa_emu.protocol.nodemask import format_nodelist
from numa_emu.protocol.policy import migration_pairs

ROOT = "/"
MAX_NAME_CHARS = 64


@dataclass
class Cpuset:
    name: str
    cpus: frozenset[int]
    mems: frozenset[int]
    memory_migrate: bool = False
    replication: bool = True  # Lee Schermerhorn's per-cpuset replication enable (2007 series)

    def to_dict(self) -> dict:
        return {"name": self.name, "cpus": sorted(self.cpus), "mems": sorted(self.mems),
                "memory_migrate": self.memory_migrate, "replication": self.replication}



def check_name(name: object) -> str:
    """A flat cpuset name: non-empty, printable, no blanks and no '/' (no hierarchy yet)."""
    if not isinstance(name, str) or not name:
        raise einval("a cpuset needs a non-empty name")
    if name == ROOT:
        raise einval("'/' is the root cpuset; give a name like 'batch'")
    if "/" in name:
        raise einval(f"invalid cpuset name '{name}': cpusets are flat, no '/' in names")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise einval(f"invalid cpuset name {name!r}: no blanks or control characters")
    if len(name) > MAX_NAME_CHARS:
        raise einval(f"invalid cpuset name '{name[:16]}...': longer than {MAX_NAME_CHARS} characters")
    return name


def _check_ids(values: Iterable[object], machine: frozenset[int], what: str, one: str, plural: str) -> frozenset[int]:
    """Ids that are non-empty and all in the machine, or EINVAL saying which are not."""
    ids = _ids(values, what)
    if not ids:
        raise einval(f"a cpuset needs at least one {one}")
    unknown = ids - machine
    if unknown:
        raise einval(f"no {what}(s) {format_nodelist(unknown)} in this machine "
                      f"({plural} are {format_nodelist(machine)})")
    return ids


def _ids(values: Iterable[object], what: str) -> frozenset[int]:
    out = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise einval(f"invalid {what} {v!r}: expected a non-negative integer")
        out.add(v)
    return frozenset(out)


def migration_needed(old_mems: Iterable[int], new_mems: Iterable[int]) -> bool:
    """Whether memory_migrate would move pages when the allowed nodes go from `old_mems` to
    `new_mems` (do_migrate_pages' pairs): pages move even off nodes that stay allowed when the
    relative positions shift (1-2 -> 2-3 moves 2 to 3, then 1 to 2), nothing moves when the remap
    is the identity, and with sets of different sizes a node that stays allowed keeps its pages."""
    return bool(migration_pairs(old_mems, new_mems))


class CpusetTable:
    """Every cpuset of the cluster by name; the root holds the whole machine."""

    def __init__(self, cpu_node: Mapping[int, int], nodes: Iterable[int]):
        self.cpu_node = dict(cpu_node)
        self.all_cpus = frozenset(self.cpu_node)
        self.all_mems = frozenset(nodes)
        self.sets: dict[str, Cpuset] = {ROOT: Cpuset(ROOT, self.all_cpus, self.all_mems)}

    def get(self, name: str | None) -> Cpuset:
        try:
            return self.sets[name or ROOT]
        except KeyError:
            raise NumaEmuError(ErrorCode.ENOENT, f"no cpuset '{name}' (see: numa-emu cpuset show)") from None

    def __iter__(self) -> Iterator[Cpuset]:
        return iter(self.sets.values())

    def __len__(self) -> int:
        return len(self.sets)

    def check_cpus(self, cpus: Iterable[object]) -> frozenset[int]:
        """cpuset.cpus: non-empty, every CPU in the machine (the root's cpus)."""
        return _check_ids(cpus, self.all_cpus, "cpu", "cpu", "cpus")

    def check_mems(self, mems: Iterable[object]) -> frozenset[int]:
        """cpuset.mems: non-empty, every node in the machine (the root's mems)."""
        return _check_ids(mems, self.all_mems, "node", "memory node", "nodes")

    def create(self, name: str, cpus: Iterable[object], mems: Iterable[object], *,
               memory_migrate: bool = False, replication: bool | None = None) -> Cpuset:
        """mkdir + writes of cpus and mems. `replication` None inherits the root's flag."""
        check_name(name)
        if name in self.sets:
            raise NumaEmuError(ErrorCode.EEXIST, f"cpuset '{name}' exists already")
        cs = Cpuset(name, self.check_cpus(cpus), self.check_mems(mems), bool(memory_migrate),
                    self.sets[ROOT].replication if replication is None else bool(replication))
        self.sets[name] = cs
        return cs

    def check_change(self, name: str, *, cpus: Iterable[object] | None, mems: Iterable[object] | None
                     ) -> tuple[Cpuset, frozenset[int], frozenset[int]]:
        """The cpuset and its new (cpus, mems), unchanged where None; the root's are read-only
        (the kernel's update_cpumask/update_nodemask refuse the top cpuset with EACCES)."""
        cs = self.get(name)
        if cs.name == ROOT and (cpus is not None or mems is not None):
            raise NumaEmuError(ErrorCode.EACCES, "the root cpuset always holds the whole machine; "
                                                 "create a cpuset to restrict cpus or mems")
        new_cpus = cs.cpus if cpus is None else self.check_cpus(cpus)
        new_mems = cs.mems if mems is None else self.check_mems(mems)
        return cs, new_cpus, new_mems

    def delete(self, name: str, tasks: int) -> Cpuset:
        """rmdir: the root never, a set with tasks EBUSY (they must be moved out first)."""
        cs = self.get(name)
        if cs.name == ROOT:
            raise NumaEmuError(ErrorCode.EACCES, "the root cpuset cannot be deleted")
        if tasks:
            raise NumaEmuError(ErrorCode.EBUSY, f"cpuset '{name}' has {tasks} task(s); move them out first "
                                                f"(numa-emu cpuset attach / PID) or let them exit")
        return self.sets.pop(cs.name)

    def cpu_within(self, cpu: int, cpus: frozenset[int], load: Mapping[int, int]) -> int:
        """The CPU a task on `cpu` runs on once limited to `cpus`: the same one if allowed, else
        the least loaded (then lowest) CPU of `cpus` on the same node, else the least loaded
        (then lowest) CPU of `cpus`: the task then moves to that CPU's node, page table and all."""
        if cpu in cpus:
            return cpu
        node = self.cpu_node[cpu]
        same_node = [c for c in cpus if self.cpu_node[c] == node]
        return min(same_node or cpus, key=lambda c: (load.get(c, 0), c))
