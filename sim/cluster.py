"""A whole cluster in one process: N nodes (nodes.node.Node, exactly as a node process builds them),
the coordinator's pure services (its membership, file table and sysctl table from coordinator/,
and the task homes a scenario needs), and the tasks of a scenario, all on one seeded network.

A task is a script, a generator that sends the requests numa_emu.api sends (sim.tasks.SimTask);
every read and write it completes goes into the history that the no-lost-write check reads.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from numa_emu.coordinator.fileserver import FileService
from numa_emu.coordinator.state import ClusterState
from numa_emu.coordinator.taskserver import SysctlService
from numa_emu.nodes.framepool import FramePool
from numa_emu.nodes.node import Node
from numa_emu.nodes.store import Store
from numa_emu.protocol.effects import Call, Future
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import migration as mg
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.policy import DEFAULT_POLICY
from numa_emu.protocol.topology import NodeSpec, make_topology
from numa_emu.protocol.version import PROTOCOL_VERSION
from numa_emu.sim.history import History
from numa_emu.sim.network import Network

PAGE = 4096
CPUS_PER_NODE = 2
# The store of a run lives in memory where the system offers it: a run's files in /tmp cost
# ~4 ms to create and delete here, in tmpfs ~0.03 ms (measured).
TMPFS = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def sim_topology(n_nodes: int, frames: int) -> dict:
    """N nodes of `frames` pages each, two CPUs a node, SLIT 10 local and 20 remote."""
    nodes = [NodeSpec(i, tuple(range(i * CPUS_PER_NODE, (i + 1) * CPUS_PER_NODE)), frames * PAGE)
             for i in range(n_nodes)]
    distances = [[10 if i == j else 20 for j in range(n_nodes)] for i in range(n_nodes)]
    return make_topology(name=f"sim-{n_nodes}n", nodes=nodes, distances=distances, page_size=PAGE).to_dict()


class Coordinator:
    """The coordinator's side the memory protocol needs: file table and sysctl from coordinator/
    (pure services, run as they are), and where each task lives (attach, moves)."""

    def __init__(self, state: ClusterState, store: Path, sysctl: list[str]):
        self.state = state
        self.files = FileService(state, store)
        self.sysctl = SysctlService(state)
        self.sysctl.preset(sysctl)  # EINVAL on a bad key or value
        self.homes: dict[int, int] = {}
        self.moving: dict[int, Future] = {}
        self.cpu_node = {cpu: n["id"] for n in state.topology["nodes"] for cpu in n["cpus"]}

    def handlers(self) -> dict:
        table = dict(self.files.handlers())
        table.update(self.sysctl.handlers())
        table.update({"task.home": self.home, "task.set_affinity": self.set_affinity,
                      "task.migrate_pages": self.migrate_pages})
        return table

    def boot(self, files: dict[str, bytes], tasks: list[tuple[int, int]]):
        """Sysctl values to every node, the scenario's files created, its tasks attached."""
        calls = self.sysctl.push_all()
        if calls:
            yield calls
        for name in files:
            yield from self.files.open(pc.FileOpen(name=name, create=True, size=len(files[name])))
        for task_id, cpu in tasks:
            node = self.cpu_node[cpu]
            yield Call(f"node:{node}", tm.NodeTaskAttach(task_id=task_id, pid=task_id, comm=f"task{task_id}", cpu=cpu,
                                                         policy=DEFAULT_POLICY.to_wire(),
                                                         mems_allowed=sorted(self.cpu_node.values())))
            self.homes[task_id] = node

    def _where(self, task_id: int, cpu: int) -> tm.TaskHomeReply:
        return tm.TaskHomeReply(node=self.homes[task_id], cpu=cpu, endpoint="")

    def home(self, msg: tm.TaskHome):
        while msg.task_id in self.moving:  # answered once a move in progress has finished
            yield self.moving[msg.task_id]
        if msg.task_id not in self.homes:
            raise NumaEmuError(ErrorCode.ESRCH, f"no task {msg.task_id}")
        return self._where(msg.task_id, 0)

    def set_affinity(self, msg: tm.TaskSetAffinity):
        """A task moves to the node of the first CPU given (coordinator/taskserver.py moves it
        the same way: node.task.move to its old home, which hands it over)."""
        cpu = msg.cpus[0]
        node, old = self.cpu_node[cpu], self.homes[msg.task_id]
        if node == old:
            return self._where(msg.task_id, cpu)
        done = self.moving[msg.task_id] = Future()
        try:
            yield Call(f"node:{old}", tm.NodeTaskMove(task_id=msg.task_id, node=node, cpu=cpu))
            self.homes[msg.task_id] = node
        finally:
            del self.moving[msg.task_id]
            done.set_result(None)
        return self._where(msg.task_id, cpu)

    def migrate_pages(self, msg: mg.TaskMigratePages):
        """migratepages PID FROM TO from outside the task: its home node does it."""
        node = self.homes[msg.pid]
        return (yield Call(f"node:{node}", mg.MigratePages(task_id=msg.pid, old_nodes=msg.old_nodes,
                                                           new_nodes=msg.new_nodes, move_all=msg.move_all)))


class SimCluster:
    def __init__(self, seed: int, *, n_nodes: int, frames: int, sysctl: list[str] = (), trace: bool = True,
                 max_delay_us: int = 20, drop: float = 0.0, dup: float = 0.0):
        self.net = Network(seed, max_delay_us=max_delay_us, trace=trace, drop=drop, dup=dup)
        self.topology = sim_topology(n_nodes, frames)
        self.folder = Path(tempfile.mkdtemp(prefix="numa-emu-sim-", dir=TMPFS))
        self.state = ClusterState("sim", self.topology, now=0.0, heartbeat_interval_s=1.0)
        for n in range(n_nodes):
            self.state.register(node_id=n, pid=0, endpoint="", frames_total=frames, page_size=PAGE,
                                protocol_version=PROTOCOL_VERSION, now=0.0)
        try:
            self.coordinator = Coordinator(self.state, self.folder, list(sysctl))
        except NumaEmuError:
            self.close()
            raise
        self.nodes = [Node(n, self.topology, FramePool(frames, PAGE), Store(self.folder, PAGE), self.net.clock_ns)
                      for n in range(n_nodes)]
        for node in self.nodes:
            table = node.handlers.by_kind()
            table["node.down"] = self._node_down_handler(node)
            self.net.add(f"node:{node.node_id}", table)
        self.net.add("coordinator", self.coordinator.handlers())
        self.net.ignore_requests_of_the_dead(self._knows_dead)
        self.history = History()
        self.dead: set[int] = set()

    def _knows_dead(self, receiver: str, sender: str) -> bool:
        """Node `receiver` has heard that node `sender` died (node.down)."""
        if not (receiver.startswith("node:") and sender.startswith("node:")):
            return False
        return int(sender[5:]) in self.nodes[int(receiver[5:])].core.dead

    def _node_down_handler(self, node: Node) -> Callable:
        def on_node_down(msg: lc.NodeDown) -> None:
            recovery = node.node_down(msg)
            if recovery is not None:
                self.net.spawn(f"node:{node.node_id}", recovery, lambda _r, _exc: None)
        return on_node_down

    def crash(self, node_id: int) -> None:
        """Node `node_id` dies: it takes no message any more, calls to it fail with EIO, every
        other node hears node.down, and the coordinator frees what the tasks whose home it was
        held on the other nodes (coordinator/taskserver.py: home_died, then the purge)."""
        self.dead.add(node_id)
        self.history.crashed = True
        self.state.node_exited(node_id, None, 0.0)
        self.net.kill(f"node:{node_id}", "crashed")
        for other in self.nodes:
            if other.node_id not in self.dead:
                self.net.notify("coordinator", f"node:{other.node_id}", lc.NodeDown(node_id=node_id, why="crashed"))
        orphans = [t for t, home in self.coordinator.homes.items() if home == node_id]
        if orphans:
            self.net.spawn("coordinator", self._purge(orphans), lambda _r, _exc: None)

    def _purge(self, tasks: list[int]):
        live = [n.id for n in self.state.live_nodes()]
        for task_id in tasks:
            yield [Call(f"node:{n}", tm.NodeTaskPurge(task_id=task_id)) for n in live]

    def boot(self, files: dict[str, bytes], tasks: list[tuple[int, int]], max_steps: int = 10_000) -> None:
        failed: list[BaseException] = []
        self.net.spawn("coordinator", self.coordinator.boot(files, tasks),
                       lambda _r, exc: exc is not None and failed.append(exc))
        self.net.run(max_steps)
        if failed:
            raise failed[0]
        for name, data in files.items():  # the initial contents, as if imported
            if data.strip(b"\0"):
                (self.folder / name).write_bytes(data)

    def close(self) -> None:
        self.net.close()
        for node in getattr(self, "nodes", ()):
            node.close()
        shutil.rmtree(self.folder, ignore_errors=True)
