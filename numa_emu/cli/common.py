"""Options and look-ups that several commands share."""
from __future__ import annotations

import argparse

from numa_emu.protocol.clusterdir import check_name
from numa_emu.protocol.errors import NumaEmuError

from numa_emu import cluster
from numa_emu.cli.main import warn


def cluster_name(text: str) -> str:
    """argparse type of --name: one folder inside NUMA_EMU_HOME (a usage error otherwise)."""
    try:
        return check_name(text)
    except NumaEmuError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_name_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", metavar="CLUSTER", type=cluster_name,
                        help="cluster name (default: the only cluster that is up, else 'default')")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def running_cluster(args: argparse.Namespace) -> cluster.ClusterInfo:
    """The cluster named by --name (or the default one), which must be up."""
    name = cluster.resolve_name(args.name, warn=warn)
    return cluster.require(name, warn=warn)

