"""The hosts of the Slurm allocation this command runs in (`numa-emu up --launcher slurm` inside
salloc or sbatch): their names from SLURM_JOB_NODELIST, their addresses from slurm.conf (NodeAddr),
asked of Slurm's own tools (scontrol). Each host's agent is then started by one `srun` on it
(coordinator/supervisor.py)."""
from __future__ import annotations

import os
import subprocess

from numa_emu.protocol.clusterdir import home
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.hosts import Host, check_host


def _scontrol(*args: str) -> str:
    try:
        out = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NumaEmuError(ErrorCode.EIO, f"scontrol {' '.join(args)} failed ({exc}); is Slurm installed here?") from None
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise NumaEmuError(ErrorCode.EIO, f"scontrol {' '.join(args)} failed: {why}")
    return out.stdout


def allocation_hosts() -> list[Host]:
    """The allocation's hosts in Slurm's order, each with its NodeAddr and a NUMA_EMU_HOME of its
    own under this one's (hosts/NAME: separate folders even where $HOME is shared)."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not os.environ.get("SLURM_JOB_ID") or not nodelist:
        raise NumaEmuError(ErrorCode.EINVAL, "--launcher slurm runs inside an allocation: salloc -N HOSTS "
                                             "numa-emu up --launcher slurm ... (or in an sbatch script)")
    hosts = []
    for name in _scontrol("show", "hostnames", nodelist).split():
        fields = dict(f.split("=", 1) for f in _scontrol("show", "node", name).split() if "=" in f)
        address = check_host(fields.get("NodeAddr") or name, f"NodeAddr of {name}")
        hosts.append(Host(check_host(name, "SLURM_JOB_NODELIST"), address, home=str(home() / "hosts" / name)))
    return hosts
