"""The coordinator's membership core and the heartbeat liveness, driven with plain calls."""
from __future__ import annotations

import pytest

from numa_emu.coordinator.state import ClusterState
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.heartbeat import Liveness

TOPO = {"page_size": 4096, "nodes": [{"id": 0}, {"id": 1}]}


def _register(s, node_id, now, **kw):
    args = dict(node_id=node_id, pid=100 + node_id, endpoint=f"ipc://n{node_id}", frames_total=10,
                page_size=4096, protocol_version=1, now=now)
    args.update(kw)
    return s.register(**args)


def test_cluster_is_up_when_every_node_registered():
    s = ClusterState("c", TOPO, 0.0, 0.25)
    assert _register(s, 0, 0.1) is False and s.state == "starting"
    assert _register(s, 1, 0.2) is True and s.state == "up"


def test_register_refuses_other_protocol_version_naming_both():
    s = ClusterState("c", TOPO, 0.0, 0.25)
    with pytest.raises(NumaEmuError) as err:
        _register(s, 0, 0.1, protocol_version=2)
    assert err.value.code == ErrorCode.EPROTO and "2" in err.value.message and "1" in err.value.message


@pytest.mark.parametrize("kw, code", [({"node_id": 7}, ErrorCode.ENODEV), ({"page_size": 8192}, ErrorCode.EINVAL)])
def test_register_refuses_bad_nodes(kw, code):
    s = ClusterState("c", TOPO, 0.0, 0.25)
    with pytest.raises(NumaEmuError) as err:
        _register(s, kw.pop("node_id", 0), 0.1, **kw)
    assert err.value.code == code


def test_silent_node_is_suspect_until_it_speaks_again_and_dead_only_after_the_grace():
    s = ClusterState("c", TOPO, 0.0, 0.25, silent_dead_s=10.0)
    _register(s, 0, 0.0)
    _register(s, 1, 0.0)
    assert s.tick(0.3) == []
    assert s.tick(0.5) == [(0, "up", "suspect"), (1, "up", "suspect")]
    for t in (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5):  # 5 s of silence: still only suspect
        assert s.tick(t) == []
    assert s.heartbeat(node_id=0, frames_free=3, frames_total=10, now=5.6) == (0, "suspect", "up")  # it rejoins
    assert s.nodes[0].state == "up" and s.nodes[0].frames_free == 3
    for t in [5.6 + 0.25 * i for i in range(1, 18)]:  # node 0 keeps speaking, node 1 stays silent until 9.85
        s.heartbeat(node_id=0, frames_free=3, frames_total=10, now=t)
        assert s.tick(t) == []
    s.heartbeat(node_id=0, frames_free=3, frames_total=10, now=10.1)
    assert s.tick(10.1) == [(1, "suspect", "dead")]
    assert s.heartbeat(node_id=1, frames_free=3, frames_total=10, now=10.2) is None  # the dead must re-register
    assert s.nodes[1].state == "dead"


def test_the_observers_own_pause_is_not_the_nodes_silence():
    s = ClusterState("c", TOPO, 0.0, 0.25, silent_dead_s=10.0)
    _register(s, 0, 0.0)
    _register(s, 1, 0.0)
    assert s.tick(0.2) == []
    assert s.tick(60.2) == []  # the coordinator was stopped for a minute: nobody is suspect, let alone dead
    assert [n["state"] for n in s.node_status(60.2)] == ["up", "up"]
    assert s.tick(60.8) == [(0, "up", "suspect"), (1, "up", "suspect")]  # silence after the pause counts


def test_cluster_with_a_dead_node_is_degraded_not_up():
    s = ClusterState("c", TOPO, 0.0, 0.25)
    _register(s, 0, 0.0)
    _register(s, 1, 0.0)
    assert s.summary() == "up"
    s.tick(0.6)
    assert s.summary() == "up"  # suspect is not gone
    s.node_exited(1, None, 0.7)
    assert (s.summary(), s.state) == ("degraded", "up")


def test_node_exit_is_dead_while_running_and_stopped_while_stopping():
    s = ClusterState("c", TOPO, 0.0, 0.25)
    _register(s, 0, 0.0)
    _register(s, 1, 0.0)
    assert s.node_exited(0, -9, 1.0) == (0, "up", "dead")
    s.state = "stopping"
    assert s.node_exited(1, 0, 1.0) == (1, "up", "stopped")
    assert [n["exit_code"] for n in s.node_status(1.0)] == [-9, 0]


def test_liveness_states():
    live = Liveness(0.0, interval_s=1.0, dead_after_s=3.0)
    assert [live.state(t) for t in (0.5, 1.4, 2.0, 3.0, 3.1)] == ["up", "up", "suspect", "suspect", "dead"]
    live.excuse(5.0, now=4.0)
    assert live.last_seen == 4.0 and live.state(4.0) == "up"
