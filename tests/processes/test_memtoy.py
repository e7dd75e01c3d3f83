"""`numa-emu memtoy` on a real 2-node cluster: scripts (-f and a pipe), placement seen by `where`,
errors that keep the session alive, a task that leaves no page behind, and the interactive shell
driven through a pseudo-terminal."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from numa_emu import processes
from numa_emu.protocol.messages.tasks import ClusterStats
from tests.helpers import poll_until

pytestmark = pytest.mark.cluster

TWO_NODES = "full,2,mem=16MiB"  # cpus 0-1 on node 0, cpus 2-3 on node 1
WHERE_LINE = re.compile(r"^(\d+ (\d+|-)|\.\.\. \d+ more pages?)$")


def _where_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if WHERE_LINE.match(line)]


def _frames(c) -> dict[int, tuple[int, int]]:
    with c.client(timeout_s=3.0) as client:
        stats = client.call(ClusterStats())
    return {int(node): (s["frames_free"], s["frames_total"]) for node, s in stats.nodes.items()}


def _all_free(c) -> bool:
    return all(free == total for free, total in _frames(c).values())


@pytest.fixture
def two_nodes(cluster_factory):
    return cluster_factory(TWO_NODES)


def test_script_interleave_bind_and_absent_pages(cli, two_nodes, tmp_path):
    script = tmp_path / "place.mt"
    script.write_text(
        "# interleave over both nodes, then bind a part of another segment to node 1\n"
        "anon a 8p\n"
        "map a\n"
        "mbind a interleaved 0-1\n"
        "touch a write\n"
        "where a\n"
        "anon b 6p\n"
        "map b\n"
        "mbind b bind 1\n"
        "touch b 0 4p write\n"
        "where b\n"
        "show\n")
    proc = cli("memtoy", "--name", two_nodes.name, "--cpu", "0", "--where-lines", "-f", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert _where_lines(proc.stdout) == [
        "0 0", "1 1", "2 0", "3 1", "4 0", "5 1", "6 0", "7 1",  # interleaved by page offset
        "0 1", "1 1", "2 1", "3 1", "4 -", "5 -",  # bound to node 1; the last two never touched
    ]
    touched = [line for line in proc.stdout.splitlines() if line.startswith("memtoy: touched")]
    assert touched[0].startswith("memtoy: touched 8 pages in ") and touched[0].endswith("(8 faults)")
    assert touched[1].startswith("memtoy: touched 4 pages in ")
    show = [line.split() for line in proc.stdout.splitlines() if line.startswith(("name ", "a ", "b "))]
    assert show[0] == ["name", "type", "share", "size", "address", "policy", "pages"]
    assert show[1][:4] == ["a", "anon", "private", "32KiB"] and show[1][5:] == ["interleave:0-1", "N0=4", "N1=4"]
    assert show[2][5:] == ["bind:1", "N1=4"]
    assert poll_until(lambda: _all_free(two_nodes), 5.0, what="every frame free after memtoy detached")


def test_where_shows_64_pages_by_default(cli, two_nodes):
    proc = cli("memtoy", "--name", two_nodes.name, "--cpu", "2", "--where-lines",
               input="anon big 70p\nmap big\ntouch big 0 2p write\nwhere big\nwhere big 68p 10p\n")
    assert proc.returncode == 0, proc.stderr
    lines = _where_lines(proc.stdout)
    # the default window: pages 0-63 (cpu 2 is on node 1: first touch there), then the count left out
    assert lines[:65] == ["0 1", "1 1", *[f"{i} -" for i in range(2, 64)], "... 6 more pages"]
    assert lines[65:] == ["68 -", "69 -"]  # an explicit range is cut at the end of the segment


def test_where_prints_memtoys_layout_by_default(cli, two_nodes):
    proc = cli("memtoy", "--name", two_nodes.name, "--cpu", "2",
               input="anon big 70p\nmap big\ntouch big 0 2p write\nwhere big 6p 4p\nwhere big\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    header = "page offset    +00 +01 +02 +03 +04 +05 +06 +07"
    first = out.index(header)
    assert re.fullmatch(r"a 0x[0-9a-f]{16} 0x000000046000 0x000000000000  rw- private big", out[first - 1])
    assert out[first + 1:first + 3] == ["           0: " + " " * 4 * 6 + "   -   -", "           8:    -   -"]
    second = out.index(header, first + 1)  # the default window: 64 pages, eight lines, cut silently
    assert out[second - 1] == out[first - 1]
    assert out[second + 1] == "           0:    1   1" + "   -" * 6
    assert [line[:14] for line in out[second + 1:second + 9]] == [f"{8 * i:12x}: " for i in range(8)]
    assert len(out) == second + 9


def test_errors_keep_the_session_alive_and_fail_the_script(cli, two_nodes, tmp_path):
    script = tmp_path / "bad.mt"
    script.write_text(
        "anon a 4p\n"
        "frobnicate\n"  # 2: unknown command
        "touch\n"  # 3: missing argument
        "anon c 3x\n"  # 4: bad size
        "touch nowhere\n"  # 5: unknown segment
        "map a\n"
        "mbind a bind 7\n"  # 7: bad node list
        "mbind a bind+shared 1\n"  # 8: a shared policy needs a file segment
        "file /no/such/file.bin\n"  # 9: neither in the store nor on the host
        "migrate 1 5\n"  # 10: bad node list
        "touch a write\n"
        "where a\n"
        "pid\n")
    proc = cli("memtoy", "--name", two_nodes.name, "--cpu", "0", "--where-lines", "-f", str(script))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = proc.stderr.splitlines()
    assert errors == [
        f"memtoy: {script}:2: unrecognized command 'frobnicate' (type 'help' for the list)",
        f"memtoy: {script}:3: touch: missing <seg> (usage: touch <seg> [<off> <len>] [read|write])",
        f"memtoy: {script}:4: anon: bad size '3x': expected a number with an optional k, m, g or p (pages) suffix",
        f"memtoy: {script}:5: no such segment: nowhere",
        f"memtoy: {script}:7: mbind: bad node list '7': node ids must be <= 1",
        f"memtoy: {script}:8: mbind of segment a: +shared sets a file's shared policy; a is not a file segment",
        f"memtoy: {script}:9: file segment file.bin failed - ENOENT: no file 'file.bin' in the store "
        "(create it, or numa-emu file import)",
        f"memtoy: {script}:10: migrate: bad node list '5': node ids must be <= 1",
        f"memtoy: {script}: 8 commands failed (lines 2, 3, 4, 5, 7, 8, 9, 10)",
    ]
    # the commands after the errors still ran
    assert _where_lines(proc.stdout) == ["0 0", "1 0", "2 0", "3 0"]
    assert re.search(r"^memtoy: pid = \d+ \(cpu 0, node 0\)$", proc.stdout, re.M)
    assert poll_until(lambda: _all_free(two_nodes), 5.0, what="every frame free after a failed script")


def test_stdin_pipe_policy_numa_time_and_no_page_left_behind(cli, two_nodes):
    proc = cli("memtoy", "--name", two_nodes.name, "--cpu", "0", input=(
        "mpol interleaved 0-1\n"
        "mpol\n"
        "anon a 4p\n"
        "map a\n"
        "touch a\n"
        "numa\n"
        "time\n"
        "unmap a\n"
        "where a\n"  # 9: not mapped any more
        "quit\n"
        "pid\n"))  # after quit: never runs
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["memtoy: <stdin>:9: segment a not mapped",
                                        "memtoy: <stdin>: 1 command failed (line 9)"]
    out = proc.stdout.splitlines()
    assert "memtoy: task policy = interleave:0-1" in out
    assert "available: 2 nodes (0-1)" in out and "node 1 cpus: 2 3" in out
    assert any(re.fullmatch(r"memtoy: virtual time = [1-9]\d* ns \(.+\)", line) for line in out)
    assert not any("pid =" in line for line in out)
    assert poll_until(lambda: _all_free(two_nodes), 5.0, what="every frame free after memtoy detached")


def test_cluster_not_up_is_one_line(cli, cluster_name):
    proc = cli("memtoy", "--name", cluster_name, input="pid\n")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"numa-emu: error: cluster '{cluster_name}' is not up; "
                                   f"start it with: numa-emu up --name {cluster_name}")


def _read_until(fd: int, token: bytes, timeout_s: float = 10.0) -> bytes:
    deadline, buf = time.monotonic() + timeout_s, b""
    while token not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {token!r}; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"end of output before {token!r}; got {buf!r}")
            buf += chunk
    return buf


def test_interactive_shell_on_a_pty(two_nodes, home):
    master, slave = pty.openpty()
    env = dict(os.environ, NUMA_EMU_HOME=str(home), TERM="dumb")
    proc = subprocess.Popen([sys.executable, "-m", "numa_emu.cli.main", "memtoy", "--name", two_nodes.name,
                             "--cpu", "2"], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    try:
        banner = _read_until(master, b"memtoy> ")
        assert f"memtoy on cluster {two_nodes.name}: pid {proc.pid}, cpu 2 (node 1)".encode() in banner
        os.write(master, b"pid\n")
        assert re.search(rb"memtoy: pid = %d \(cpu 2, node 1\)" % proc.pid, _read_until(master, b"memtoy> "))
        os.write(master, b"bogus\n")
        assert b"memtoy: unrecognized command 'bogus'" in _read_until(master, b"memtoy> ")
        os.write(master, b"help where\n")
        assert b"where <seg> [<off> <len>]" in _read_until(master, b"memtoy> ")
        os.write(master, b"quit\n")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        processes.reap_children()
    history = (home / ".memtoy_history").read_text().splitlines()
    assert history[-4:] == ["pid", "bogus", "help where", "quit"]


def test_file_segment_from_a_host_path_is_imported_and_read_through_the_page_cache(cli, two_nodes, tmp_path):
    host = tmp_path / "data.bin"
    host.write_bytes(bytes(range(256)) * 48)  # 3 pages
    script = f"file {host}\nmap data.bin\nmbind data.bin bind 0\ntouch data.bin read\nwhere data.bin\n"
    proc = cli("memtoy", "--name", two_nodes.name, "--cpu", "1", "--where-lines", input=script)
    assert proc.returncode == 0, proc.stderr
    assert _where_lines(proc.stdout) == ["0 0", "1 0", "2 0"]
    listing = cli("file", "--name", two_nodes.name, "ls", "--json", check=True).stdout
    assert '"name": "data.bin"' in listing and '"size": 12288' in listing
