"""The coordinator's membership core and the heartbeat liveness, driven with plain calls."""
from __future__ import annotations

import pytest

from coordinator.state import ClusterState
from protocol.errors import ErrorCode, NumaEmuError
from protocol.heartbeat import Liveness
from protocol.timing import HEARTBEAT_LIVENESS

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


def test_silent_node_goes_suspect_then_dead_and_heartbeat_revives_suspect():
    s = ClusterState("c", TOPO, 0.0, 0.25)
    _register(s, 0, 0.0)
    _register(s, 1, 0.0)
    liveness = HEARTBEAT_LIVENESS * 0.25  # silence before dead, at a 0.25 s interval
    assert s.tick(0.3) == []
    assert s.tick(0.5) == [(0, "up", "suspect"), (1, "up", "suspect")]
    s.heartbeat(node_id=0, frames_free=3, frames_total=10, now=liveness - 0.1)
    assert s.nodes[0].state == "up"  # a heartbeat revives a suspect at once
    assert s.tick(liveness + 0.05) == [(1, "suspect", "dead")]
    s.heartbeat(node_id=1, frames_free=3, frames_total=10, now=liveness + 0.1)  # the dead stay dead until they re-register
    assert s.nodes[1].state == "dead"
    assert s.nodes[0].frames_free == 3


def test_node_exit_is_dead_while_running_and_stopped_while_stopping():
    s = ClusterState("c", TOPO, 0.0, 0.25)
    _register(s, 0, 0.0)
    _register(s, 1, 0.0)
    assert s.node_exited(0, -9, 1.0) == (0, "up", "dead")
    s.state = "stopping"
    assert s.node_exited(1, 0, 1.0) == (1, "up", "stopped")
    assert [n["exit_code"] for n in s.node_status(1.0)] == [-9, 0]


def test_liveness_states():
    live = Liveness(0.0, interval_s=1.0, liveness=3)
    assert [live.state(t) for t in (0.5, 1.4, 2.0, 3.0, 3.1)] == ["up", "up", "suspect", "suspect", "dead"]
