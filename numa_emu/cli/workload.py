"""Run a built-in workload in this process as a task, and print one JSON line with its result.

  workload chase    [--hops N] [--granularity line|page]   random-access pointer chase (latency)
  workload stream   [--scalar S]                            STREAM triad a = b + s*c, page by page
  workload prodcons [--record-size B] [--consumer-cpu C]    producer and consumer tasks over shm
  workload kbuild   [--tasks-per-node N] [--nodes LIST]     a kernel build's page-cache reads (replication)
  workload writeshare [--read-via pread|mmap] [--write-via mmap|pwrite]  readers against a writer (thrashing)

Common options: --size (with units: 64KiB, 8MiB), --iterations, --seed, --cpu, --cluster.
The cluster: --cluster, else $NUMA_EMU_CLUSTER, else the only cluster up. The CPU: --cpu, else
$NUMA_EMU_CPU, else the coordinator's pick; the policy and binding come from `numa-emu numactl`
through the environment, so `numa-emu numactl --interleave=all -- numa-emu workload stream
--size 8MiB` interleaves the arrays. The same programs run as `python -m numa_emu.workloads.NAME`.

The line: {"workload", "virtual_ns", "wall_s", "ops", "bytes", "node", "cpu", ...}, where
virtual_ns and wall_s cover the measured phase (`numa-emu workload NAME --help` lists the rest).
Accesses of pages on the task's own node go through shared memory (about 1 us; vm.direct_access),
every other access is a message (about 0.1-1 ms), so keep remote working sets to a few MiB.
"""
from __future__ import annotations

import argparse

from numa_emu.workloads import runner


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    for name in runner.BUILTIN:
        module = runner.module_of(name)
        doc = (module.__doc__ or "").strip()
        q = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        runner.add_common_arguments(q, module)
        module.add_arguments(q)


def run(args: argparse.Namespace) -> int:
    return runner.run_and_print(args.workload, args)
