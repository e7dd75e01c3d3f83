"""numactl(8): numa-emu numactl [options] [--] COMMAND [ARGS ...]

Runs COMMAND with a memory policy and CPU binding, as numactl 2.0.19 does, with its options
(--interleave, --weighted-interleave, --membind, --preferred, --preferred-many, --localalloc,
--cpunodebind/--cpubind, --physcpubind, --all, --balancing, --show, --hardware [--cpu-compress],
--version), its node strings (N, A-B, lists, all, !, +, same) and its exact error text and exit
status 1. Node strings are checked against the mems of the cpuset in $NUMA_EMU_CPUSET (or the
root cpuset); CPU strings against the CPUs this process is bound to.

COMMAND replaces this process (exec), so the PID a caller sees is the task's PID. The policy,
binding and cluster reach it in the environment that numa_emu.attach() reads (NUMA_EMU_POLICY,
NUMA_EMU_PHYSCPUBIND, NUMA_EMU_CPUNODEBIND, NUMA_EMU_CPUSET, NUMA_EMU_CLUSTER), so they survive
further execs as a task policy does on Linux: `numa-emu numactl --membind=1 -- numa-emu numactl
--show` prints "policy: bind" and "membind: 1". A COMMAND that is a .py file without the execute
bit runs under this Python. --show and --hardware print numactl's text for this process and the
machine. The cluster: $NUMA_EMU_CLUSTER, else the only cluster that is up (numactl has no option
for it). `numa-emu numactl --help` (or -h, before any other option) needs no cluster: it prints
numactl's usage, then what numa-emu does not emulate and how programs take part, and exits 0.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.nodemask import format_nodelist, parse_nodelist
from numa_emu.protocol.policy import (DEFAULT_POLICY, MPOL_F_NUMA_BALANCING, Mode, Policy, make_policy,
                                     numactl_policy_name, rebind)

from numa_emu import api, cluster
from numa_emu.cli.numastat import ask, frontend_cluster, machine

EXIT_FAILURE = 1
ROOT_CPUSET = "/"
VERSION = "2.0.19"  # the numactl release whose behaviour and text this front end follows

# numactl's argv goes to the front-end parser untouched. argparse would take "-h", "--help" and
# anything that looks like an option for itself; a parser whose prefix character can never begin
# an argv string (a C string cannot hold NUL) treats every argument as positional.
_NO_OPTIONS = "\0"


def raw_arguments(p: argparse.ArgumentParser) -> None:
    """Hand every argument after the command name to run() as args.argv, as the real tool gets it."""
    p.prefix_chars = _NO_OPTIONS
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGS", help="the real tool's arguments")


def add_arguments(p: argparse.ArgumentParser) -> None:
    raw_arguments(p)


# After numactl's own usage: where numa-emu's numactl is not numactl, and how a program joins in.
HELP_NOTES = """\
numa-emu: this numactl drives an emulated machine (a numa-emu cluster), not the kernel.
Not emulated:
  --shm and --file (a policy on shared memory or a tmpfs file): refused, "is not supported
    by numa-emu"; the options that only act on them (--length, --offset, --shmmode, --shmid,
    --strict, --huge, --touch, --dump, --dump-nodes) are checked as numactl does, no more
  I/O device affinity: the node strings netdev:, file:, ip:, block: and pci: (there are no
    devices) are refused, "I/O device affinity is not emulated"
How programs take part: COMMAND's memory is emulated only if it talks to the cluster.
  Python programs: the client API, `import numa_emu; with numa_emu.attach() as task: ...`,
    which reads the policy and binding this numactl puts in the environment
  Scripts written for numactl, numastat, memhog, migratepages: `numa-emu shims DIR`,
    then PATH=DIR:$PATH
  The cluster: $NUMA_EMU_CLUSTER (set by `numa-emu --name CLUSTER numactl ...`),
    else the only cluster that is up
"""
_HELP = ("-h", "--help")


def wants_help(argv: list[str]) -> bool:
    """-h or --help among the leading options, before `--` or the first word that is no option:
    a COMMAND's own --help (`numactl -l python x.py --help`) stays COMMAND's."""
    for arg in argv:
        if arg in _HELP:
            return True
        if arg == "--" or not arg.startswith("-"):
            return False
    return False


@dataclass(frozen=True)
class Context:
    """What numactl would learn from the kernel: the machine, its cpuset, and what it inherited."""

    info: cluster.ClusterInfo
    topology: dict
    free_bytes: dict[int, int]
    node_of_cpu: dict[int, int]
    mems: frozenset[int]  # the cpuset's mems (libnuma: Mems_allowed)
    cpuset_cpus: frozenset[int]
    affinity: frozenset[int]  # the CPUs this process may run on (libnuma: Cpus_allowed)
    policy: Policy  # the task policy inherited through NUMA_EMU_POLICY, rebound to `mems`

    @property
    def possible(self) -> frozenset[int]:
        return frozenset(n["id"] for n in self.topology["nodes"])

    def cpus_of(self, nodes: frozenset[int]) -> frozenset[int]:
        return frozenset(cpu for cpu, node in self.node_of_cpu.items() if node in nodes)


def _inherited_policy(mems: frozenset[int]) -> Policy:
    """The policy this process inherited, rebound from the mems it was made against
    ($NUMA_EMU_POLICY_MEMS) to `mems`, as a node offline or online rebinds the parent's."""
    text = os.environ.get(api.ENV_POLICY)
    if not text:
        return DEFAULT_POLICY
    try:
        policy = Policy.from_wire(json.loads(text))
    except (ValueError, AttributeError) as exc:
        raise NumaEmuError(ErrorCode.EINVAL, f"${api.ENV_POLICY} is not a policy: {exc}") from None
    made_on = os.environ.get(api.ENV_POLICY_MEMS)
    return rebind(policy, mems, parse_nodelist(made_on, what=f"${api.ENV_POLICY_MEMS}")) if made_on else policy


def gather() -> Context:
    info = frontend_cluster()
    status = machine(info)
    topology = status.topology
    node_of_cpu = {cpu: n["id"] for n in topology["nodes"] for cpu in n["cpus"]}
    name = os.environ.get(api.ENV_CPUSET) or ROOT_CPUSET
    cpuset = ask(info, tm.CpusetShow(name=name)).cpusets[0]
    cpuset_cpus = frozenset(cpuset["cpus"])
    affinity = cpuset_cpus
    if os.environ.get(api.ENV_CPUBIND):
        affinity &= parse_nodelist(os.environ[api.ENV_CPUBIND], what="cpu list")
    if os.environ.get(api.ENV_NODEBIND):
        nodes = parse_nodelist(os.environ[api.ENV_NODEBIND])
        affinity &= frozenset(c for c, n in node_of_cpu.items() if n in nodes)
    free = {n["id"]: n["frames_free"] * int(topology["page_size"]) for n in status.nodes}
    # Mems_allowed, which libnuma reads: the effective mems (an offline node is not in them)
    mems = frozenset(cpuset["effective_mems"])
    return Context(info, topology, free, node_of_cpu, mems, cpuset_cpus, affinity or cpuset_cpus,
                   _inherited_policy(mems))


def requested_policy(ctx: Context, request) -> Policy:
    """The policy numactl's set_mempolicy call would install. libnuma has already refused nodes
    outside the cpuset unless --all was given; then the kernel keeps the nodes inside the cpuset
    and refuses an empty remainder (EINVAL), which is make_policy's default."""
    flags = MPOL_F_NUMA_BALANCING if "balancing" in request.flags else 0
    mode = {"bind": Mode.BIND, "interleave": Mode.INTERLEAVE, "weighted-interleave": Mode.WEIGHTED_INTERLEAVE,
            "preferred": Mode.PREFERRED, "preferred-many": Mode.PREFERRED_MANY, "local": Mode.LOCAL,
            "default": Mode.DEFAULT}[request.policy]
    nodes = request.nodes if mode not in (Mode.LOCAL, Mode.DEFAULT) else frozenset()
    return make_policy(mode, nodes, flags, allowed=ctx.mems, possible=ctx.possible,
                       strict=not request.all_nodes)


def _policy_failure(request, exc: NumaEmuError) -> int:
    """libnuma numa_error("set_mempolicy") then numactl.c checkerror(<what it was setting>)."""
    from numa_emu.frontends.numactl_args import POLICY_ERROR_CONTEXT

    reason = os.strerror(getattr(errno, exc.code.value, errno.EINVAL))
    sys.stderr.write(f"set_mempolicy: {reason}\n{POLICY_ERROR_CONTEXT[request.policy]}: {reason}\n")
    return EXIT_FAILURE


def show(ctx: Context, policy: Policy, cpus: frozenset[int]) -> str:
    """numactl --show for this process: its policy and binding."""
    from numa_emu.formats.hardware import ShowState, format_show

    nodes = policy.reported_nodes
    interleaving = policy.mode in (Mode.INTERLEAVE, Mode.WEIGHTED_INTERLEAVE)
    state = ShowState(mode=numactl_policy_name(policy.mode), policy_nodes=frozenset(nodes), cpus=cpus,
                      cpu_nodes=frozenset(ctx.node_of_cpu[c] for c in cpus), mems_allowed=ctx.mems,
                      interleave_next=min(nodes) if interleaving and nodes else 0)
    return format_show(state)


def hardware(ctx: Context, cpu_compress: bool) -> str:
    """numactl --hardware, as `numa-emu hardware` prints it."""
    from numa_emu.formats.hardware import format_hardware

    nodes = [{"id": n["id"], "cpus": list(n["cpus"]), "size_bytes": n["mem_bytes"],
              "free_bytes": ctx.free_bytes.get(n["id"], 0)} for n in ctx.topology["nodes"]]
    return format_hardware(nodes, [list(r) for r in ctx.topology["distances"]], cpu_compress=cpu_compress)


def command_environment(ctx: Context, request, policy: Policy | None) -> dict[str, str]:
    """The environment COMMAND runs in: what numa_emu.attach() reads to register the task."""
    env = dict(os.environ)
    env[api.ENV_CLUSTER] = ctx.info.name
    if policy is not None:
        env[api.ENV_POLICY] = json.dumps(policy.to_wire())
        env[api.ENV_POLICY_MEMS] = format_nodelist(ctx.mems)  # what it was made against (Mems_allowed)
    if request.cpus is not None:
        env[api.ENV_CPUBIND] = format_nodelist(request.cpus)
        by_nodes = request.cpunodebind is not None and ctx.cpus_of(request.cpunodebind) & ctx.cpuset_cpus == request.cpus
        if by_nodes:  # the last binding option was --cpunodebind
            env[api.ENV_NODEBIND] = format_nodelist(request.cpunodebind & ctx.possible)
        else:
            env.pop(api.ENV_NODEBIND, None)
        if env.get(api.ENV_CPU, "").strip().isdigit() and int(env[api.ENV_CPU]) not in request.cpus:
            env.pop(api.ENV_CPU)  # a CPU chosen before the new binding would no longer be allowed
    return env


def execute(command: tuple[str, ...], env: dict[str, str]) -> int:
    """exec COMMAND; returns only if that fails (numactl.c: complain("execution of ..."))."""
    argv = list(command)
    if argv[0].endswith(".py") and os.path.isfile(argv[0]) and not os.access(argv[0], os.X_OK):
        argv = [sys.executable, *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        sys.stderr.write(f"numactl: execution of `{command[0]}': {exc.strerror}\n\n")
    return EXIT_FAILURE


def run(args: argparse.Namespace) -> int:
    from numa_emu.frontends.numactl_args import NUMACTL_USAGE, NumactlUsageError, parse_numactl_args

    if wants_help(args.argv):
        sys.stdout.write(NUMACTL_USAGE + "\n" + HELP_NOTES)
        return 0
    ctx = gather()
    try:
        request = parse_numactl_args(args.argv, possible=ctx.possible, allowed=ctx.mems, cpus_allowed=ctx.affinity,
                                     node_of_cpu=ctx.node_of_cpu, cpuset_cpus=ctx.cpuset_cpus)
    except NumactlUsageError as exc:
        exc.write(sys.stdout, sys.stderr)
        return exc.exit_code
    sys.stderr.write(request.warnings)
    if request.version:
        print(VERSION)
        return 0
    if request.hardware:
        print(hardware(ctx, request.cpu_compress), end="")
        return 0
    policy = None
    if request.policy is not None:
        try:
            policy = requested_policy(ctx, request)
        except NumaEmuError as exc:
            return _policy_failure(request, exc)
    if request.show:
        print(show(ctx, policy or ctx.policy, ctx.affinity if request.cpus is None else request.cpus), end="")
        return 0
    return execute(request.command, command_environment(ctx, request, policy))
