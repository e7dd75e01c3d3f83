"""One file system across hosts (docs/design.md#hosts): the store is the coordinator's, and a
node of another host fills and writes back page-cache pages through it (store.read, store.write).
Fake hosts a and b as in test_hosts.py: nodes 0-1 on a, 2-3 on b, each host its own NUMA_EMU_HOME,
so a store folder on host b would be another file system: these tests would read zeros there."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from numa_emu.nodes.core import directory_home
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.hosts import hosts_in_file
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.messages import tasks as tm
from numa_emu.protocol.topology_shapes import from_cli
from tests.helpers import Puppet
from tests.processes.test_hosts import two_host_topology

pytestmark = pytest.mark.cluster
PAGE = 4096
HOST_B = (2, 3)


@pytest.fixture
def two_hosts(cluster_factory, home):
    path = two_host_topology(home)
    return cluster_factory(str(path), hosts=hosts_in_file(str(path), 4), launcher="local")


@pytest.fixture
def on_host(home, monkeypatch):
    """on_host(cluster, host, cpu) -> a Puppet task run on fake host `host` (its NUMA_EMU_HOME and
    host name), attached through that host's connection file; detached at teardown."""
    made: list[Puppet] = []

    def make(cluster, host: str, cpu: int) -> Puppet:
        with monkeypatch.context() as env:
            env.setenv("NUMA_EMU_HOME", str(home / "hosts" / host))
            env.setenv("NUMA_EMU_HOST", host)
            made.append(Puppet(cpu, cluster=cluster.name, home=home))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _name_homed_on_b(pages: int) -> str:
    """A file name whose page 0 has its directory home on host b, and whose `pages` pages have
    homes on both hosts (each host's path is crossed)."""
    for i in range(1000):
        name = f"f{i}"
        homes = [directory_home(f"file:{name}", p, 4) for p in range(pages)]
        if homes[0] in HOST_B and any(h not in HOST_B for h in homes):
            return name
    raise AssertionError("no name found")


def _pread(task: Puppet, name: str, size: int) -> bytes:
    return bytes.fromhex(task.do("pread", name=name, offset=0, length=size))


def _pread_at(task: Puppet, name: str, offset: int, length: int) -> bytes:
    return bytes.fromhex(task.do("pread", name=name, offset=offset, length=length))


def _ls(cli, cluster) -> dict:
    out = cli("file", "--name", cluster.name, "ls", "--json", check=True).stdout
    return {f["name"]: f["size"] for f in json.loads(out)}


def test_an_imported_file_homed_on_host_b_reads_back_exactly_on_both_hosts(two_hosts, home, cli, puppets, on_host,
                                                                           tmp_path):
    pages = 6
    name = _name_homed_on_b(pages)
    data = os.urandom(pages * PAGE - 123)  # a last partial page
    (tmp_path / "src").write_bytes(data)
    cli("file", "--name", two_hosts.name, "import", str(tmp_path / "src"), name, check=True)
    b = on_host(two_hosts, "b", 3)
    assert b.node == 3
    assert b.do("open", name=name) == len(data)
    assert _pread(b, name, len(data)) == data
    a = puppets(two_hosts, 0)  # host a, the coordinator's
    a.do("open", name=name)
    assert _pread(a, name, len(data)) == data
    assert _ls(cli, two_hosts) == {name: len(data)}
    assert not (home / "hosts" / "b" / two_hosts.name / "store").exists()  # one store: the coordinator's


def test_pages_written_on_host_b_reach_the_one_store_by_fsync_and_by_down(two_hosts, home, cli, puppets, on_host):
    pages = 4
    name = _name_homed_on_b(pages)
    size = pages * PAGE - 1000
    stored = two_hosts.info.dir / "store" / name
    b = on_host(two_hosts, "b", 3)
    assert b.do("open", name=name, create=True, size=size) == size
    first = os.urandom(size)
    b.do("pwrite", name=name, offset=0, data=first.hex())  # masters on node 3, host b
    b.do("fsync", name=name)
    assert stored.read_bytes() == first  # the homes of host b wrote through the coordinator
    second = os.urandom(size)
    b.do("pwrite", name=name, offset=0, data=second.hex())  # dirty again, not synced: `down` writes it
    b.close()
    two_hosts.stop()
    assert stored.read_bytes() == second
    assert not (home / "hosts" / "b" / two_hosts.name / "store").exists()
    two_hosts.start()  # the same cluster again: the store is kept
    assert _ls(cli, two_hosts) == {name: size}
    b = on_host(two_hosts, "b", 2)
    b.do("open", name=name)
    assert _pread(b, name, size) == second
    a = puppets(two_hosts, 1)
    a.do("open", name=name)
    assert _pread(a, name, size) == second


def test_reclaim_on_host_b_writes_a_dirty_page_back_to_the_one_store(cluster_factory, home, on_host):
    frames = 256  # 1 MiB per node: reading a file twice the cluster's memory reclaims every node
    path = two_host_topology(home)
    path.write_text(path.read_text().replace('mem = "512MiB"', 'mem = "1MiB"'))
    c = cluster_factory(str(path), hosts=hosts_in_file(str(path), 4), launcher="local")
    pages = 2 * 4 * frames
    big = [(f"big:{i:06d};".encode() * PAGE)[:PAGE] for i in range(pages)]
    (c.info.dir / "store" / "big").write_bytes(b"".join(big))
    name, size = "d", 4 * PAGE
    on_b = [i for i in range(4) if directory_home(f"file:{name}", i, 4) in HOST_B]
    assert on_b  # the pages whose directory home is on host b: only those are written
    dirty = {i: os.urandom(PAGE) for i in on_b}
    b = on_host(c, "b", 3)
    b.do("open", name=name, create=True, size=size)
    for i, data in dirty.items():  # masters on node 3, directory homes on host b
        b.do("pwrite", name=name, offset=i * PAGE, data=data.hex())
    assert (c.info.dir / "store" / name).read_bytes() == bytes(size)  # not written back yet
    b.do("open", name="big")
    chunk = 16 * PAGE
    for off in range(0, pages * PAGE, chunk):  # pressure: node 3 is reclaimed over and over
        assert _pread_at(b, "big", off, chunk) == b"".join(big[off // PAGE:(off + chunk) // PAGE]), f"at {off}"
    with c.client() as client:
        vm = [d["vmstat"] for d in client.call(tm.ClusterStats()).nodes.values()]
    assert sum(v.get("nr_vmscan_write", 0) for v in vm) == len(dirty)  # the dirty pages, by reclaim
    want = b"".join(dirty.get(i, bytes(PAGE)) for i in range(4))
    assert (c.info.dir / "store" / name).read_bytes() == want
    assert _pread_at(b, name, 0, size) == want  # read back from the store


@pytest.mark.parametrize("msg, code, message", [
    (pc.StoreRead(name="../x", idx=0), ErrorCode.EINVAL,
     "bad file name '../x': a plain name, no '/', not starting with '.'"),
    (pc.StoreRead(name="f", idx=-1), ErrorCode.EINVAL, "page -1 of file 'f' is out of range: 0..268435455"),
    (pc.StoreWrite(name="f", idx=1 << 28, data=b"x", file_size=1), ErrorCode.EINVAL,
     "page 268435456 of file 'f' is out of range: 0..268435455"),
    (pc.StoreWrite(name="f", idx=0, data=b"x" * (PAGE + 1), file_size=PAGE), ErrorCode.EMSGSIZE,
     f"store.write carries at most a page ({PAGE} bytes), got {PAGE + 1}"),
    (pc.StoreWrite(name="f", idx=0, data=b"x", file_size=-5), ErrorCode.EINVAL,
     "file size must be between 0 and 1099511627776 bytes, got -5"),
    (pc.StoreWrite(name="nope", idx=0, data=b"x", file_size=1), ErrorCode.ENOENT,
     "no file 'nope' in the store to write page 0 of"),
])
def test_bad_store_requests_get_one_clear_error_and_the_store_is_unchanged(cluster_factory, msg, code, message):
    c = cluster_factory(from_cli(2, 1, "16MiB"))
    with c.client() as client:
        client.call(pc.FileOpen(name="f", create=True, size=10))
        with pytest.raises(NumaEmuError) as err:
            client.call(msg)
        assert (err.value.code, err.value.message) == (code, message)
        assert client.call(pc.StoreRead(name="f", idx=0)).data == bytes(PAGE)  # still serving
        client.call(pc.StoreWrite(name="f", idx=0, data=b"A" * PAGE, file_size=10))  # cut at the size
    assert sorted(p.name for p in (c.info.dir / "store").iterdir()) == ["f"]
    assert Path(c.info.dir / "store" / "f").read_bytes() == b"A" * 10
