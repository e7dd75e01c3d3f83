"""With the unsafe 2007 ordering, stale accesses happen on a real cluster and every one is counted.
(Readers on every node against a writer with the default protocol, once met here by luck under
jitter, are searched over seeds by the simulator: tests/sim/test_protocol_races.py.)"""
from __future__ import annotations

import pytest

from tests.helpers import poll_until, vm_total

pytestmark = pytest.mark.cluster


def test_unsafe_unreplicate_allows_stale_accesses_and_counts_them(cluster_factory, cli, puppets):
    """The 2007 ordering, step by step: the replica is freed at once and its unmap comes 2 s later,
    so the reader's next access goes through a freed frame: caught by the generation, counted."""
    c = cluster_factory("default-4n")
    writer = puppets(c, 0)
    writer.do("open", name="h", create=True, size=4096)
    writer.do("pwrite", name="h", offset=0, data="41" * 8)
    writer.do("fsync", name="h")
    reader = puppets(c, 3)
    reader.do("open", name="h")
    reader.do("map", name="h", **{"as": "m"}, writable=False)
    assert reader.do("read", **{"as": "m"}, offset=0, length=1) == "41"
    assert vm_total(c, "nr_repl_pages") == 1
    cli("sysctl", "--name", c.name, "vm.unsafe_unreplicate=1", "vm.unsafe_unmap_delay_ms=2000", check=True)
    writer.do("pwrite", name="h", offset=0, data="42")
    assert reader.do("where", **{"as": "m"}) == [3]  # still mapped: the unmap has not come yet
    reader.do("read", **{"as": "m"}, offset=0, length=1)  # through the freed replica frame
    assert vm_total(c, "repl_stale_access") == 1
    assert vm_total(c, "pgreplicazap_write") == 1 and vm_total(c, "nr_repl_pages") == 0
    poll_until(lambda: reader.do("where", **{"as": "m"}) == [None], timeout_s=10, what="the late unmap")
    assert reader.do("read", **{"as": "m"}, offset=0, length=1) == "42"
    assert vm_total(c, "repl_stale_access") == 1
