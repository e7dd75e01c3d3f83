"""Messages of page migration (docs/protocol.md#migration; docs/linux-semantics.md#move_pages,
#migrate_pages, #mbind, #cpusets): move_pages and migrate_pages of a task on its home node, and the
coordinator's migrate_pages by PID (migratepages).

Direct migration takes the page lock, unmaps with acknowledged shootdowns, copies the page to its
target, updates the page table or the directory entry, and only then frees the old frame. Lazy
migration (mbind MPOL_MF_MOVE|MPOL_MF_LAZY) stops after the unmap; the next touch moves the page.
"""
from __future__ import annotations

from numa_emu.protocol.messages.base import Reply, Request, message


@message
class MovePagesReply(Reply):
    kind = "mem.move_pages.reply"
    status: list  # per page: the node it is on now, or -errno (ENOENT, EFAULT, EACCES, ENOMEM, EBUSY)
    not_moved: int  # pages that could not be moved for non-fatal reasons (move_pages' positive return)
    clock_ns: int


@message
class MovePages(Request):
    """move_pages(2) on the task's own pages: `addrs` (page addresses); `nodes` None queries only.
    `flags` MPOL_MF_MOVE (pages only this task maps) or MPOL_MF_MOVE_ALL (shared pages too)."""

    kind = "mem.move_pages"
    reply = MovePagesReply
    task_id: int
    addrs: list
    nodes: list | None = None
    flags: int = 2  # MPOL_MF_MOVE


@message
class MigratePagesReply(Reply):
    kind = "mem.migrate_pages.reply"
    moved: int
    not_moved: int  # migrate_pages(2)'s return value
    clock_ns: int


@message
class MigratePages(Request):
    """migrate_pages(2) on a task's home node: every page of the task on a node of `old_nodes` moves
    to `new_nodes` by the relative rule (the i-th node of old_nodes to the i-th of new_nodes,
    wrapping; a page already on a target stays). `move_all`: shared pages too (CAP_SYS_NICE)."""

    kind = "mem.migrate_pages"
    reply = MigratePagesReply
    task_id: int
    old_nodes: list
    new_nodes: list
    move_all: bool = False
    cause: str = "syscall"  # syscall | cpuset (memory_migrate) | mbind


@message
class TaskMigratePages(Request):
    """CLI -> coordinator: migratepages PID FROM TO. The coordinator finds the task and forwards
    MigratePages to its home node."""

    kind = "task.migrate_pages"
    reply = MigratePagesReply
    pid: int
    old_nodes: list
    new_nodes: list
    move_all: bool = False


# ---- node -> node (added by the node side of migration) ---------------------------------------


@message
class DirMigrateReply(Reply):
    kind = "dir.migrate.reply"
    status: int  # the node the master is on now, or -errno (ENOENT, EACCES, ENOMEM)
    remap: bool  # the master moved and the requester may map it (read-only) at once
    node: int
    frame: int
    generation: int
    epoch: int
    cost_ns: int  # replica teardown, shootdowns and the copy, charged to the requesting task


@message
class DirMigrate(Request):
    """Home node -> directory home: move the master of shared page (obj, idx) to node `target`
    (allocated there only). `sole`: on the mapper's node only the requesting task maps the page;
    without `move_all` a page that any other task or node maps is refused with -EACCES."""

    kind = "dir.migrate"
    reply = DirMigrateReply
    obj: str
    idx: int
    target: int
    mapper: int  # the requesting task's home node
    task_node: int
    task_id: int
    sole: bool = True
    move_all: bool = False
    cause: str = "syscall"
    mode: str = "direct"  # direct | lazy (a migrate-on-fault): for the trace
    unmap_only: bool = False  # mbind MOVE|LAZY: tear replicas and mappings down, move nothing (target unused)
