"""The direct path in the simulator (sim.tasks.SimTask with `direct`): tasks read and write their
home node's pages through its frame pool and their page tables, in this process's own memfds, as
a task process does; a direct access is one atomic step between two deliveries. The direct
scenarios keep every check, every scenario does with --direct and under each fault kind, a
grant never taken back is caught, and the direct path changes nothing a task reads."""
from __future__ import annotations

import pytest

from numa_emu.nodes.core import NodeCore
from numa_emu.sim.run import run
from numa_emu.sim.scenarios import SCENARIOS
from numa_emu.sim.session import Session

DIRECT = ("direct-shm", "direct-file")


@pytest.mark.parametrize("name", DIRECT)
def test_the_direct_scenarios_write_shared_pages_directly_and_keep_every_check(name):
    totals = {"direct_reads": 0, "direct_writes": 0}
    for seed in range(100):
        result = run(SCENARIOS[name], seed, trace=False)
        assert result.ok, result.violation
        for key in totals:
            totals[key] += result.counters[key]
    assert totals["direct_reads"] > 100 and totals["direct_writes"] > 30  # the direct path is what runs


@pytest.mark.parametrize("fault", [{"crash": True}, {"partition": True}, {"stop": True}, {"drop": 0.1, "dup": 0.1}])
@pytest.mark.parametrize("name", DIRECT)
def test_the_direct_scenarios_keep_every_check_under_each_fault(name, fault):
    for seed in range(40):
        result = run(SCENARIOS[name], seed, trace=False, **fault)
        assert result.ok, f"seed {seed}: {result.violation}"


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - set(DIRECT)))
def test_every_scenario_keeps_every_check_with_its_tasks_on_the_direct_path(name):
    for seed in range(30):
        result = run(SCENARIOS[name], seed, trace=False, direct=True)
        assert result.ok, f"seed {seed}: {result.violation}"


def test_a_grant_never_taken_back_is_caught(monkeypatch):
    """Without the revocation (the writer keeps its writable entry through a writeback's
    write-protection), a direct write lands in the master after a replica was copied from it."""
    monkeypatch.setattr(NodeCore, "revoke_direct_write", lambda self, frame: self.direct_writers.pop(frame, None))
    found = next((r for r in (run(SCENARIOS["direct-file"], seed, trace=False) for seed in range(60)) if not r.ok),
                 None)
    assert found is not None, "the checks let a direct write miss a replica"
    assert "differs from its master" in found.violation or "lost write" in found.violation, found.violation


def test_a_shared_page_read_and_written_directly_gives_what_messages_give():
    """One script, the direct path off and on: the same bytes, the same virtual time; on, the
    writes after the write fault and the reads of the task's own node are direct."""
    def script(s: Session, t, other):
        m = yield from t.mmap(1, shared="x")
        o = yield from other.mmap(1, shared="x")
        out = []
        for i in range(4):
            yield from t.store(m, 8, bytes([65 + i]) * 8)
            out.append((yield from t.load(m, 8)))
            out.append((yield from other.load(o, 8)))
        yield from other.store(o, 16, b"o" * 8)  # takes the grant: the next write of t is a message
        yield from t.store(m, 8, b"t" * 8)
        out.append((yield from t.load(m, 16)))
        out.append((yield from t.clock_ns()))
        return out

    results = []
    for direct in (False, True):
        with Session(nodes=2, cpus=[0, 1], direct=direct) as s:
            t, other = s.tasks
            results.append(s.do(t, script(s, t, other)))
            if direct:
                # t: the first store faults, 3 more direct, its 4 loads and the last direct (its last store, a
                # message, took the grant back); other: its first load faults, 3 direct
                assert (*t.direct_counts(), other.direct_counts()[0]) == (5, 3, 3)
    assert results[0] == results[1]
    assert results[1][-2] == b"o" * 8
