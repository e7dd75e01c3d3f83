"""Messages that control the cluster as a whole: cpusets (create, set, attach, delete) and the
sysctl tunables, with the table of tunables that the coordinator and the nodes share.

CLI -> coordinator: cpuset.* and sysctl.*. Coordinator -> node: node.sysctl (global tunables,
pushed to every node) and node.task.cpu (a task moved to another CPU of the same node).
`cpuset.show` lives in protocol/messages/tasks.py with the task queries.

The tunables are data (`tunables()`): key -> parser, default, where it applies, so adding one
(a later vm.pagecache_replication, say) is one entry. Keys follow sysctl(8)'s dotted names; the
weighted-interleave weights, sysfs files in Linux (docs/linux-semantics.md#weighted-interleave-weights),
are exposed under
`kernel.mm.mempolicy.weighted_interleave.node<N>`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from numa_emu.protocol import limits
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages.base import Ok, Reply, Request, message
from numa_emu.protocol.messages.tasks import CpusetShowReply
from numa_emu.protocol.policy import DEFAULT_WEIGHT, WeightTable

# ---------------------------------------------------------------------------------------------
# cpusets


@message
class CpusetCreate(Request):
    """mkdir a cpuset and write its cpus and mems (cgroup v1, docs/linux-semantics.md#cpusets). `replication`
    None inherits the root cpuset's flag, as new cpusets inherit their parent's flags."""

    kind = "cpuset.create"
    reply = CpusetShowReply  # the one cpuset created
    name: str
    cpus: list
    mems: list
    memory_migrate: bool = False
    replication: bool | None = None


@message
class CpusetSetReply(Reply):
    kind = "cpuset.set.reply"
    cpuset: dict  # as in CpusetShowReply.cpusets
    rebound: list  # task ids whose policy was rebound to the new mems and pushed to their node
    moved: list  # [task_id, old_cpu, new_cpu] for tasks moved to another CPU (of their node or another)
    migrated: list | None = None  # task ids whose pages memory_migrate moved to the new mems


@message
class CpusetSet(Request):
    """Change a cpuset; None leaves a field as it is. Changing mems rebinds every task's
    policy (and region policies) by the b1 rules; pages stay where they are."""

    kind = "cpuset.set"
    reply = CpusetSetReply
    name: str
    cpus: list | None = None
    mems: list | None = None
    memory_migrate: bool | None = None
    replication: bool | None = None


@message
class CpusetAttachReply(Reply):
    kind = "cpuset.attach.reply"
    task: dict  # as in TaskInfoReply.task, after the move
    old_cpuset: str
    old_cpu: int


@message
class CpusetAttach(Request):
    """Write a pid to the cpuset's tasks file: move a running task into it."""

    kind = "cpuset.attach"
    reply = CpusetAttachReply
    name: str
    pid: int


@message
class CpusetDelete(Request):
    """rmdir a cpuset: EBUSY while tasks are in it."""

    kind = "cpuset.delete"
    reply = Ok
    name: str


@message
class NodeTaskCpu(Request):
    """Coordinator -> home node: the task now runs on another CPU of the same node."""

    kind = "node.task.cpu"
    reply = Ok
    task_id: int
    cpu: int


# ---------------------------------------------------------------------------------------------
# sysctl


@message
class SysctlReply(Reply):
    kind = "sysctl.reply"
    values: dict  # key -> value (int, or str for a word-valued key)


@message
class SysctlGet(Request):
    """The values of `keys` (None: every key). An unknown key is ENOENT."""

    kind = "sysctl.get"
    reply = SysctlReply
    keys: list | None = None


@message
class SysctlSet(Request):
    """Set key -> text values, all or nothing: one bad key or value changes nothing."""

    kind = "sysctl.set"
    reply = SysctlReply  # the values now in force, for the keys set
    values: dict


@message
class NodeSysctl(Request):
    """Coordinator -> every node: key -> value of tunables that apply on the nodes (checked)."""

    kind = "node.sysctl"
    reply = Ok
    values: dict


SCOPE_NODES = "nodes"  # the coordinator keeps the value and pushes it to every node
SCOPE_COORDINATOR = "coordinator"  # the coordinator alone uses it

WEIGHT_KEY_PREFIX = "kernel.mm.mempolicy.weighted_interleave.node"
NUMA_STAT_KEY = "vm.numa_stat"
AUTO_MIGRATE_KEY = "vm.auto_migrate"
DIRECT_ACCESS_KEY = "vm.direct_access"


@dataclass(frozen=True)
class Tunable:
    """One sysctl key: `parse` turns the text a user writes into the value, an int or a word
    (EINVAL otherwise); `scope` says where the value applies (SCOPE_NODES, SCOPE_COORDINATOR)."""

    key: str
    parse: Callable[[str], int | str]
    default: int | str
    scope: str
    doc: str

    def check(self, text: str | int) -> int | str:
        """The value of `text` (an int is checked as its decimal text), or EINVAL naming the key."""
        try:
            return self.parse(str(text))
        except NumaEmuError as exc:
            raise NumaEmuError(ErrorCode.EINVAL, f"{self.key}: {exc.message}") from None


def parse_assignments(table: dict[str, Tunable], texts: list[str]) -> dict[str, int | str]:
    """The values of `up --sysctl KEY=VALUE` texts, each checked against `table` (tunables()):
    EINVAL or ENOENT naming the first bad one. The CLI checks them before it starts anything,
    the coordinator again when it starts."""
    values: dict[str, int | str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep:
            raise NumaEmuError(ErrorCode.EINVAL, f"--sysctl takes KEY=VALUE, not {text!r}")
        tunable = table.get(key.strip())
        if tunable is None:
            raise NumaEmuError(ErrorCode.ENOENT, f"--sysctl: unknown key {key.strip()!r} (see: numa-emu sysctl -a)")
        try:
            values[tunable.key] = tunable.check(value)
        except NumaEmuError as exc:
            raise NumaEmuError(exc.code, f"--sysctl {exc.message}") from None
    return values


def weight_key(node: int) -> str:
    return f"{WEIGHT_KEY_PREFIX}{node}"


def weight_node(key: str) -> int | None:
    """The node of a weighted-interleave key, None for any other key."""
    suffix = key[len(WEIGHT_KEY_PREFIX):] if key.startswith(WEIGHT_KEY_PREFIX) else ""
    return int(suffix) if suffix.isdigit() else None


def _weight_parser(node: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        table = WeightTable([node])  # the sysfs node_store rules: 1..255, else EINVAL
        table.set(node, text.strip())
        return table[node]

    return parse


def _parse_switch(text: str) -> int:
    """proc_dointvec_minmax with 0..1, as vm.numa_stat takes it."""
    value = text.strip()
    if value not in ("0", "1"):
        raise NumaEmuError(ErrorCode.EINVAL, f"invalid value {text!r}: expected 0 or 1")
    return int(value)


REPLICATION_MODES = ("all", "no-writers", "exec-only")
REPL_KEY = "vm.pagecache_replication"
REPL_MODE_KEY = "vm.pagecache_replication_mode"
REPL_BACKOFF_KEY = "vm.pagecache_replication_backoff"
REPL_WINDOW_KEY = "vm.pagecache_replication_thrash_window_ms"
REPL_COOLDOWN_KEY = "vm.pagecache_replication_cooldown_ms"
UNSAFE_KEY = "vm.unsafe_unreplicate"
UNSAFE_DELAY_KEY = "vm.unsafe_unmap_delay_ms"


def _parse_mode(text: str) -> str:
    word = text.strip()
    if word not in REPLICATION_MODES:
        raise NumaEmuError(ErrorCode.EINVAL, f"invalid value {text!r}: expected one of {', '.join(REPLICATION_MODES)}")
    return word


def _parse_ms(text: str) -> int:
    value, bound = text.strip(), limits.MILLISECONDS
    if not value.isdigit() or len(value) > 10 or int(value) > bound.hi:
        raise NumaEmuError(ErrorCode.EINVAL, f"invalid value {text!r}: expected milliseconds from {bound.lo:.0f} to {bound.hi:.0f}")
    return int(value)


def _replication_tunables() -> list[Tunable]:
    """The replicated page cache's switches (docs/linux-semantics.md#replication-state-machine,
    #findings-of-the-2007-thread)."""
    return [
        Tunable(REPL_KEY, _parse_switch, 1, SCOPE_NODES,
                "page-cache replication on remote reads of clean pages: 1 on, 0 off (cpusets can also turn it off)"),
        Tunable(REPL_MODE_KEY, _parse_mode, "all", SCOPE_NODES,
                "which pages replicate: all clean pages, no-writers (files no task maps writable: "
                "mapping_writably_mapped), exec-only (files mapped executable)"),
        Tunable(REPL_BACKOFF_KEY, _parse_switch, 1, SCOPE_NODES,
                "thrash control: a page whose replica a write zapped within the window stops replicating for a while"),
        Tunable(REPL_WINDOW_KEY, _parse_ms, 1000, SCOPE_NODES,
                "a replica zapped by a write younger than this (ms) counts as thrashing"),
        Tunable(REPL_COOLDOWN_KEY, _parse_ms, 1000, SCOPE_NODES,
                "first back-off of a thrashing page (ms); doubles on every repeat"),
        Tunable(UNSAFE_KEY, _parse_switch, 0, SCOPE_NODES,
                "1: unreplicate in the 2007 order (no page lock, free at once, unmap later, no acks): "
                "stale accesses become possible and are counted (repl_stale_access)"),
        Tunable(UNSAFE_DELAY_KEY, _parse_ms, 100, SCOPE_NODES,
                "with vm.unsafe_unreplicate=1: how long after the free the unmaps are sent (ms)"),
    ]


def tunables(nodes: Iterable[int]) -> dict[str, Tunable]:
    """Every key of a cluster whose node ids are `nodes`, sorted by key."""
    table = [Tunable(weight_key(n), _weight_parser(n), DEFAULT_WEIGHT, SCOPE_NODES,
                     f"weighted-interleave weight of node {n}, 1..255 "
                     f"(/sys/kernel/mm/mempolicy/weighted_interleave/node{n})")
             for n in sorted(set(nodes))]
    table.append(Tunable(NUMA_STAT_KEY, _parse_switch, 1, SCOPE_NODES,
                         "numastat counters: 0 stops and clears them on every node, 1 counts again"))
    table.append(Tunable(AUTO_MIGRATE_KEY, _parse_switch, 1, SCOPE_NODES,
                         "auto-migration: a task moved to another node takes its private pages along lazily, "
                         "each on its next touch (1), or leaves them where they are (0)"))
    table.append(Tunable(DIRECT_ACCESS_KEY, _parse_switch, 1, SCOPE_NODES,
                         "direct path: tasks read and write their pages on their own node through shared memory "
                         "(1), or every access is a message to the home node (0); virtual time is the same"))
    table.extend(_replication_tunables())
    return {t.key: t for t in sorted(table, key=lambda t: t.key)}
