"""A Slurm cluster for the slurm launcher's tests, on this machine only: munged, slurmctld and one
`slurmd -N fakeK` per fake host (addresses 127.0.0.2, 127.0.0.3, ...), with a private SLURM_CONF
and a private munge key and socket in the test's folder; stopped by their recorded pids. Debian's
slurmctld, slurmd, slurm-client and munge packages (.ci/run installs them when missing); root only
(slurmd runs jobs as their user and needs to)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


@dataclass
class Slurm:
    folder: Path
    conf: Path
    nodes: dict[str, str]  # fake node name -> its address
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout_s,
                              env=os.environ | self.env)

    def stop(self) -> None:
        for proc in reversed(self.procs):  # slurmd first, munged last; each our child, by its pid
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def missing() -> str | None:
    if os.geteuid() != 0:
        return "the Slurm fixture needs root (slurmd starts job steps as their user)"
    absent = [d for d in DAEMONS + ("srun", "salloc", "sinfo", "scontrol") if not shutil.which(d)
              and not os.path.exists(f"/usr/sbin/{d}")]
    if absent:
        return f"Slurm or munge is not installed ({', '.join(absent)} missing); .ci/run installs them"
    return None


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _spawn(slurm: Slurm, name: str, argv: list[str]) -> None:
    log = open(slurm.folder / f"{name}.out", "ab")
    try:
        slurm.procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=os.environ | slurm.env, start_new_session=True))
    finally:
        log.close()


def start(folder: Path, addresses: list[str], timeout_s: float = 60.0) -> Slurm:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "state").mkdir(exist_ok=True)
    nodes = {f"fake{k + 1}": a for k, a in enumerate(addresses)}
    ctld_port, *node_ports = _free_ports(1 + len(nodes))
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = folder / "munge.sock"
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=numaemutest", "SlurmctldHost=localhost(127.0.0.1)", f"SlurmctldPort={ctld_port}",
        "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
        "SlurmUser=root", "SlurmdUser=root", f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder}/spool-%n", f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd-%n.pid", f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd-%n.log", "ProctrackType=proctrack/pgid", "TaskPlugin=task/none",
        "SwitchType=switch/none", "MpiDefault=none", "ReturnToService=2", "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "PlugStackConfig=/dev/null",
        "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "KillWait=5", "MinJobAge=5",
        *(f"NodeName={n} NodeHostname=localhost NodeAddr={a} Port={p} CPUs=2 RealMemory=1000 State=UNKNOWN"
          for (n, a), p in zip(nodes.items(), node_ports)),
        f"PartitionName=test Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES", "",
    ]))
    slurm = Slurm(folder, conf, nodes)
    try:
        _spawn(slurm, "munged", ["munged", "-F", "--force", f"--key-file={key}", f"--socket={sock}",
                                 f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
                                 f"--seed-file={folder / 'munge.seed'}"])
        _wait(lambda: sock.exists(), timeout_s, "munged's socket", slurm)
        _spawn(slurm, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        _wait(lambda: slurm.run("scontrol", "ping").returncode == 0, timeout_s, "slurmctld to answer", slurm)
        for name in nodes:
            _spawn(slurm, f"slurmd-{name}", ["slurmd", "-D", "-N", name, "-f", str(conf)])
        _wait(lambda: set(slurm.run("sinfo", "-h", "-N", "-o", "%T").stdout.split()) == {"idle"}, timeout_s,
              "every slurmd to be idle", slurm)
    except BaseException:
        slurm.stop()
        raise
    return slurm


def _wait(condition, timeout_s: float, what: str, slurm: Slurm) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        dead = [p.args[0] for p in slurm.procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = {p.name: p.read_text(errors="replace")[-600:] for p in slurm.folder.glob("*.out")}
            logs.update({p.name: p.read_text(errors="replace")[-600:] for p in slurm.folder.glob("*.log")})
            raise RuntimeError(f"waiting for {what}: {'exited: ' + ', '.join(dead) if dead else 'timed out'}; {logs}")
        time.sleep(0.1)
