"""The trace of a replicate / write / unreplicate cycle: exactly the expected events for the page,
in order, and `trace show --page` tells that story; `trace stats` counts the cycle."""
from __future__ import annotations

import io
import json

import pytest

from numa_emu.trace_recorder import Recorder

pytestmark = pytest.mark.cluster
PAGE = 4096


def test_replicate_write_unreplicate_cycle_is_traced_in_order(cluster_factory, puppets, cli, tmp_path):
    c = cluster_factory("default-4n")
    writer = puppets(c, 0)
    writer.do("open", name="f", create=True, size=PAGE)
    writer.do("pwrite", name="f", offset=0, data="41" * 16)
    reader = puppets(c, 3)
    reader.do("open", name="f")
    out = io.StringIO()
    recorder = Recorder(c.info, out)
    recorder.configure(True)
    try:
        writer.do("fsync", name="f")
        assert reader.do("pread", name="f", offset=0, length=2) == "4141"
        writer.do("pwrite", name="f", offset=0, data="42")
        recorder.drain(final=True)
    finally:
        recorder.configure(False)
        recorder.close()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    page = [e for e in events if e.get("obj") == "file:f" and e.get("idx") == 0]
    story = [(e["ev"], e.get("phase"), e.get("cause")) for e in page]
    assert story == [
        # fsync: page_mkclean first write-protects the writer's mapping, acknowledged, then writes back
        ("shootdown", "sent", "writeback"), ("shootdown", "done", "writeback"), ("shootdown", "acked", "writeback"),
        ("writeback", None, None),
        ("replicate", None, None),  # the remote read of the clean page
        # the write: every replica mapping shot down and acknowledged before the replica is freed
        ("shootdown", "sent", "write"), ("shootdown", "done", "write"), ("shootdown", "acked", "write"),
        ("unreplicate", None, "write"),
    ]
    assert page[1]["node"] == 0 and page[1]["write_protect"] is True
    replicate = page[4]
    assert replicate["replica_node"] == 3 and replicate["master"] == 0
    assert page[6]["node"] == 3 and page[6]["unmapped"] == 0  # pread maps no task entry, only the cache
    assert page[8]["replica_node"] == 3 and page[8]["lifetime_ns"] > 0
    trace = tmp_path / "cycle.jsonl"
    trace.write_text(out.getvalue())
    shown = cli("trace", "show", str(trace), "--page", "file:f:0", check=True).stdout.splitlines()
    # the nine page events, plus the replica frame's allocation and free linked to the page
    assert len(shown) == 11
    assert [("copied from node 0" in line) for line in shown].count(True) == 1  # one replication
    assert "allocated frame" in shown[4] and "node 3" in shown[4]
    assert "torn down (write)" in shown[-1]
    assert any("freed" in line for line in shown[-4:-1])  # the replica is freed by its shootdown, before the ack
    stats = json.loads(cli("trace", "stats", str(trace), "--json", check=True).stdout)
    assert stats["replication"]["replications"] == 1 and stats["replication"]["zaps"] == 1
    assert sum(stats["counts"]["shootdown"].values()) == 6
