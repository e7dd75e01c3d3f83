"""`file import`: the client streams a host file into the store in chunks (numa_emu.fileimport);
the coordinator takes only well-formed chunks, in order, and never opens a host path."""
from __future__ import annotations

import os

import pytest

import numa_emu
from numa_emu.protocol.errors import ErrorCode, NumaEmuError
from numa_emu.protocol.messages import pagecache as pc
from numa_emu.protocol.topology_shapes import from_cli


@pytest.fixture
def two(cluster_factory):
    return cluster_factory(from_cli(2, 1, "16MiB"))


def test_cli_import_of_a_file_of_several_chunks_reads_back_exactly(two, cli, tmp_path):
    data = os.urandom(2 * pc.IMPORT_CHUNK_BYTES + 12345)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    proc = cli("file", "--name", two.name, "import", str(src), "big", check=True)
    assert proc.stdout == f"imported {src} as big ({len(data)} bytes)\n"
    with numa_emu.attach(0, cluster=two.name) as task:
        f = task.open("big")
        assert f.size == len(data)
        assert f.pread(pc.IMPORT_CHUNK_BYTES - 10, 4096) == data[pc.IMPORT_CHUNK_BYTES - 10:pc.IMPORT_CHUNK_BYTES + 4086]
        assert f.pread(len(data) - 100, 100) == data[-100:]
    assert (two.info.dir / "store" / "big").read_bytes() == data
    assert sorted(p.name for p in (two.info.dir / "store").iterdir()) == ["big"]  # no upload left behind
    again = cli("file", "--name", two.name, "import", str(src), "big")
    assert (again.returncode, again.stderr) == (3, "numa-emu: error: file 'big' exists in the store already\n")
    missing = cli("file", "--name", two.name, "import", str(tmp_path / "nope"), "nope")
    assert (missing.returncode, missing.stderr) == (3, f"numa-emu: error: no file {tmp_path / 'nope'} to import\n")
    folder = cli("file", "--name", two.name, "import", str(tmp_path), "dir")
    assert (folder.returncode, folder.stderr) == (3, f"numa-emu: error: cannot import {tmp_path}: "
                                                     "Is a directory\n")


def test_an_empty_file_imports_as_an_empty_file(two, tmp_path):
    from numa_emu.fileimport import import_file

    (tmp_path / "empty").write_bytes(b"")
    with two.client() as client:
        assert import_file(client, str(tmp_path / "empty"), "empty")["size"] == 0
    assert (two.info.dir / "store" / "empty").read_bytes() == b""


@pytest.mark.parametrize("change, code, message", [
    ({"upload": "../../x"}, ErrorCode.EINVAL, "bad upload id '../../x': 8 to 64 hex digits"),
    ({"name": "../x"}, ErrorCode.EINVAL, "bad file name '../x': a plain name, no '/', not starting with '.'"),
    ({"data": b"x" * (pc.IMPORT_CHUNK_BYTES + 1)}, ErrorCode.EMSGSIZE,
     f"an import chunk carries at most {pc.IMPORT_CHUNK_BYTES} bytes, got {pc.IMPORT_CHUNK_BYTES + 1}"),
    ({"offset": 5}, ErrorCode.ENOENT, "no upload 0123456789abcdef in progress (start at offset 0)"),
    ({"offset": -1}, ErrorCode.EINVAL, "file size must be between 0 and 1099511627776 bytes, got -1"),
])
def test_a_bad_chunk_gets_one_clear_error_and_stores_nothing(two, change, code, message):
    chunk = {"name": "f", "upload": "0123456789abcdef", "offset": 0, "data": b"abc", "done": True, **change}
    with two.client() as client:
        with pytest.raises(NumaEmuError) as err:
            client.call(pc.FileImport(**chunk))
        assert (err.value.code, err.value.message) == (code, message)
        assert client.call(pc.FileList()).files == []
    assert list((two.info.dir / "store").iterdir()) == []


def test_chunks_out_of_order_are_refused_and_the_upload_can_go_on(two):
    upload = {"name": "f", "upload": "00112233aabbccdd"}
    with two.client() as client:
        assert client.call(pc.FileImport(**upload, offset=0, data=b"abc", done=False)).kind == "ok"
        with pytest.raises(NumaEmuError) as err:
            client.call(pc.FileImport(**upload, offset=10, data=b"def", done=True))
        assert (err.value.code, err.value.message) == (
            ErrorCode.EINVAL, "upload 00112233aabbccdd holds 3 bytes, not 10: send the chunks in order")
        with pytest.raises(NumaEmuError) as err:
            client.call(pc.FileImport(**upload, offset=0, data=b"abc", done=False))
        assert err.value.code == ErrorCode.EEXIST
        assert client.call(pc.FileImport(**upload, offset=3, data=b"def", done=True)).file["size"] == 6
    assert (two.info.dir / "store" / "f").read_bytes() == b"abcdef"
