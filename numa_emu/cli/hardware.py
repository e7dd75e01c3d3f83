"""Print what `numactl --hardware` prints, for the emulated machine.

With a running cluster, `free` is the nodes' free frames; with -t TOPOLOGY and no cluster, the
machine as described (all memory free). --fallback prints each node's fallback order (zonelist),
built from the distances as Linux's build_zonelists does. --json prints {"nodes": [{"id", "cpus",
"size_bytes", "free_bytes"}, ...], "distances": [[...], ...], "fallback": [[...], ...]} (node i's
fallback order at index i) for scripts.
"""
from __future__ import annotations

import argparse
import json

from numa_emu import cluster
from numa_emu.cli.common import add_json_option, add_name_option
from numa_emu.cli.main import warn


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_name_option(p)
    p.add_argument("-t", "--topology", metavar="NAME|PATH|SHAPE", help="describe this machine instead of a running cluster")
    p.add_argument("--fallback", action="store_true", help="print each node's fallback order instead")
    p.add_argument("--wide", action="store_true", help="numactl 2.0.19's wider distance columns")
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from numa_emu.protocol.topology import Topology
    from numa_emu.protocol.zonelist import fallback_orders

    from numa_emu.formats.hardware import format_fallback, format_hardware

    if args.topology:
        from numa_emu.catalog import resolve_topology

        topology = resolve_topology(args.topology)
        free = {n.id: n.mem_bytes for n in topology.nodes}
    else:
        info = cluster.require(cluster.resolve_name(args.name, warn=warn), warn=warn)
        st = cluster.status(info)
        topology = Topology.from_dict(st.topology)
        free = {n["id"]: n["frames_free"] * topology.page_size for n in st.nodes}
    distances = [list(row) for row in topology.distances]
    nodes = [{"id": n.id, "cpus": list(n.cpus), "size_bytes": n.mem_bytes, "free_bytes": free.get(n.id, 0)}
             for n in topology.nodes]
    if args.json:
        print(json.dumps({"nodes": nodes, "distances": distances, "fallback": fallback_orders(topology)}, indent=2))
        return 0
    if args.fallback:
        print(format_fallback(fallback_orders(topology)), end="")
        return 0
    print(format_hardware(nodes, distances, wide=args.wide), end="")
    return 0
