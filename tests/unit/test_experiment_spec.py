"""Experiment files without a cluster: every validation error names the file and the key in one
line (exit 3 from the CLI), the grid expands in order, [quick] overrides, placements become the
task environment numa_emu.attach() reads."""
from __future__ import annotations

import json

import pytest

from numa_emu.cli.main import main
from numa_emu.experiments.spec import PARAMETERS, load_spec, resolve_source, shipped
from numa_emu.protocol.errors import NumaEmuError
from numa_emu.protocol.policy import Mode


def doc(experiment: str = "", grid: str = 'workload = ["chase"]', extra: str = "") -> str:
    return f'[experiment]\nname = "t"\n{experiment}\n[grid]\n{grid}\n{extra}\n'


def write(tmp_path, text: str, name: str = "exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path, text: str, **kw):
    return load_spec(write(tmp_path, text), **kw)


PLACE = '[placements.p]\ncpu = 0\npolicy = "--localalloc"\n'
ERRORS = [
    # (file text, key named in the message, words of the reason)
    ("this is = = not toml", "", "invalid TOML"),
    (doc(extra="[bogus]\nx = 1"), "bogus", "unknown key"),
    ('[grid]\nworkload = ["chase"]\n', "experiment", "missing table"),
    ('[experiment]\ndescription = "x"\n[grid]\nworkload = ["chase"]\n', "experiment.name", "missing"),
    ('[experiment]\nname = "a b/c"\n[grid]\nworkload = ["chase"]\n', "experiment.name", "letters, digits"),
    ('[experiment]\nname = 7\n[grid]\nworkload = ["chase"]\n', "experiment.name", "non-empty string"),
    (doc('colour = "red"'), "experiment.colour", "unknown key"),
    (doc('topology = "no-such-machine"'), "experiment.topology", "unknown topology"),
    (doc('inject = "fast"'), "experiment.inject", "not one of: virtual, real"),
    (doc("dilation = 0"), "experiment.dilation", "positive number"),
    (doc('dilation = "big"'), "experiment.dilation", "positive number"),
    (doc("repetitions = 0"), "experiment.repetitions", "positive whole number"),
    (doc("repetitions = 1.5"), "experiment.repetitions", "positive whole number"),
    (doc('metric = "speed"'), "experiment.metric", "not one of"),
    (doc('latency_scope = "local"'), "experiment.latency_scope", "not one of: remote, all"),
    (doc('timeout = "soon"'), "experiment.timeout", "invalid duration"),
    (doc("timeout = 0"), "experiment.timeout", "must be positive"),
    (doc("dilation = 1e300"), "experiment.dilation", "1e+300 is out of range: expected a number in 0.001..1e+06"),
    (doc("repetitions = 100000000"), "experiment.repetitions",
     "100000000 is out of range: expected a whole number in 1..10000"),
    (doc('timeout = "1e20s"'), "experiment.timeout", "1e+20 s is out of range: expected 0..604800 s"),
    (doc(grid='workload = ["chase"]\nlatency_scale = [1, 1e20]'), "grid.latency_scale[1]",
     "1e+20 is out of range: expected a number in 0.001..1e+06"),
    (doc(grid='workload = ["chase"]\ndilation = [1e9]'), "grid.dilation[0]", "1e+09 is out of range"),
    ('[experiment]\nname = "t"\n', "grid", "missing table"),
    (doc(grid=""), "grid", "empty"),
    (doc(grid='workload = ["chase"]\ncolour = [1]'), "grid.colour", "unknown key"),
    (doc(grid='workload = "chase"'), "grid.workload", "non-empty list"),
    (doc(grid="workload = []"), "grid.workload", "non-empty list"),
    (doc(grid='workload = ["chase", "chase"]'), "grid.workload[1]", "appears twice"),
    (doc(grid='workload = ["chase"]\nlatency_scale = [1, -2]'), "grid.latency_scale[1]", "positive number"),
    (doc(grid='workload = ["chase"]\nlatency_scale = [1, "x"]'), "grid.latency_scale[1]", "positive number"),
    (doc(grid='workload = ["chase"]\ninject = ["virtual", "warp"]'), "grid.inject[1]", "not one of"),
    (doc(grid='workload = ["chase"]\ndilation = [0]'), "grid.dilation[0]", "positive number"),
    (doc(grid='workload = ["chase"]\ntopology = ["default-4n", "nope"]'), "grid.topology[1]", "unknown topology"),
    (doc(grid='workload = ["chase"]\nplacement = ["p", "q"]', extra=PLACE), "grid.placement[1]", "no placement 'q'"),
    (doc(grid='workload = ["spin"]'), "grid.workload[0]", "no workload 'spin'"),
    (doc(grid='latency_scale = [1, 2]'), "grid.workload", "missing"),
    (doc(extra='[placements.p]\ncpu = 0\nhome = 1'), "placements.p.home", "unknown key"),
    (doc(extra='[placements.p]\ncpu = "zero"'), "placements.p.cpu", "expected a CPU number"),
    (doc(extra='[placements.p]\ncpu = 7'), "placements.p.cpu", "no cpu 7"),
    (doc(extra='[placements.p]\npinned = "no"'), "placements.p.pinned", 'expected true or false, got "no"'),
    (doc(extra='[placements.p]\ncpu = 1\npinned = false'), "placements.p.pinned", "a cpu pins the task"),
    (doc(extra='[placements.p]\npolicy = "--localalloc"\nmode = "bind"'), "placements.p", "not both"),
    (doc(extra='[placements.p]\nnodes = "1"'), "placements.p.nodes", "nodes without a mode"),
    (doc(extra='[placements.p]\nmode = "sideways"\nnodes = "1"'), "placements.p.mode", "unknown policy"),
    (doc(extra='[placements.p]\nmode = "bind"\nnodes = "1-"'), "placements.p.nodes", "node list"),
    (doc(extra='[placements.p]\nmode = "bind"\nnodes = [9]'), "placements.p.nodes", ""),
    (doc(extra='[placements.p]\nmode = "bind"\nnodes = {a = 1}'), "placements.p.nodes", "expected a node list"),
    (doc(extra='[placements.p]\npolicy = "--interleave=9"'), "placements.p.policy", "numactl options"),
    (doc(extra='[placements.p]\npolicy = "--frobnicate"'), "placements.p.policy", "numactl options"),
    (doc(extra='[placements.p]\npolicy = "--show"'), "placements.p.policy", "only policy and binding"),
    (doc(extra='[placements.p]\npolicy = "--localalloc ls"'), "placements.p.policy", "only policy and binding"),
    (doc(extra='[placements."a b"]\ncpu = 0'), "a b", "names may hold only"),
    (doc(extra='[workloads.chase]\nhops = 3'), "workloads.chase.hops", "unknown key"),
    (doc(extra='[workloads.chase]\ncommand = "rm"'), "workloads.chase.command", "no built-in workload 'rm'"),
    (doc(extra='[workloads.chase]\noptions = "--hops 3"'), "workloads.chase.options", "expected a table"),
    (doc(extra='[workloads.chase]\noptions = [["--hops"]]'), "workloads.chase.options", "strings and numbers"),
    (doc(extra='[workloads.chase]\noptions = { hops = [1] }'), "workloads.chase.options.hops", "string, number"),
    (doc(extra='[workloads.chase]\noptions = { bogus = 1 }'), "workloads.chase.options", "unrecognized arguments"),
    (doc(extra='[workloads.chase]\noptions = { size = "lots" }'), "workloads.chase.options", "invalid size"),
    (doc(extra='[workloads.chase]\noptions = { hops = 0 }'), "workloads.chase.options", "must be positive"),
    (doc(extra='[workloads.chase]\noptions = { cpu = 1 }'), "workloads.chase.options", "--cpu is set by the placement"),
    (doc(extra='[workloads.chase]\noptions = ["--cluster=x"]'), "workloads.chase.options", "--cluster is set"),
    (doc(extra='[quick]\nspeed = 1'), "quick.speed", "unknown key"),
    (doc(extra='[quick]\nlatency_scale = []'), "quick.latency_scale", "non-empty list"),
    (doc(extra='[quick]\nrepetitions = 0'), "quick.repetitions", "positive whole number"),
    (doc(extra='[quick.workloads.stream]\noptions = {}'), "quick.workloads.stream", "no workload 'stream'"),
    (doc(extra='[workloads.chase]\n[quick.workloads.chase]\nhops = 1'), "quick.workloads.chase.hops", "unknown key"),
    (doc(extra='[workloads.chase]\n[quick.workloads.chase]\noptions = { hops = -1 }'),
     "quick.workloads.chase.options", "must be positive"),
    # sysctl grids, fixed settings, jitter, report and plots
    (doc(grid='workload = ["chase"]\nsysctl = { "vm.bogus" = [0] }'), 'grid.sysctl."vm.bogus"', "no sysctl key"),
    (doc(grid='workload = ["chase"]\nsysctl = { "vm.pagecache_replication" = [0, 2] }'),
     'grid.sysctl."vm.pagecache_replication"[1]', "expected 0 or 1"),
    (doc(grid='workload = ["chase"]\nsysctl = { "vm.pagecache_replication" = [1, 1] }'),
     'grid.sysctl."vm.pagecache_replication"[1]', "appears twice"),
    (doc(grid='workload = ["chase"]\nsysctl = { "vm.pagecache_replication" = [true] }'),
     'grid.sysctl."vm.pagecache_replication"[0]', "integer or a word"),
    (doc(grid='workload = ["chase"]\nsysctl = [1]'), "grid.sysctl", "expected a table"),
    (doc(extra='[workloads.chase]\nsysctl = { "vm.pagecache_replication_mode" = ["all", "some"] }'),
     'workloads.chase.sysctl."vm.pagecache_replication_mode"[1]', "expected one of all, no-writers, exec-only"),
    (doc(grid='workload = ["chase"]\nsysctl = { "vm.pagecache_replication" = [0, 1] }',
         extra='[workloads.chase]\nsysctl = { "vm.pagecache_replication" = 1 }'),
     'workloads.chase.sysctl."vm.pagecache_replication"', "swept in [grid] sysctl too"),
    (doc('sysctl = { "vm.unsafe_unmap_delay_ms" = "soon" }'), 'experiment.sysctl."vm.unsafe_unmap_delay_ms"',
     "expected milliseconds"),
    (doc('sysctl = { "vm.unsafe_unreplicate" = 1 }', grid='workload = ["chase"]\nsysctl = { "vm.unsafe_unreplicate" = [0, 1] }'),
     'experiment.sysctl."vm.unsafe_unreplicate"', "swept in a grid too"),
    (doc(extra='[quick]\nsysctl = { "vm.pagecache_replication" = [3] }'), 'quick.sysctl."vm.pagecache_replication"[0]',
     "expected 0 or 1"),
    (doc(extra='[workloads.chase]\n[quick.workloads.chase]\nsysctl = { "vm.nope" = 1 }'),
     'quick.workloads.chase.sysctl."vm.nope"', "no sysctl key"),
    (doc('jitter = -1'), "experiment.jitter", "spread from 0 to 10"),
    (doc('jitter = { distribution = "cauchy", spread = 0.1 }'), "experiment.jitter.distribution", "not one of"),
    (doc('jitter = { spread = 0.1, seed = 3 }'), "experiment.jitter.seed", "unknown key"),
    (doc('report = ["virtual_ns", "speed"]'), "experiment.report[1]", "not one of"),
    (doc('plots = []'), "experiment.plots", "non-empty list"),
    (doc('metric = "zap_ratio"\nplots = ["remote_reads", "remote_reads"]'), "experiment.plots[1]", "appears twice"),
    (doc(grid='workload = ["kbuild"]', extra='[workloads.kbuild]\noptions = { team_index = 1 }'),
     "workloads.kbuild.options", "--team-index is set by the placement and the runner"),
    (doc(grid='workload = ["ws"]', extra='[workloads.ws]\ncommand = "writeshare"\noptions = { published_fd = 3 }'),
     "workloads.ws.options", "--published-fd is set"),
]


@pytest.mark.parametrize("text, key, words", ERRORS, ids=[f"{i}-{e[1] or 'toml'}" for i, e in enumerate(ERRORS)])
def test_every_validation_error_names_the_file_and_the_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(NumaEmuError) as err:
        load_spec(path)
    message = err.value.message
    assert err.value.errno_name == "EINVAL"
    assert message.startswith(f"{path}: {key}: " if key else f"{path}: "), message
    assert words in message and "\n" not in message


def test_the_quick_grid_is_validated_only_when_used_for_its_values(tmp_path):
    text = doc(extra='[quick]\nlatency_scale = [1, 0]')
    with pytest.raises(NumaEmuError, match=r"quick\.latency_scale\[1\]: expected a positive number"):
        load(tmp_path, text, quick=True)
    assert load(tmp_path, text).grid["latency_scale"] == (1.0,)


def test_a_missing_file_is_enoent_naming_the_shipped_ones(tmp_path):
    with pytest.raises(NumaEmuError) as err:
        load_spec(tmp_path / "nope.toml")
    assert err.value.errno_name == "ENOENT" and "latency-sensitivity" in err.value.message


def test_cli_validation_error_is_one_line_exit_3(tmp_path, capsys):
    path = write(tmp_path, doc(grid='workload = ["chase"]\nlatency_scale = [0]'))
    assert main(["experiment", "check", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"numa-emu: error: {path}: grid.latency_scale[0]: ")
    assert main(["experiment", "run", str(path)]) == 3
    assert main(["experiment", "check", str(tmp_path / "missing.toml")]) == 3


def test_grid_expands_as_a_product_in_file_order(tmp_path):
    spec = load(tmp_path, doc(grid='workload = ["chase", "stream"]\nlatency_scale = [1, 2, 3]'))
    configs = spec.configurations()
    assert len(configs) == 6 and [c.index for c in configs] == list(range(6))
    assert [(c.values["workload"], c.values["latency_scale"]) for c in configs[:4]] == [
        ("chase", 1.0), ("chase", 2.0), ("chase", 3.0), ("stream", 1.0)]
    assert all(set(c.values) == set(PARAMETERS) for c in configs)
    assert spec.swept == ("workload", "latency_scale")
    # run order: by latency scale within a cluster, so each scale is set once
    assert [c.values["latency_scale"] for c in spec.run_order()] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_defaults_one_cluster_default_placement_scale_one(tmp_path):
    spec = load(tmp_path, doc())
    assert spec.grid["topology"] == ("default-4n",) and spec.grid["inject"] == ("virtual",)
    assert spec.grid["latency_scale"] == (1.0,) and spec.grid["placement"] == ("default",)
    assert spec.metric == "virtual_ns" and spec.repetitions == 1 and spec.remote_only and spec.swept == ()
    assert spec.placements["default"].environment(spec.topologies["default-4n"]) == {"NUMA_EMU_CPU": "0"}
    assert spec.workloads["chase"].options == ()


def test_unlisted_placements_and_workloads_are_all_used(tmp_path):
    extra = PLACE + '[placements.q]\nmode = "bind"\nnodes = [2, 3]\n[workloads.c1]\ncommand = "chase"\n[workloads.s]\ncommand = "stream"\n'
    spec = load(tmp_path, doc(grid="latency_scale = [1, 2]", extra=extra))
    assert spec.grid["placement"] == ("p", "q") and spec.grid["workload"] == ("c1", "s")
    assert len(spec.configurations()) == 8 and spec.swept == ("latency_scale",)


def test_cluster_parameters_group_the_run_order(tmp_path):
    spec = load(tmp_path, doc(grid='inject = ["virtual", "real"]\nworkload = ["chase"]\nlatency_scale = [2, 1]'))
    assert [(c.values["inject"], c.values["latency_scale"]) for c in spec.run_order()] == [
        ("virtual", 2.0), ("virtual", 1.0), ("real", 2.0), ("real", 1.0)]


def test_quick_replaces_grid_entries_and_repetitions_and_merges_options(tmp_path):
    extra = ('[workloads.chase]\noptions = { hops = 500, size = "1MiB", granularity = "page" }\n'
             '[quick]\nlatency_scale = [1, 4]\nrepetitions = 1\n'
             '[quick.workloads.chase]\noptions = { hops = 20 }\n')
    text = doc("repetitions = 3", grid='workload = ["chase"]\nlatency_scale = [1, 2, 3, 4]', extra=extra)
    full, quick = load(tmp_path, text), load(tmp_path, text, quick=True)
    assert full.grid["latency_scale"] == (1.0, 2.0, 3.0, 4.0) and full.repetitions == 3 and not full.quick
    assert quick.grid["latency_scale"] == (1.0, 4.0) and quick.repetitions == 1 and quick.quick
    assert full.workloads["chase"].options == ("--hops", "500", "--size", "1MiB", "--granularity", "page")
    assert quick.workloads["chase"].options == ("--hops", "20", "--size", "1MiB", "--granularity", "page")


def test_options_tables_become_argv_with_flags(tmp_path):
    extra = '[workloads.pc]\ncommand = "prodcons"\noptions = { record_size = 128, consumer_cpu = 2 }\n'
    spec = load(tmp_path, doc(grid='workload = ["pc"]', extra=extra))
    w = spec.workloads["pc"]
    assert w.options == ("--record-size", "128", "--consumer-cpu", "2")
    assert w.argv("py")[:3] == ["py", "-m", "numa_emu.workloads.prodcons"]


def test_placements_become_the_task_environment(tmp_path):
    extra = ('[placements.il]\ncpu = 1\npolicy = "--interleave=all"\n'
             '[placements.far]\nmode = "bind"\nnodes = "2-3"\n'
             '[placements.nb]\npolicy = "--cpunodebind=1 --preferred=3"\n')
    spec = load(tmp_path, doc(extra=extra))
    topo = spec.topologies["default-4n"]
    il = spec.placements["il"].environment(topo)
    assert il["NUMA_EMU_CPU"] == "1"
    assert json.loads(il["NUMA_EMU_POLICY"])["mode"] == int(Mode.INTERLEAVE)
    assert json.loads(il["NUMA_EMU_POLICY"])["nodes"] == [0, 1, 2, 3]
    far = spec.placements["far"].environment(topo)
    assert json.loads(far["NUMA_EMU_POLICY"])["nodes"] == [2, 3] and far["NUMA_EMU_CPU"] == "0"
    nb = spec.placements["nb"].environment(topo)
    assert nb["NUMA_EMU_CPUNODEBIND"] == "1" and "NUMA_EMU_CPU" not in nb
    assert json.loads(nb["NUMA_EMU_POLICY"])["mode"] == int(Mode.PREFERRED)
    assert spec.placements["il"].label() == "--interleave=all" and spec.placements["far"].label() == "bind 2-3"


def test_an_unpinned_placement_names_no_cpu_and_round_trips(tmp_path):
    from numa_emu.experiments.spec import Spec

    extra = ('[placements.free]\npinned = false\npolicy = "--interleave=all"\n'
             '[placements.freenb]\npinned = false\npolicy = "--cpunodebind=1"\n[placements.pin]\npinned = true\n')
    spec = load(tmp_path, doc(extra=extra))
    topo = spec.topologies["default-4n"]
    free = spec.placements["free"].environment(topo)
    assert "NUMA_EMU_CPU" not in free and json.loads(free["NUMA_EMU_POLICY"])["nodes"] == [0, 1, 2, 3]
    assert spec.placements["freenb"].environment(topo) == {"NUMA_EMU_CPUNODEBIND": "1"}
    assert spec.placements["pin"].environment(topo) == {"NUMA_EMU_CPU": "0"}
    assert spec.placements["free"].label() == "--interleave=all, unpinned"
    again = Spec.from_dict(spec.to_dict())
    assert again.placements["free"].pinned is False and again.placements["pin"].pinned is True


def test_the_shipped_task_placement_experiment_loads_and_its_quick_grid_is_small():
    quick = load_spec("numa-task-placement", quick=True)
    assert quick.placements["unpinned"].pinned is False and quick.placements["pinned"].cpu == 0
    assert quick.sysctl_fixed["kernel.numa_balancing"] == 1
    assert len(quick.configurations()) == 4


def test_a_topology_file_is_found_beside_the_experiment(tmp_path):
    from numa_emu.catalog import builtin_topologies

    (tmp_path / "mine.toml").write_text(builtin_topologies()["default-4n"].read_text())
    spec = load(tmp_path, doc('topology = "mine.toml"'))
    assert spec.topologies["mine.toml"].n_nodes == 4


def test_the_shipped_experiment_loads_and_its_quick_grid_is_small():
    assert "latency-sensitivity" in shipped()
    assert resolve_source("latency-sensitivity") == shipped()["latency-sensitivity"]
    full = load_spec("latency-sensitivity")
    quick = load_spec("latency-sensitivity", quick=True)
    assert full.grid["latency_scale"] == (1.0, 2.0, 3.0, 4.0) and quick.grid["latency_scale"] == (1.0, 4.0)
    assert full.grid["placement"] == ("local", "interleave-all", "remote-bind")
    assert set(full.grid["workload"]) == {"stream", "chase"} and full.remote_only
    assert len(quick.configurations()) * quick.repetitions <= 12


SWEPT = ('[grid]\nworkload = ["kbuild", "ws"]\nsysctl = { "vm.numa_stat" = [1] }\n'
         '[workloads.kbuild]\noptions = { files = 2 }\nsysctl = { "vm.pagecache_replication" = [1, 0] }\n'
         '[workloads.ws]\ncommand = "writeshare"\n'
         'sysctl = { "vm.pagecache_replication_backoff" = [1, 0], '
         '"vm.pagecache_replication_mode" = ["all", "exec-only"] }\n')


def test_a_workloads_own_sysctl_grid_expands_only_with_it(tmp_path):
    text = ('[experiment]\nname = "t"\nsysctl = { "vm.pagecache_replication_cooldown_ms" = 50 }\njitter = 0.25\n'
            'report = ["virtual_ns", "zap_ratio"]\nplots = ["remote_reads"]\n' + SWEPT)
    spec = load(tmp_path, text)
    keys = ("vm.numa_stat", "vm.pagecache_replication", "vm.pagecache_replication_backoff",
            "vm.pagecache_replication_mode")
    assert spec.sysctl_keys == keys and spec.parameters == PARAMETERS + keys
    assert spec.swept == ("workload", "vm.pagecache_replication", "vm.pagecache_replication_backoff",
                          "vm.pagecache_replication_mode")
    configs = spec.configurations()
    assert len(configs) == 2 + 4 and [c.index for c in configs] == list(range(6))
    assert [c.sysctl for c in configs[:3]] == [
        {"vm.numa_stat": 1, "vm.pagecache_replication": 1}, {"vm.numa_stat": 1, "vm.pagecache_replication": 0},
        {"vm.numa_stat": 1, "vm.pagecache_replication_backoff": 1, "vm.pagecache_replication_mode": "all"}]
    assert configs[0].values["vm.pagecache_replication_mode"] is None and set(configs[5].values) == set(spec.parameters)
    assert spec.values_of("vm.pagecache_replication_mode") == ["all", "exec-only"]
    assert spec.sysctl_fixed == {"vm.pagecache_replication_cooldown_ms": 50}
    assert spec.jitter == {"distribution": "uniform", "spread": 0.25}
    assert spec.report == ("virtual_ns", "zap_ratio") and spec.plots == ("remote_reads",)
    assert spec.workloads["kbuild"].argv("py")[2:] == ["numa_emu.workloads.kbuild", "--files", "2"]
    d = spec.to_dict()
    assert d["workloads"]["kbuild"]["sysctl"] == {"vm.pagecache_replication": [1, 0]} and d["jitter"]["spread"] == 0.25
    assert [c.values["workload"] for c in spec.run_order()] == ["kbuild"] * 2 + ["ws"] * 4


def test_quick_replaces_the_sysctl_values_it_names(tmp_path):
    text = doc(grid='workload = ["chase"]\nsysctl = { "vm.unsafe_unreplicate" = [0, 1], "vm.numa_stat" = [0, 1] }',
               extra='[workloads.chase]\nsysctl = { "vm.pagecache_replication" = [0, 1] }\n'
                     '[quick]\nsysctl = { "vm.numa_stat" = [1] }\n'
                     '[quick.workloads.chase]\nsysctl = { "vm.pagecache_replication" = 1 }\n')
    full, quick = load(tmp_path, text), load(tmp_path, text, quick=True)
    assert len(full.configurations()) == 8 and len(quick.configurations()) == 2
    assert quick.grid["vm.numa_stat"] == (1,) and quick.swept == ("vm.unsafe_unreplicate",)
    assert quick.workloads["chase"].sysctl == (("vm.pagecache_replication", (1,)),)
    assert load(tmp_path, doc("jitter = { distribution = \"normal\", spread = 0 }")).jitter is None


def test_the_shipped_replication_experiments_load_and_their_quick_grids_are_small():
    assert {"replication", "unreplicate-race"} <= set(shipped())
    repl = load_spec("replication", quick=True)
    assert [c.values["workload"] for c in repl.configurations()] == ["kbuild"] * 2 + ["writeshare"] * 6
    assert set(repl.values_of("vm.pagecache_replication_mode")) == {"all", "no-writers", "exec-only"}
    race = load_spec("unreplicate-race", quick=True)
    assert race.grid["inject"] == ("real",) and race.jitter == {"distribution": "uniform", "spread": 0.3}
    assert race.values_of("vm.unsafe_unreplicate") == [0, 1]
    assert race.sysctl_fixed["vm.pagecache_replication_backoff"] == 0
    assert "--read-via" in race.workloads["race"].options


def _record(result: dict | None, vmstat: dict):
    from numa_emu.experiments.runner import RunRecord
    from numa_emu.experiments.spec import Config

    values = {p: None for p in PARAMETERS}
    return RunRecord(0, 0, Config(0, values), "c", "ok", 0, 1.0, result, {}, vmstat)


def test_rows_take_the_workloads_own_counters_before_the_runs_vmstat():
    from numa_emu.experiments.output import CSV_FIELDS, csv_fields, row

    vmstat = {"0": {"pgreplicated": 9, "pgreplicazap": 9, "repl_hits": 1}, "1": {"pgreplicated": 1}}
    plain = row(_record({"virtual_ns": 10, "ops": 2}, vmstat))
    assert (plain["pgreplicated"], plain["pgreplicazap"], plain["repl_hits"], plain["zap_ratio"]) == (10, 9, 1, 0.9)
    assert plain["remote_reads"] is None and set(CSV_FIELDS) <= set(plain)
    own = row(_record({"virtual_ns": 10, "remote_reads": 3, "stale_reads": 0,
                       "counters": {"pgreplicated": 4, "pgreplicazap": 1}}, vmstat))
    assert (own["pgreplicated"], own["pgreplicazap"], own["zap_ratio"], own["remote_reads"]) == (4, 1, 0.25, 3)
    assert row(_record(None, {}))["zap_ratio"] is None
    spec = load_spec("unreplicate-race")
    fields = csv_fields(spec)
    assert fields[fields.index("workload") + 1] == "vm.unsafe_unreplicate" and fields[-1] == "stale_reads"
