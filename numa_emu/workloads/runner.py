"""Run a built-in workload as a task and print ONE JSON line with its result.

Every JSON-line workload (chase, stream, prodcons) is a module with a docstring, `DEFAULTS`
(its default --size and --iterations), `add_arguments(parser)` and `run(task, args) -> dict`;
this module gives them their common options, attaches the task, times it and prints the line,
so `numa-emu workload NAME`, `python -m numa_emu.workloads.NAME` and the experiment runner all
run the same code. The line starts with the fields every workload has:

    {"workload", "virtual_ns", "wall_s", "ops", "bytes", "node", "cpu", "task_id", "pid",
     "total_virtual_ns", "pages_by_node", ...the workload's own fields}

`virtual_ns` and `wall_s` cover the measured phase only (set-up such as writing the chase
permutation is excluded); `total_virtual_ns` is the task's whole virtual clock at the end.
Errors are one line on stderr with the exit codes of the CLI (1 cluster unreachable, 2 usage,
3 error reply); SIGTERM detaches the task before exiting.
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from collections.abc import Callable
from types import ModuleType

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.units import parse_size

from numa_emu.cli.common import cluster_name

# name -> module: the workloads that print a JSON result line (memhog prints dots, as memhog(8))
BUILTIN = {
    "chase": "numa_emu.workloads.chase",
    "stream": "numa_emu.workloads.stream",
    "prodcons": "numa_emu.workloads.prodcons",
    "kbuild": "numa_emu.workloads.kbuild",
    "writeshare": "numa_emu.workloads.writeshare",
}
FIRST_FIELDS = ("workload", "virtual_ns", "wall_s", "ops", "bytes", "node", "cpu")
EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
_UNREACHABLE = {ErrorCode.ECONNREFUSED, ErrorCode.ETIMEDOUT}


def module_of(name: str) -> ModuleType:
    """The module of built-in workload `name`; ENOENT names the ones that exist."""
    if name not in BUILTIN:
        raise NumaEmuError(ErrorCode.ENOENT, f"unknown workload '{name}' (built-in: {', '.join(BUILTIN)})")
    return importlib.import_module(BUILTIN[name])


def size_arg(text: str) -> int:
    """argparse type for sizes with units ("8MiB", "64k"): a positive number of bytes."""
    try:
        value = parse_size(text)
    except NumaEmuError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid size '{text}': must be positive")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count '{text}': expected a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid count '{text}': must be positive")
    return value


def add_common_arguments(p: argparse.ArgumentParser, module: ModuleType) -> None:
    """--size, --iterations, --seed, --cpu and --cluster, with the workload's defaults."""
    size, iterations = module.DEFAULTS["size"], module.DEFAULTS["iterations"]
    p.add_argument("--size", type=size_arg, default=parse_size(size), metavar="SIZE",
                   help=f"bytes of memory, with units: 64KiB, 8MiB (default {size})")
    p.add_argument("--iterations", type=positive_int, default=iterations, metavar="N",
                   help=f"passes of the measured phase (default {iterations})")
    p.add_argument("--seed", type=int, default=1, help="seed of the random generator (default 1)")
    p.add_argument("--cpu", type=int, default=None,
                   help="the CPU to run on (default $NUMA_EMU_CPU, else the coordinator's pick)")
    p.add_argument("--name", "--cluster", dest="cluster", metavar="CLUSTER", default=None, type=cluster_name,
                   help="the cluster (default $NUMA_EMU_CLUSTER, else the only one up)")


def build_parser(name: str, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    module = module_of(name)
    p = parser_class(prog=f"numa-emu workload {name}", description=(module.__doc__ or "").strip(),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, module)
    module.add_arguments(p)
    return p


class Phase:
    """The measured phase of a workload: virtual time (from the home node) and wall time.

        with Phase(task) as phase:
            ...
        phase.virtual_ns, phase.wall_s
    """

    def __init__(self, task):
        self.task = task
        self.virtual_ns = 0
        self.wall_s = 0.0

    def __enter__(self) -> "Phase":
        self._v0 = self.task.clock_ns()
        self._w0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._w0
        if exc[0] is None:
            self.virtual_ns = self.task.clock_ns() - self._v0


def pages_by_node(task) -> dict[str, int]:
    """Resident pages of the task by node, over all its regions (keys are strings, for JSON)."""
    total: dict[str, int] = {}
    for region in task.maps():
        for node, n in (region.get("pages") or {}).items():
            total[str(node)] = total.get(str(node), 0) + int(n)
    return dict(sorted(total.items(), key=lambda kv: int(kv[0])))


def execute(name: str, args: argparse.Namespace, *, attach: Callable | None = None) -> dict:
    """Attach as a task, run workload `name` and return its result line as a dict."""
    import numa_emu

    module = module_of(name)
    attach = attach or numa_emu.attach
    with attach(args.cpu, cluster=args.cluster, comm=f"workload-{name}") as task:
        result = module.run(task, args)
        facts = {"node": task.node, "cpu": task.cpu, "task_id": task.task_id, "pid": task.pid,
                 "pages_by_node": pages_by_node(task), "total_virtual_ns": task.clock_ns()}
    line = {"workload": name}
    line.update({k: result[k] for k in FIRST_FIELDS[1:] if k in result})
    line.update({k: v for k, v in facts.items() if k not in result})
    line.update({k: v for k, v in result.items() if k not in line})
    return line


def _on_sigterm(signum, frame) -> None:  # record-and-exit: SystemExit unwinds through detach()
    raise SystemExit(128 + signum)


def run_and_print(name: str, args: argparse.Namespace) -> int:
    """Run the workload and print its one JSON line on stdout. NumaEmuError propagates."""
    line = execute(name, args)
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def main(name: str, argv: list[str] | None = None) -> int:
    """`python -m numa_emu.workloads.NAME`: parse, run, print; one-line errors, fixed exit codes."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    args = build_parser(name).parse_args(argv)
    try:
        return run_and_print(name, args)
    except NumaEmuError as exc:
        print(f"numa-emu workload {name}: error: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.code in _UNREACHABLE else EXIT_ERROR
    except KeyboardInterrupt:
        print(f"numa-emu workload {name}: interrupted", file=sys.stderr)
        return 130
