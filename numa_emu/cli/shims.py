"""Write numactl, numastat, memhog and migratepages scripts into DIR, for scripts written for the real tools.

Each is a small executable sh script that runs this Python with `-m numa_emu.cli.main <tool> "$@"`,
so with DIR first on PATH (`export PATH=DIR:$PATH`) a script that calls numactl, numastat or
memhog drives the emulated machine unchanged. --name bakes a default cluster into the scripts
($NUMA_EMU_CLUSTER still wins). migratepages parses its arguments as migratepages(8) does; until
numa-emu has a migratepages command it then fails as the real tool does on a kernel without
migrate_pages(2): "migrate_pages: Function not implemented", exit 1.
"""
from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
from pathlib import Path

from numa_emu.cli.main import EXIT_ERROR, fail

TOOLS = ("numactl", "numastat", "memhog", "migratepages")
_HEADER = "#!/bin/sh\n# numa-emu shim for {tool}: written by `numa-emu shims`; scripts that call {tool} drive numa-emu.\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="folder for the scripts (created if missing)")
    p.add_argument("--name", metavar="CLUSTER", help="cluster the scripts use when $NUMA_EMU_CLUSTER is not set")


def shim_text(tool: str, python: str, cluster_name: str | None = None) -> str:
    """The script for one tool. migratepages goes through this module (see migratepages())."""
    module = "numa_emu.cli.shims" if tool == "migratepages" else "numa_emu.cli.main"
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


def migratepages(argv: list[str]) -> int:
    """The migratepages shim: numa-emu's command once it exists, else migratepages(8)'s ENOSYS."""
    from numa_emu.cli.main import COMMANDS, main

    if "migratepages" in COMMANDS:
        return main(["migratepages", *argv])
    from numa_emu.frontends import FrontendExit
    from numa_emu.frontends.migratepages_args import parse_migratepages_args

    try:
        parse_migratepages_args(argv)
    except FrontendExit as exc:
        exc.write(sys.stdout, sys.stderr)
        return exc.exit_code
    # migratepages.c: perror("migrate_pages") when numa_migrate_pages() fails
    print(f"migrate_pages: {os.strerror(errno.ENOSYS)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if sys.argv[1:2] != ["migratepages"]:
        sys.exit(f"usage: {sys.executable} -m numa_emu.cli.shims migratepages PID FROM TO")
    sys.exit(migratepages(sys.argv[2:]))
