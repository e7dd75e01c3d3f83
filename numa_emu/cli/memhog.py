"""memhog(8): numa-emu memhog [-fFILE] [-rNUM] [-H] SIZE[kmg] [POLICY [NODES]]

Runs in this process as a task of the cluster ($NUMA_EMU_CLUSTER, else the only cluster up):
maps SIZE bytes of private anonymous memory, mbinds it with POLICY (interleave, membind,
preferred, preferred-many, weighted-interleave, local, default) over NODES, then sets it to 0xff
in 10 MiB chunks, printing one '.' per chunk, NUM times. Arguments, usage text and errors are
memhog's; under `numa-emu numactl` the region without a policy of its own follows numactl's.
-H is accepted and ignored (no transparent huge pages here); -f (a file-backed map) is not
emulated. A bind that cannot be met prints "memhog: memset: Cannot allocate memory ..." and
exits 1 (a real kernel would OOM-kill memhog); so does any other error the node reports.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys

from numa_emu.cli.numactl import raw_arguments

EXIT_FAILURE = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    raw_arguments(p)


def _strerror(code: str) -> str:
    number = getattr(errno, code, None)
    return os.strerror(number) if number is not None else code


def run(args: argparse.Namespace) -> int:
    from numa_emu.frontends import FrontendExit
    from numa_emu.frontends.memhog_args import parse_memhog_args

    import numa_emu
    from numa_emu.workloads.memhog import MemhogError, hog

    try:
        request = parse_memhog_args(args.argv)
    except FrontendExit as exc:
        exc.write(sys.stdout, sys.stderr)
        return exc.exit_code
    if request.file is not None:
        print(f"memhog: -f{request.file}: file-backed mappings are not emulated", file=sys.stderr)
        return EXIT_FAILURE
    with numa_emu.attach(comm="memhog") as task:
        try:  # again, now that the task's allowed nodes (its cpuset's mems) are known
            request = parse_memhog_args(args.argv, allowed=frozenset(task.mems_allowed), configured=task.n_nodes)
        except FrontendExit as exc:
            exc.write(sys.stdout, sys.stderr)
            return exc.exit_code
        try:
            hog(task, request.size_bytes, request.policy, request.nodes, repeat=request.repeat)
        except MemhogError as exc:
            if exc.step == "memset":
                print(flush=True)  # end the line of dots before the error
            print(f"memhog: {exc.step}: {_strerror(exc.code.value)} ({exc.message})", file=sys.stderr)
            return EXIT_FAILURE
    return 0
