"""Defects the simulator found with --crash (docs/simulator.md#what-it-found), each replayed from
the seed that showed it, with the outcome the fixed protocol gives. A seed fixes the message
order only as long as the protocol sends the same messages: each test also checks that the run
still reaches the situation (the crash, the failed move, the rebuilt entry)."""
from __future__ import annotations

from numa_emu.sim.network import Network
from numa_emu.sim.run import run
from numa_emu.sim.scenarios import SCENARIOS


def replay(scenario: str, seed: int):
    result = run(SCENARIOS[scenario], seed, crash=True)
    assert result.ok, result.trace[-3:]
    return result


def ends(result) -> list[str]:
    """The crash and how each task ended, without their times."""
    return [line.split("us  ", 1)[1] for line in result.trace
            if "CRASH" in line or line.endswith(" done") or " failed: " in line]


# A collapse whose shootdown went to a node that died took the EIO of the call for a failure:
# the write failed, and the entry kept the replica the other target had freed, mapped again
# by the next read (`sim run unreplicate-race --seed 4 --crash`: "node 2 maps file:f:0 in frame
# 0 of node 2, which was freed and reused"). A dead node's EIO counts as its ack now.
def test_a_shootdown_target_that_died_counts_as_acknowledged():
    result = replay("unreplicate-race", 4)
    assert ends(result) == ["task:2 done", "CRASH node:1: crashed", "task:3 done", "task:1 done"]
    # (3, 2) since a silent target is asked again after 0.5 s (the partition and stop work): the
    # dead node's failed call is retried without it, and the run goes on differently after that
    assert (result.counters["pgreplicated"], result.counters["pgreplicazap_write"]) == (3, 2)
    assert result.delivered == 90


# A shm master moved to a node that died before its copy landed: the source frame was freed
# when the copy was sent, the move failed, and the entry still named the freed frame (`sim run
# shm-move-race --seed 15 --crash`: "node 3 maps shm:race:0 in frame 0 of node 2, which is
# free"). The source is retired while the copy travels and freed only once it landed.
def test_a_master_whose_move_target_died_stays_where_it_was():
    result = replay("shm-move-race", 15)
    assert ends(result) == ["CRASH node:1: crashed", "task:1 done", "task:2 done"]
    assert (result.counters["pgmigrate_success"], result.counters["pgmigrate_fail"]) == (2, 2)
    assert result.delivered == 165


# A directory that died between allocating a file page's master and filling it from the store:
# the node that supplied the frame announced it as the master, and the rebuilt entry served its
# zeros (`sim run unreplicate-race --seed 182 --crash`: "lost write: task:2 read f@0 =
# 0000000000000000"). The bytes ride on the allocation now.
def test_a_master_announced_after_its_directory_died_holds_its_page():
    result = replay("unreplicate-race", 182)
    assert ends(result) == ["CRASH node:2: crashed", "task:3 failed: EIO: node:2 is dead (crashed)",
                            "task:1 failed: EIO: node:2 is dead (crashed)", "task:2 done"]
    assert result.counters["dir_rebuilt"] == 1
    assert result.delivered == 52


# A pte.shootdown a directory sent before it died, delivered after node.down, left its epoch on
# the reader's node; the page's new home counts its epochs afresh, so the reader took every
# answer for a stale one and asked again for ever (`sim run unreplicate-race --seed 24
# --crash`: no quiescence after 20000 deliveries; with the new home on the reader's node the
# same loop runs inside one delivery, shm-move-race seed 227). Such a shootdown is ignored now:
# by the node's handler, and (since session 6) before it, as every request of a peer known dead is.
def test_a_shootdown_from_a_dead_directory_is_ignored(monkeypatch):
    result = replay("unreplicate-race", 24)
    assert ends(result) == ["CRASH node:2: crashed", "task:3 failed: EIO: node:2 is dead (crashed)",
                            "task:1 failed: EIO: node:2 is dead (crashed)", "task:2 done"]
    assert result.counters["dir_rebuilt"] == 2
    assert "node:1: pte.shootdown #5 from node:2, dead, ignored" in [line.split("us  ", 1)[1] for line in result.trace]
    assert result.delivered == 74
    # the handler's own check, for a shootdown that reaches it (delivered, then acknowledged unapplied)
    monkeypatch.setattr(Network, "ignore_requests_of_the_dead", lambda self, knows_dead: None)
    result = replay("unreplicate-race", 24)
    assert ends(result)[-1] == "task:2 done" and result.delivered == 75


# A request a node sent just before it died, delivered after its receiver heard of the death,
# changed what the dead node's pages had been rebuilt into: task 1's write of file:g:1 went on
# by message to the master on node 2 after the collapse's acknowledgement, node 0 died with the
# write in flight, node 2 (the page's new home) gave node 1 a replica, and then the write landed
# in the master (`sim run direct-file --seed 2547 --crash`: "the replica of file:g:1 mapped on
# node 1 differs from its master"). A request of a peer known dead is ignored now (the reactor's
# _serve, and the simulator's delivery likewise).
def test_a_request_of_a_node_known_dead_is_ignored(monkeypatch):
    result = replay("direct-file", 2547)
    assert result.ok and ends(result)[-1] == "task:3 done"
    assert "node:2: frame.write #12 from node:0, dead, ignored" in [line.split("us  ", 1)[1] for line in result.trace]
    monkeypatch.setattr(Network, "ignore_requests_of_the_dead", lambda self, knows_dead: None)
    assert "differs from its master" in (run(SCENARIOS["direct-file"], 2547, crash=True).violation or "")


# The new home of a dead directory's pages served a write before every survivor had announced
# its copies: the replica a survivor had not announced yet missed the collapse and kept the old
# bytes (`sim run unreplicate-race --seed 177 --crash`: "the replica of file:f:0 mapped on node
# 1 differs from its master"; writeshare seed 23: "mapped writable on node 0 while node 3 maps a
# replica"). Every survivor announces to every possible new home now, and a page whose home died
# is served once all have.
def test_a_new_home_serves_a_dead_directory_s_pages_once_every_survivor_announced():
    result = replay("unreplicate-race", 177)
    lines = [line.split("us  ", 1)[1] for line in result.trace]
    write = lines.index("node:0 calls itself: dir.write")
    announced = lines.index("node:1 -> node:0 dir.rebuild #3")
    collapse = lines.index("node:0 -> node:1 pte.shootdown #5")
    answered = lines.index("node:0 -> task:1 mem.access.reply #3")
    assert write < announced < collapse < answered
    assert ends(result) == ["CRASH node:2: crashed", "task:3 failed: EIO: node:2 is dead (crashed)", "task:2 done",
                            "task:1 done"]
    assert (result.counters["dir_rebuilt"], result.counters["pgreplicazap_write"]) == (2, 1)
    result = replay("writeshare", 23)
    assert result.counters["dir_rebuilt"] == 4 and result.delivered == 174


# A master's move whose directory died after asking the source for the copy: the source had
# announced its frame as the master to the page's new home, then freed it when the copy landed,
# and the target had announced nothing yet (`sim run shm-move-race --seed 1419 --crash`: "node
# 3 maps shm:race:0 in frame 0 of node 0, which is free"). A move whose directory is known dead
# keeps the source frame, and the target refuses it (ESTALE) and frees its frame.
def test_a_move_that_died_with_its_directory_leaves_the_master_in_place():
    result = replay("shm-move-race", 1419)
    assert ends(result) == ["CRASH node:2: crashed", "task:2 failed: EIO: node:2 is dead (crashed)", "task:1 done"]
    assert any(line.endswith("node:1 -> node:0 error #3 ESTALE frame 0 of node 1: the move of shm:race:0 died "
                             "with node 2") for line in result.trace)
    assert (result.counters["pgmigrate_success"], result.counters["dir_rebuilt"]) == (0, 1)
