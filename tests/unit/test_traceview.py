"""Reading traces and the top view, on synthetic inputs: the story's exact lines, the frame
links, the filters, malformed files, the counts and thrashing pages, and the top frame's numbers."""
from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from numa_emu import topview
from numa_emu.traceview import (SENTENCES, Filters, PageFilter, TraceError, parse_events, stats_lines,
                                story_lines, summarize)
from numa_emu.traceview.events import link_frames
from numa_emu.traceview.story import Story, duration, sentence
from numa_emu.protocol.tracing import EVENTS

T0 = 1_700_000_000_000_000_000
VA = 0x7F0000000000
PID = 311


def at(ms: float, **event) -> dict:
    return {"wall_ns": T0 + round(ms * 1e6), **event}


def private_run() -> list[dict]:
    """A task on node 0 under interleave 0-1: two first touches, a remote read, detach."""
    return [
        at(0, ev="task", node=0, task=PID, vns=0, what="attach", cpu=0, comm="w"),
        at(1.298, ev="policy", node=0, task=PID, vns=0, scope="task",
           policy={"mode": 3, "nodes": [0, 1], "flags": 0, "user_nodes": [], "home_node": None}, mems=[0, 1]),
        at(2.248, ev="alloc", node=0, frames=[5], preferred=0, task_node=0, hit=True, interleave=True),
        at(2.268, ev="fault", node=0, task=PID, vns=817, addr=VA, write=False, supplier=0, frame=5, local=True),
        at(2.772, ev="alloc", node=1, frames=[7], preferred=1, task_node=0, hit=True, interleave=True),
        at(3.081, ev="fault", node=0, task=PID, vns=1797, addr=VA + 4096, write=False, supplier=1, frame=7, local=False),
        at(3.771, ev="access", node=0, task=PID, vns=2200, addr=VA + 4096 + 8, write=False, bytes=8, to=1, frame=7),
        at(4.387, ev="free", node=0, frames=[5]),
        at(4.541, ev="free", node=1, frames=[7]),
        at(4.665, ev="task", node=0, task=PID, vns=2200, what="detach", pages=2),
    ]


STORY = [
    "+0.000 ms (+0.000) node 0 task 311 [vt 0 ns]    attached on cpu 0 (w)",
    "+1.298 ms (+1.298) node 0 task 311 [vt 0 ns]    task policy set to interleave:0-1 (mems allowed 0-1)",
    "+2.248 ms (+0.950) node 0 task 311              allocated frame 5 for a task on node 0 (preferred node 0: hit, interleave)",
    "+2.268 ms (+0.020) node 0 task 311 [vt 817 ns]  first touch of 0x7f0000000000 (read): frame 5 on node 0, local",
    "+2.772 ms (+0.504) node 1 task 311              allocated frame 7 for a task on node 0 (preferred node 1: hit, interleave)",
    "+3.081 ms (+0.309) node 0 task 311 [vt 1797 ns] first touch of 0x7f0000001000 (read): frame 7 on node 1, remote",
    "+3.771 ms (+0.690) node 0 task 311 [vt 2200 ns] read 8 bytes of 0x7f0000001008 on node 1 (remote)",
    "+4.387 ms (+0.616) node 0 task 311              freed frame 5 of 0x7f0000000000",
    "+4.541 ms (+0.154) node 1 task 311              freed frame 7 of 0x7f0000001000",
    "+4.665 ms (+0.124) node 0 task 311 [vt 2200 ns] detached, 2 pages released",
]


def test_story_of_a_private_run_exact_lines():
    assert list(story_lines(private_run())) == STORY


def test_the_example_line_of_the_brief():
    events = [at(0, ev="task", node=1, task=PID, vns=0, what="attach", cpu=2, comm="w"),
              at(12.345, ev="access", node=1, task=PID, vns=4484, addr=VA, write=False, bytes=8, to=0, frame=3)]
    line = list(story_lines(events, Filters(kinds=frozenset({"access"}))))
    assert line == ["+12.345 ms (+0.000) node 1 task 311 [vt 4484 ns] read 8 bytes of 0x7f0000000000 on node 0 (remote)"]


def test_filters_combine_and_gaps_are_between_lines_shown():
    events = private_run()
    by_page = list(story_lines(events, Filters(page=PageFilter.parse("0x7f0000001abc"), task=PID)))
    assert [line.split("] ")[-1].split("    ")[-1].strip() for line in by_page] == [
        "allocated frame 7 for a task on node 0 (preferred node 1: hit, interleave)",
        "first touch of 0x7f0000001000 (read): frame 7 on node 1, remote",
        "read 8 bytes of 0x7f0000001008 on node 1 (remote)",
        "freed frame 7 of 0x7f0000001000",
    ]
    assert by_page[0].startswith("+2.772 ms (+0.000) node 1")
    assert by_page[1].startswith("+3.081 ms (+0.309) node 0")
    faults = list(story_lines(events, Filters(kinds=frozenset({"fault"}), page=PageFilter(addr=VA))))
    assert len(faults) == 1 and "first touch of 0x7f0000000000" in faults[0]
    assert list(story_lines(events, Filters(task=999))) == []


def test_mbind_range_matches_the_pages_it_covers():
    events = [at(0, ev="policy", node=0, task=PID, vns=0, scope="mbind", addr=VA, length=3 * 4096,
                 policy={"mode": 2, "nodes": [1]})]
    assert len(list(story_lines(events, Filters(page=PageFilter(addr=VA + 2 * 4096 + 1))))) == 1
    assert list(story_lines(events, Filters(page=PageFilter(addr=VA + 3 * 4096)))) == []
    assert list(story_lines(events))[0].endswith("mbind 0x7f0000000000, 12288 bytes: bind:1")


def test_links_attribute_frames_to_the_faults_that_mapped_them():
    links = link_frames(private_run())
    assert {i: (link.task, link.pages) for i, link in links.items()} == {
        2: (PID, [("va", VA)]), 4: (PID, [("va", VA + 4096)]), 7: (PID, [("va", VA)]), 8: (PID, [("va", VA + 4096)])}


def test_a_frame_allocated_outside_a_fault_is_not_claimed_by_a_later_mapper_elsewhere():
    """A file write on node 0 allocates the master; a task on node 1 maps it much later."""
    events = [at(0, ev="alloc", node=0, frames=[3], preferred=0, task_node=0, hit=True, interleave=False),
              at(900, ev="fault", node=1, task=PID, vns=1, obj="file:f", idx=0, write=False, supplier=0, frame=3,
                 local=False),
              at(901, ev="free", node=0, frames=[3])]
    links = link_frames(events)
    assert 0 not in links and links[2].task == PID
    assert list(story_lines(events, Filters(task=PID))) == [
        "+900.000 ms (+0.000) node 1 task 311 [vt 1 ns] first touch of file:f:0 (read): frame 3 on node 0, remote",
        "+901.000 ms (+1.000) node 0 task 311           freed frame 3 of file:f:0"]


def test_page_filter_parsing():
    assert PageFilter.parse("file7:42") == PageFilter(obj="file7", idx=42)
    assert PageFilter.parse("lib:x.so:3") == PageFilter(obj="lib:x.so", idx=3)
    assert PageFilter.parse("0x7F00") == PageFilter(addr=0x7F00)
    for bad in ("file7", "file7:x", ":3", "0xZZ"):
        with pytest.raises(ValueError):
            PageFilter.parse(bad)


def replication_story() -> list[dict]:
    return [
        at(0, ev="replicate", node=1, obj="file7", idx=42, replica_node=2, frame=9, master=0),
        at(0.2, ev="fault", node=2, task=PID, vns=900, obj="file7", idx=42, write=False, supplier=2, frame=9,
           local=True, replica=True),
        at(1, ev="unreplicate", node=1, obj="file7", idx=42, replica_node=2, frame=9, cause="write",
           lifetime_ns=1_000_000, unsafe=True),
        at(1.1, ev="free", node=2, frames=[9], cause="write"),
        at(981, ev="stale", node=2, task=PID, vns=5000, obj="file7", idx=42, frame=9, mapped_gen=3, frame_gen=4),
        at(982, ev="shootdown", node=1, obj="file7", idx=42, target=2, copy_node=2, frame=9, write_protect=False,
           cause="write", phase="sent"),
        at(982.5, ev="shootdown", node=2, obj="file7", idx=42, copy_node=2, frame=9, write_protect=False,
           cause="write", phase="done", unmapped=1),
        at(983, ev="shootdown", node=1, obj="file7", idx=42, targets=[2], cause="write", phase="acked"),
        at(984, ev="shootdown", node=1, obj="file7", idx=42, to=2, acked=False),
        at(985, ev="writeback", node=0, obj="file7", idx=42, master=0, frame=3),
        at(986, ev="migrate", node=0, task=PID, addr=VA, **{"from": 0}, to=1, cause="lazy"),
        at(987, ev="node", node="coordinator", target=2, old="up", new="suspect"),
        at(988, ev="warp", node=3, speed=9),
        at(989, ev="fault", node=0, task=PID, vns=6000),
    ]


def test_sentences_of_the_replication_kinds_and_of_unknown_ones():
    lines = list(story_lines(replication_story()))
    assert [line.split(") ", 1)[1] for line in lines] == [
        "node 1                            replica of file7:42 on node 2 (frame 9), copied from node 0",
        "node 2      task 311 [vt 900 ns]  first touch of file7:42 (read): replica frame 9 on node 2, local",
        "node 1                            replica of file7:42 on node 2 (frame 9) torn down "
        "(write, unsafe: unlocked, freed before the unmaps) after 1 ms",
        "node 2      task 311              freed frame 9 of file7:42 (write)",
        "node 2      task 311 [vt 5000 ns] replica of file7:42 on node 2 still mapped by task 311 0.98 s after "
        "unreplication (frame 9, mapped at generation 3, now 4)",
        "node 1                            shootdown of file7:42 (frame 9 on node 2) sent to node 2 (write)",
        "node 2                            shootdown of file7:42 (frame 9 on node 2) done: 1 mapping(s) removed (write)",
        "node 1                            shootdown of file7:42 acknowledged by node 2 (write)",
        "node 1                            shootdown of file7:42 sent to node 2, NOT acknowledged",
        "node 0                            wrote back dirty file7:42 (frame 3 on node 0)",
        "node 0      task 311              migrated 0x7f0000000000 from node 0 to node 1 (lazy)",
        "coordinator                       node 2: up -> suspect",
        "node 3                            warp: speed=9",
        "node 0      task 311 [vt 6000 ns] fault",
    ]


def test_every_known_kind_has_a_sentence_and_a_bare_event_never_crashes():
    assert set(SENTENCES) >= set(EVENTS)
    for kind in EVENTS:
        for odd in ({}, {"frames": "x", "policy": 3, "idx": [], "obj": None, "what": "attach"}):
            assert isinstance(sentence({"ev": kind, "wall_ns": 0, "node": 0, **odd}, Story()), str)
    assert sentence({"ev": "brand-new", "wall_ns": 0, "node": 0}, Story()) == "brand-new"
    assert sentence({"ev": "policy", "wall_ns": 0, "node": 0, "policy": 3}, Story()) == "policy: policy=3"


def test_durations():
    assert [duration(x) for x in (800, 999.7, 4_500, 999_500, 12_345_678, 980_000_000, 2_500_000_000)] == [
        "800 ns", "1 µs", "4.5 µs", "1 ms", "12.3 ms", "0.98 s", "2.50 s"]
    assert [topview.vtime(x) for x in (None, 850, 4_484, 999_999_999, 1_250_000_000)] == [
        "-", "850 ns", "4.48 µs", "1 s", "1.25 s"]


def test_malformed_lines_name_the_line():
    good = json.dumps({"ev": "free", "wall_ns": 5, "node": 0, "frames": [1]})
    cases = {"{not json": "not JSON", "[1, 2]": "not a JSON object", '{"wall_ns": 1}': "no event kind",
             '{"ev": "free", "wall_ns": "x"}': '"wall_ns" is not a number',
             '{"ev": "free", "wall_ns": 1, "node": [0]}': '"node" is neither',
             '{"ev": "free", "wall_ns": 1, "task": "me"}': '"task" is not a pid'}
    for bad, what in cases.items():
        with pytest.raises(TraceError) as info:
            parse_events([good, "", good, bad])
        assert info.value.line == 4 and what in str(info.value)


def test_odd_fields_of_a_valid_event_never_crash_the_story_or_the_stats():
    odd = [at(0, ev="alloc", node=0, frames=[[1], "x", None, 2], preferred=0, task_node=0),
           at(1, ev="fault", node=0, task=PID, supplier=[0], frame={"a": 1}, obj=["x"], idx=3),
           at(2, ev="free", node=0, frames="all"),
           at(3, ev="replicate", node=0, obj={"o": 1}, idx=[1], replica_node=[2], frame=None),
           at(4, ev="unreplicate", node=0, obj="f", idx=1, replica_node={"n": 1}, cause=["x"]),
           at(4.5, ev="unreplicate", node=0, obj="f", idx=1, replica_node=1, frame=[1]),
           at(5, ev="stale", node=0, task=PID, obj="f", idx=1, frame=[1])]
    assert len(list(story_lines(odd))) == 7
    assert len(list(story_lines(odd, Filters(page=PageFilter(obj="f", idx=1), task=PID)))) == 1
    assert stats_lines(summarize(odd))[-1].startswith("f:1 ")


_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=3),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner,
                                                                                   max_size=2), max_leaves=4)
_FIELDS = ("frames", "frame", "supplier", "replica_node", "to", "from", "obj", "idx", "addr", "length", "cause",
           "policy", "what", "write", "bytes", "targets", "phase", "acked", "lifetime_ns", "master", "local")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(EVENTS) + ["odd"]), st.integers(0, 10**9),
                          st.sampled_from([0, 1, "coordinator"]), st.one_of(st.none(), st.just(PID)),
                          st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=6)), max_size=12))
def test_any_well_formed_event_list_tells_a_story_and_counts(rows):
    events = sorted(({"ev": kind, "wall_ns": wall, "node": node, **({"task": task} if task else {}), **fields}
                     for kind, wall, node, task, fields in rows), key=lambda e: e["wall_ns"])
    assert len(list(story_lines(events))) == len(events)
    list(story_lines(events, Filters(page=PageFilter(obj="x", idx=1), task=PID)))
    list(story_lines(events, Filters(page=PageFilter(addr=3))))
    stats_lines(summarize(events))


def test_events_are_sorted_by_wall_time():
    lines = [json.dumps({"ev": "free", "wall_ns": w, "node": n, "frames": []}) for w, n in ((3, 0), (1, 1), (3, 2))]
    assert [e["node"] for e in parse_events(lines)] == [1, 0, 2]


# ---- stats ---------------------------------------------------------------------------------

def ping_pong(cycles: int, obj: str = "file7", idx: int = 42, start_ms: float = 0, nodes=(1, 2)) -> list[dict]:
    """Readers on `nodes` replicate the page, a writer collapses it: one event per replica."""
    out = []
    for c in range(cycles):
        t = start_ms + c * 10
        for k, n in enumerate(nodes):
            out.append(at(t + k * 0.1, ev="replicate", node=0, obj=obj, idx=idx, replica_node=n, frame=100 + n,
                          master=0))
        for k, n in enumerate(nodes):
            out.append(at(t + 2 + k * 0.01, ev="unreplicate", node=0, obj=obj, idx=idx, replica_node=n,
                          frame=100 + n, cause="write" if c % 4 else "reclaim"))
    return out


def test_stats_counts_and_the_thrashing_pages():
    events = sorted(ping_pong(8) + ping_pong(1, obj="lib", idx=0, start_ms=1, nodes=(3,)) + private_run(),
                    key=lambda e: e["wall_ns"])
    s = summarize(events, top=5)
    assert s["counts"]["replicate"] == {"0": 17} and s["counts"]["unreplicate"] == {"0": 17}
    pages = s["replication"]["thrashing_pages"]
    assert [(p["page"], p["cycles"], p["replications"], p["zaps"]) for p in pages] == [
        ("file7:42", 8, 16, 16), ("lib:0", 1, 1, 1)]
    assert pages[0]["causes"] == {"write": 12, "reclaim": 4}
    assert pages[0]["median_lifetime_ns"] == pytest.approx(1_955_000, abs=1)  # replicas lived 2 and 1.91 ms
    text = stats_lines(s, source="t.jsonl")
    assert text[0] == "t.jsonl: 44 events over 72.010 ms, 2 nodes, 1 task"
    assert text[-6:] == [
        "replica lifetimes: < 10 ms: 17",
        "",
        "thrashing pages: replicate -> unreplicate cycles",
        "page      cycles  replicas  median lifetime  zap causes",
        "file7:42       8        16          1.96 ms  write 12, reclaim 4",
        "lib:0          1         1             2 ms  reclaim 1",
    ]
    assert "replication: 17 replicas created, 17 replicas torn down (100% of the replications zapped)" in text


def test_stats_table_and_no_replication():
    text = stats_lines(summarize(private_run()), source="t.jsonl")
    assert text == [
        "t.jsonl: 10 events over 4.665 ms, 2 nodes, 1 task",
        "",
        "event   node 0  node 1  total",
        "fault        2       .      2",
        "alloc        1       1      2",
        "free         1       1      2",
        "access       1       .      1",
        "policy       1       .      1",
        "task         2       .      2",
        "total        8       2     10",
        "",
        "no replication events",
    ]
    assert stats_lines(summarize([]), source="e") == ["e: 0 events over 0.000 ms, 0 nodes, 0 tasks"]


def test_top_limits_the_thrashing_list():
    events = sorted(ping_pong(3) + ping_pong(2, obj="b", idx=1, start_ms=1), key=lambda e: e["wall_ns"])
    s = summarize(events, top=1)
    assert [p["page"] for p in s["replication"]["thrashing_pages"]] == ["file7:42"]
    assert "thrashing pages (top 1 of 2): replicate -> unreplicate cycles" in stats_lines(s)


# ---- top -----------------------------------------------------------------------------------

def snap(t_s: float, hit: int, miss: int, faults: int, migrated: int | None = None, repl: int = 0) -> topview.Snapshot:
    vm0 = {"nr_free_pages": 900, "pgfault": faults, "nr_repl_pages": repl}
    if migrated is not None:
        vm0["pgmigrate_success"] = migrated
    ns0 = {"numa_hit": hit, "numa_miss": miss, "local_node": 30, "other_node": 10}
    stats = {
        0: {"numastat": ns0, "vmstat": vm0, "frames_free": 900, "frames_total": 1000,
            "tasks": {PID: {"pages": {0: 75, 1: 25}, "clock_ns": 4_484_000, "faults": 100}}},
        1: {"numastat": {"numa_hit": 25}, "vmstat": {}, "frames_free": 975, "frames_total": 1000, "tasks": {}},
    }
    tasks = [{"task_id": PID, "pid": PID, "comm": "memhog", "cpu": 1, "node": 0, "cpuset": "/"}]
    return topview.Snapshot(t_s=t_s, cluster="c1", state="up", node_states={0: "up", 1: "up", 2: "dead"},
                            stats=stats, tasks=tasks)


def test_top_rates_from_two_snapshots():
    rows = topview.node_rows(snap(12.0, 300, 20, 150, migrated=40, repl=3), snap(10.0, 100, 10, 50, migrated=0))
    assert rows[0] == {"node": 0, "state": "up", "used": 100, "free": 900, "total": 1000, "replicas": 3,
                       "migrate_s": 20.0, "hit_s": 100.0, "miss_s": 5.0, "fault_s": 50.0, "remote": ("alloc", 0.25)}
    assert rows[1]["fault_s"] == 0.0 and rows[1]["migrate_s"] is None and rows[1]["remote"] is None
    assert rows[2] == {"node": 2, "state": "dead", **dict.fromkeys(
        ("used", "free", "total", "replicas", "migrate_s", "hit_s", "miss_s", "fault_s", "remote"))}
    first = topview.node_rows(snap(10.0, 100, 10, 50))
    assert first[0]["hit_s"] is None and first[0]["migrate_s"] is None
    backwards = topview.node_rows(snap(12.0, 5, 0, 0), snap(10.0, 100, 10, 50))
    assert backwards[0]["hit_s"] is None  # the node restarted: no rate


def test_top_remote_share_prefers_access_counters():
    s = snap(1.0, 1, 0, 0)
    s.stats[0]["vmstat"].update({"numa_access_local": 60, "numa_access_remote": 40})
    assert topview.node_rows(s)[0]["remote"] == ("access", 0.4)


def test_top_task_rows_and_frame():
    assert topview.task_rows(snap(1.0, 1, 0, 0)) == [
        {"task": PID, "comm": "memhog", "cpu": 1, "node": 0, "cpuset": "/", "clock_ns": 4_484_000, "faults": 100,
         "pages": {0: 75, 1: 25}, "total": 100, "locality": 0.75}]
    console = Console(width=150, file=io.StringIO(), color_system=None)
    console.print(topview.render(snap(12.0, 300, 20, 150, migrated=40), snap(10.0, 100, 10, 50, migrated=0), 1.0))
    out = console.file.getvalue()
    assert out.splitlines()[0] == "numa-emu top  cluster c1 (up), 3 nodes, 1 task, every 1 s; q quits"
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["0"] == ["0", "up", "100", "900", "10.0", "0", "20.0", "100", "5.0", "50.0", "25.0"]
    assert rows["1"] == ["1", "up", "25", "975", "2.5", "0", "-", "0.0", "-", "0.0", "-"]
    assert rows["2"] == ["2", "dead"] + ["-"] * 9
    assert rows["311"] == ["311", "memhog", "1", "0", "4.48", "ms", "100", "100", "N0=75", "N1=25", "75.0"]


def test_top_with_no_tasks_says_so():
    s = snap(1.0, 1, 0, 0)
    empty = topview.Snapshot(t_s=1.0, cluster="c1", state="up", node_states=s.node_states, stats=s.stats, tasks=[])
    console = Console(width=150, file=io.StringIO(), color_system=None)
    console.print(topview.render(empty))
    assert "no tasks attached" in console.file.getvalue()
