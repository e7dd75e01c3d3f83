"""Run the memory protocol in one process under a seeded, replayable network (docs/simulator.md).

  numa-emu sim list
  numa-emu sim run SCENARIO --seed N [--set KEY=VALUE ...]
  numa-emu sim search SCENARIO --runs N [--from SEED] [--set KEY=VALUE ...]

`run` prints one seed's message trace and verdict (the same bytes every time). `search` tries
seeds until one breaks an invariant, prints its trace and the command that replays it. `--set`
sets a tunable of the simulated cluster (vm.unsafe_unreplicate=1: the 2007 ordering).
Exit codes: 0 every invariant held, 1 a violation, 2 usage.

The simulator runs as its own process (python -m numa_emu.sim), as the CLI starts every other one.
"""
from __future__ import annotations

import argparse
import subprocess
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="list | run SCENARIO --seed N | search SCENARIO --runs N")


def run(args: argparse.Namespace) -> int:
    return subprocess.run([sys.executable, "-m", "numa_emu.sim", *args.args]).returncode
