"""Which host runs which node: the host list, the placement, and which endpoint a peer is reached at.

A cluster on several hosts (`numa-emu up --hosts a,b` or a `[hosts]` table in a topology file,
docs/topology-format.md#hosts) runs one agent per host (nodes/zygote.py), which forks that host's
nodes. Every process binds an ipc socket in its host's cluster folder and, once the cluster spans
hosts, a tcp socket on its host's address (CURVE, protocol.keys): a peer on the same host is
reached over ipc, any other over tcp (pick_endpoint). A host is told apart by its name, the one
the placement gives; a process learns its own from its agent, and `up` from host_identity().

Pure data and stdlib only: the CLI, the coordinator and the agents all use it.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from numa_emu.protocol.errors import ErrorCode, NumaEmuError

HOSTS_FILE = "hosts.json"  # the placement, written by `up` in the cluster folder for the coordinator
HOST_ENV = "NUMA_EMU_HOST"  # overrides this machine's host name (tests make fake hosts on loopback)
# How a task on any host finds the cluster: the coordinator's endpoint for that host, the host's
# name and the keys; in every host's cluster folder (0600), or a path or its JSON text in the variable.
CONNECTION_FILE = "connection.json"
CONNECTION_ENV = "NUMA_EMU_CONNECTION"


def connection(name: str, host: str, coordinator: str, public: bytes, secret: bytes) -> dict:
    """The connection file's content (after ipyparallel's ipcontroller-client.json)."""
    return {"name": name, "host": host, "coordinator": coordinator, "public_key": public.decode(),
            "secret_key": secret.decode()}
# A host name or address as ssh takes it, optionally user@: never an option ("-o...") or a shell word.
_HOST = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9_][A-Za-z0-9._:-]{0,252}")
HOST_KEYS = ("address", "nodes", "home", "python")


@dataclass(frozen=True)
class Host:
    """One machine of the cluster: `name` as the placement knows it, `address` where its processes
    bind and where ssh reaches it, and optionally its NUMA_EMU_HOME and Python interpreter."""

    name: str
    address: str
    nodes: tuple[int, ...] = ()  # filled by place(); given in a [hosts] table, kept as given
    home: str = ""
    python: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "address": self.address, "nodes": list(self.nodes), "home": self.home,
                "python": self.python}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Host":
        return cls(str(data["name"]), str(data["address"]), tuple(int(n) for n in data.get("nodes", ())),
                   str(data.get("home", "")), str(data.get("python", "")))


def check_host(text: object, where: str = "--hosts") -> str:
    if isinstance(text, str) and _HOST.fullmatch(text):
        return text
    raise NumaEmuError(ErrorCode.EINVAL, f"{where}: {text!r} is not a host name or address "
                                         "(letters, digits, . _ - :, optionally user@ before it)")


def parse_hosts(text: str) -> list[Host]:
    """`--hosts a,b,c`: hosts in order, each its own name and address."""
    names = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise NumaEmuError(ErrorCode.EINVAL, f"--hosts {text!r}: give HOST[,HOST...], no empty names")
    hosts = [Host(check_host(n), _address(n)) for n in names]
    _no_repeats(hosts, "--hosts")
    return hosts


def hosts_from_table(table: object, n_nodes: int, where: str = "[hosts]") -> list[Host]:
    """A topology file's `[hosts]` table: `[hosts.NAME]` sub-tables in order, each with optional
    `address` (default NAME), `nodes` (a node list such as "0-3"; every host or none), `home`
    (NUMA_EMU_HOME there) and `python` (its interpreter)."""
    from numa_emu.protocol.nodemask import parse_nodelist

    if not isinstance(table, Mapping) or not table:
        raise NumaEmuError(ErrorCode.EINVAL, f"{where}: expected one [hosts.NAME] table per host")
    hosts = []
    for name, spec in table.items():
        here = f"{where}.{name}"
        check_host(name, here)
        if not isinstance(spec, Mapping):
            raise NumaEmuError(ErrorCode.EINVAL, f"{here}: expected a table with {', '.join(HOST_KEYS)}")
        unknown = sorted(set(spec) - set(HOST_KEYS))
        if unknown:
            raise NumaEmuError(ErrorCode.EINVAL, f"{here}.{unknown[0]}: unknown key (expected one of: "
                                                 f"{', '.join(HOST_KEYS)})")
        for key in ("address", "home", "python", "nodes"):
            if key in spec and not isinstance(spec[key], str):
                raise NumaEmuError(ErrorCode.EINVAL, f"{here}.{key}: expected a string, got {spec[key]!r}")
        nodes: tuple[int, ...] = ()
        if "nodes" in spec:
            try:
                nodes = tuple(sorted(parse_nodelist(spec["nodes"])))
            except (NumaEmuError, ValueError) as exc:
                raise NumaEmuError(ErrorCode.EINVAL, f"{here}.nodes: {exc}") from None
            bad = [n for n in nodes if n >= n_nodes]
            if bad:
                raise NumaEmuError(ErrorCode.EINVAL, f"{here}.nodes: no node {bad[0]} (nodes 0-{n_nodes - 1})")
        address = check_host(spec.get("address", name), f"{here}.address")
        hosts.append(Host(name, _address(address), nodes, spec.get("home", ""), spec.get("python", "")))
    _no_repeats(hosts, where)
    given = [h for h in hosts if h.nodes]
    if given and len(given) != len(hosts):
        raise NumaEmuError(ErrorCode.EINVAL, f"{where}: give nodes for every host or for none")
    return hosts


def hosts_in_file(path: str, n_nodes: int) -> list[Host] | None:
    """The `[hosts]` table of topology file `path`, or None when it has none."""
    import tomllib

    with open(path, "rb") as f:
        data = tomllib.load(f)
    table = data.get("hosts")
    return None if table is None else hosts_from_table(table, n_nodes, f"{path}: [hosts]")


def _address(text: str) -> str:
    return text.rpartition("@")[2]


def _no_repeats(hosts: Sequence[Host], where: str) -> None:
    seen: set[str] = set()
    for h in hosts:
        if h.name in seen:
            raise NumaEmuError(ErrorCode.EINVAL, f"{where}: host {h.name!r} is named twice")
        seen.add(h.name)


def socket_groups(distances: Sequence[Sequence[int]]) -> list[list[int]]:
    """Nodes that share a socket (distance 10 between them, as numa=fake nodes and a socket's
    sub-NUMA clusters are): they stay on one host. Groups in order of their first node."""
    n = len(distances)
    group = list(range(n))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i in range(n):
        for j in range(n):
            if i != j and distances[i][j] == 10:
                group[root(j)] = root(i)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(root(i), []).append(i)
    return list(out.values())


def place(hosts: Sequence[Host], distances: Sequence[Sequence[int]]) -> list[Host]:
    """Every node on a host: as the hosts say when they list nodes (each node exactly once),
    else the sockets in order, spread as evenly as whole sockets allow (each socket to the host
    that has fewest nodes so far, the earlier host on a tie). Hosts left without a node are dropped."""
    n = len(distances)
    if any(h.nodes for h in hosts):
        owner: dict[int, str] = {}
        for h in hosts:
            for node in h.nodes:
                if node in owner:
                    raise NumaEmuError(ErrorCode.EINVAL, f"[hosts]: node {node} is on both {owner[node]} and {h.name}")
                owner[node] = h.name
        missing = [i for i in range(n) if i not in owner]
        if missing:
            raise NumaEmuError(ErrorCode.EINVAL, f"[hosts]: node {missing[0]} is on no host")
        split = [(g, {owner[i] for i in g}) for g in socket_groups(distances)]
        for g, where in split:
            if len(where) > 1:
                raise NumaEmuError(ErrorCode.EINVAL, f"[hosts]: nodes {g} share a socket (distance 10) "
                                                     f"but are placed on {', '.join(sorted(where))}")
        return list(hosts)
    loads = [0] * len(hosts)
    nodes: list[list[int]] = [[] for _ in hosts]
    target = -(-n // len(hosts))  # ceil: fill a host up to its fair share before the next
    k = 0
    for g in socket_groups(distances):
        while k < len(hosts) - 1 and loads[k] + len(g) > target and loads[k] > 0:
            k += 1
        nodes[k].extend(g)
        loads[k] += len(g)
    return [Host(h.name, h.address, tuple(sorted(ns)), h.home, h.python) for h, ns in zip(hosts, nodes) if ns]


def host_of(hosts: Sequence[Host], node: int) -> Host:
    for h in hosts:
        if node in h.nodes:
            return h
    raise NumaEmuError(ErrorCode.ENODEV, f"node {node} is on no host")


def host_identity() -> str:
    """This machine's host name: $NUMA_EMU_HOST (a fake host of a test) or the kernel's."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def tcp_address(endpoint: str) -> str:
    """The host part of tcp://ADDRESS:PORT ("" for another transport)."""
    if not endpoint.startswith("tcp://"):
        return ""
    return endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")


def coordinator_address(hosts: Sequence[Host]) -> str:
    """Where the coordinator binds its tcp socket: loopback when every host is on it (fake hosts),
    else this machine's address on the route to the first other host (a UDP connect sends nothing)."""
    addresses = []
    for h in hosts:
        try:
            addresses.append(socket.gethostbyname(h.address))
        except OSError as exc:
            raise NumaEmuError(ErrorCode.ECONNREFUSED,
                               f"host {h.name}: cannot resolve {h.address} ({exc.strerror or exc})") from None
    if all(is_loopback(a) for a in addresses):
        return "127.0.0.1"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((next(a for a in addresses if not is_loopback(a)), 9))
        return probe.getsockname()[0]
    finally:
        probe.close()


def pick_endpoint(their_host: str, ipc: str, tcp: str, my_host: str) -> str:
    """The endpoint a process on `my_host` uses for a peer on `their_host`: its ipc socket on the
    same host (or when it has no tcp one: a single-host cluster), its tcp socket from elsewhere."""
    if not tcp or (their_host == my_host and ipc):
        return ipc or tcp
    return tcp
