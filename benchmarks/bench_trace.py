"""bench_trace (issue 6): what tracing costs on a fault-heavy workload, off and on, against a
build of the node code with its trace points taken out.

    .venv/bin/python benchmarks/bench_trace.py [--pages 20000] [--reads 2000] [--reps 5]

Workload, through a task on CPU 0 of default-4n (home node 0): a batched first touch of --pages
pages (Touch without fill: the pure fault path, one fault and its share of one alloc event per
page, the worst case for a trace point's relative cost), then --reads single-page 8-byte reads of
pages bound to node 1 (already faulted: one remote access event each).

(a) In process: the four nodes of default-4n as real nodes.server.NodeServer handler tables
    behind reactors whose sockets are direct calls (profile_node.build_nodes: codec and dispatch
    included, only the ZeroMQ syscalls and the poll loop missing; a handler's Sleep(0), which
    lets a real node's loop breathe between touch chunks, resumes at once), timed in CPU time of the one
    thread that runs them all (time.thread_time: a loaded host's preemptions do not count).
    Three builds, in interleaved rounds, medians:
    - bypassed: every `if ....trace.on:` statement of the nodes package removed from the code
      (the modules' source parsed with ast, those `if` statements replaced by `pass`, the
      changed functions compiled and swapped onto the live classes, swapped back afterwards).
      This is the floor a cheapest-possible tracer (an attribute test that is always false)
      can only approach: no test at all. Monkeypatching a node process from outside is not
      possible, so this is measured in process only.
    - off: the code as shipped, tracer.on False (each trace point costs its attribute test).
    - on: tracer.on True on every node; the buffers are drained between rounds (not timed).
    Targets: off ≤ 1.03× bypassed; on ≤ 1.25× off.
(b) Real processes: the same workload by a task on a running default-4n cluster, trace off and
    on (`trace.config` through the coordinator; drained with `trace.collect` between rounds,
    not timed), interleaved rounds, medians of wall time (four processes: CPU time of one says
    little), so a loaded host shows here first. Target: on ≤ 1.25× off.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import os
import pkgutil
import time
import types
from pathlib import Path

import _common as bc
from profile_node import build_nodes, request  # the in-process nodes of profile_node.py

from numa_emu import nodes
from numa_emu.catalog import resolve_topology
from numa_emu.protocol.effects import Future, Sleep
from numa_emu.protocol.messages import memory as mm
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.messages import trace as trm
from numa_emu.protocol.policy import DEFAULT_POLICY, Mode

PAGE = 4096
TASK = 1
OFF_TARGET, ON_TARGET = 1.03, 1.25


# ---- the bypassed build ------------------------------------------------------------------

def _is_trace_test(test: ast.expr) -> bool:
    """`x.trace.on`, or `x.trace.on and ...`."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        test = test.values[0]
    return (isinstance(test, ast.Attribute) and test.attr == "on" and isinstance(test.value, ast.Attribute)
            and test.value.attr == "trace")


class _StripTracePoints(ast.NodeTransformer):
    """Replace every `if <tracer>.on:` (without an else) by `pass`; note the outermost function
    (with its classes) of each one changed."""

    def __init__(self) -> None:
        self.path: list[tuple[str, bool]] = []  # (name, is a function)
        self.changed: set[str] = set()

    def _scope(self, node, function: bool):
        self.path.append((node.name, function))
        self.generic_visit(node)
        self.path.pop()
        return node

    def visit_ClassDef(self, node):
        return self._scope(node, False)

    def visit_FunctionDef(self, node):
        return self._scope(node, True)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If):
        self.generic_visit(node)
        if _is_trace_test(node.test) and not node.orelse:
            names = []
            for name, function in self.path:
                names.append(name)
                if function:
                    break
            self.changed.add(".".join(names))
            return ast.copy_location(ast.Pass(), node)
        return node


def _stripped_functions() -> list[tuple[object, str, object]]:
    """(owner, name, stripped function) for every function of the nodes package that has a
    trace point: compiled from the module's own source, bound to the module's own globals (so
    they build the same classes and read the same constants as the code they replace)."""
    out = []
    for info in pkgutil.iter_modules(nodes.__path__):
        module = importlib.import_module(f"numa_emu.nodes.{info.name}")
        source = Path(module.__file__).read_text()
        if ".trace.on" not in source:
            continue
        stripper = _StripTracePoints()
        tree = ast.fix_missing_locations(stripper.visit(ast.parse(source)))
        scratch = dict(vars(module))
        exec(compile(tree, module.__file__, "exec"), scratch)  # noqa: S102 - our own source, rewritten
        for qualname in sorted(stripper.changed):
            owner_path, _, name = qualname.rpartition(".")
            owner, new_owner = module, types.SimpleNamespace(**scratch)
            for part in filter(None, owner_path.split(".")):
                owner, new_owner = getattr(owner, part), getattr(new_owner, part)
            new = inspect.getattr_static(new_owner, name)
            if not isinstance(new, types.FunctionType) or new.__closure__:
                raise RuntimeError(f"{module.__name__}.{qualname}: only plain functions can be swapped")
            fn = types.FunctionType(new.__code__, vars(module), new.__name__, new.__defaults__)
            fn.__kwdefaults__, fn.__qualname__ = new.__kwdefaults__, new.__qualname__
            out.append((owner, name, fn))
    if not out:
        raise RuntimeError("no trace point found in the nodes package: nothing to bypass")
    return out


@contextlib.contextmanager
def bypassed(stripped: list[tuple[object, str, object]], handler_tables: list[dict]):
    """Swap the stripped functions in; also in the handler tables, which hold bound methods
    taken when the nodes were built (a class attribute swap does not reach those)."""
    swaps = {inspect.getattr_static(owner, name): new for owner, name, new in stripped}
    saved = [(owner, name, inspect.getattr_static(owner, name)) for owner, name, _ in stripped]
    saved_tables = [dict(table) for table in handler_tables]
    try:
        for owner, name, new in stripped:
            setattr(owner, name, new)
        for table in handler_tables:
            for kind, handler in table.items():
                if isinstance(handler, types.MethodType) and handler.__func__ in swaps:
                    table[kind] = types.MethodType(swaps[handler.__func__], handler.__self__)
        yield
    finally:
        for owner, name, old in saved:
            setattr(owner, name, old)
        for table, old in zip(handler_tables, saved_tables):
            table.clear()
            table.update(old)


# ---- (a) in process ----------------------------------------------------------------------

def _sleeps_resume_at_once(reactor_as_future):
    """A batched touch yields Sleep(0) between chunks to let a real node's loop breathe; here no
    loop runs the reactor's timers, so such a sleep resumes the handler at once."""

    def as_future(effect):
        if isinstance(effect, Sleep):
            done = Future()
            done.set_result(None)
            return done
        return reactor_as_future(effect)

    return as_future


class InProcess:
    def __init__(self, home: Path, pages: int, reads: int):
        self.topology = resolve_topology("default-4n").to_dict()
        self.nodes = build_nodes(self.topology, home / "inproc")
        for r in self.nodes.values():
            r._as_future = _sleeps_resume_at_once(r._as_future)
        self.n0 = self.nodes["node:0"]
        self.pages, self.reads = pages, reads
        everyone = list(range(len(self.topology["nodes"])))
        request(self.n0, tm.NodeTaskAttach(task_id=TASK, pid=os.getpid(), comm="bench", cpu=0,
                                           policy=DEFAULT_POLICY.to_wire(), mems_allowed=everyone))

    def trace(self, on: bool) -> None:
        for r in self.nodes.values():
            r.server.core.trace.configure(on)

    def handler_tables(self) -> list[dict]:
        return [r.handlers for r in self.nodes.values()]

    def drain(self) -> int:
        return sum(len(r.server.core.trace.drain()) for r in self.nodes.values())

    def round(self) -> tuple[float, float]:
        # CPU time of this thread: every node runs in it, and a busy host's preemptions are not ours
        return workload(lambda msg: request(self.n0, msg), TASK, self.pages, self.reads, clock=time.thread_time)

    def close(self) -> None:
        for r in self.nodes.values():
            r.close()
            r.server.pool.close()


def workload(call, task: int, pages: int, reads: int, clock=time.perf_counter) -> tuple[float, float]:
    """(seconds for the batched first touch, seconds per remote read); unmaps both regions."""
    touched = call(mm.Mmap(task_id=task, length=pages * PAGE)).vaddr
    t0 = clock()
    reply = call(mm.Touch(task_id=task, vaddr=touched, length=pages * PAGE))
    touch_s = clock() - t0
    assert reply.faults == pages, reply
    remote = call(mm.Mmap(task_id=task, length=reads * PAGE)).vaddr
    call(mm.Mbind(task_id=task, vaddr=remote, length=reads * PAGE, mode=int(Mode.BIND), nodes=[1], flags=0))
    call(mm.Touch(task_id=task, vaddr=remote, length=reads * PAGE))
    t0 = clock()
    for i in range(reads):
        call(mm.Access(task_id=task, vaddr=remote + i * PAGE + 64, length=8))
    read_s = (clock() - t0) / reads
    call(mm.Munmap(task_id=task, vaddr=touched, length=pages * PAGE))
    call(mm.Munmap(task_id=task, vaddr=remote, length=reads * PAGE))
    return touch_s, read_s


def in_process(home: Path, pages: int, reads: int, reps: int, stripped: list) -> tuple[dict, int]:
    bench = InProcess(home, pages, reads)
    samples: dict[str, list[tuple[float, float]]] = {"bypassed": [], "off": [], "on": []}
    events = 0
    try:
        # the bypassed build records nothing, even with the tracer on
        with bypassed(stripped, bench.handler_tables()):
            bench.trace(True)
            workload(lambda msg: request(bench.n0, msg), TASK, 16, 4)
            bench.trace(False)
        if bench.drain():
            raise RuntimeError("the bypassed build still emits events: a trace point was not stripped")
        bench.round()  # warm-up: every frame touched once, every code path compiled
        for rep in range(reps):
            order = list(samples)[rep % 3:] + list(samples)[:rep % 3]  # rotate: no build always first
            for build in order:
                bench.trace(build == "on")
                if build == "bypassed":
                    with bypassed(stripped, bench.handler_tables()):
                        samples[build].append(bench.round())
                else:
                    samples[build].append(bench.round())
                bench.trace(False)
                got = bench.drain()
                if build == "on":
                    events = got
                elif got:
                    raise RuntimeError(f"the {build} build recorded {got} events")
    finally:
        bench.close()
    return samples, events


# ---- (b) real processes --------------------------------------------------------------------

def real_cluster(pages: int, reads: int, reps: int) -> tuple[dict, int]:
    import numa_emu
    from numa_emu.cluster import Cluster

    samples: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    events = 0
    with Cluster("default-4n", name="trace") as cluster, cluster.client(timeout_s=30) as coord:
        task = numa_emu.attach(0, cluster="trace", comm="bench")
        try:
            call = task._call  # the task's own request path: one round trip to its home node
            workload(call, task.task_id, pages, reads)  # warm-up
            for rep in range(reps):
                for build in (["off", "on"] if rep % 2 == 0 else ["on", "off"]):
                    coord.call(trm.TraceConfig(on=build == "on"))
                    samples[build].append(workload(call, task.task_id, pages, reads))
                    coord.call(trm.TraceConfig(on=False))
                    got = len(coord.call(trm.TraceCollect()).events)
                    if build == "on":
                        events = got
        finally:
            task.detach()
    return samples, events


# ---- the table -----------------------------------------------------------------------------

def rows_for(where: str, samples: dict, events: int, pages: int, reads: int) -> list[list[object]]:
    med = {b: (bc.median([s[0] for s in v]), bc.median([s[1] for s in v])) for b, v in samples.items()}
    rows = []
    for i, (what, unit) in enumerate(((f"first touch of {pages:,} pages", "per page"),
                                      (f"{reads:,} remote 8-byte reads", "per read"))):
        per = pages if i == 0 else 1
        cell = {b: bc.micros(m[i] / per) for b, m in med.items()}
        base = med.get("bypassed")
        off_ratio = med["off"][i] / base[i] if base else None
        on_ratio = med["on"][i] / med["off"][i]
        rows.append([f"{where}: {what} ({unit})", cell.get("bypassed", "-"), cell["off"], cell["on"],
                     f"{off_ratio:.3f}×" if off_ratio else "-",
                     bc.verdict(off_ratio <= OFF_TARGET) if off_ratio else "",
                     f"{on_ratio:.3f}×", bc.verdict(on_ratio <= ON_TARGET),
                     f"{med['on'][i] / base[i]:.3f}×" if base else "-"])
    rows.append([f"{where}: events recorded per round (trace on)", "", "", f"{events:,}", "", "", "", "", ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000, help="pages of the batched first touch")
    parser.add_argument("--reads", type=int, default=2_000, help="single-page remote reads")
    parser.add_argument("--reps", type=int, default=7, help="rounds per build (medians)")
    args = parser.parse_args()
    bc.setup()
    t0 = time.monotonic()
    with bc.temp_home() as home:
        caption = bc.host_info()
        stripped = _stripped_functions()
        local, local_events = in_process(home, args.pages, args.reads, args.reps, stripped)
        real, real_events = real_cluster(args.pages, args.reads, args.reps)
    rows = (rows_for("(a) in process", local, local_events, args.pages, args.reads)
            + rows_for("(b) real cluster", real, real_events, args.pages, args.reads))
    bc.table(f"the cost of tracing, default-4n, task on CPU 0; medians of {args.reps} interleaved rounds "
             "((a) thread CPU time, (b) wall time)",
             ["workload", "bypassed", "off", "on", "off / bypassed", f"≤ {OFF_TARGET}×", "on / off",
              f"≤ {ON_TARGET}×", "on / bypassed"], rows,
             caption=f"{caption}\nbypassed: the nodes package with every `if ...trace.on:` removed (ast; "
                     f"{len(stripped)} functions swapped), in process only; whole benchmark "
                     f"{time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
