"""One cluster on two hosts, for real on one machine (docs/design.md#hosts): fake hosts "a" and "b"
on loopback addresses 127.0.0.2 and 127.0.0.3, each with its own NUMA_EMU_HOME, so that ipc
cannot cross between them by accident; their agents started by the `local` launcher; nodes of
different hosts talk tcp with CURVE. The protocol's paths that matter run across the two hosts:
a remote read and write, a migration, a replication and its collapse, a node killed on one host."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import zmq

import numa_emu
from numa_emu.protocol.clusterdir import MARKER_FILE, make_private
from numa_emu.protocol.hosts import hosts_in_file
from numa_emu.protocol.keys import ClusterKeys
from numa_emu.protocol.messages import lifecycle as lc
from numa_emu.protocol.messages import tasks as tm
from tests.helpers import PuppetError, poll_until

pytestmark = pytest.mark.cluster
PAGE = 4096
HOSTS = {"a": "127.0.0.2", "b": "127.0.0.3"}


def two_host_topology(home: Path) -> Path:
    """default-4n with a [hosts] table: nodes 0-1 on host a, 2-3 on host b (the default spread)."""
    from numa_emu.catalog import builtin_topologies

    text = builtin_topologies()["default-4n"].read_text()
    tables = "".join(f'\n[hosts.{h}]\naddress = "{addr}"\nhome = "{home / "hosts" / h}"\n' for h, addr in HOSTS.items())
    path = home / "two-hosts.toml"
    path.write_text(text + tables)
    return path


@pytest.fixture
def two_hosts(cluster_factory, home):
    path = two_host_topology(home)
    c = cluster_factory(str(path), hosts=hosts_in_file(str(path), 4), launcher="local")
    yield c


def _stats(c) -> dict:
    with c.client() as client:
        return client.call(tm.ClusterStats()).nodes


def _vm(c) -> dict:
    return {n: d["vmstat"] for n, d in _stats(c).items()}


def _total(c, name: str) -> int:
    return sum(v.get(name, 0) for v in _vm(c).values())


def _processes_under(path: Path) -> list[str]:
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(path) in " ".join(proc.info["cmdline"] or []):
                out.append(" ".join(proc.info["cmdline"]))
        except psutil.Error:
            continue
    return out


def test_nodes_run_on_their_hosts_with_ipc_inside_a_host_and_curve_tcp_between(two_hosts, home, cli):
    st = json.loads(cli("status", "--name", two_hosts.name, "--json", check=True).stdout)
    assert [n["host"] for n in st["nodes"]] == ["a", "a", "b", "b"]
    for n in st["nodes"]:
        folder = home / "hosts" / n["host"] / two_hosts.name / "run"
        assert n["endpoint"] == f"ipc://{folder}/node-{n['id']}.sock"
        assert re.fullmatch(rf"tcp://{re.escape(HOSTS[n['host']])}:\d+", n["tcp_endpoint"])
        proc = psutil.Process(n["pid"])
        assert f"--cluster-dir {home / 'hosts' / n['host'] / two_hosts.name}" in " ".join(proc.cmdline())
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", st["coordinator"]["tcp_endpoint"])
    # each host's folder has the topology and the keys that came on its agent's stdin, owner-only
    for h in HOSTS:
        keys = home / "hosts" / h / two_hosts.name / "keys" / "cluster.key_secret"
        assert keys.read_bytes() == (two_hosts.info.dir / "keys" / "cluster.key_secret").read_bytes()
        assert keys.stat().st_mode & 0o777 == 0o600
    text = cli("status", "--name", two_hosts.name, check=True).stdout
    assert re.search(r"^\s+2\s+\d+\s+b\s+up", text, re.M), text


def test_remote_write_read_and_migration_across_hosts(two_hosts, puppets):
    task = puppets(two_hosts, 0)  # home node 0, host a
    task.do("mmap", **{"as": "far", "length": 2 * PAGE})
    task.do("mbind", mode="bind", nodes=[3], **{"as": "far"})  # its pages on host b
    data = bytes(range(256)) * 16
    task.do("write", **{"as": "far", "offset": 0, "data": data.hex()})
    task.do("write", **{"as": "far", "offset": PAGE, "data": data[::-1].hex()})
    assert task.do("where", **{"as": "far"}) == [3, 3]
    assert bytes.fromhex(task.do("read", **{"as": "far", "offset": 0, "length": 2 * PAGE})) == data + data[::-1]
    assert [v["nr_anon_pages"] for v in _vm(two_hosts).values()] == [0, 0, 0, 2]
    assert task.do("migrate_pages", old=[3], new=[1]) == 0  # back to host a, bytes intact
    assert task.do("where", **{"as": "far"}) == [1, 1]
    assert bytes.fromhex(task.do("read", **{"as": "far", "offset": 0, "length": 2 * PAGE})) == data + data[::-1]
    assert [v["nr_anon_pages"] for v in _vm(two_hosts).values()] == [0, 2, 0, 0]  # the old frames freed


def test_replication_and_its_collapse_across_hosts(two_hosts, puppets):
    writer = puppets(two_hosts, 0)  # host a
    writer.do("open", name="f", create=True, size=2 * PAGE)
    writer.do("pwrite", name="f", offset=0, data="41" * (2 * PAGE))
    writer.do("fsync", name="f")
    reader = puppets(two_hosts, 3)  # host b
    reader.do("open", name="f")
    reader.do("map", name="f", **{"as": "m"}, writable=False)
    assert reader.do("read", **{"as": "m"}, offset=PAGE + 5, length=3) == "414141"
    assert reader.do("where", **{"as": "m"}) == [None, 3]  # a replica on the reader's node
    v = _vm(two_hosts)
    assert v[3]["nr_repl_pages"] == 1 and v[3]["pgreplicated"] == 1
    writer.do("pwrite", name="f", offset=PAGE, data="4242")  # collapses it across the hosts
    assert _total(two_hosts, "nr_repl_pages") == 0 and _vm(two_hosts)[3]["pgreplicazap_write"] == 1
    assert reader.do("read", **{"as": "m"}, offset=PAGE, length=3) == "424241"


def test_a_node_killed_on_one_host_is_dead_and_its_pages_fail_with_eio(two_hosts, puppets, cli):
    task = puppets(two_hosts, 0)
    task.do("mmap", **{"as": "far", "length": PAGE})
    task.do("mbind", mode="bind", nodes=[2], **{"as": "far"})
    task.do("write", **{"as": "far", "offset": 0, "data": "ff"})
    cli("fault", "kill", "2", "--name", two_hosts.name, check=True)  # through host b's agent
    poll_until(lambda: two_hosts.status().nodes[2]["state"] == "dead", timeout_s=10.0, what="node 2 dead")
    with pytest.raises(PuppetError) as err:
        task.do("read", **{"as": "far", "offset": 0, "length": 1})
    assert re.fullmatch(r"EIO: node 2 is dead \(exited with status -9\): page 0x[0-9a-f]+ of task \d+ was there "
                        r"and is lost", str(err.value))
    assert [n["state"] for n in two_hosts.status().nodes] == ["up", "up", "dead", "up"]
    out = cli("node", "restart", "2", "--name", two_hosts.name, check=True).stdout  # host b forks it again
    assert re.fullmatch(r"node 2 restarted \(pid \d+\)\n", out)
    task.do("mmap", **{"as": "again", "length": PAGE})
    task.do("mbind", mode="bind", nodes=[2], **{"as": "again"})
    task.do("write", **{"as": "again", "offset": 0, "data": "5a"})
    assert task.do("read", **{"as": "again", "offset": 0, "length": 1}) == "5a"


def test_a_client_with_another_key_gets_no_answer_from_a_node_across_hosts(two_hosts):
    node = two_hosts.status().nodes[2]
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()  # the server's public key leaks
        sock.curve_serverkey = two_hosts.info.keys.public
        sock.connect(node["tcp_endpoint"])
        sock.send_multipart([b"NUMAEMU/1", b"\x80"])
        assert sock.poll(1000) == 0
        sock.close()
    finally:
        ctx.term()
    with two_hosts.client(endpoint=node["tcp_endpoint"]) as client:  # the cluster's key is let in
        assert client.call(lc.Ping()).name == "node 2"


ATTACH = """
import json, numa_emu
with numa_emu.attach() as task:
    far = task.mmap(4096)
    far.mbind("bind", [1])
    far.write(0, b"across")
    near = task.mmap(4096)
    near.write(0, b"here")
    print(json.dumps([task.node, far.read(0, 6).decode(), far.where(), near.read(0, 4).decode(), near.where()]))
"""


def _attach(env: dict) -> list:
    out = subprocess.run([sys.executable, "-c", ATTACH], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in (os.environ | env).items() if v is not None})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_task_attaches_from_any_host_and_lives_on_its_own_host(two_hosts, home):
    b_folder = home / "hosts" / "b" / two_hosts.name
    conn = json.loads((b_folder / "connection.json").read_text())  # written by host b's agent
    assert (conn["name"], conn["host"]) == (two_hosts.name, "b")
    assert conn["coordinator"] == two_hosts.status().coordinator["tcp_endpoint"]
    assert (b_folder / "connection.json").stat().st_mode & 0o777 == 0o600
    # on host b (its NUMA_EMU_HOME): found through b's connection file, home node on b
    assert _attach({"NUMA_EMU_HOME": str(home / "hosts" / "b"), "NUMA_EMU_CLUSTER": two_hosts.name}) == \
        [2, "across", [1], "here", [2]]
    # anywhere, with the connection file in the environment (a copy of the coordinator's, host a)
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    env = {"NUMA_EMU_HOME": str(elsewhere), "NUMA_EMU_HOST": "a", "NUMA_EMU_CLUSTER": None,
           "NUMA_EMU_CONNECTION": str(two_hosts.info.dir / "connection.json")}
    assert _attach(env) == [0, "across", [1], "here", [0]]
    env["NUMA_EMU_CONNECTION"] = (two_hosts.info.dir / "connection.json").read_text()  # or its text
    env["NUMA_EMU_HOST"] = "b"
    assert _attach(env) == [2, "across", [1], "here", [2]]
    env["NUMA_EMU_CONNECTION"] = "{not json"
    out = subprocess.run([sys.executable, "-c", ATTACH], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in (os.environ | env).items() if v is not None})
    assert out.returncode != 0 and "NUMA_EMU_CONNECTION: not a usable connection file" in out.stderr


def test_the_agent_of_the_coordinators_host_leaves_the_coordinators_folder_alone(cluster_factory, home,
                                                                                 cluster_name):
    # host a shares the coordinator's NUMA_EMU_HOME (no `home`): its agent works in the coordinator's folder
    path = two_host_topology(home)
    path.write_text(path.read_text().replace(f'home = "{home / "hosts" / "a"}"\n', ""))
    # host b's folder holds what a coordinator of an earlier run left there (hosts.json, its keys)
    stale = home / "hosts" / "b" / f"{cluster_name}-0"
    make_private(stale)
    (stale / MARKER_FILE).write_text("made by numa-emu up\n")
    (stale / "hosts.json").write_text("{}")
    ClusterKeys.create(stale)
    c = cluster_factory(str(path), hosts=hosts_in_file(str(path), 4), launcher="local")
    assert c.name == f"{cluster_name}-0"
    assert json.loads((stale / "connection.json").read_text())["host"] == "b"  # b's agent owns its folder
    data = json.loads((c.info.dir / "cluster.json").read_text())
    conn_path = c.info.dir / "connection.json"
    want = {"host": data["coordinator"]["host"], "coordinator": data["coordinator"]["tcp_endpoint"]}
    conn = json.loads(conn_path.read_text())  # the coordinator's, not rewritten by host a's agent
    assert {k: conn[k] for k in want} == want
    assert sorted(p.name for p in (c.info.dir / "run").glob("node-*.sock")) == ["node-0.sock", "node-1.sock"]
    # host a's agent leaves (its finally runs): the coordinator's way in, keys and sockets stay
    agent = next(a["pid"] for a in data["agents"] if a["host"] == "a")
    os.kill(agent, signal.SIGINT)
    poll_until(lambda: [n["state"] for n in c.status().nodes][:2] == ["dead", "dead"], timeout_s=10.0,
               what="host a's nodes dead with their agent")
    assert {k: json.loads(conn_path.read_text())[k] for k in want} == want
    assert (c.info.dir / "keys" / "cluster.key_secret").is_file() and (c.info.dir / "run").is_dir()


HOLD = """
import numa_emu, sys
task = numa_emu.attach()
far = task.mmap(2 * 4096)
far.mbind("bind", [1])
far.write(0, b"x" * 8192)
print(task.task_id, flush=True)
sys.stdin.read()
"""


def _tasks(c) -> list:
    with c.client() as client:
        return client.call(tm.TaskList()).tasks


def test_a_task_of_another_host_killed_by_sigkill_is_detached_by_its_hosts_agent(two_hosts, home):
    env = dict(os.environ, NUMA_EMU_HOME=str(home / "hosts" / "b"), NUMA_EMU_CLUSTER=two_hosts.name,
               NUMA_EMU_HOST="b")
    with subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          env=env) as proc:
        try:
            task_id = int(proc.stdout.readline())
            assert [(t["task_id"], t["node"]) for t in _tasks(two_hosts)] == [(task_id, 2)]  # its home on host b
            assert _vm(two_hosts)[1]["nr_anon_pages"] == 2  # its pages on host a
        finally:
            proc.kill()
    poll_until(lambda: not _tasks(two_hosts), timeout_s=10.0, what="the killed task detached")
    assert _total(two_hosts, "nr_anon_pages") == 0


def _watchers() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if "numa_emu.taskwatch" in " ".join(p.info["cmdline"] or [])]


def test_a_task_of_a_host_without_an_agent_watches_itself(two_hosts, home):
    """Host c runs no node, so no agent: the task's own watcher (numa_emu.taskwatch) reports its
    SIGKILL, and ends quietly when a task detaches."""
    elsewhere = home / "c"
    elsewhere.mkdir()
    env = dict(os.environ, NUMA_EMU_HOME=str(elsewhere), NUMA_EMU_HOST="c",
               NUMA_EMU_CONNECTION=str(two_hosts.info.dir / "connection.json"))
    env.pop("NUMA_EMU_CLUSTER", None)
    with subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          env=env) as proc:
        try:
            task_id = int(proc.stdout.readline())
            assert [(t["task_id"], t["host"]) for t in _tasks(two_hosts)] == [(task_id, "c")]
            assert _vm(two_hosts)[1]["nr_anon_pages"] == 2
            assert [w.info["cmdline"][-2:] for w in _watchers()] == [[str(task_id), str(proc.pid)]]
        finally:
            proc.kill()
    poll_until(lambda: not _tasks(two_hosts), timeout_s=10.0, what="the killed task detached by its watcher")
    assert _total(two_hosts, "nr_anon_pages") == 0
    poll_until(lambda: not _watchers(), timeout_s=10.0, what="the watcher gone")
    # a task that detaches: its watcher ends at once, and reports nothing
    with subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          env=env) as proc:
        int(proc.stdout.readline())
        assert len(_watchers()) == 1
        proc.stdin.close()  # HOLD returns: the task detaches at exit
        assert proc.wait(timeout=30) == 0
    assert not _tasks(two_hosts) and not _watchers()


def test_the_same_pid_on_two_hosts_is_two_tasks(two_hosts, cli):
    pid = os.getpid()  # as if hosts a and b each ran a process with this pid
    with two_hosts.client() as client:
        ids = {h: client.call(tm.TaskRegister(pid=pid, comm=f"twin-{h}", host=h)).task_id for h in ("a", "b")}
        assert ids == {"a": (1 << 22) + pid, "b": (2 << 22) + pid}  # the coordinator's host is index 0
        listed = {t["task_id"]: (t["pid"], t["host"], t["node"]) for t in client.call(tm.TaskList()).tasks}
        assert listed == {ids["a"]: (pid, "a", 0), ids["b"]: (pid, "b", 2)}
        # numastat -p PID means a pid of the host it runs on: neither twin is one of this host's
        out = cli("numastat", "--name", two_hosts.name, "-p", str(pid))
        assert (out.returncode, out.stderr) == (1, f"Can't read /proc/{pid}/numa_maps: No such file or directory\n")
        ids["here"] = client.call(tm.TaskRegister(pid=pid, comm="twin-here")).task_id
        assert ids["here"] == pid  # on the coordinator's host a task id is the pid
        out = cli("numastat", "--name", two_hosts.name, "-p", str(pid), check=True)
        assert f"Per-node process memory usage (in MBs) for PID {pid} (twin-here)" in out.stdout, out.stdout
        for task_id in ids.values():
            client.call(tm.TaskExit(task_id=task_id))
        assert client.call(tm.TaskList()).tasks == []


def test_real_mode_holds_between_hosts_run_from_the_send_instant(two_hosts, puppets, cli):
    # the fake hosts share one clock, told apart as two (NUMA_EMU_HOST in the host key): each
    # host's estimated offset lies within half the fastest round trip of the truth, 0
    log = (two_hosts.info.dir / "coordinator.log").read_text()
    within = {}
    for h in HOSTS:
        m = re.search(rf"host {h}: clock offset ([+-]\d+) ns, within (\d+) ns \(fastest of 8 round trips\)", log)
        assert m, log
        assert abs(int(m[1])) <= int(m[2])
        within[h] = int(m[2])
    task = puppets(two_hosts, 0)  # host a
    task.do("mmap", **{"as": "far", "length": PAGE})
    task.do("mbind", mode="bind", nodes=[2], **{"as": "far"})  # host b
    task.do("write", **{"as": "far", "offset": 0, "data": "07"})
    cli("latency", "--name", two_hosts.name, "inject", "real", "--dilation", "2000", check=True)
    try:
        for _ in range(10):
            assert task.do("read", **{"as": "far", "offset": 0, "length": 1}) == "07"
    finally:
        cli("latency", "--name", two_hosts.name, "inject", "virtual", check=True)
    with two_hosts.client(endpoint=two_hosts.status().nodes[2]["tcp_endpoint"]) as node2:
        held = node2.call(lc.ProcHolds(clear=True))  # recorded only when held from the send instant
    assert len(held.hold_ns) >= 10  # node 0's forwards, stamped by host a's clock
    for hold, delay in zip(held.hold_ns, held.delay_ns):
        assert delay >= hold - within["a"] - within["b"] - 1000  # never early beyond the offsets' bounds
    # a task of the coordinator's host (this process): node 2's replies, host b's clock, also
    # held from their send instant
    with numa_emu.attach(0, cluster=two_hosts.name) as here:
        far = here.mmap(PAGE)
        far.mbind("bind", [2])
        far.write(0, b"\x09")
        cli("latency", "--name", two_hosts.name, "inject", "real", "--dilation", "2000", check=True)
        try:
            for _ in range(10):
                assert far.read(0, 1) == b"\x09"
        finally:
            cli("latency", "--name", two_hosts.name, "inject", "virtual", check=True)
        assert len(here._home.holds) >= 10
        assert all(delay >= hold - within["b"] - 1000 for hold, delay in here._home.holds)


def test_down_leaves_nothing_on_any_host(cluster_factory, home, cli):
    path = two_host_topology(home)
    c = cluster_factory(str(path), hosts=hosts_in_file(str(path), 4), launcher="local")
    for h in HOSTS:
        assert _processes_under(home / "hosts" / h), f"host {h} runs nothing"
    out = cli("down", "--name", c.name, check=True)
    assert out.stdout == f"cluster {c.name} down\n"
    poll_until(lambda: not _processes_under(home), timeout_s=10.0, what="every process of every host gone")
    assert not [p for p in home.rglob("connection.json")]  # no way in is left on any host
    for h in HOSTS:
        assert not (home / "hosts" / h / c.name / "keys").exists() and not (home / "hosts" / h / c.name / "run").exists()
    c.started.proc.wait()  # our child: reap it
    c.started = None  # stopped already


def test_an_unreachable_host_fails_up_in_one_line_and_leaves_nothing(home, cli, cluster_name):
    # ssh to a loopback port nobody listens on: refused at once, no packet leaves the machine
    out = cli("up", "--name", cluster_name, "--hosts", "127.0.0.9", "--ssh-opt=-p1", timeout_s=90)
    assert out.returncode != 0
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert re.match(rf"numa-emu: error: cluster '{cluster_name}' did not start: host 127\.0\.0\.9: its agent "
                    r"exited with status 255: ssh: connect to host 127\.0\.0\.9 port 1: Connection refused", lines[0])
    assert not _processes_under(home)
    assert not (home / cluster_name / "cluster.json").exists()


def test_an_agent_that_cannot_start_fails_up_naming_its_host(home, cli, cluster_name):
    path = two_host_topology(home)
    path.write_text(path.read_text().replace('[hosts.b]\n', '[hosts.b]\npython = "/nonexistent/python"\n'))
    out = cli("up", "--name", cluster_name, "-t", str(path), "--launcher", "local", timeout_s=90)
    assert out.returncode != 0 and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"numa-emu: error: cluster '{cluster_name}' did not start: host b: cannot start "
                                 "its agent (/nonexistent/python: No such file or directory)"), out.stderr
    assert not _processes_under(home)


def test_bad_hosts_are_refused_in_one_line(cli, home, cluster_name):
    for hosts, error in (("a,,b", "--hosts 'a,,b': give HOST[,HOST...], no empty names"),
                         ("-oProxyCommand=x", "--hosts: '-oProxyCommand=x' is not a host name or address "
                                              "(letters, digits, . _ - :, optionally user@ before it)"),
                         ("a,a", "--hosts: host 'a' is named twice")):
        out = cli("up", "--name", cluster_name, f"--hosts={hosts}")
        assert (out.returncode, out.stderr) == (2, f"numa-emu: error: {error}\n"), hosts
    assert not _processes_under(home)



@pytest.fixture
def sshd_server(home):
    from tests import sshd

    why = sshd.missing()
    if why:
        pytest.skip(why)
    server = sshd.start(home / "sshd", list(HOSTS.values()))
    yield server
    server.stop()


def _up_over_ssh(cli, home, name, sshd_server) -> tuple[Path, dict]:
    path = two_host_topology(home)
    opts = [f"--ssh-opt={o}" for o in sshd_server.ssh_opts]
    out = cli("up", "--name", name, "-t", str(path), "--launcher", "ssh", *opts, timeout_s=90)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(rf"cluster {name} up: 4 nodes \(default-4n\) on 2 hosts, .*\n", out.stdout)
    return path, json.loads((home / name / "cluster.json").read_text())


def test_the_ssh_launcher_starts_each_hosts_agent_and_down_leaves_nothing(sshd_server, home, cli, cluster_name):
    _, data = _up_over_ssh(cli, home, cluster_name, sshd_server)
    try:
        assert [a["host"] for a in data["agents"]] == ["a", "b"]
        for agent in data["agents"]:  # this machine sees the ssh client, tagged for clean-up
            cmd = psutil.Process(agent["pid"]).cmdline()
            assert cmd[0] == "ssh" and cmd[-1] == f"numa-emu[{cluster_name}]"
        st = json.loads(cli("status", "--name", cluster_name, "--json", check=True).stdout)
        assert [(n["host"], n["state"]) for n in st["nodes"]] == [("a", "up"), ("a", "up"), ("b", "up"), ("b", "up")]
        nodes = [psutil.Process(n["pid"]) for n in st["nodes"]]
        for n, proc in zip(st["nodes"], nodes):  # forked by the agent that sshd started, not by us
            assert "node-zygote" in " ".join(proc.parent().cmdline()) and proc.parent().parent().name() == "sshd"
            assert f"--cluster-dir {home / 'hosts' / n['host'] / cluster_name}" in " ".join(proc.cmdline())
    finally:
        out = cli("down", "--name", cluster_name)
    assert (out.returncode, out.stdout) == (0, f"cluster {cluster_name} down\n")
    poll_until(lambda: not _processes_under(home / "hosts"), timeout_s=10.0, what="nothing left on either host")
    assert all(not psutil.pid_exists(a["pid"]) or psutil.Process(a["pid"]).status() == psutil.STATUS_ZOMBIE
               for a in data["agents"])


def test_over_ssh_the_nodes_of_every_host_exit_when_the_coordinator_dies(sshd_server, home, cli, cluster_name):
    _, data = _up_over_ssh(cli, home, cluster_name, sshd_server)
    try:
        psutil.Process(data["coordinator"]["pid"]).kill()  # the ssh sessions close: each agent reads EOF
        poll_until(lambda: not _processes_under(home / "hosts"), timeout_s=15.0,
                   what="every host's agent and nodes gone after the coordinator's death")
    finally:
        cli("down", "--name", cluster_name)
