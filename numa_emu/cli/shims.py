"""Write numactl, numastat, memhog and migratepages scripts into DIR, for scripts written for the real tools.

Each is a small executable sh script that runs this Python with `-m numa_emu.cli.main <tool> "$@"`,
so with DIR first on PATH (`export PATH=DIR:$PATH`) a script that calls numactl, numastat or
memhog or migratepages drives the emulated machine unchanged. --name bakes a default cluster
into the scripts ($NUMA_EMU_CLUSTER still wins).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from numa_emu.cli.common import cluster_name
from numa_emu.cli.main import EXIT_ERROR, fail

TOOLS = ("numactl", "numastat", "memhog", "migratepages")
_HEADER = "#!/bin/sh\n# numa-emu shim for {tool}: written by `numa-emu shims`; scripts that call {tool} drive numa-emu.\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="folder for the scripts (created if missing)")
    p.add_argument("--name", metavar="CLUSTER", type=cluster_name,
                   help="cluster the scripts use when $NUMA_EMU_CLUSTER is not set")


def shim_text(tool: str, python: str, cluster_name: str | None = None) -> str:
    """The script for one tool."""
    module = "numa_emu.cli.main"
    lines = [_HEADER.format(tool=tool)]
    if cluster_name:
        lines.append(f"NUMA_EMU_CLUSTER=${{NUMA_EMU_CLUSTER:-{shlex.quote(cluster_name)}}}\nexport NUMA_EMU_CLUSTER\n")
    lines.append(f'exec {shlex.quote(python)} -m {module} {tool} "$@"\n')
    return "".join(lines)


def write_shims(folder: Path, python: str = sys.executable, cluster_name: str | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for tool in TOOLS:
        path = folder / tool
        tmp = folder / f".{tool}.tmp"
        tmp.write_text(shim_text(tool, python, cluster_name))
        tmp.chmod(0o755)
        os.replace(tmp, path)  # a script that runs this very shim never sees half a file
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    try:
        written = write_shims(Path(args.dir), cluster_name=args.name)
    except OSError as exc:
        fail(f"cannot write the shims into {args.dir}: {exc.strerror}")
        return EXIT_ERROR
    folder = Path(args.dir).resolve()
    print(f"wrote {' '.join(p.name for p in written)} to {folder}")
    print(f"use them with: export PATH={shlex.quote(str(folder))}:$PATH")
    return 0
