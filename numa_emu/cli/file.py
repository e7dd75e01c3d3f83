"""Files of the cluster's backing store (the page cache's files).

  file import PATH NAME     copy a host file into the store as NAME (read with your own rights)
  file ls [--json]          the files, their sizes, their writable/executable mapping counts and
                            shared policies
  file policy NAME POLICY [NODES]
                            set the file's shared policy (interleave, bind, preferred,
                            preferred-many, weighted-interleave, local; default clears it): its
                            pages are allocated by it, whoever reads them first (shmem's shared
                            policy); pages already cached stay where they are

Tasks open them with task.open(NAME) and read them through the page cache (pread, mmap_file);
the store keeps them across `down` and `up` of the same cluster name.
"""
from __future__ import annotations

import argparse
import json

from numa_emu.cli.common import add_json_option, add_name_option, running_cluster
from numa_emu.fileimport import import_file
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.nodemask import parse_nodelist
from numa_emu.protocol.policy import Policy, parse_mode_name, policy_to_str


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    sub = p.add_subparsers(dest="op", metavar="OP", required=True)
    imp = sub.add_parser("import", help="copy a host file into the store")
    imp.add_argument("path")
    imp.add_argument("file_name", metavar="NAME")
    ls = sub.add_parser("ls", help="list the store's files")
    add_json_option(ls)
    pol = sub.add_parser("policy", help="set a file's shared policy")
    pol.add_argument("file_name", metavar="NAME")
    pol.add_argument("policy", metavar="POLICY")
    pol.add_argument("nodes", metavar="NODES", nargs="?", default="")


def run(args: argparse.Namespace) -> int:
    info = running_cluster(args)
    with info.client() as client:
        if args.op == "import":
            f = import_file(client, args.path, args.file_name)
            print(f"imported {args.path} as {f['name']} ({f['size']} bytes)")
            return 0
        if args.op == "policy":
            f = client.call(pc.FileSetPolicy(name=args.file_name, mode=int(parse_mode_name(args.policy)),
                                             nodes=sorted(parse_nodelist(args.nodes)))).file
            print(f"file {f['name']}: shared policy {_policy_text(f['policy'])}")
            return 0
        files = client.call(pc.FileList()).files
    if args.json:
        print(json.dumps(files, indent=2))
        return 0
    print(f"{'name':<24} {'size':>12} {'writable maps':>14} {'exec maps':>10}  shared policy")
    for f in files:
        print(f"{f['name']:<24} {f['size']:>12} {f['writable_maps']:>14} {f['exec_maps']:>10}  "
              f"{_policy_text(f.get('policy'))}")
    return 0


def _policy_text(wire: dict | None) -> str:
    return "-" if wire is None else policy_to_str(Policy.from_wire(wire))
