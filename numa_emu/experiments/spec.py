"""Experiment files (docs/experiment-format.md): load and validate the TOML, then expand its grid into
configurations.

Every error is one NumaEmuError (EINVAL; ENOENT for a missing file) whose message names the file
and the key: "latency.toml: grid.placement[1]: no placement 'remot' (defined: local, remote)".
Nothing in a file is executed but the commands it names: workloads are built-in names or the
user's own command lists, placements are policies.

    [experiment]
    name = "latency-sensitivity"     # required: letters, digits, '-', '_', '.'
    description = "..."
    topology = "default-4n"          # built-in name, TOML file (relative to this file) or shape
    inject = "virtual"               # or "real": inter-node messages held back latency x dilation
    dilation = 1000                  # real mode only
    repetitions = 1
    metric = "virtual_ns"            # the main figure (FIGURES): virtual_ns, ns_per_op, remote_reads, ...
    report = ["virtual_ns", "remote_reads"]   # the table's figure columns (default: the timing ones)
    plots = ["remote_reads"]         # figures plotted beside the metric
    latency_scope = "remote"         # remote: `latency scale F --remote-only`; all: every latency
    timeout = "600s"                 # per run
    sysctl = { "vm.pagecache_replication_backoff" = 0 }   # every run (settings.py)
    jitter = 0.3                     # every link, uniform +-30 % (real mode)

    [grid]                           # each a non-empty list; configurations are the product
    latency_scale = [1, 2, 3, 4]     # also: topology, inject, dilation (one cluster per triple)
    placement = ["local", "remote"]  # names of [placements.*]; default: all of them
    workload = ["chase"]             # names of [workloads.*] or built-ins; default: all defined
    sysctl = { "vm.pagecache_replication" = [0, 1] }   # a parameter per key
    size = [1024, 4096]              # any other name: a parameter of the commands' {size} placeholders

    [placements.remote]
    cpu = 0                          # default: -C/-N binding if given, else the first CPU
    # pinned = false                 # no CPU: the coordinator places it, balancing may move it
    policy = "--membind=2"           # numactl options (policy, -N, -C) ...
    # mode = "bind"; nodes = "2"     # ... or an explicit mode and node list

    [workloads.chase]
    command = "chase"                # the built-in workload (default: the table's name)
    options = { hops = 500, size = "1MiB" }   # or ["--hops", "500"]
    sysctl = { "vm.pagecache_replication_mode" = ["all", "exec-only"] }  # swept with this workload only
    # command = ["python", "mine.py", "--size", "{size}"]  # the user's own script (workloadspec.py)

    [quick]                          # --quick: grid entries, repetitions replaced; options merged
    latency_scale = [1, 4]
    [quick.workloads.chase]
    options = { hops = 100 }         # also: sysctl (and [quick] sysctl), replacing the keys named
"""
from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from numa_emu.protocol import limits
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.nodemask import format_nodelist
from numa_emu.protocol.topology import Topology
from numa_emu.protocol.units import parse_duration_s

from numa_emu.experiments import faults as faults_table
from numa_emu.experiments import settings
from numa_emu.experiments.placement import Placement
from numa_emu.experiments.workloadspec import WorkloadSpec, workload as _workload
from numa_emu.workloads import runner as workload_runner

PARAMETERS = ("topology", "inject", "dilation", "latency_scale", "placement", "workload")
CLUSTER_PARAMETERS = ("topology", "inject", "dilation")
METRICS = ("virtual_ns", "ns_per_op", "virtual_mb_s", "wall_s", "process_wall_s")
# every figure of a run (numa_emu/experiments/output.py): the metric, the table's and the plots'
REPLICATION_FIGURES = ("reads", "remote_reads", "repl_hits", "repl_fetch_bytes", "pgreplicated", "pgreplicazap",
                       "pgreplicazap_write", "zap_ratio", "pgreplicabackoff", "repl_backoff_skips",
                       "repl_stale_access", "stale_reads")
NUMASTAT = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node")
FIGURES = METRICS + ("remote_pages",) + NUMASTAT + REPLICATION_FIGURES
INJECT_MODES = ("virtual", "real")
SCOPES = ("remote", "all")
DEFAULT_TIMEOUT_S = 600.0
_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_PARAMETER_RE = r"[A-Za-z_][A-Za-z0-9_]*"  # a grid parameter of the user's commands
_TOP = {"experiment", "grid", "placements", "workloads", "quick", faults_table.TABLE}
_EXPERIMENT = {"name", "description", "topology", "inject", "dilation", "repetitions", "metric", "latency_scope",
               "timeout", "report", "plots", settings.TABLE, "jitter"}
_PLACEMENT = {"cpu", "pinned", "policy", "mode", "nodes", "description"}


class SpecError(NumaEmuError):
    """An invalid experiment file: EINVAL, "FILE: KEY: what is wrong"."""

    def __init__(self, where: str, key: str, problem: str):
        super().__init__(ErrorCode.EINVAL, f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class _Check:
    """Typed look-ups that fail naming the file and the key."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, problem: str) -> SpecError:
        return SpecError(self.where, key, problem)

    def table(self, value: Any, key: str, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_show(value)}")
        for k in value:
            if allowed is not None and k not in allowed:
                raise self.fail(f"{key}.{k}" if key else k, f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def string(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {_show(value)}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"'{value}' is not one of: {', '.join(choices)}")
        return value

    def positive(self, value: Any, key: str, *, integer: bool = False, bound: limits.Bound | None = None) -> float | int:
        """A positive number, within `bound` (protocol.limits) when one is given."""
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not value > 0 or value != value or value == float("inf"):
            raise self.fail(key, f"expected a positive {'whole number' if integer else 'number'}, got {_show(value)}")
        if bound is not None:
            try:
                bound.check(value, "")
            except NumaEmuError as exc:
                raise self.fail(key, exc.message) from None
        return value

    def values(self, value: Any, key: str) -> list:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a non-empty list, got {_show(value)}")
        seen = []
        for i, v in enumerate(value):
            if v in seen:
                raise self.fail(f"{key}[{i}]", f"{_show(v)} appears twice")
            seen.append(v)
        return value


_show = settings.show


# ---- placements ----------------------------------------------------------------------------

def _placement(c: _Check, name: str, raw: Any, topologies: list[Topology]) -> Placement:
    key = f"placements.{name}"
    c.table(raw, key, _PLACEMENT)
    cpu = raw.get("cpu")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0):
        raise c.fail(f"{key}.cpu", f"expected a CPU number, got {_show(cpu)}")
    pinned = raw.get("pinned", True)
    if not isinstance(pinned, bool):
        raise c.fail(f"{key}.pinned", f"expected true or false, got {_show(pinned)}")
    if cpu is not None and not pinned:
        raise c.fail(f"{key}.pinned", "a cpu pins the task (taskset -c): drop cpu, or pinned = false")
    if "policy" in raw and ("mode" in raw or "nodes" in raw):
        raise c.fail(key, "give either policy (numactl options) or mode and nodes, not both")
    if "nodes" in raw and "mode" not in raw:
        raise c.fail(f"{key}.nodes", "nodes without a mode")
    nodes = raw.get("nodes")
    if isinstance(nodes, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in nodes):
        nodes = format_nodelist(nodes) if nodes else ""
    elif nodes is not None and not isinstance(nodes, str):
        raise c.fail(f"{key}.nodes", f"expected a node list like \"0-1\" or [0, 1], got {_show(nodes)}")
    p = Placement(name, cpu, c.string(raw["policy"], f"{key}.policy") if "policy" in raw else None,
                  c.string(raw["mode"], f"{key}.mode") if "mode" in raw else None, nodes,
                  str(raw.get("description", "")), pinned)
    for topology in topologies:
        fault = p.problem(topology)
        if fault is not None:
            raise c.fail(f"{key}.{fault[0]}", f"{fault[1]} (topology {topology.name})")
    return p


# ---- the file -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """One point of the grid: a value for every parameter; `index` is its place in grid order."""

    index: int
    values: dict  # PARAMETERS, the user's parameters, the swept sysctl keys (None: not set by this one)
    user: tuple[str, ...] = ()  # the user's parameters (of the commands' placeholders)

    @property
    def cluster_key(self) -> tuple:
        return tuple(self.values[p] for p in CLUSTER_PARAMETERS)

    @property
    def sysctl(self) -> dict:
        """The swept sysctl values of this configuration."""
        return {k: v for k, v in self.values.items() if k not in PARAMETERS and k not in self.user and v is not None}


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    description: str
    topology: str
    inject: str
    dilation: float
    repetitions: int
    metric: str
    remote_only: bool
    timeout_s: float
    grid: dict  # parameter -> tuple of values: every parameter (file order, then PARAMETERS), then [grid] sysctl keys
    swept: tuple[str, ...]  # parameters with more than one value ([grid] ones, then workloads' sysctl keys)
    placements: dict
    workloads: dict
    quick: bool = False
    topologies: dict = field(default_factory=dict, compare=False, repr=False)
    sysctl_keys: tuple[str, ...] = ()  # swept sysctl keys: [grid] sysctl, then the workloads' own
    sysctl_fixed: dict = field(default_factory=dict)  # key -> value for every run
    jitter: dict | None = None  # {distribution, spread} of every link, set once per cluster
    faults: tuple = ()  # (op, args) of the fault.change requests of [faults], set once per cluster
    report: tuple[str, ...] = ()  # the table's figure columns (empty: the timing ones)
    plots: tuple[str, ...] = ()  # figures plotted beside the metric
    user_parameters: tuple[str, ...] = ()  # [grid] names of the commands' placeholders

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every parameter of a configuration: PARAMETERS, the user's, then the swept sysctl keys."""
        return PARAMETERS + self.user_parameters + self.sysctl_keys

    def configurations(self) -> list[Config]:
        """The product of the grid; each point once more per value of its workload's own sysctl grid."""
        keys, out = list(self.grid), []
        for combo in itertools.product(*self.grid.values()):
            point = dict(zip(keys, combo))
            point.update({k: None for k in self.sysctl_keys if k not in point})
            own = self.workloads[point["workload"]].sysctl
            for values in itertools.product(*(v for _, v in own)):
                out.append(Config(len(out), {**point, **dict(zip((k for k, _ in own), values))},
                                  self.user_parameters))
        return out

    def values_of(self, parameter: str) -> list:
        """The values `parameter` takes over the configurations, in grid order, None left out."""
        return list(dict.fromkeys(c.values[parameter] for c in self.configurations() if c.values[parameter] is not None))

    def run_order(self) -> list[Config]:
        """Grid order, grouped by cluster (topology, inject, dilation), then by latency scale, so
        each cluster starts once and the latency changes as rarely as possible."""
        configs = self.configurations()
        clusters = list(dict.fromkeys(c.cluster_key for c in configs))
        scales = list(self.grid["latency_scale"])
        return sorted(configs, key=lambda c: (clusters.index(c.cluster_key), scales.index(c.values["latency_scale"])))

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "description": self.description,
                "topology": self.topology, "inject": self.inject, "dilation": self.dilation,
                "repetitions": self.repetitions, "metric": self.metric, "remote_only": self.remote_only,
                "timeout_s": self.timeout_s, "quick": self.quick, "grid": {k: list(v) for k, v in self.grid.items()},
                "swept": list(self.swept),
                "placements": {n: {"cpu": p.cpu, "policy": p.policy, "mode": p.mode, "nodes": p.nodes,
                                   "pinned": p.pinned, "label": p.label()} for n, p in self.placements.items()},
                "workloads": {n: {"command": list(w.script) if w.script else w.command, "options": list(w.options),
                                  "sysctl": {k: list(v) for k, v in w.sysctl}} for n, w in self.workloads.items()},
                "user_parameters": list(self.user_parameters),
                "sysctl": dict(self.sysctl_fixed), "sysctl_keys": list(self.sysctl_keys), "jitter": self.jitter,
                "faults": [[op, args] for op, args in self.faults],
                "report": list(self.report), "plots": list(self.plots)}

    @classmethod
    def from_dict(cls, d: dict) -> Spec:
        """The spec of a results.json (to_dict), enough to summarise and plot again; no topology."""
        try:
            placements = {n: Placement(n, p["cpu"], p["policy"], p["mode"], p["nodes"], pinned=p.get("pinned", True))
                          for n, p in d["placements"].items()}
            workloads = {}
            for n, w in d["workloads"].items():
                script = tuple(w["command"]) if isinstance(w["command"], list) else ()
                workloads[n] = WorkloadSpec(n, "" if script else w["command"], tuple(w["options"]),
                                            tuple((k, tuple(v)) for k, v in w["sysctl"].items()), script)
            return cls(name=d["name"], path=Path(d["path"]), description=d["description"], topology=d["topology"],
                       inject=d["inject"], dilation=d["dilation"], repetitions=d["repetitions"], metric=d["metric"],
                       remote_only=d["remote_only"], timeout_s=d["timeout_s"], quick=d["quick"],
                       grid={k: tuple(v) for k, v in d["grid"].items()}, swept=tuple(d["swept"]),
                       placements=placements, workloads=workloads, sysctl_keys=tuple(d["sysctl_keys"]),
                       sysctl_fixed=dict(d["sysctl"]), jitter=d["jitter"],
                       faults=tuple((op, args) for op, args in d["faults"]), report=tuple(d["report"]),
                       plots=tuple(d["plots"]), user_parameters=tuple(d.get("user_parameters", ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NumaEmuError(ErrorCode.EINVAL, f"the spec in results.json is incomplete or damaged ({exc!r}): "
                                                 f"rerun the experiment") from None


def shipped() -> dict[str, Path]:
    """The experiment files shipped in the `experiments` package, by name."""
    return {e.name[:-5]: Path(str(e)) for e in sorted(resources.files("numa_emu.experiment_specs").iterdir(), key=lambda e: e.name)
            if e.name.endswith(".toml")}


def resolve_source(text: str) -> Path:
    """An experiment file path, or the name of a shipped one ("latency-sensitivity")."""
    path = Path(text)
    if path.is_file():
        return path
    builtins = shipped()
    name = text[:-5] if text.endswith(".toml") else text
    if name in builtins and not path.parent.parts:
        return builtins[name]
    raise NumaEmuError(ErrorCode.ENOENT, f"experiment file {text} does not exist and is not a shipped experiment "
                                         f"({', '.join(builtins) or 'none'})")


def _topology(c: _Check, value: Any, key: str, base: Path) -> Topology:
    from numa_emu.catalog import resolve_topology

    text = c.string(value, key)
    local = base / text
    try:
        return resolve_topology(str(local) if text.endswith(".toml") and local.is_file() else text)
    except NumaEmuError as exc:
        raise c.fail(key, exc.message) from None


def load_spec(source: str | Path, *, quick: bool = False) -> Spec:
    """Read and validate an experiment file (path or shipped name); `quick` applies [quick]."""
    path = resolve_source(str(source))
    c = _Check(str(path))
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), "", f"invalid TOML: {exc}") from None
    except OSError as exc:
        raise NumaEmuError(ErrorCode.ENOENT, f"{path}: cannot read: {exc.strerror}") from None
    return _build(c, raw, path, quick)


def _tables(c: _Check, raw: dict) -> tuple[dict, dict, dict, dict, dict]:
    """The file's tables, checked for shape: experiment, quick, quick.workloads, placements, workloads."""
    c.table(raw, "", _TOP)
    if "experiment" not in raw:
        raise c.fail("experiment", "missing table [experiment]")
    exp = c.table(raw["experiment"], "experiment", _EXPERIMENT)
    if "grid" not in raw:
        raise c.fail("grid", "missing table [grid]")
    grid = raw["grid"] if isinstance(raw["grid"], dict) else {}
    users = {k for k in grid if k not in PARAMETERS and k != settings.TABLE}  # [quick] may replace them too
    quick_raw = c.table(raw.get("quick", {}), "quick",
                        set(PARAMETERS) | users | {"repetitions", "workloads", settings.TABLE})
    quick_workloads = c.table(quick_raw.get("workloads", {}), "quick.workloads")
    placements_raw = c.table(raw.get("placements", {}), "placements")
    workloads_raw = c.table(raw.get("workloads", {}), "workloads")
    for n, q in quick_workloads.items():
        c.table(q, f"quick.workloads.{n}", {"options", settings.TABLE})
        if n not in workloads_raw:
            raise c.fail(f"quick.workloads.{n}", f"no workload '{n}' in [workloads]")
    for n in list(placements_raw) + list(workloads_raw):
        if not re.fullmatch(_NAME_RE, n):
            raise c.fail(n, "names may hold only letters, digits, '-', '_' and '.'")
    return exp, quick_raw, quick_workloads, placements_raw, workloads_raw


def _settings(c: _Check, exp: dict, quick_raw: dict, quick: bool) -> dict:
    """The [experiment] table's values, with defaults (repetitions from [quick] under --quick)."""
    if "name" not in exp:
        raise c.fail("experiment.name", "missing")
    name = c.string(exp["name"], "experiment.name")
    if not re.fullmatch(_NAME_RE, name):
        raise c.fail("experiment.name", f"'{name}' may hold only letters, digits, '-', '_' and '.'")
    repetitions = c.positive(exp.get("repetitions", 1), "experiment.repetitions", integer=True,
                             bound=limits.REPETITIONS)
    if "repetitions" in quick_raw:
        quick_repetitions = c.positive(quick_raw["repetitions"], "quick.repetitions", integer=True,
                                       bound=limits.REPETITIONS)
        repetitions = quick_repetitions if quick else repetitions
    try:
        timeout_s = parse_duration_s(exp.get("timeout", DEFAULT_TIMEOUT_S))
    except NumaEmuError as exc:
        raise c.fail("experiment.timeout", exc.message) from None
    if timeout_s <= 0:
        raise c.fail("experiment.timeout", "must be positive")
    if timeout_s > limits.DURATION_S.hi:
        raise c.fail("experiment.timeout", f"{timeout_s:g} s is out of range: expected {limits.DURATION_S.describe()}")
    return {"name": name, "description": str(exp.get("description", "")),
            "topology": c.string(exp.get("topology", "default-4n"), "experiment.topology"),
            "inject": c.string(exp.get("inject", "virtual"), "experiment.inject", INJECT_MODES),
            "dilation": float(c.positive(exp.get("dilation", 1.0), "experiment.dilation", bound=limits.DILATION)),
            "repetitions": int(repetitions),
            "metric": c.string(exp.get("metric", "virtual_ns"), "experiment.metric"),
            "report": _figures(c, exp, "report"), "plots": _figures(c, exp, "plots"),
            "jitter": settings.jitter(c, exp.get("jitter")),
            "remote_only": c.string(exp.get("latency_scope", "remote"), "experiment.latency_scope", SCOPES) == "remote",
            "timeout_s": timeout_s}


def _figures(c: _Check, exp: dict, key: str) -> tuple[str, ...]:
    values = c.values(exp[key], f"experiment.{key}") if key in exp else []
    return tuple(c.string(v, f"experiment.{key}[{i}]") for i, v in enumerate(values))


def _check_figures(c: _Check, values: dict, scripts: bool) -> None:
    """metric, report and plots name FIGURES; with a user's command in the grid, also any name
    its JSON line may hold (a name it never reports leaves its column empty)."""
    named = [("experiment.metric", values["metric"])]
    named += [(f"experiment.{k}[{i}]", v) for k in ("report", "plots") for i, v in enumerate(values[k])]
    for key, name in named:
        if name not in FIGURES and not (scripts and re.fullmatch(_PARAMETER_RE, name)):
            raise c.fail(key, f"'{name}' is not one of: {', '.join(FIGURES)}"
                              + ("" if scripts else " (or a name a command workload reports)"))


def _grid(c: _Check, raw: dict, quick_raw: dict, quick: bool, settled: dict, base: Path, placements_raw: dict,
          workloads_raw: dict) -> tuple[dict, tuple, dict]:
    """(grid: every parameter -> its values, then [grid] sysctl keys; swept ones; topologies by name)."""
    grid_raw = dict(c.table(raw["grid"], "grid"))
    sysctl_raw, sysctl_key = grid_raw.pop(settings.TABLE, {}), f"grid.{settings.TABLE}"
    for k in grid_raw:
        if k not in PARAMETERS and not re.fullmatch(_PARAMETER_RE, k):
            raise c.fail(f"grid.{k}", "a parameter of the commands is a name of letters, digits and '_'")
    if not grid_raw and not sysctl_raw:
        raise c.fail("grid", "empty: give at least one parameter, e.g. workload = [\"chase\"]")
    given: dict[str, tuple[str, list]] = {k: (f"grid.{k}", c.values(v, f"grid.{k}")) for k, v in grid_raw.items()}
    for k in list(PARAMETERS) + [k for k in given if k not in PARAMETERS]:
        if k in quick_raw:
            values = c.values(quick_raw[k], f"quick.{k}")
            if quick:
                given[k] = (f"quick.{k}", values)
    if not workloads_raw and "workload" not in given:
        raise c.fail("grid.workload", "missing: name the workloads to run (or define [workloads.NAME] tables)")
    defaults = {"topology": [settled["topology"]], "inject": [settled["inject"]], "dilation": [settled["dilation"]],
                "latency_scale": [1.0], "placement": list(placements_raw) or ["default"], "workload": list(workloads_raw)}
    grid: dict[str, tuple] = {}
    topologies: dict[str, Topology] = {}
    for k in list(given) + [p for p in PARAMETERS if p not in given]:
        key, values = given[k] if k in given else (f"experiment.{k}", defaults[k])
        grid[k] = tuple(_grid_value(c, k, f"{key}[{i}]" if k in given else key, v, base, topologies, placements_raw,
                                    workloads_raw) for i, v in enumerate(values))
    swept = [k for k in grid if k in given and len(grid[k]) > 1]
    machines = list(topologies.values())
    quick_sysctl = settings.swept(c, quick_raw.get(settings.TABLE, {}), f"quick.{settings.TABLE}", machines)
    if quick and quick_sysctl:  # (checked even when not used, so that a broken quick grid fails early)
        sysctl_raw, sysctl_key = settings.merged(sysctl_raw, quick_raw[settings.TABLE]), f"quick.{settings.TABLE}"
    for k, values in settings.swept(c, sysctl_raw, sysctl_key, machines).items():
        grid[k] = values
        swept += [k] if len(values) > 1 else []
    return grid, tuple(swept), topologies


def _build(c: _Check, raw: dict, path: Path, quick: bool) -> Spec:
    exp, quick_raw, quick_workloads, placements_raw, workloads_raw = _tables(c, raw)
    values = _settings(c, exp, quick_raw, quick)
    grid, swept, topologies = _grid(c, raw, quick_raw, quick, values, path.parent, placements_raw, workloads_raw)
    machines = list(topologies.values())
    placements = {n: _placement(c, n, placements_raw[n], machines) for n in placements_raw}
    if "default" in grid["placement"] and "default" not in placements:
        placements["default"] = Placement("default")
    workloads = {n: _workload(c, n, workloads_raw[n], quick_workloads.get(n) if quick else None, machines)
                 for n in workloads_raw}
    for n in quick_workloads:
        if not quick:  # check the [quick] options too, so that a broken quick grid fails early
            _workload(c, n, workloads_raw[n], quick_workloads[n], machines)
    for w in grid["workload"]:
        workloads.setdefault(w, WorkloadSpec(w, w))
    users = tuple(k for k in grid if k not in PARAMETERS and re.fullmatch(_PARAMETER_RE, k))  # sysctl keys have dots
    keys = [k for k in grid if k not in PARAMETERS and k not in users]
    for w in grid["workload"]:
        for k, v in workloads[w].sysctl:
            if k in grid:
                raise c.fail(settings.quoted(f"workloads.{w}.{settings.TABLE}", k), "swept in [grid] sysctl too")
            keys += [k] if k not in keys else []
            swept += (k,) if len(v) > 1 and k not in swept else ()
    fixed = settings.fixed(c, exp.get(settings.TABLE, {}), f"experiment.{settings.TABLE}", machines)
    for k in fixed:
        if k in keys:
            raise c.fail(settings.quoted(f"experiment.{settings.TABLE}", k), "swept in a grid too")
    faults = faults_table.changes(c, raw[faults_table.TABLE], machines) if faults_table.TABLE in raw else ()
    scripts = [workloads[w] for w in grid["workload"] if workloads[w].script]
    for k in users:  # a name no command uses is a typo more likely than a parameter
        if not any(k in w.placeholders() for w in scripts):
            raise c.fail(f"grid.{k}", f"unknown key: neither a parameter ({', '.join(PARAMETERS)}, sysctl) "
                                      f"nor a placeholder {{{k}}} of a workload's command")
    _check_figures(c, values, bool(scripts))
    return Spec(**values, path=path, grid=grid, swept=swept, placements=placements, workloads=workloads,
                quick=quick, topologies=topologies, sysctl_keys=tuple(keys), sysctl_fixed=fixed, faults=faults,
                user_parameters=users)


def _grid_value(c: _Check, param: str, key: str, value: Any, base: Path, topologies: dict, placements: dict,
                workloads: dict) -> Any:
    if param == "topology":
        topologies.setdefault(c.string(value, key), _topology(c, value, key, base))
        return value
    if param == "inject":
        return c.string(value, key, INJECT_MODES)
    if param not in PARAMETERS:  # the user's: a scalar for the commands' placeholders
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise c.fail(key, f"expected a string or a number, got {_show(value)}")
        return value
    if param in ("dilation", "latency_scale"):
        return float(c.positive(value, key, bound=limits.DILATION if param == "dilation" else limits.LATENCY_SCALE))
    name = c.string(value, key)
    if param == "placement" and name not in placements and not (name == "default" and not placements):
        raise c.fail(key, f"no placement '{name}' (defined: {', '.join(placements) or 'none'})")
    if param == "workload" and name not in workloads and name not in workload_runner.BUILTIN:
        raise c.fail(key, f"no workload '{name}' (defined: {', '.join(workloads) or 'none'}; "
                          f"built-in: {', '.join(workload_runner.BUILTIN)})")
    return name
