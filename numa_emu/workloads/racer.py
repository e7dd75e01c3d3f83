"""racer: the start line of the multi-task workloads (kbuild, writeshare). A leader task spawns
worker tasks on other CPUs, holds them until every one is attached and prepared, starts them
together, and gathers their JSON lines and the cluster's counters over the race.

The leader is the task that `numa-emu workload NAME` (or the experiment runner) started, and it
takes part. Each worker is `python -m numa_emu.workloads.NAME --team-index I --cpu C ...`, a task
of its own, in the leader's process group (the experiment runner's SIGTERM to the group stops
them all) with the leader's memory policy (children inherit it, as under numactl) but its own
CPU. A leader that may run on one CPU only (`--cpu`, NUMA_EMU_CPU, `taskset -c`) pins its workers
to theirs; an unpinned leader (`pinned`) leaves them unpinned too (numa01, numa02): each attaches
without a CPU and the coordinator places it (the least loaded, lowest CPU), one after the other
(`spawn_unpinned`), so the placement is the same every run and NUMA balancing may move them.
Three pipes, which cost nothing in the model (like prodcons' hand-over):

- ready: every worker writes one byte once it has attached and mapped what it needs;
- go: the leader closes it, and every worker starts its measured phase at once;
- stop: the leader closes it when open-ended workers (readers) should finish their loop.

Counters: `counters(cluster)` sums every node's vmstat; the leader takes them just before go
and after every worker has finished, so set-up and clean-up stay outside the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time

from numa_emu.protocol import limits
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.nodemask import parse_nodelist

START_TIMEOUT_S = 60.0  # every worker attached and prepared
FINISH_TIMEOUT_S = 300.0  # every worker's JSON line after the stop
# the replication counters a multi-task workload reports over its measured phase
COUNTERS = ("pgreplicated", "pgreplicazap", "pgreplicazap_write", "pgreplicazap_reclaim", "pgreplicazap_truncate",
            "repl_fetch_bytes", "repl_hits", "pgreplicabackoff", "repl_backoff_skips", "repl_stale_access",
            "pgwriteback", "numa_other")
_UNBIND = ("NUMA_EMU_CPU", "NUMA_EMU_CPUNODEBIND", "NUMA_EMU_PHYSCPUBIND")


def add_team_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--tasks-per-node and --nodes (public); the worker's own options (hidden)."""
    p.add_argument("--tasks-per-node", type=limits.TASKS_PER_NODE.argtype(), default=1, metavar="N",
                   help=f"{what} on each node, the leader counting as one on its node (default 1)")
    p.add_argument("--nodes", metavar="LIST", default=None,
                   help=f"the nodes that run {what} (default every node with CPUs)")
    p.add_argument("--team-index", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-id", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--go-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--stop-fd", type=int, default=None, help=argparse.SUPPRESS)


def cluster_name(args: argparse.Namespace) -> str:
    from numa_emu import api, cluster

    return args.cluster or os.environ.get(api.ENV_CLUSTER) or cluster.resolve_name(None)


def worker_cpus(name: str, leader_cpu: int, per_node: int, nodes: str | None, *, leader_counts: bool) -> list[int]:
    """The CPUs of the workers: `per_node` tasks on every chosen node with CPUs, the node's CPUs
    taken in turn from the leader's CPU on its node; with `leader_counts` the leader is one of
    its node's tasks."""
    from numa_emu import cluster

    topology = cluster.status(cluster.require(name)).topology
    with_cpus = {n["id"]: sorted(n["cpus"]) for n in topology["nodes"] if n["cpus"]}
    chosen = set(with_cpus) if nodes is None else parse_nodelist(nodes)
    if not chosen or not chosen <= set(with_cpus):
        raise NumaEmuError(ErrorCode.EINVAL, f"--nodes {nodes!r}: give nodes that have CPUs "
                                             f"({', '.join(map(str, sorted(with_cpus)))})")
    out: list[int] = []
    for node in sorted(chosen):
        cpus = with_cpus[node]
        if leader_cpu in cpus:
            cpus.remove(leader_cpu)
            cpus.insert(0, leader_cpu)
        picks = [cpus[k % len(cpus)] for k in range(per_node)]
        if leader_counts and leader_cpu in cpus:
            picks.remove(leader_cpu)
        out += picks
    return out


def pinned(task) -> bool:
    """Whether `task` may run on one CPU only (attach(cpu=N), --cpu, taskset -c N)."""
    return len(task.info()["affinity"]) <= 1


def counters(name: str) -> dict[str, int]:
    """The cluster's replication counters, summed over its nodes."""
    from numa_emu import cluster

    with cluster.require(name).client() as client:
        nodes = client.call(tm.ClusterStats()).nodes
    return {k: sum(int(n.get("vmstat", {}).get(k, 0)) for n in nodes.values()) for k in COUNTERS}


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS}


def zap_ratio(delta: dict[str, int]) -> float | None:
    """Replicas zapped per replica made (the 2007 thread's "zaps"), None when none was made."""
    return delta["pgreplicazap"] / delta["pgreplicated"] if delta["pgreplicated"] else None


class Team:
    """The leader's side: spawn the workers, start them together, gather their lines.

        with Team("kbuild", cluster) as team:
            for i, cpu in enumerate(cpus, 1):
                team.spawn(i, cpu, [...their options...])
            team.wait_ready(); before = counters(cluster); team.go()
            ...the leader's own part...
            team.stop(); lines = team.results()
    """

    def __init__(self, workload: str, cluster: str, pass_fds: tuple[int, ...] = ()):
        self.workload, self.cluster, self.pass_fds = workload, cluster, pass_fds
        self.procs: list[subprocess.Popen] = []
        self._ready = 0  # workers that said ready
        self._ready_r, self._ready_w = os.pipe()
        self._go_r, self._go_w = os.pipe()
        self._stop_r, self._stop_w = os.pipe()

    def spawn(self, index: int, cpu: int | None, options: list[str], run_id: str) -> None:
        """Start worker `index` pinned to `cpu`; None: unpinned, on the coordinator's pick."""
        place = ["--cpu", str(cpu)] if cpu is not None else []
        argv = [sys.executable, "-m", f"numa_emu.workloads.{self.workload}", "--cluster", self.cluster,
                *place, "--team-index", str(index), "--run-id", run_id, "--ready-fd", str(self._ready_w),
                "--go-fd", str(self._go_r), "--stop-fd", str(self._stop_r), *options]
        env = {k: v for k, v in os.environ.items() if k not in _UNBIND}
        self.procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, env=env, text=True,
                                           pass_fds=(self._ready_w, self._go_r, self._stop_r, *self.pass_fds)))

    def spawn_unpinned(self, index: int, options: list[str], run_id: str) -> None:
        """Start worker `index` without a CPU and wait until it is attached and prepared: the
        coordinator places each unpinned worker knowing where the earlier ones run."""
        self.spawn(index, None, options, run_id)
        self._await_ready(len(self.procs), START_TIMEOUT_S)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Every worker attached and prepared; EIO naming the first one that exited instead."""
        for fd in (self._ready_w, self._go_r, self._stop_r):  # ours are the other ends
            os.close(fd)
        self._ready_w = self._go_r = self._stop_r = -1
        self._await_ready(len(self.procs), timeout_s)

    def _await_ready(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._ready < count:
            ready, _, _ = select.select([self._ready_r], [], [], min(0.2, max(0.0, deadline - time.monotonic())))
            if ready:
                got = os.read(self._ready_r, 4096)
                self._ready += len(got)
                if got:
                    continue
            self._check_alive()
            if time.monotonic() > deadline:
                raise NumaEmuError(ErrorCode.ETIMEDOUT, f"{self.workload}: {count - self._ready} worker(s) "
                                                        f"not ready within {timeout_s:g} s")

    def _check_alive(self) -> None:
        for i, proc in enumerate(self.procs, 1):
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                why = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
                raise NumaEmuError(ErrorCode.EIO, f"{self.workload}: worker {i} exited before the start: {why}")

    def go(self) -> None:
        os.close(self._go_w)
        self._go_w = -1

    def stop(self) -> None:
        if self._stop_w >= 0:
            os.close(self._stop_w)
            self._stop_w = -1

    def results(self, timeout_s: float = FINISH_TIMEOUT_S) -> list[dict]:
        """Every worker's JSON line, in spawn order; EIO naming the first that failed."""
        self.stop()
        deadline, lines = time.monotonic() + timeout_s, []
        for i, proc in enumerate(self.procs, 1):
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0 or not out.strip():
                why = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
                raise NumaEmuError(ErrorCode.EIO, f"{self.workload}: worker {i} failed: {why}")
            lines.append(json.loads(out.strip().splitlines()[-1]))
        return lines

    def close(self) -> None:
        for fd in (self._ready_r, self._ready_w, self._go_r, self._go_w, self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._ready_r = self._ready_w = self._go_r = self._go_w = self._stop_r = self._stop_w = -1
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # the worker detaches on SIGTERM
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> "Team":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StartLine:
    """The worker's side of the three pipes."""

    def __init__(self, args: argparse.Namespace):
        if None in (args.ready_fd, args.go_fd, args.stop_fd, args.run_id):
            raise NumaEmuError(ErrorCode.EINVAL, "--team-index is for workers that a leader starts")
        self.ready_fd, self.go_fd, self.stop_fd = args.ready_fd, args.go_fd, args.stop_fd
        self._stopped = False

    def ready_then_wait(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Report ready and block until the leader says go (its end closes)."""
        os.write(self.ready_fd, b"r")
        os.close(self.ready_fd)
        ready, _, _ = select.select([self.go_fd], [], [], timeout_s)
        if not ready:
            raise NumaEmuError(ErrorCode.ETIMEDOUT, f"no start from the leader within {timeout_s:g} s")
        os.read(self.go_fd, 1)  # EOF

    def stopped(self) -> bool:
        """True once the leader has closed the stop pipe (or gone)."""
        if not self._stopped:
            ready, _, _ = select.select([self.stop_fd], [], [], 0)
            self._stopped = bool(ready)
        return self._stopped
