"""The shm policies a node going offline places its masters by (nodes.offline.ShmPolicies):
the first range in task order that covers a page wins; anything malformed is one EINVAL."""
from __future__ import annotations

import pytest

from numa_emu.nodes.offline import ShmPolicies
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.policy import Mode, Policy

BIND_2 = Policy(Mode.BIND, frozenset({2})).to_wire()
INTERLEAVE_01 = Policy(Mode.INTERLEAVE, frozenset({0, 1})).to_wire()


def test_the_lowest_task_covering_a_page_gives_its_policy():
    shm = ShmPolicies([["shm:a", 4, 4, BIND_2, 9], ["shm:a", 0, 6, INTERLEAVE_01, 3]])
    assert shm.policy("shm:a", 5).mode == Mode.INTERLEAVE  # task 3's range, though listed second
    assert shm.policy("shm:a", 7).nodes == frozenset({2})  # only task 9's range covers it
    assert shm.policy("shm:a", 8) is None and shm.policy("shm:b", 0) is None


@pytest.mark.parametrize("wire", ["x", [["shm:a", 0, 1, BIND_2]], [["shm:a", "0", 1, BIND_2, 1]],
                                  [[1, 0, 1, BIND_2, 1]], [["shm:a", 0, 1, "bind", 1]],
                                  [["shm:a", 0, 1, {"mode": 99}, 1]]])
def test_malformed_shm_policies_are_einval(wire):
    with pytest.raises(NumaEmuError) as err:
        ShmPolicies(wire)
    assert err.value.code.value == "EINVAL"
