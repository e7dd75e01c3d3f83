"""Start a cluster: a coordinator and one node process per NUMA node.

Returns once every node is ready and prints a one-line summary; the cluster outlives this command
unless --foreground is given (then Ctrl-C stops it). The machine is a built-in topology (-t NAME),
a TOML file (-t PATH), a shape (-t ring,8), or described with --nodes/--cpus-per-node/--mem-per-node
[--distance D | --distances 'ROW;ROW;...'] as QEMU's -numa options allow.

Each process logs to its own file in the cluster folder (coordinator.log, zygote.log,
node-N.log; `numa-emu logs`), at --log-level (default info). `up` keeps the previous run's logs
as NAME.log.1 and deletes older ones, so every .log is this run's.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from numa_emu.protocol import limits
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.logsetup import DEFAULT_LOG_LEVEL, LOG_LEVELS
from numa_emu.protocol.messages import control as cm

from numa_emu import cluster
from numa_emu.cli.common import add_name_option
from numa_emu.cli.main import EXIT_USAGE, fail


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--topology", metavar="NAME|PATH|SHAPE", help="machine to emulate (default: default-4n)")
    add_name_option(p)
    p.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the cluster")
    p.add_argument("--inject", choices=("virtual", "real"), default="virtual",
                   help="virtual: latency only advances virtual clocks (default); real: inter-node messages "
                        "are also held back by latency x dilation")
    p.add_argument("--dilation", type=limits.DILATION.argtype(), default=1000.0, metavar="X",
                   help="real mode: wall delay = modeled latency x X (default 1000: 100 ns -> 100 us)")
    p.add_argument("--sysctl", action="append", default=[], metavar="KEY=VALUE",
                   help="a tunable's value from the start (see numa-emu sysctl -a); repeatable")
    p.add_argument("--log-level", choices=LOG_LEVELS, default=DEFAULT_LOG_LEVEL,
                   help="the daemons' log level (default info); see numa-emu logs")
    p.add_argument("--unsafe-unreplicate", action="store_true",
                   help="unreplicate in the 2007 order (no lock, free at once, unmap later): reproduces the race "
                        "on purpose; same as --sysctl vm.unsafe_unreplicate=1")
    h = p.add_argument_group("a cluster on several hosts (docs/design.md#hosts)")
    h.add_argument("--hosts", metavar="HOST[,HOST...]",
                   help="run the nodes on these hosts, a socket's nodes together, spread in order (or as the "
                        "topology file's [hosts] table says); the coordinator stays here")
    h.add_argument("--launcher", choices=("ssh", "slurm", "local"), default="ssh",
                   help="how each host's agent starts: ssh (default), slurm (inside salloc/sbatch: one srun per "
                        "allocated host, the hosts from the allocation), or local (fake hosts on this machine: "
                        "tests, a [hosts] table giving each its own home)")
    h.add_argument("--ssh-opt", action="append", default=[], metavar="OPT",
                   help="an argument for ssh, e.g. --ssh-opt=-p2222 or --ssh-opt=-oIdentityFile=~/.ssh/k; repeatable")
    g = p.add_argument_group("a machine described on the command line")
    g.add_argument("--nodes", type=limits.NODES.argtype(), metavar="N")
    g.add_argument("--cpus-per-node", type=limits.CPUS_PER_NODE.argtype(), default=1, metavar="C")
    g.add_argument("--mem-per-node", default="256MiB", metavar="SIZE")
    g.add_argument("--distance", type=int, metavar="D", help="SLIT distance of every remote pair (default 20)")
    g.add_argument("--distances", metavar="ROWS", help="full SLIT matrix, e.g. '10,21;21,10'")
    g.add_argument("--page-size", default="4KiB", metavar="SIZE")


def _topology(args: argparse.Namespace):
    from numa_emu.protocol.topology import from_cli
    from numa_emu.protocol.units import parse_size

    from numa_emu.catalog import resolve_topology

    if args.nodes is None:
        if args.distance is not None or args.distances is not None:
            raise SystemExit(fail("--distance and --distances need --nodes") or EXIT_USAGE)
        return resolve_topology(args.topology)
    if args.topology:
        raise SystemExit(fail("give either -t/--topology or --nodes, not both") or EXIT_USAGE)
    return from_cli(args.nodes, args.cpus_per_node, args.mem_per_node, distance=args.distance,
                    distances=args.distances, page_size=parse_size(args.page_size))


def _hosts(args: argparse.Namespace, topology) -> list | None:
    """--hosts, else the topology file's [hosts] table, else None (every node here)."""
    from pathlib import Path

    from numa_emu.protocol.hosts import hosts_in_file, parse_hosts

    if args.hosts is not None:
        return parse_hosts(args.hosts)
    if args.launcher == "slurm":
        from numa_emu.slurm import allocation_hosts

        return allocation_hosts()
    if args.topology and Path(args.topology).is_file():
        return hosts_in_file(args.topology, topology.n_nodes)
    return None


def run(args: argparse.Namespace) -> int:
    topology = _topology(args)
    try:
        hosts = _hosts(args, topology)
    except NumaEmuError as exc:
        raise SystemExit(fail(exc.message) or EXIT_USAGE) from None
    name = args.name or cluster.DEFAULT_NAME
    sysctl = args.sysctl + (["vm.unsafe_unreplicate=1"] if args.unsafe_unreplicate else [])
    try:  # checked here too, so that a bad value starts nothing
        cm.parse_assignments(cm.tunables(node.id for node in topology.nodes), sysctl)
    except NumaEmuError as exc:
        raise SystemExit(fail(exc.message) or EXIT_USAGE) from None
    started = cluster.start(name, topology, foreground=args.foreground,
                            coordinator_args=["--inject", args.inject, "--dilation", repr(args.dilation),
                                              "--log-level", args.log_level]
                            + [f"--sysctl={kv}" for kv in sysctl],
                            hosts=hosts, launcher=args.launcher, ssh_opts=args.ssh_opt)
    signals = _record_signals(started) if args.foreground else []  # before "up" is announced
    total_mem = sum(n.mem_bytes for n in topology.nodes)
    inject = "virtual" if args.inject == "virtual" else f"real x{args.dilation:g}"
    on_hosts = f" on {len(started.info.data.get('agents', []))} hosts" if hosts else ""
    print(f"cluster {name} up: {topology.n_nodes} nodes ({topology.name}){on_hosts}, {len(topology.cpus)} cpus, "
          f"{total_mem >> 20} MiB, {inject} latency, coordinator pid {started.info.coordinator_pid}, "
          f"ready in {started.seconds:.2f} s")
    sys.stdout.flush()
    if not args.foreground:
        return 0
    return _stay_attached(started, signals)


def _record_signals(started: cluster.Started) -> list[int]:
    """SIGINT and SIGTERM are only recorded (docs/conventions.md#signal-handlers-only-record); a second one
    kills at once."""
    signals: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        signals.append(signum)
        if len(signals) > 1:
            started.proc.kill()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return signals


def _stay_attached(started: cluster.Started, signals: list[int]) -> int:
    """Wait for the coordinator; on the first Ctrl-C stop the cluster as `down` does."""
    stopping = False
    while True:
        try:
            started.proc.wait(timeout=0.1)
            return 0
        except subprocess.TimeoutExpired:
            pass
        if signals and not stopping:
            stopping = True
            print("stopping cluster", started.info.name, file=sys.stderr)
            cluster.stop(started.info)
