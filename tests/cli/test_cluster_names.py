"""A cluster name is one folder inside NUMA_EMU_HOME (issue 10, defect 1): a name that is a path is
refused before anything is touched, and clean-up deletes only in folders that `up` made."""
from __future__ import annotations

import os
import shutil

import pytest

from numa_emu import cluster as cl
from numa_emu.protocol.clusterdir import MARKER_FILE, check_name
from numa_emu.protocol.errors import NumaEmuError

BAD = ["../x", "..", ".", "a/b", "/tmp/x", "a\nb", ".hidden", "-rf", "", "x" * 65, "x" * 300, "a b", "é"]
RULE = "a name is 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-'"


def _plant(folder):
    """A user's folder that looks like a cluster's: start-up's clean-up used to delete run/ here."""
    (folder / "run").mkdir(parents=True)
    (folder / "run" / "important.txt").write_text("keep me")
    (folder / "cluster.json").write_text("{not json")


def _untouched(folder):
    assert (folder / "run" / "important.txt").read_text() == "keep me"
    assert (folder / "cluster.json").read_text() == "{not json"
    assert not (folder / MARKER_FILE).exists()


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_by_the_api(name):
    with pytest.raises(NumaEmuError) as err:
        check_name(name)
    assert err.value.errno_name == "EINVAL"
    assert str(err.value.message).endswith(RULE)
    assert "\n" not in err.value.message and len(err.value.message) < 200


@pytest.mark.parametrize("name", ["a", "default", "t123-4", "A.b_c-d", "_x", "x" * 64])
def test_good_names_pass(name):
    assert check_name(name) == name


@pytest.mark.parametrize("command", [["up"], ["status"], ["down"], ["vmstat"], ["latency", "--name", "NAME", "show"],
                                     ["shims", "/tmp/shims-never"], ["workload", "chase", "--cluster", "NAME"]])
@pytest.mark.parametrize("name", ["relative", "absolute", "a\nb", "x" * 300])
def test_cli_refuses_a_path_as_name_before_touching_anything(cli, home, tmp_path, command, name):
    outside = tmp_path / "outside"
    if name == "relative":
        name = os.path.relpath(outside, home)
        assert name.startswith("../") and (home / name).resolve() == outside.resolve()
    elif name == "absolute":
        name = str(outside)
    _plant(outside)
    try:
        argv = [name if a == "NAME" else a for a in command] if "NAME" in command else [*command, "--name", name]
        proc = cli(*argv)
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[0].endswith(RULE), lines[0]
        assert "invalid cluster name" in lines[0]
        _untouched(outside)
        assert list(home.iterdir()) == []
    finally:
        shutil.rmtree("/tmp/shims-never", ignore_errors=True)


def test_api_refuses_a_path_as_name(home, tmp_path):
    outside = tmp_path / "outside"
    _plant(outside)
    with pytest.raises(NumaEmuError) as err:
        cl.Cluster("default-4n", name=os.path.relpath(outside, home), base=home).start()
    assert err.value.errno_name == "EINVAL"
    _untouched(outside)
    assert list(home.iterdir()) == []


def test_a_folder_up_did_not_make_is_left_alone(cli, home, cluster_name):
    """A folder inside the home without the marker: `up` refuses it, `status` and `down --all` do
    not clean it as a stale cluster."""
    folder = home / cluster_name
    _plant(folder)
    proc = cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip() == (f"numa-emu: error: {folder} exists but was not made by 'numa-emu up' "
                                   f"(no {MARKER_FILE} in it); move it away or pick another --name")
    status = cli("status", "--name", cluster_name)
    assert (status.returncode, status.stderr) == (1, f"numa-emu: error: cluster '{cluster_name}' is not up; "
                                                      f"start it with: numa-emu up --name {cluster_name}\n")
    assert cli("down", "--all").returncode == 0
    _untouched(folder)
    assert cl.names(home) == []


def test_up_marks_its_folder_and_down_cleans_only_the_runtime(cli, home, cluster_name):
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    folder = home / cluster_name
    try:
        assert (folder / MARKER_FILE).is_file()
        assert cl.names(home) == [cluster_name]
        (folder / "notes.txt").write_text("mine")
    finally:
        cli("down", "--name", cluster_name, check=True)
    assert not (folder / "cluster.json").exists() and not (folder / "run").exists()
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / MARKER_FILE).is_file()
    # the folder is ours: a second `up` accepts it
    cli("up", "--name", cluster_name, "--nodes", "2", "--mem-per-node", "16MiB", check=True)
    cli("down", "--name", cluster_name, check=True)
