"""Options and look-ups that several commands share."""
from __future__ import annotations

import argparse

from protocol.errors import NumaEmuError
from protocol.limits import Bound

from numa_emu import cluster
from numa_emu.cli.main import warn


def add_name_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", metavar="CLUSTER",
                        help="cluster name (default: the only cluster that is up, else 'default')")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def running_cluster(args: argparse.Namespace) -> cluster.ClusterInfo:
    """The cluster named by --name (or the default one), which must be up."""
    name = cluster.resolve_name(args.name, warn=warn)
    return cluster.require(name, warn=warn)


def bounded(bound: Bound):
    """An argparse type: a number within `bound` (protocol.limits), else argparse's one-line usage
    error (exit 2) naming the option, the value and the range. NaN and infinities never pass."""
    convert = int if bound.integer else float

    def parse(text: str) -> float | int:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if bound.integer else 'a number'}, "
                                             f"expected one in {bound.describe()}") from None
        try:
            return bound.check(value, "")
        except NumaEmuError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return parse
