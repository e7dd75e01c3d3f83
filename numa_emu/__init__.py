"""What users import and run: the CLI, the client API for workload scripts, workloads, experiments.

It starts the daemons as processes (python -m coordinator) and never imports their internals.
The client API: `numa_emu.attach()` returns a `Task`; `numa_emu.Cluster` starts a cluster for
the length of a `with` block. The flags of the policy calls (MPOL_MF_MOVE, MPOL_F_NODE, ...) and
`Mode` are here too, as in <numaif.h>.
"""
from protocol.errors import ErrorCode, NumaEmuError

__all__ = ["attach", "Task", "Region", "Cluster", "NumaEmuError", "ErrorCode"]


def __getattr__(name: str):  # lazy, so that `numa-emu --help` stays fast
    if name in ("attach", "Task", "Region"):
        from numa_emu import api

        return getattr(api, name)
    if name == "report":
        from numa_emu.reporting import report

        return report
    if name == "Cluster":
        from numa_emu.cluster import Cluster

        return Cluster
    if name.startswith("MPOL_") or name == "Mode":
        from protocol import policy

        if hasattr(policy, name):
            return getattr(policy, name)
    raise AttributeError(name)
