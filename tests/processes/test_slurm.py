"""`numa-emu up --launcher slurm` inside a real allocation (docs/design.md#hosts): munged, slurmctld
and two `slurmd -N fakeK` on 127.0.0.2 and 127.0.0.3 (tests/slurm.py, a private SLURM_CONF), then
salloc runs up, status, a task that reads across the hosts, and down."""
from __future__ import annotations

import json
import re
import sys

import pytest

from tests.helpers import poll_until
from tests.processes.test_hosts import ATTACH, _processes_under

pytestmark = pytest.mark.cluster


@pytest.fixture
def slurm_cluster(home):
    from tests import slurm

    why = slurm.missing()
    if why:
        pytest.skip(why)
    s = slurm.start(home / "slurm", ["127.0.0.2", "127.0.0.3"])
    yield s
    s.stop()


def test_up_inside_salloc_runs_one_agent_per_allocated_host(slurm_cluster, home, cluster_name):
    ne = f"{sys.executable} -m numa_emu.cli.main"
    script = f"""set -e
{ne} up --name {cluster_name} --launcher slurm
{ne} status --name {cluster_name} --json > {home}/status.json
NUMA_EMU_CONNECTION={home}/{cluster_name}/connection.json NUMA_EMU_HOST=fake2 {sys.executable} -c '{ATTACH}' \\
    > {home}/task.json
{ne} down --name {cluster_name}
"""
    out = slurm_cluster.run("salloc", "-N2", "--", "bash", "-c", script, timeout_s=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(rf"^cluster {cluster_name} up: 4 nodes \(default-4n\) on 2 hosts, ", out.stdout, re.M)
    st = json.loads((home / "status.json").read_text())
    assert [n["host"] for n in st["nodes"]] == ["fake1", "fake1", "fake2", "fake2"]
    assert [n["tcp_endpoint"].rpartition(":")[0] for n in st["nodes"]] == \
        ["tcp://127.0.0.2"] * 2 + ["tcp://127.0.0.3"] * 2
    for n in st["nodes"]:  # each host's own folder, under this home
        assert n["endpoint"].startswith(f"ipc://{home}/hosts/{n['host']}/{cluster_name}/run/")
    assert json.loads((home / "task.json").read_text()) == [2, "across", [1], "here", [2]]
    poll_until(lambda: not _processes_under(home / "hosts"), timeout_s=10.0, what="nothing left on either host")
    poll_until(lambda: not slurm_cluster.run("squeue", "-h").stdout.strip(), timeout_s=20.0, what="the job gone")


def test_the_slurm_launcher_outside_an_allocation_says_how_to_use_it(cli, cluster_name, monkeypatch):
    for var in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        monkeypatch.delenv(var, raising=False)
    out = cli("up", "--name", cluster_name, "--launcher", "slurm")
    assert (out.returncode, out.stderr) == (2, "numa-emu: error: --launcher slurm runs inside an allocation: "
                                               "salloc -N HOSTS numa-emu up --launcher slurm ... (or in an sbatch "
                                               "script)\n")
