"""Partitions and stops in a simulated run, chosen by its seed, as `numa-emu fault partition` and
`numa-emu fault stop N --for S` make them on a real cluster (docs/simulator.md#partitions-and-stops).

- A partition cuts the nodes into two sides for a span of virtual time, then heals: every message
  between the sides is lost at its sender, as the fault table loses it (protocol.faults); the
  coordinator and the tasks still reach every node, so no node turns suspect. With a fault table
  in force a node does not forward accesses (node.faults: nodes.server.NodeServer.on_faults), nor
  does it here.
- A stop pauses one node's process for a span (SIGSTOP, then SIGCONT): it takes no message and
  runs nothing; its queue is delivered when it is continued, its state intact. The coordinator's
  membership (coordinator.state.ClusterState, driven as coordinator/server.py drives it, with the
  other nodes' heartbeats) makes it suspect after a silent interval and up again when it speaks;
  silent past SILENT_DEAD_S it is dead, and the coordinator kills it: then it is a crash.
- Either way calls get deadlines (sim.network.Network.use_deadlines), and each node sends again
  the frees and numa_foreign totals a peer did not confirm every FREE_RETRY_INTERVAL_S
  (nodes.server.NodeServer._retry_frees).

Where, when and how long: drawn from the run's seed; the span log-uniform in SPAN_S, so that most
faults heal within the deadlines and some outlast them.
"""
from __future__ import annotations

import math

from numa_emu.nodes.server import FREE_RETRY_INTERVAL_S
from numa_emu.protocol.heartbeat import DEAD, SUSPECT, UP
from numa_emu.protocol.timing import CLIENT_TIMEOUT_S, PEER_CALL_TIMEOUT_S, PEER_RETRY_MAX_S, SILENT_DEAD_S

PARTITION_SPAN_S = (0.001, 10.0)  # about one partition in ten outlasts a node's 4 s call deadline
STOP_SPAN_S = (0.001, 40.0)  # about one stop in forty outlasts SILENT_DEAD_S: the node is killed
LIVENESS_TICK_S = 0.5  # the coordinator's liveness check while a node is stopped (below OWN_PAUSE_S)
# A fault shorter than this cannot make a call time out: a call re-sent at least every
# PEER_RETRY_MAX_S gets through before its PEER_CALL_TIMEOUT_S (the shortest deadline).
TIMEOUT_FLOOR_S = PEER_CALL_TIMEOUT_S - PEER_RETRY_MAX_S
# A message lost to --drop costs its call one re-send interval at most: PEER_RETRY_MAX_S.
DROP_COST_S = PEER_RETRY_MAX_S


def _span(rng, low: float, high: float) -> float:
    return round(math.exp(rng.uniform(math.log(low), math.log(high))), 6)


class Faults:
    """The partition and the stop of one run, if asked for: drawn from the network's seed when
    made (after boot), applied at the delivery drawn (within `within` of now)."""

    def __init__(self, cluster, *, partition: bool, stop: bool, within: int):
        self.cluster = cluster
        self.net = net = cluster.net
        self.events: dict[int, list] = {}  # delivery number -> what happens after it
        self.total_s = 0.0  # the faults' spans added up: a call that times out under less is a bug
        self.stopped: set[int] = set()
        self.ticking = False
        self.freeing: set[int] = set()  # nodes with a free retry due or under way
        self.applied: list[str] = []  # what happened, for the search's summary
        if not (partition or stop):
            return
        net.use_deadlines()
        net.after_timer = self._retry_unconfirmed  # a call that timed out may have left a free or a total
        n = len(cluster.nodes)
        if partition:
            for node in cluster.nodes:  # a fault table in force turns forwarding off (NodeServer.on_faults)
                node.core.set_forwarding(False)
            at = net.delivered + net.rng.randint(1, within)
            side = sorted(net.rng.sample(range(n), net.rng.randint(1, n - 1)))
            span = _span(net.rng, *PARTITION_SPAN_S)
            self.events.setdefault(at, []).append(lambda side=side, span=span: self._partition(side, span))
            self.total_s += span
        if stop:
            at, victim = net.delivered + net.rng.randint(1, within), net.rng.randrange(n)
            span = _span(net.rng, *STOP_SPAN_S)
            self.events.setdefault(at, []).append(lambda victim=victim, span=span: self._stop(victim, span))
            self.total_s += span

    def timeouts_expected(self, failed_ns: int) -> bool:
        """Whether the faults of this run lasted long enough for a request that timed out at
        `failed_ns` to do so: a partition and a stop one after the other add up along a chain of
        calls, and so does every message dropped while that request was under way (within a
        task's deadline before it failed), each worth up to one re-send interval."""
        since = failed_ns - int(CLIENT_TIMEOUT_S * 1e9)
        drops = sum(since <= at <= failed_ns for at in self.net.dropped_ns)
        return self.total_s + drops * DROP_COST_S >= TIMEOUT_FLOOR_S

    def after_delivery(self) -> None:
        for event in self.events.pop(self.net.delivered, ()):
            event()
        self._retry_unconfirmed()

    def _retry_unconfirmed(self) -> None:
        """A node with frees or numa_foreign totals a peer did not confirm sends them again
        FREE_RETRY_INTERVAL_S later (its retry timer), after a delivery or a timer alike: the call
        that failed may have been the run's last event."""
        if self.net.deadlines:
            for node in self.cluster.nodes:
                if node.core.unconfirmed() and node.node_id not in self.freeing and node.node_id not in self.cluster.dead:
                    self._free_later(node)

    # ---- partition ------------------------------------------------------------------------
    def _partition(self, side: list[int], span: float) -> None:
        a = {f"node:{i}" for i in side}
        b = {f"node:{node.node_id}" for node in self.cluster.nodes} - a
        self.applied.append(f"partition {','.join(map(str, side))} for {span:g} s")
        self.net.note(f"fault: partition for {span:g} s")
        self.net.cut(a, b)
        self.net.call_later(span, self.net.heal)

    # ---- stop -------------------------------------------------------------------------------
    def _stop(self, node: int, span: float) -> None:
        if node in self.cluster.dead:
            return
        self._beat()
        self.applied.append(f"stop of node {node} for {span:g} s")
        self.net.note(f"fault: node:{node} stopped for {span:g} s")
        self.net.stop(f"node:{node}")
        self.stopped.add(node)
        self.net.call_later(span, lambda: self._continue(node))
        self._tick_later()

    def _continue(self, node: int) -> None:
        self.stopped.discard(node)
        if node in self.cluster.dead:
            return
        self.net.resume(f"node:{node}")
        self._changed(self.cluster.state.heartbeat(node_id=node, frames_free=0, frames_total=0,
                                                   now=self._now()))

    def _now(self) -> float:
        return self.net.now_ns / 1e9

    def _beat(self) -> None:
        """Every node that runs has sent its heartbeat (the coordinator hears them all)."""
        for node in self.cluster.nodes:
            if node.node_id not in self.stopped and node.node_id not in self.cluster.dead:
                self.cluster.state.heartbeat(node_id=node.node_id, frames_free=0, frames_total=0, now=self._now())

    def _tick_later(self) -> None:
        if self.stopped and not self.ticking:
            self.ticking = True
            self.net.call_later(LIVENESS_TICK_S, self._tick)

    def _tick(self) -> None:
        """coordinator/server.py's heartbeat timer: the membership's transitions, a death acted on."""
        self.ticking = False
        self._beat()
        for change in self.cluster.state.tick(self._now()):
            self._changed(change)
        self._tick_later()

    def _changed(self, change) -> None:
        if change is None:
            return
        node, old, new = change
        why = {SUSPECT: "no heartbeat", UP: "heard again: it rejoins",
               DEAD: f"silent for {SILENT_DEAD_S:g} s: the coordinator kills it"}.get(new, "")
        self.net.note(f"coordinator: node:{node} {old} -> {new} ({why})")
        if new == DEAD:
            self.stopped.discard(node)
            self.cluster.crash(node)

    # ---- frees and numa_foreign totals a peer did not confirm ---------------------------------
    def _free_later(self, node) -> None:
        self.freeing.add(node.node_id)

        def retry() -> None:
            if node.node_id in self.cluster.dead or not node.core.unconfirmed():
                self.freeing.discard(node.node_id)
                return

            def done(_left, _exc) -> None:
                self.freeing.discard(node.node_id)
                if node.core.unconfirmed() and node.node_id not in self.cluster.dead:
                    self._free_later(node)
            self.net.note(f"node:{node.node_id} sends again the frees and counters a peer did not confirm")
            self.net.spawn(f"node:{node.node_id}", node.retry_frees(), done)
        self.net.call_later(FREE_RETRY_INTERVAL_S, retry, owner=f"node:{node.node_id}")
