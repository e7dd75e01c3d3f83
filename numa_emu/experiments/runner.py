"""Run an experiment: one cluster per (topology, inject, dilation), the latency changed per
configuration through the coordinator, every workload run as a task process, counters before and
after each run; everything it starts is stopped, also on Ctrl-C.

Cluster settings: the file's jitter is set once when a cluster starts; before each run its sysctl
tunables (the fixed ones and the configuration's swept ones) are sent with sysctl.set, and a key
an earlier run changed but this one does not set goes back to the value the cluster started with.
A workload that runs several tasks (kbuild, writeshare) starts them itself, in its process group.
The user's own command (workloadspec.py) runs the same way, in the experiment file's folder, with
$NUMA_EMU_VTIME=1: each of its tasks prints its virtual time on stderr when it detaches, and the
largest is the run's virtual_ns unless its JSON line (numa_emu.report) gives one. Its bad input (a
missing script or program, a placeholder the grid has no value for, no JSON line, a non-zero
exit) is that run's status, one line, and the experiment goes on.

Clusters are started attached (the coordinator holds the read end of a pipe to this process, as
`numa-emu up --foreground`), so even a SIGKILL of the runner takes them down. A workload runs as
`python -m numa_emu.workloads.NAME` in a new session (a Ctrl-C at the terminal reaches only the
runner) with the placement's environment (NUMA_EMU_CLUSTER, NUMA_EMU_CPU, NUMA_EMU_POLICY, ...).
The first SIGINT is only recorded (docs/conventions.md#signal-handlers-only-record): the runner stops the
workload it waits
for, stops the cluster and returns what it has, marked interrupted; a second SIGINT is immediate
(KeyboardInterrupt, and the finally blocks still stop the cluster).
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from numa_emu.protocol.clusterdir import home
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import control as ctl
from numa_emu.protocol.messages import faults as fm
from numa_emu.protocol.messages import latency as lm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.timing import TERM_GRACE_S

from numa_emu import api
from numa_emu import cluster as cl
from numa_emu.experiments.settings import short_name
from numa_emu.experiments.spec import Config, Spec
from numa_emu.experiments.workloadspec import PYTHONS

WAIT_SLICE_S = 0.1  # how often a wait for a workload looks at the interrupt flag
_TASK_ENV = (api.ENV_CLUSTER, api.ENV_CPU, api.ENV_POLICY, api.ENV_CPUSET, api.ENV_NODEBIND, api.ENV_CPUBIND,
             api.ENV_VTIME)
_names = itertools.count()
_VTIME = re.compile(r"^numa-emu: task \d+ on cpu \d+ \(node \d+\): virtual time (\d+) ns$", re.M)  # api.Task.detach


@dataclass
class RunRecord:
    """One workload run: a configuration and a repetition, with every raw figure."""

    run: int
    repetition: int
    config: Config
    cluster: str
    status: str  # ok, failed (exit status N: last stderr line), timeout, interrupted
    returncode: int | None
    process_wall_s: float
    result: dict | None
    numastat: dict  # node (str) -> counter deltas
    vmstat: dict
    stderr: str = ""
    sysctl: dict = field(default_factory=dict)  # every tunable the runner set for this run
    script: bool = False  # the user's own command: every key of its line is a column

    def to_dict(self) -> dict:
        return {"run": self.run, "repetition": self.repetition, "config_index": self.config.index,
                "parameters": dict(self.config.values), "sysctl": self.sysctl, "cluster": self.cluster,
                "status": self.status, "returncode": self.returncode, "process_wall_s": self.process_wall_s,
                "result": self.result,
                "numastat_delta": self.numastat, "vmstat_delta": self.vmstat, "stderr": self.stderr}


@dataclass
class Outcome:
    spec: Spec
    records: list[RunRecord] = field(default_factory=list)
    clusters: list[dict] = field(default_factory=list)
    interrupted: bool = False
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status not in ("ok", "interrupted")]


class _AttachedCluster(cl.Cluster):
    """A Cluster whose coordinator exits when this process does (--foreground): no orphans."""

    def start(self) -> "_AttachedCluster":
        self.started = cl.start(self.name, self.topology, self.base, foreground=True,
                                coordinator_args=self.coordinator_args)
        return self


class _SigintGuard:
    """Record the first SIGINT; make the second immediate."""

    def __init__(self):
        self.interrupted = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True

    def __enter__(self) -> "_SigintGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _delta(before: dict, after: dict, section: str) -> dict:
    out = {}
    for node, stats in after.items():
        old = before.get(node, {}).get(section, {})
        out[str(node)] = {k: v - old.get(k, 0) for k, v in stats.get(section, {}).items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


class ExperimentRunner:
    """Runs every configuration of `spec`; `on_run(done, total, text)` reports progress."""

    def __init__(self, spec: Spec, *, base: Path | None = None, on_run: Callable[[int, int, str], None] | None = None,
                 python: str = sys.executable):
        self.spec = spec
        self.base = base if base is not None else home()
        self.on_run = on_run or (lambda done, total, text: None)
        self.python = python
        self.guard = _SigintGuard()
        self.child: subprocess.Popen | None = None
        self._sysctl_start: dict = {}  # the values the cluster started with, of every key the spec sets
        self._sysctl_now: dict = {}

    def run(self) -> Outcome:
        spec, outcome = self.spec, Outcome(self.spec)
        order = spec.run_order()
        total, done = len(order) * spec.repetitions, 0
        with self.guard:
            try:
                for key, group in itertools.groupby(order, key=lambda c: c.cluster_key):
                    if self.guard.interrupted:
                        break
                    done = self._cluster(key, list(group), outcome, done, total)
            finally:
                self._stop_child()
                outcome.interrupted = self.guard.interrupted
                outcome.finished_at = time.time()
        return outcome

    def _cluster(self, key: tuple, configs: list[Config], outcome: Outcome, done: int, total: int) -> int:
        """Start the cluster of `key`, run `configs` on it, stop it. Its folder (logs) is removed
        unless a run failed there."""
        topology, inject, dilation = key
        name = f"exp-{os.getpid()}-{next(_names)}"
        args = ["--inject", inject] + (["--dilation", f"{dilation:g}"] if inject == "real" else [])
        info = {"name": name, "dir": str(self.base / name), "topology": topology, "inject": inject,
                "dilation": dilation, "latency_changes": [], "kept": True}
        outcome.clusters.append(info)
        first = len(outcome.records)
        self.on_run(done, total, f"starting cluster {name} ({topology}, {inject})")
        with _AttachedCluster(self.spec.topologies[topology], name=name, base=self.base, coordinator_args=args) as c:
            try:  # the workload goes first, then the cluster
                self._prepare(c, info)
                done = self._configs(c, configs, info, outcome, done, total)
            finally:
                self._stop_child()
        info["kept"] = any(r.status not in ("ok", "interrupted") for r in outcome.records[first:])
        if not info["kept"]:
            shutil.rmtree(self.base / name, ignore_errors=True)
        return done

    def _configs(self, c: cl.Cluster, configs: list[Config], info: dict, outcome: Outcome, done: int,
                 total: int) -> int:
        scale = 1.0
        for config in configs:
            if config.values["latency_scale"] != scale:
                scale = config.values["latency_scale"]
                info["latency_changes"].append(self._scale(c, scale))
            for rep in range(self.spec.repetitions):
                if self.guard.interrupted:
                    return done
                text = _describe(config, rep, self.spec.repetitions)
                self.on_run(done, total, text)
                outcome.records.append(self._one(c, config, rep, len(outcome.records)))
                done += 1
                self.on_run(done, total, text)
        return done

    def _prepare(self, c: cl.Cluster, info: dict) -> None:
        """The jitter and faults of the file, and the starting values of the tunables it changes."""
        keys = sorted(set(self.spec.sysctl_fixed) | set(self.spec.sysctl_keys))
        with c.client() as client:
            if self.spec.jitter is not None:
                client.call(lm.LatencyChange(op="jitter", args=dict(self.spec.jitter)))
                info["jitter"] = dict(self.spec.jitter)
            for op, args in self.spec.faults:  # [faults]: in force for every run on this cluster
                info["faults"] = client.call(fm.FaultChange(op=op, args=dict(args))).table
            self._sysctl_start = dict(client.call(ctl.SysctlGet(keys=keys)).values) if keys else {}
        self._sysctl_now = dict(self._sysctl_start)
        info["sysctl_start"] = dict(self._sysctl_start)

    def _sysctl(self, c: cl.Cluster, config: Config) -> dict:
        """Set this run's tunables (only when they differ from the values in force); all of them."""
        wanted = {**self._sysctl_start, **self.spec.sysctl_fixed, **config.sysctl}
        changed = {k: str(v) for k, v in wanted.items() if str(self._sysctl_now.get(k)) != str(v)}
        if changed:
            with c.client() as client:
                self._sysctl_now.update(client.call(ctl.SysctlSet(values=changed)).values)
        return {k: self._sysctl_now[k] for k in sorted(wanted)}

    def _scale(self, c: cl.Cluster, factor: float) -> dict:
        request = lm.LatencyChange(op="scale", args={"factor": factor, "remote_only": self.spec.remote_only})
        with c.client() as client:
            table = client.call(request).table
        return {"factor": factor, "remote_only": self.spec.remote_only, "version": table["version"],
                "latency_ns": table["latency_ns"]}

    def _stats(self, c: cl.Cluster) -> dict:
        with c.client() as client:
            return client.call(tm.ClusterStats()).nodes

    def _environment(self, c: cl.Cluster, config: Config) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _TASK_ENV}
        placement = self.spec.placements[config.values["placement"]]
        env.update(placement.environment(self.spec.topologies[config.values["topology"]]))
        env["NUMA_EMU_HOME"] = str(self.base)
        env[api.ENV_CLUSTER] = c.name
        return env

    def _one(self, c: cl.Cluster, config: Config, rep: int, run: int) -> RunRecord:
        workload = self.spec.workloads[config.values["workload"]]
        env = self._environment(c, config)
        sysctl = self._sysctl(c, config)
        folder = self.spec.path.parent.resolve()
        try:
            argv = workload.argv(self.python, config.values)
            if workload.script:
                _check_script(argv, workload.script, folder)
        except NumaEmuError as exc:
            return RunRecord(run, rep, config, c.name, f"failed: {exc.message}", None, 0.0, None, {}, {}, "", sysctl)
        if workload.script:
            env[api.ENV_VTIME] = "1"
        before = self._stats(c)
        t0 = time.perf_counter()
        try:
            self.child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, start_new_session=True,
                                          cwd=folder if workload.script else None)
        except OSError as exc:  # the program is missing or not executable
            return RunRecord(run, rep, config, c.name, f"failed: cannot start {argv[0]} in {folder}: {exc.strerror}",
                             None, 0.0, None, {}, {}, "", sysctl)
        status, out, err = self._wait(self.child)
        returncode, self.child = self.child.returncode, None
        wall_s = time.perf_counter() - t0
        after = self._stats(c)
        result = None
        if status == "ok":
            result = result_line(out)
            if result is None:
                status = ("failed: no JSON object line on stdout" +
                          (" (print one with numa_emu.report(**metrics))" if workload.script else ""))
            elif workload.script:
                clocks = [int(n) for n in _VTIME.findall(err)]
                if clocks and "virtual_ns" not in result:
                    result["virtual_ns"] = max(clocks)
        return RunRecord(run, rep, config, c.name, status, returncode, wall_s, result,
                         _delta(before, after, "numastat"), _delta(before, after, "vmstat"), err.strip(), sysctl,
                         bool(workload.script))

    def _wait(self, proc: subprocess.Popen) -> tuple[str, str, str]:
        deadline = time.monotonic() + self.spec.timeout_s
        while True:
            try:
                out, err = proc.communicate(timeout=WAIT_SLICE_S)
            except subprocess.TimeoutExpired:
                if self.guard.interrupted or time.monotonic() > deadline:
                    out, err = self._stop_child()
                    return ("interrupted" if self.guard.interrupted else "timeout"), out, err
                continue
            if proc.returncode == 0:
                return "ok", out, err
            last = (err.strip().splitlines() or [""])[-1]
            return f"failed (exit status {proc.returncode}): {last}".rstrip(": "), out, err

    def _stop_child(self) -> tuple[str, str]:
        """SIGTERM to the workload's process group (its session, which we created; the task
        detaches), then SIGKILL after the grace period."""
        proc = self.child
        if proc is None or proc.poll() is not None:
            return "", ""
        out = err = ""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                out, err = proc.communicate(timeout=TERM_GRACE_S)
                break
            except subprocess.TimeoutExpired:
                continue
        return out or "", err or ""


def result_line(out: str) -> dict | None:
    """The last line of a workload's stdout that is a JSON object (what numa_emu.report prints)."""
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _check_script(argv: list[str], script: tuple[str, ...], folder: Path) -> None:
    """A Python script the command names must exist in the experiment file's folder (or absolutely)."""
    if script[0] in PYTHONS and len(argv) > 1 and not argv[1].startswith("-") and not (folder / argv[1]).is_file():
        raise NumaEmuError(ErrorCode.ENOENT, f"no script {argv[1]} in {folder} (a command's relative paths "
                                             f"are resolved against the experiment file's folder)")


def _describe(config: Config, rep: int, repetitions: int) -> str:
    v = config.values
    text = f"{v['workload']} {v['placement']} x{v['latency_scale']:g}"
    text += "".join(f" {k}={v[k]}" for k in config.user)
    text += "".join(f" {short_name(k)}={x}" for k, x in config.sysctl.items())
    return text + (f" rep {rep + 1}/{repetitions}" if repetitions > 1 else "")


def run_experiment(spec: Spec, **kw) -> Outcome:
    return ExperimentRunner(spec, **kw).run()
