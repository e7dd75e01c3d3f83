"""numactl(8) command-line parsing: options, node/CPU strings and exact error text.

Place in numa-emu: ``numa-emu numactl ...`` hands its argv (without the program
name) here and gets a :class:`NumactlRequest` (policy, nodes, CPU binding, command)
or a :class:`NumactlUsageError` carrying exactly what numactl v2.0.19 prints and its
exit status.  Sources: numactl/numactl ``numactl.c`` (option loop, ``setpolicy``,
``usage_msg``), ``libnuma.c`` (``__numa_parse_nodestring``, ``__numa_parse_cpustring``,
``get_nr``, ``numa_warn``, ``numa_run_on_node_mask_all``) and glibc ``getopt_long``
with numactl's leading ``+`` (stop at the first non-option).  docs/linux-semantics.md#numactl, #node-strings.

The libnuma string parser lives in ``numa_emu.frontends.libnuma``; its names are
re-exported here for callers that know them from this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from numa_emu.frontends import FrontendExit
from numa_emu.frontends.libnuma import NodeStringError, c_strtoul, parse_cpustring, parse_nodestring

__all__ = [
    "NUMACTL_USAGE", "POLICY_ERROR_CONTEXT", "FrontendExit", "NodeStringError", "NumactlRequest",
    "NumactlUsageError", "c_strtoul", "parse_cpustring", "parse_nodestring", "parse_numactl_args",
]


NUMACTL_USAGE = (
    "usage: numactl [--all | -a] [--balancing | -b]\n"
    "               [--interleave= | -i <nodes>] [--weighted-interleave= | -w <nodes>]\n"
    "               [--preferred= | -p <node>] [--preferred-many= | -P <nodes>]\n"
    "               [--physcpubind= | -C <cpus>] [--cpunodebind= | -N <nodes>]\n"
    "               [--membind= | -m <nodes>] [--localalloc | -l] command args ...\n"
    "               [--localalloc | -l] command args ...\n"
    "       numactl [--show | -s]\n"
    "       numactl [--hardware | -H] [--cpu-compress]\n"
    "       numactl [--version]\n"
    "       numactl [--length | -L <length>] [--offset | -o <offset>] [--shmmode | -M <shmmode>]\n"
    "               [--strict | -t]\n"
    "               [--shmid | -I <id>] --shm | -S <shmkeyfile>\n"
    "               [--shmid | -I <id>] --file | -f <tmpfsfile>\n"
    "               [--huge | -u] [--touch | -T] \n"
    "               memory policy [--dump | -d] [--dump-nodes | -D]\n"
    "\n"
    "memory policy is --preferred | -p, --membind | -m, --localalloc | -l,\n"
    "                 --interleave | -i, --weighted-interleave | -w\n"
    "<nodes> is a comma delimited list of node numbers or A-B ranges or all.\n"
    "Instead of a number a node can also be:\n"
    "  netdev:DEV the node connected to network device DEV\n"
    "  file:PATH  the node the block device of path is connected to\n"
    "  ip:HOST    the node of the network device host routes through\n"
    "  block:PATH the node of block device path\n"
    "  pci:[seg:]bus:dev[:func] The node of a PCI device\n"
    "<cpus> is a comma delimited list of cpu numbers or A-B ranges or all\n"
    "all ranges can be inverted with !\n"
    "all numbers and ranges can be made cpuset-relative with +\n"
    "the old --cpubind argument is deprecated.\n"
    "use --cpunodebind or --physcpubind instead\n"
    "use --balancing | -b to enable Linux kernel NUMA balancing\n"
    "for the process if it is supported by kernel\n"
    "<length> can have g (GB), m (MB) or k (KB) suffixes\n"
)

# numactl.c checkerror() labels, for the CLI to print "set_mempolicy: <err>\n<label>: <err>".
POLICY_ERROR_CONTEXT: dict[str, str] = {
    "interleave": "setting interleave mask",
    "weighted-interleave": "setting interleave mask",
    "default": "setting interleave mask",
    "bind": "setting membind",
    "preferred": "setting preferred node",
    "preferred-many": "setting preferred node",
    "local": "local allocation",
}


class NumactlUsageError(FrontendExit):
    """numactl gives up (exit 1).  ``pre_usage`` goes to stderr, then ``stdout`` (the
    ``<X> is invalid`` line, or usage_msg's lone newline), then the usage text to
    stderr when ``usage`` is true.  ``str(exc)`` is the message alone, e.g.
    ``numactl: Conflicting policies`` or
    ``libnuma: Warning: node argument 5 is out of range\\n\\n<5> is invalid``.
    """

    def __init__(self, stderr: str = "", stdout: str = "", *, usage: bool = True) -> None:
        segments = [(2, stderr), (1, stdout), (2, NUMACTL_USAGE if usage else "")]
        super().__init__((stderr + stdout).rstrip("\n"), segments)
        self.usage = usage
        self.pre_usage = stderr
        self.out_text = stdout


def _usage_msg(message: str) -> NumactlUsageError:
    """numactl.c usage_msg(): ``numactl: <msg>`` on stderr, a newline on stdout, usage."""
    return NumactlUsageError("numactl: " + message, "\n")


# numactl.c opts[]: (long name, short letter or "", takes an argument), in table order.
_OPTIONS: tuple[tuple[str, str, bool], ...] = (
    ("all", "a", False), ("interleave", "i", True), ("weighted-interleave", "w", True),
    ("preferred", "p", True), ("preferred-many", "P", True), ("cpubind", "c", True),
    ("cpunodebind", "N", True), ("physcpubind", "C", True), ("membind", "m", True),
    ("show", "s", False), ("localalloc", "l", False), ("balancing", "b", False),
    ("hardware", "H", False), ("shm", "S", True), ("file", "f", True), ("offset", "o", True),
    ("length", "L", True), ("strict", "t", False), ("shmmode", "M", True), ("dump", "d", False),
    ("dump-nodes", "D", False), ("shmid", "I", True), ("huge", "u", False), ("touch", "T", False),
    ("cpu-compress", "", False), ("verify", "V", False), ("version", "", False),
)  # fmt: skip


def _long_option(prog: str, body: str) -> tuple[str, str | None, bool]:
    """glibc process_long_option(): exact name or unique prefix; '=' gives the argument."""
    name, eq, value = body.partition("=")
    exact = [o for o in _OPTIONS if o[0] == name]
    found = exact or [o for o in _OPTIONS if o[0].startswith(name)]
    if not found:
        raise NumactlUsageError(f"{prog}: unrecognized option '--{body}'\n")
    if len(found) > 1:
        names = "".join(f" '--{o[0]}'" for o in found)
        raise NumactlUsageError(f"{prog}: option '--{body}' is ambiguous; possibilities:{names}\n")
    long, _, has_arg = found[0]
    if eq and not has_arg:
        raise NumactlUsageError(f"{prog}: option '--{long}' doesn't allow an argument\n")
    return long, (value if eq else None), has_arg


def _getopt(prog: str, argv: Sequence[str]) -> Iterator[tuple[str, str | None, int]]:
    """glibc getopt_long with a leading '+': yields (long name, argument, next index)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        arg, i = argv[i], i + 1
        if arg == "--":
            break
        if arg.startswith("--"):
            long, value, has_arg = _long_option(prog, arg[2:])
            if has_arg and value is None:
                if i >= len(argv):
                    raise NumactlUsageError(f"{prog}: option '--{long}' requires an argument\n")
                value, i = argv[i], i + 1
            yield long, value, i
            continue
        for k in range(1, len(arg)):
            opt = next((o for o in _OPTIONS if o[1] == arg[k]), None)
            if opt is None:
                raise NumactlUsageError(f"{prog}: invalid option -- '{arg[k]}'\n")
            if not opt[2]:
                yield opt[0], None, i
                continue
            if k + 1 < len(arg):
                yield opt[0], arg[k + 1 :], i
            elif i < len(argv):
                i += 1
                yield opt[0], argv[i - 1], i
            else:
                raise NumactlUsageError(f"{prog}: option requires an argument -- '{arg[k]}'\n")
            break
    yield "", None, i  # end of options: the command starts at index i


@dataclass(frozen=True)
class NumactlRequest:
    """What a numactl command line asks for, after libnuma's and the kernel's rules.

    ``policy``: the mode passed to set_mempolicy, in numactl's policy_name()
    vocabulary (``interleave``, ``weighted-interleave``, ``bind``, ``preferred``,
    ``preferred-many``, ``local``), ``default`` for an empty interleave mask
    (libnuma numa_set_interleave_mask), None when no policy option was given.
    ``nodes``: its nodemask as parsed (the kernel still intersects it with the
    cpuset).  ``flags``: ``("balancing",)`` for ``--balancing --membind``.
    ``cpunodebind``/``physcpubind``: the last ``-N``/``-C`` masks; ``cpus``: the
    resulting CPU affinity (the last binding option wins, restricted to the
    cpuset's CPUs as sched_setaffinity does).  ``all_nodes``: ``--all`` was given.
    ``show``/``hardware``/``version``: the informational modes (``show`` stops
    parsing where it appears, after applying the options before it).  ``command``:
    what to exec.  ``warnings``: text numactl writes to stderr and then carries on.
    """

    policy: str | None = None
    nodes: frozenset[int] = frozenset()
    flags: tuple[str, ...] = ()
    cpunodebind: frozenset[int] | None = None
    physcpubind: frozenset[int] | None = None
    cpus: frozenset[int] | None = None
    all_nodes: bool = False
    show: bool = False
    hardware: bool = False
    cpu_compress: bool = False
    version: bool = False
    command: tuple[str, ...] = ()
    warnings: str = ""


@dataclass
class _State:
    """numactl.c main()'s locals while the option loop runs."""

    possible: frozenset[int]
    allowed: frozenset[int]
    cpus_allowed: frozenset[int]
    node_of_cpu: Mapping[int, int]
    cpuset_cpus: frozenset[int]
    request: NumactlRequest = field(default_factory=NumactlRequest)
    set_policy: str | None = None
    balancing: bool = False
    did_node_cpu_parse: bool = False
    did_cpubind: bool = False
    did_strict: bool = False
    shmoption: str | None = None
    last_nodes: str | None = None
    warned_runmask: bool = False

    def update(self, **changes: object) -> None:
        self.request = replace(self.request, **changes)  # type: ignore[arg-type]


def _setpolicy(st: _State, mode: str) -> None:
    if st.set_policy is not None:
        raise _usage_msg("Conflicting policies")
    st.set_policy = mode


def _nopolicy(st: _State) -> None:
    if st.set_policy is not None:
        raise _usage_msg("specify policy after --shm/--file")


def _nodes_arg(st: _State, optarg: str) -> frozenset[int]:
    """numactl.c numactl_parse_nodestring() ("same" = previous string) + "<X> is invalid"."""
    text = optarg
    if text == "same":
        if st.last_nodes is None:
            raise _usage_msg("same needs previous node specification")
        text = st.last_nodes
    else:
        st.last_nodes = text
    allowed = st.possible if st.request.all_nodes else st.allowed
    try:
        mask = parse_nodestring(text, allowed, configured=len(st.possible))
    except NodeStringError as err:
        raise NumactlUsageError(err.warning, f"<{optarg}> is invalid\n") from None
    st.did_node_cpu_parse = True
    return mask


def _opt_interleave(st: _State, optarg: str, mode: str) -> None:
    mask = _nodes_arg(st, optarg)
    _setpolicy(st, mode)
    st.update(policy=mode if mask else "default", nodes=mask, flags=())


def _opt_membind(st: _State, optarg: str) -> None:
    _setpolicy(st, "bind")  # numactl.c checks the conflict before parsing for -m
    mask = _nodes_arg(st, optarg)
    st.update(policy="bind", nodes=mask, flags=("balancing",) if st.balancing else ())


def _opt_preferred(st: _State, optarg: str, mode: str) -> None:
    mask = _nodes_arg(st, optarg)
    if mode == "preferred" and len(mask) != 1:
        raise NumactlUsageError()  # numactl.c: usage() alone, no message
    _setpolicy(st, mode)
    st.update(policy=mode, nodes=mask, flags=())


def _opt_cpunodebind(st: _State, optarg: str) -> None:
    if st.shmoption:
        raise _usage_msg(f"{st.shmoption} shm option is not allowed before -c/--cpubind/--cpunodebind")
    mask = _nodes_arg(st, optarg)
    st.did_cpubind = True
    warnings = st.request.warnings
    for node in sorted(mask - st.possible):
        if not st.warned_runmask:  # numa_warn() gives each warning kind only once
            warnings += f"libnuma: Warning: node {node} not allowed\n"
            st.warned_runmask = True
    wanted = {cpu for cpu, node in st.node_of_cpu.items() if node in mask & st.possible}
    cpus = frozenset(wanted) & st.cpuset_cpus  # sched_setaffinity keeps the cpuset's CPUs
    if not cpus:
        raise NumactlUsageError(
            warnings + "numa_sched_setaffinity_v2_int() failed: Invalid argument\n"
            "sched_setaffinity: Invalid argument\n",
            usage=False,
        )
    st.update(cpunodebind=mask, cpus=cpus, warnings=warnings)


def _opt_physcpubind(st: _State, optarg: str) -> None:
    if st.shmoption:
        raise _usage_msg(f"{st.shmoption} shm option is not allowed before -C/--physcpubind")
    every_cpu = frozenset(st.node_of_cpu)
    allowed = every_cpu if st.request.all_nodes else st.cpus_allowed
    try:
        mask = parse_cpustring(optarg, allowed, configured=len(every_cpu))
    except NodeStringError as err:
        raise NumactlUsageError(err.warning, f"<{optarg}> is invalid\n") from None
    st.did_cpubind = st.did_node_cpu_parse = True
    cpus = mask & st.cpuset_cpus
    if not cpus:
        raise NumactlUsageError(st.request.warnings + "sched_setaffinity: Invalid argument\n", usage=False)
    st.update(physcpubind=mask, cpus=cpus)


def _opt_shared_memory(st: _State, name: str, optarg: str | None) -> None:
    """The --shm/--file family: checked as numactl.c does; attaching is not emulated."""
    if name in ("shm", "file"):
        if st.did_cpubind:
            raise _usage_msg("cannot do --cpubind on shared memory\n")
        _nopolicy(st)
        raise NumactlUsageError(f"numactl: --{name} is not supported by numa-emu\n", usage=False)
    if name in ("length", "offset", "huge", "shmmode"):
        st.shmoption = f"--{name}"  # numactl.c noshm(); the value only matters for shm
    if name in ("shmmode", "shmid"):
        text = optarg or ""
        _, end = c_strtoul(text, 0, 8 if name == "shmmode" else 0)
        if end == 0 or end != len(text):
            raise NumactlUsageError()
    if name in ("dump", "dump-nodes"):
        raise NumactlUsageError(f"numactl: Cannot do --{name} without shared memory.\n\n", usage=False)
    if name in ("touch", "verify"):
        raise _usage_msg(f"--{name} must be after shared memory specification")
    if name == "strict":
        st.did_strict = True


def _apply(st: _State, name: str, optarg: str | None) -> bool:
    """One option of numactl.c's switch; True when numactl stops parsing (-s, --version)."""
    arg = optarg or ""
    if name in ("interleave", "weighted-interleave"):
        _opt_interleave(st, arg, name)
    elif name == "membind":
        _opt_membind(st, arg)
    elif name in ("preferred", "preferred-many"):
        _opt_preferred(st, arg, name)
    elif name == "localalloc":
        _setpolicy(st, "local")
        st.update(policy="local", nodes=frozenset(), flags=())
    elif name in ("cpunodebind", "cpubind"):
        _opt_cpunodebind(st, arg)
    elif name == "physcpubind":
        _opt_physcpubind(st, arg)
    elif name == "all":
        if st.did_node_cpu_parse:
            raise _usage_msg("--all/-a option must be before all cpu/node specifications")
        st.update(all_nodes=True)
    elif name in ("hardware", "balancing", "version"):
        _nopolicy(st)
        st.balancing = st.balancing or name == "balancing"
        st.update(hardware=st.request.hardware or name == "hardware", version=name == "version")
        return name == "version"
    elif name == "show":
        st.update(show=True)
        return True
    elif name == "cpu-compress":
        st.update(cpu_compress=True)
    else:
        _opt_shared_memory(st, name, optarg)
    return False


def parse_numactl_args(
    argv: Sequence[str],
    *,
    possible: frozenset[int],
    allowed: frozenset[int],
    cpus_allowed: frozenset[int],
    node_of_cpu: Mapping[int, int],
    cpuset_cpus: frozenset[int] | None = None,
) -> NumactlRequest:
    """Parse numactl's arguments (``argv`` without the program name).

    ``possible``: every node id of the machine (``--all`` strings are checked
    against it; ``!`` inverts over ``len(possible)`` ids).  ``allowed``: the task's
    ``Mems_allowed`` (its cpuset's mems).  ``cpus_allowed``: the task's
    ``Cpus_allowed`` (its current affinity), which libnuma checks CPU strings
    against.  ``node_of_cpu``: every CPU of the machine -> its node.
    ``cpuset_cpus``: the CPUs the kernel lets sched_setaffinity use (the cpuset's;
    default ``cpus_allowed``).  Raises :class:`NumactlUsageError` (exit 1) with
    numactl's exact output on any error.
    """
    cpuset = frozenset(cpus_allowed if cpuset_cpus is None else cpuset_cpus)
    st = _State(frozenset(possible), frozenset(allowed), frozenset(cpus_allowed), node_of_cpu, cpuset)
    try:
        for name, optarg, index in _getopt("numactl", argv):
            if not name:
                return _finish(st, tuple(argv[index:]))
            if _apply(st, name, optarg):
                return st.request
    except NumactlUsageError as err:
        if err.pre_usage.startswith(st.request.warnings):
            raise
        raise NumactlUsageError(st.request.warnings + err.pre_usage, err.out_text, usage=err.usage) from None
    raise AssertionError("getopt always ends with the end-of-options marker")


def _finish(st: _State, command: tuple[str, ...]) -> NumactlRequest:
    """numactl.c after the option loop: --hardware, strict warning, shm leftovers, command."""
    if st.request.hardware:
        return st.request
    if st.did_strict:
        st.update(warnings=st.request.warnings + "numactl: warning. Strict flag for process ignored.\n")
    if st.shmoption:
        raise _usage_msg(f"shm related option {st.shmoption} for process")
    if not command:
        raise NumactlUsageError()
    st.update(command=command)
    return st.request
