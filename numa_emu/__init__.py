"""What users import and run: the CLI, the client API for workload scripts, workloads, experiments.

It starts the daemons as processes (python -m coordinator) and never imports their internals.
The client API: `numa_emu.attach()` returns a `Task`; `numa_emu.Cluster` starts a cluster for
the length of a `with` block.
"""
from protocol.errors import ErrorCode, NumaEmuError

__all__ = ["attach", "Task", "Region", "Cluster", "NumaEmuError", "ErrorCode"]


def __getattr__(name: str):  # lazy, so that `numa-emu --help` stays fast
    if name in ("attach", "Task", "Region"):
        from numa_emu import api

        return getattr(api, name)
    if name == "Cluster":
        from numa_emu.cluster import Cluster

        return Cluster
    raise AttributeError(name)
