"""A file's shared policy (Linux shmem's shared policy; Lee's shared policy for mapped files):
set through the client API, the CLI and memtoy's +shared, it places the file's page-cache pages
whoever faults them first, and leaves pages already cached where they are."""
from __future__ import annotations

import numa_emu
import pytest
from numa_emu.protocol.errors import NumaEmuError

pytestmark = pytest.mark.cluster
PAGE = 4096


@pytest.fixture
def four(cluster_factory):
    return cluster_factory("default-4n")


def test_interleave_shared_policy_places_pages_by_file_index(four):
    with numa_emu.attach(0, cluster=four.name) as task:
        task.set_mempolicy("bind", "1")  # the reader's own policy loses to the file's
        f = task.open("il", create=True, size=8 * PAGE)
        f.set_policy("interleave", "0-3")
        region = f.mmap()
        region.touch(write=True)  # writable faults map the masters (no replicas)
        assert region.where() == [0, 1, 2, 3, 0, 1, 2, 3]
        assert f.pread(3 * PAGE, 4) == b"\0" * 4


def test_pread_allocates_by_the_shared_policy_and_cached_pages_stay(four):
    with numa_emu.attach(0, cluster=four.name) as task:
        f = task.open("b", create=True, size=4 * PAGE)
        f.pwrite(0, b"first")  # page 0 cached on node 0 by the task's default (local) policy
        f.set_policy("bind", "2")
        f.pwrite(2 * PAGE, b"third")  # page 2 follows the shared policy
        region = f.mmap()
        region.touch(write=True)
        assert region.where() == [0, 2, 2, 2]
        assert region.read(0, 5) == b"first" and region.read(2 * PAGE, 5) == b"third"
        f.set_policy("default")  # cleared: the next new page is the reader's again
        g = task.open("b2", create=True, size=PAGE)
        assert g.mmap().where() == [None]


def test_bad_shared_policies_are_refused_and_change_nothing(four):
    with numa_emu.attach(0, cluster=four.name) as task:
        f = task.open("x", create=True, size=2 * PAGE)
        f.set_policy("preferred", "3")
        with pytest.raises(NumaEmuError) as exc:
            f.set_policy("bind", [7])
        assert exc.value.code.value == "EINVAL"
        with pytest.raises(NumaEmuError) as exc:
            f.set_policy("bind", [])
        assert exc.value.code.value == "EINVAL"
        region = f.mmap()
        region.touch(write=True)
        assert region.where() == [3, 3]  # the preferred policy set first still holds


def test_cli_sets_and_lists_the_shared_policy(four, cli):
    with numa_emu.attach(0, cluster=four.name) as task:
        task.open("c", create=True, size=PAGE)
    proc = cli("file", "--name", four.name, "policy", "c", "interleave", "1-2")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "file c: shared policy interleave:1-2\n", "")
    listing = cli("file", "--name", four.name, "ls").stdout.splitlines()
    assert listing[1].split() == ["c", str(PAGE), "0", "0", "interleave:1-2"]
    bad = cli("file", "--name", four.name, "policy", "nosuch", "bind", "0")
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1 and "no file 'nosuch'" in bad.stderr
    bad = cli("file", "--name", four.name, "policy", "c", "sideways", "0")
    assert bad.returncode == 3 and "unknown policy 'sideways'" in bad.stderr
    proc = cli("file", "--name", four.name, "policy", "c", "default")
    assert proc.stdout == "file c: shared policy -\n"


def test_memtoy_shared_flag_sets_the_files_policy(four, cli, tmp_path):
    with numa_emu.attach(0, cluster=four.name) as task:
        task.open("m", create=True, size=4 * PAGE)
    script = tmp_path / "shared.mt"
    script.write_text("file m\nmap m\nmbind m bind+shared 3\ntouch m write\nwhere m\n")
    proc = cli("memtoy", "--name", four.name, "--cpu", "0", "--where-lines", "-f", str(script))
    assert proc.returncode == 0, proc.stderr
    assert "file m: shared policy set" in proc.stdout
    assert [line.split()[-1] for line in proc.stdout.splitlines() if line[:1].isdigit()] == ["3", "3", "3", "3"]
