"""Files of the cluster's backing store (the page cache's files).

  file import PATH NAME     copy a host file into the store as NAME
  file ls [--json]          the files, their sizes, and their writable/executable mapping counts

Tasks open them with task.open(NAME) and read them through the page cache (pread, mmap_file);
the store keeps them across `down` and `up` of the same cluster name.
"""
from __future__ import annotations

import argparse
import json
import os

from numa_emu.cli.common import add_json_option, add_name_option, running_cluster
from protocol.messages import pagecache as pc


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    imp = sub.add_parser("import", help="copy a host file into the store")
    imp.add_argument("path")
    imp.add_argument("file_name", metavar="NAME")
    ls = sub.add_parser("ls", help="list the store's files")
    add_json_option(ls)


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    with info.client() as client:
        if args.op == "import":
            f = client.call(pc.FileImport(path=os.path.abspath(args.path), name=args.file_name)).file
            print(f"imported {args.path} as {f['name']} ({f['size']} bytes)")
            return 0
        files = client.call(pc.FileList()).files
    if args.json:
        print(json.dumps(files, indent=2))
        return 0
    print(f"{'name':<24} {'size':>12} {'writable maps':>14} {'exec maps':>10}")
    for f in files:
        print(f"{f['name']:<24} {f['size']:>12} {f['writable_maps']:>14} {f['exec_maps']:>10}")
    return 0
