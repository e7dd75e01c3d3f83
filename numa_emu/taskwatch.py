"""The watch of a task whose host runs no agent of the cluster (no node there, so nobody on that
host can see its pid): a small process the task starts at attach, in a session of its own so
that a Ctrl-C meant for the workload misses it. When the task's process exits without detaching
(SIGKILL, a crash), it sends task.exited and the coordinator releases the task's memory, as an
agent does for a task of its host (docs/design.md#hosts). It ends quietly when the task detaches
(a line "detached" on its stdin).

    python -m numa_emu.taskwatch CLUSTER TASK_ID PID
"""
from __future__ import annotations

import os
import select
import sys

DETACHED = b"detached\n"
# After the task's end of the pipe closes without "detached": how long its exit may take to show.
EXIT_GRACE_S = 5.0


def task_exited(stdin_fd: int, pidfd: int) -> bool:
    """Wait until the task detaches (False) or its process exits (True)."""
    ready, _, _ = select.select([stdin_fd, pidfd], [], [])
    if pidfd in ready:
        return True
    if os.read(stdin_fd, len(DETACHED)) == DETACHED:
        return False
    # EOF: the task's process is ending (its descriptors close before it is reaped), or it closed
    # the pipe itself and lives on; the pidfd tells which
    ready, _, _ = select.select([pidfd], [], [], EXIT_GRACE_S)
    return bool(ready)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not args[1].isdigit() or not args[2].isdigit():
        print("usage: python -m numa_emu.taskwatch CLUSTER TASK_ID PID", file=sys.stderr)
        return 2
    cluster, task_id, pid = args[0], int(args[1]), int(args[2])
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # gone before we looked
        pidfd = None
    if pidfd is not None and not task_exited(0, pidfd):
        return 0
    from numa_emu import cluster as cl
    from numa_emu.protocol.errors import NumaEmuError
    from numa_emu.protocol.messages import tasks as tm

    try:
        client = cl.connect(cluster).client()
        try:
            client.call(tm.TaskExited(task_id=task_id, pid=pid))
        finally:
            client.close()
    except NumaEmuError as exc:  # the cluster went down meanwhile: nothing left to release
        print(f"numa-emu taskwatch: task {task_id} exited, but the coordinator was not told: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
