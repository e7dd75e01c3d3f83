"""What users import and run: the CLI, the client API for workload scripts, workloads, experiments.

It starts the daemons as processes (python -m coordinator) and never imports their internals.
The client API: `numa_emu.attach()` returns a `Task`; `numa_emu.Cluster` starts a cluster for
the length of a `with` block; `numa_emu.libnuma` has libnuma's calls under their own names.
The policy constants are here as in <numaif.h>: the modes (MPOL_BIND, ... are `Mode` members)
and the flags (MPOL_MF_MOVE, MPOL_F_NODE, ...).
"""
from numa_emu.protocol.errors import ErrorCode, NumaEmuError

# <numaif.h>'s mode names: MPOL_BIND is Mode.BIND (an int, as the C constant)
_MODE_CONSTANTS = {"MPOL_DEFAULT": "DEFAULT", "MPOL_PREFERRED": "PREFERRED", "MPOL_BIND": "BIND",
                   "MPOL_INTERLEAVE": "INTERLEAVE", "MPOL_LOCAL": "LOCAL", "MPOL_PREFERRED_MANY": "PREFERRED_MANY",
                   "MPOL_WEIGHTED_INTERLEAVE": "WEIGHTED_INTERLEAVE"}
_FLAG_CONSTANTS = ("MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES", "MPOL_F_NUMA_BALANCING", "MPOL_MODE_FLAGS",
                   "MPOL_MF_STRICT", "MPOL_MF_MOVE", "MPOL_MF_MOVE_ALL", "MPOL_MF_LAZY", "MPOL_MF_VALID",
                   "MPOL_F_NODE", "MPOL_F_ADDR", "MPOL_F_MEMS_ALLOWED")

__all__ = ["attach", "Task", "Region", "File", "Cluster", "NumaEmuError", "ErrorCode", "Mode", "libnuma", "report",
           *_MODE_CONSTANTS, *_FLAG_CONSTANTS]


def __getattr__(name: str):  # lazy, so that `numa-emu --help` stays fast
    if name in ("attach", "Task", "Region", "File"):
        from numa_emu import api

        return getattr(api, name)
    if name == "report":
        from numa_emu.reporting import report

        return report
    if name == "Cluster":
        from numa_emu.cluster import Cluster

        return Cluster
    if name == "libnuma":  # a submodule: import it by its full name (a from-import would come back here)
        import importlib

        return importlib.import_module("numa_emu.libnuma")
    if name == "Mode" or name in _FLAG_CONSTANTS:
        from numa_emu.protocol import policy

        return getattr(policy, name)
    if name in _MODE_CONSTANTS:
        from numa_emu.protocol.policy import Mode

        return Mode[_MODE_CONSTANTS[name]]
    raise AttributeError(f"module 'numa_emu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
