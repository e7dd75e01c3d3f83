"""Starting and stopping the node processes: no orphans, ever (docs/conventions.md#no-orphans).

The nodes are forked by one fork server, `python -m numa_emu.nodes.zygote` (a fresh interpreter per node
costs 70-80 ms of imports; a fork costs a few). The zygote is started without a shell, in a new
session; it reports every node's pid when it forks it and every exit when it reaps it, one line
each on a pipe that this side reads without blocking. Every node holds the read end of a
parent-alive pipe whose write end only the coordinator holds: when the coordinator dies, for
whatever reason, every node reads EOF and exits, and then the zygote does.
Each node gets a secret register token, made here at spawn and written to the zygote's stdin
(argv is public through `ps`): node.register is accepted only with it (check_token).
Stopping is a ladder: the shutdown message (sent by the server), then SIGTERM after a grace
period, then SIGKILL, each to the recorded pids of nodes not yet reported gone.

A cluster on several hosts (protocol.hosts) has one fork server per host, its agent, started by
a launcher: `local` (a subprocess here: fake hosts of tests, each with its own NUMA_EMU_HOME),
`ssh` (the OpenSSH client, options passed through) or `slurm` (one `srun` step per host of the
allocation). Its stdin carries the tokens, the topology
and the cluster's keys (never argv), then the commands; its stdin is also its parent-alive pipe:
when this process dies, the ssh session closes and the host's nodes exit. Signals to a node go
through its agent (`signal NODE SIGNUM`): its pid means nothing here. An agent that exits before
it has started its nodes fails start() with one line naming the host and the last line it wrote.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import shlex
from dataclasses import dataclass, field

import psutil

from numa_emu.protocol.clusterdir import TOPOLOGY_FILE, ZYGOTE_LOG, open_private, process_tag, read_json
from numa_emu.protocol.delaylink import CLOCK_ROUNDS, HOST_KEY, estimate_offset
from numa_emu.protocol.hosts import Host, pick_endpoint
from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.logsetup import DEFAULT_LOG_LEVEL
from numa_emu.protocol.timing import TERM_GRACE_S

_SPAWN_REPORT_TIMEOUT_S = 30.0
_CLOCK_TIMEOUT_S = 5.0  # for all of them: an agent busy forking answers late, not never
log = logging.getLogger("coordinator.supervisor")
LAUNCHERS = ("local", "ssh", "slurm")
# ssh never asks a question (no tty, no password prompt) and gives up on a dead host in seconds
_SSH_DEFAULTS = ["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
                 "-o", "ServerAliveCountMax=3"]


@dataclass
class Agent:
    """One host's fork server and what it has reported."""

    host: str  # "" on a single-host cluster
    proc: subprocess.Popen
    log: Path
    nodes: list[int]
    buffer: bytes = b""
    pids: dict[int, int] = field(default_factory=dict)  # node id -> pid, while not reported gone
    spawned: set[int] = field(default_factory=set)  # every node it has reported spawned
    clock: tuple[int, int, int] | None = None  # its last `clock` answer: (host key, its ns, our ns)


@dataclass(frozen=True)
class Placement:
    """Where the nodes run and how each host's agent starts (protocol.hosts; `up` writes it)."""

    hosts: tuple[Host, ...]
    launcher: str = "local"
    ssh_opts: tuple[str, ...] = ()
    my_host: str = ""  # the coordinator's host name
    tcp_endpoint: str = ""  # the coordinator's, for the other hosts


def agent_command(placement: Placement, host: Host, *, cluster_tag: str, argv: list[str]) -> list[str]:
    """The command that starts `argv` (the agent's) on `host`: itself (local) or through ssh."""
    if placement.launcher == "local":
        return argv
    if placement.launcher == "slurm":  # one job step on that host of the allocation, its stdin ours
        return ["srun", "--nodes=1", "--ntasks=1", f"--nodelist={host.name}", "--overlap", "--quiet",
                f"--job-name={cluster_tag}", *argv]
    remote = "exec " + shlex.join(argv)  # the remote login shell runs one command line
    return ["ssh", *_SSH_DEFAULTS, *placement.ssh_opts, host.address, remote, "#", cluster_tag]


class Supervisor:
    def __init__(self, cluster_dir: Path, name: str, coordinator_endpoint: str, *, log_level: str = DEFAULT_LOG_LEVEL,
                 placement: Placement | None = None):
        self.cluster_dir = cluster_dir
        self.log_level = log_level  # the fork server's and every node's
        self.name = name
        self.coordinator_endpoint = coordinator_endpoint
        self.placement = placement  # None: every node here, one fork server
        self.agents: list[Agent] = []
        self._agent_of: dict[int, Agent] = {}
        self._pids: dict[int, int] = {}  # node id -> pid, while not reported gone
        self._exits: list[tuple[int, int]] = []  # reported, not yet handed out by reap()
        self._tasks_gone: list[int] = []  # reported by agents, not yet handed out by tasks_gone()
        self._clocks: dict[int, int] = {}  # another host's key -> its clock minus ours (ns)
        self._alive_w: int | None = None
        self._tokens: dict[int, str] = {}  # node id -> the secret its node.register must carry

    def check_token(self, node_id: int, token: str) -> bool:
        """Whether `token` is the one made for node `node_id` when it was spawned."""
        expected = self._tokens.get(node_id)
        return expected is not None and hmac.compare_digest(expected.encode(), token.encode())

    def start(self, node_ids: list[int]) -> None:
        self._tokens.update({i: secrets.token_hex(16) for i in node_ids})
        try:
            if self.placement is None:
                self._start_here(node_ids)
            else:
                self._start_hosts(node_ids)
        except NumaEmuError:
            self.stop(0)
            raise
        deadline = time.monotonic() + _SPAWN_REPORT_TIMEOUT_S
        while len(self._pids) + len(self._exits) < len(node_ids):
            remaining = deadline - time.monotonic()
            for agent in self.agents:
                if not agent.spawned.issuperset(agent.nodes) and (
                        remaining <= 0 or agent.proc.poll() is not None and not self._read(0.0)):
                    why = self._failure(agent, remaining <= 0)
                    self.stop(0)
                    raise NumaEmuError(ErrorCode.EIO, why)
            self._read(min(max(remaining, 0.0), 0.5))
        for agent in self.agents:
            if agent.host:
                self._measure_clock(agent)

    def _measure_clock(self, agent: Agent) -> None:
        """The clock offset of `agent`'s host from a few round trips over its stdin and stdout
        (protocol.delaylink.estimate_offset), for real-mode holds between hosts. An agent that
        does not answer in time leaves its host's offset unknown (holds from the arrival)."""
        samples, key = [], None
        deadline = time.monotonic() + _CLOCK_TIMEOUT_S
        for _ in range(CLOCK_ROUNDS):
            agent.clock = None
            t0 = time.monotonic_ns()
            if not self._send(agent, "clock 0 0"):
                return
            while agent.clock is None and time.monotonic() < deadline:
                self._read(max(deadline - time.monotonic(), 0.0))
            if agent.clock is None:
                log.warning("host %s: its agent did not tell its clock; held messages from it run from the arrival",
                            agent.host)
                return
            key, theirs, t1 = agent.clock
            samples.append((t0, theirs, t1))
        offset, rtt = estimate_offset(samples)
        self._clocks[key] = offset
        log.info("host %s: clock offset %+d ns, within %d ns (fastest of %d round trips)", agent.host, offset,
                 rtt // 2, len(samples))

    def clock_offsets(self) -> dict[int, int]:
        """Host key -> that host's CLOCK_MONOTONIC minus the coordinator's (ns), this host's too."""
        return {HOST_KEY: 0} | self._clocks

    def _failure(self, agent: Agent, timed_out: bool) -> str:
        if not agent.host:
            return "the node fork server did not start every node; see zygote.log"
        last = _last_line(agent.log)
        what = "did not start its nodes within {:g} s".format(_SPAWN_REPORT_TIMEOUT_S) if timed_out else \
            f"exited with status {agent.proc.returncode}"
        return f"host {agent.host}: its agent {what}" + (f": {last}" if last else "") + f" (see {agent.log.name})"

    def _start_here(self, node_ids: list[int]) -> None:
        alive_r, self._alive_w = os.pipe()  # we keep the write end; it closes when we die
        log = self.cluster_dir / ZYGOTE_LOG
        argv = [sys.executable, "-m", "numa_emu.nodes.zygote", "--cluster-dir", str(self.cluster_dir), "--name", self.name,
                "--coordinator", self.coordinator_endpoint, "--alive-fd", str(alive_r),
                "--nodes", ",".join(map(str, node_ids)), "--log-level", self.log_level]
        try:
            self._launch("", argv, log, node_ids, {"tokens": {str(i): self._tokens[i] for i in node_ids}},
                         pass_fds=(alive_r,))
        finally:
            os.close(alive_r)

    def _start_hosts(self, node_ids: list[int]) -> None:
        placement = self.placement
        assert placement is not None
        keys = ClusterKeys.load(self.cluster_dir)
        topology = read_json(self.cluster_dir / TOPOLOGY_FILE)
        for host in placement.hosts:
            nodes = [n for n in host.nodes if n in node_ids]
            if not nodes:
                continue
            coordinator = pick_endpoint(placement.my_host, self.coordinator_endpoint, placement.tcp_endpoint, host.name)
            argv = [host.python or sys.executable, "-m", "numa_emu.nodes.zygote", "--name", self.name, "--host", host.name,
                    "--bind", host.address, "--coordinator", coordinator, "--nodes", ",".join(map(str, nodes)),
                    "--log-level", self.log_level] + (["--home", host.home] if host.home else [])
            env = None
            if placement.launcher == "local":  # a fake host: its own name (and home, from --home)
                env = dict(os.environ, NUMA_EMU_HOST=host.name)
            header = {"tokens": {str(i): self._tokens[i] for i in nodes}, "topology": topology,
                      "keys": [keys.public.decode(), keys.secret.decode()]}
            self._launch(host.name, agent_command(placement, host, cluster_tag=process_tag(self.name), argv=argv),
                         self.cluster_dir / f"agent-{host.name}.log", nodes, header, env=env)

    def _launch(self, host: str, argv: list[str], log_path: Path, nodes: list[int], header: dict, *,
                pass_fds: tuple[int, ...] = (), env: dict | None = None) -> None:
        log = os.fdopen(open_private(log_path), "ab", buffering=0)
        try:
            # The coordinator's session (one autogroup for the daemons of a host; nodes/zygote.py
            # says why) in a process group of its own.
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                    pass_fds=pass_fds, process_group=0, close_fds=True)
        except OSError as exc:
            raise NumaEmuError(ErrorCode.EIO, f"host {host or 'here'}: cannot start its agent ({argv[0]}: "
                                              f"{exc.strerror})") from None
        finally:
            log.close()
        agent = Agent(host, proc, log_path, nodes)
        self.agents.append(agent)
        self._agent_of.update({n: agent for n in nodes})
        try:  # a few dozen bytes per node (and a topology): the pipe takes them without blocking
            proc.stdin.write(json.dumps(header).encode() + b"\n")
            proc.stdin.flush()  # kept open: `spawn NODE TOKEN` commands follow (node restart)
        except BrokenPipeError:
            pass  # the agent died at once; reported by start()
        os.set_blocking(proc.stdout.fileno(), False)

    @property
    def zygote(self) -> subprocess.Popen | None:
        return self.agents[0].proc if self.agents else None

    @property
    def zygote_pid(self) -> int | None:
        return self.zygote.pid if self.zygote is not None else None

    def agent_pids(self) -> list[dict]:
        """Every host's agent as this machine sees it: the agent itself, or its ssh client."""
        return [{"host": a.host, "pid": a.proc.pid} for a in self.agents if a.host]

    def host_of(self, node_id: int) -> str:
        agent = self._agent_of.get(node_id)
        return agent.host if agent is not None else ""

    def _read(self, timeout_s: float) -> bool:
        """Take the agents' reports that have arrived (waiting up to timeout_s); True if any."""
        fds = {a.proc.stdout.fileno(): a for a in self.agents if a.proc.stdout is not None and not a.proc.stdout.closed}
        if not fds:
            return False
        ready, _, _ = select.select(list(fds), [], [], timeout_s)
        got = False
        for fd in ready:
            agent = fds[fd]
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            got = got or bool(chunk)
            agent.buffer += chunk
            *lines, agent.buffer = agent.buffer.split(b"\n")
            for line in lines:
                try:
                    what, node, value = line.decode().split()
                    node_id, number = int(node), int(value)
                except ValueError:
                    continue  # not a report (a login banner through ssh)
                if what == "spawned":
                    self._pids[node_id] = agent.pids[node_id] = number
                    agent.spawned.add(node_id)
                elif what == "exited":
                    self._pids.pop(node_id, None)
                    agent.pids.pop(node_id, None)
                    self._exits.append((node_id, number))
                elif what == "clock":
                    agent.clock = (node_id, number, time.monotonic_ns())
                elif what == "taskgone":
                    self._tasks_gone.append(node_id)
        return got

    def pids(self) -> dict[int, int]:
        return dict(self._pids)

    def alive(self, node_id: int) -> bool:
        """Whether the node's process still exists (a zombie does not count), asked of the system
        itself: a node the fork server could not report (the fork server died) is still seen gone.
        On another host: reported spawned and not exited, by an agent still connected."""
        pid = self._pids.get(node_id)
        if pid is None:
            return False
        agent = self._agent_of.get(node_id)
        if agent is not None and agent.host:
            return agent.proc.poll() is None
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def respawn(self, node_id: int) -> None:
        """Ask the fork server for node `node_id` again (its `spawned` report comes later)."""
        if node_id in self._pids and self.alive(node_id):
            raise NumaEmuError(ErrorCode.EBUSY, f"node {node_id} is still running (pid {self._pids[node_id]})")
        token = self._tokens[node_id] = secrets.token_hex(16)  # a fresh secret for the new process
        if not self._command(node_id, f"spawn {node_id} {token}"):
            raise NumaEmuError(ErrorCode.EIO, "the node fork server is gone; restart the cluster (down, then up)")

    def watch_task(self, host: str, task_id: int, pid: int) -> bool:
        """Have the agent of `host` watch task `task_id`'s process `pid` there (0: stop watching);
        its exit comes back from tasks_gone(). False when that host has no agent."""
        agent = next((a for a in self.agents if a.host and a.host == host), None)
        return self._send(agent, f"watch {task_id} {pid}" if pid else f"unwatch {task_id} 0")

    def tasks_gone(self) -> list[int]:
        """Tasks of other hosts whose process exited, as their agents reported since the last call."""
        self._read(0.0)
        gone, self._tasks_gone = self._tasks_gone, []
        return gone

    def _command(self, node_id: int, line: str) -> bool:
        """One command to the agent of node `node_id`; False when it is gone."""
        return self._send(self._agent_of.get(node_id), line)

    @staticmethod
    def _send(agent: "Agent | None", line: str) -> bool:
        try:
            assert agent is not None and agent.proc.stdin is not None
            agent.proc.stdin.write(line.encode() + b"\n")
            agent.proc.stdin.flush()
        except (AssertionError, OSError, ValueError):
            return False
        return True

    def kill(self, node_id: int) -> None:
        """SIGKILL a node declared dead while its process lived (hung): dead is then true."""
        self.signal(node_id, signal.SIGKILL)

    def signal(self, node_id: int, signum: int) -> bool:
        """Send `signum` to a node's process (also `fault kill` and `fault stop`); False when it is gone."""
        pid = self._pids.get(node_id)
        if pid is None:
            return False
        agent = self._agent_of.get(node_id)
        if agent is not None and agent.host:  # its pid is another host's
            return self._command(node_id, f"signal {node_id} {int(signum)}")
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def reap(self) -> list[tuple[int, int]]:
        """Nodes that exited since the last call: (node id, exit code; negative = signal)."""
        self._read(0.0)
        exits, self._exits = self._exits, []
        return exits

    def stop(self, grace_s: float) -> list[tuple[int, int]]:
        """Wait `grace_s` for the nodes to exit on their own, then SIGTERM, then SIGKILL; then
        every agent leaves (its stdin closed) or is killed."""
        exited = self._wait(grace_s)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self._pids:
                break
            for node_id in list(self._pids):
                self.signal(node_id, sig)
            exited += self._wait(TERM_GRACE_S)
        if self._alive_w is not None:
            os.close(self._alive_w)
            self._alive_w = None
        for agent in self.agents:
            try:
                agent.proc.stdin.close()  # no more commands: the agent leaves with its last node
            except OSError:
                pass
        for agent in self.agents:
            try:
                agent.proc.wait(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                agent.proc.kill()  # an ssh client: its session closes, and the host's agent reads EOF
                agent.proc.wait()
            agent.proc.stdout.close()
        self.agents = []
        return exited

    def _wait(self, timeout_s: float) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout_s
        exited = self.reap()
        while self._pids and time.monotonic() < deadline and self.agents:
            if all(a.proc.poll() is not None for a in self.agents) and not self._read(0.0):
                break  # every agent is gone: nobody will report the rest
            self._read(min(0.05, max(0.0, deadline - time.monotonic())))
            exited += self.reap()
        return exited


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
