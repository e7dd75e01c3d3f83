"""The user's own workload command in an experiment file (placeholders, the report() line, the
columns it adds), `experiment replot` from a results.json, and the plots' labels in grid order.
No cluster: records are built by hand (the real runs are in tests/processes/test_experiments.py)."""
from __future__ import annotations

import shutil
import sys

import pytest

from numa_emu.cli.main import main
from numa_emu.experiments import output
from numa_emu.experiments.runner import Outcome, RunRecord, result_line
from numa_emu.experiments.spec import PARAMETERS, Spec, load_spec
from numa_emu.protocol.errors import NumaEmuError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MINE = """
[experiment]
name = "mine"
metric = "product"
report = ["product", "virtual_ns"]
plots = ["virtual_ns"]

[grid]
a = [2, 1]
b = [3, 4]
placement = ["remote", "local"]

[placements.remote]
policy = "--membind=2"

[placements.local]
policy = "--localalloc"

[workloads.mine]
command = ["python", "mine.py", "--a", "{a}", "--b", "{b}", "--scale={latency_scale}"]
"""


def spec_of(tmp_path, text: str = MINE, **kw) -> Spec:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return load_spec(path, **kw)


def test_a_command_takes_the_grid_values_and_the_runners_python(tmp_path):
    spec = spec_of(tmp_path)
    assert spec.user_parameters == ("a", "b") and spec.swept == ("a", "b", "placement")
    assert spec.parameters == PARAMETERS + ("a", "b")
    configs = spec.configurations()
    assert [(c.values["a"], c.values["b"], c.values["placement"]) for c in configs][:3] == \
        [(2, 3, "remote"), (2, 3, "local"), (2, 4, "remote")]
    assert configs[0].sysctl == {} and configs[0].user == ("a", "b")
    assert spec.workloads["mine"].argv("/py", configs[0].values) == \
        ["/py", "mine.py", "--a", "2", "--b", "3", "--scale=1"]
    fields = output.csv_fields(spec)
    assert fields[fields.index("workload") + 1:][:3] == ("a", "b", "status")


def test_a_placeholder_the_grid_lacks_fails_when_the_run_starts(tmp_path):
    spec = spec_of(tmp_path, MINE.replace("{b}", "{sise}").replace("b = [3, 4]\n", ""))
    with pytest.raises(NumaEmuError) as err:
        spec.workloads["mine"].argv("/py", spec.configurations()[0].values)
    assert err.value.message == "command placeholder {sise} is not a grid parameter of this configuration " \
                                "(grid: a, placement, topology, inject, dilation, latency_scale, workload)"


@pytest.mark.parametrize("change, key, words", [
    (("a = [2, 1]", "a = [2, 1]\nsize = [1]"), "grid.size", "unknown key: neither a parameter"),
    (('command = ["python"', 'options = ["-x"]\ncommand = ["python"'), "workloads.mine.options",
     "a command list takes its arguments in the list itself"),
    (('command = ["python", "mine.py", "--a", "{a}", "--b", "{b}", "--scale={latency_scale}"]', "command = []"),
     "workloads.mine.command", "expected a non-empty list"),
    (("a = [2, 1]", "a = [true]"), "grid.a[0]", "expected a string or a number"),
])
def test_bad_commands_and_parameters_name_the_key(tmp_path, change, key, words):
    path = tmp_path / "exp.toml"
    path.write_text(MINE.replace(*change))
    with pytest.raises(NumaEmuError) as err:
        load_spec(path)
    assert err.value.message.startswith(f"{path}: {key}: ") and words in err.value.message, err.value.message


def test_a_metric_of_its_own_needs_a_command(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[experiment]\nname = "t"\nmetric = "product"\n[grid]\nworkload = ["chase"]\n')
    with pytest.raises(NumaEmuError) as err:
        load_spec(path)
    assert err.value.message.startswith(f"{path}: experiment.metric: 'product' is not one of: virtual_ns")


def test_report_prints_one_json_line_and_the_runner_reads_the_last(capsys):
    import numa_emu

    numa_emu.report(product=6, text="2x3")
    out = capsys.readouterr().out
    assert out == '{"product": 6, "text": "2x3"}\n'
    assert result_line("starting\n" + out + "done\n") == {"product": 6, "text": "2x3"}
    assert result_line('{"a": 1}\n{"b": 2}\n') == {"b": 2}
    assert result_line("[1, 2]\n{broken\n") is None and result_line("") is None


def outcome_of(spec: Spec) -> Outcome:
    """A run per configuration whose figures follow from its parameters, as a script would report."""
    records = []
    for c in spec.configurations():
        a, b, remote = c.values["a"], c.values["b"], c.values["placement"] == "remote"
        result = {"product": a * b, "text": f"{a}x{b}", "virtual_ns": 1000 * a * (4 if remote else 1)}
        records.append(RunRecord(len(records), 0, c, "c", "ok", 0, 0.5, result, {}, {}, script=True))
    return Outcome(spec, records, finished_at=0.0)


def test_the_commands_figures_are_columns_and_summarised(tmp_path):
    spec = spec_of(tmp_path)
    summary, _ = output.write_all(outcome_of(spec), tmp_path / "out")
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0].split(",")
    assert header == list(output.csv_fields(spec)) + ["product", "text"]
    assert [(s["a"], s["b"], s["placement"], s["product"], s["metric"]) for s in summary][:2] == \
        [(2, 3, "remote", 6, 6), (2, 3, "local", 6, 6)]
    assert "text" not in summary[0]  # words are not averaged


def test_replot_draws_the_same_files_from_results_json(tmp_path, capsys):
    spec = spec_of(tmp_path)
    _, pngs = output.write_all(outcome_of(spec), tmp_path / "run")
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(tmp_path / "run" / "results.json", again)
    assert main(["experiment", "replot", str(again)]) == 0
    names = sorted(p.name for p in pngs)
    assert names == sorted(p.name for p in again.glob("*.png")) == [
        "overview-vs-a.png", "overview-vs-b.png", "overview-vs-placement.png", "product-vs-a.png",
        "product-vs-b.png", "product-vs-placement.png", "virtual_ns-vs-a.png", "virtual_ns-vs-b.png",
        "virtual_ns-vs-placement.png"]
    for name in names:
        data = (again / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, name
    assert capsys.readouterr().out.startswith(f"plots: {again}/ (product-vs-a.png, product-vs-b.png, ")


def test_replot_of_a_folder_without_results_is_one_line_exit_3(tmp_path, capsys):
    assert main(["experiment", "replot", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err == f"numa-emu: error: cannot read {tmp_path}/results.json: No such file or directory: " \
                  f"give the folder an experiment run wrote (--out)\n"
    (tmp_path / "results.json").write_text("{}")
    assert main(["experiment", "replot", str(tmp_path)]) == 3
    assert "has no spec and summary" in capsys.readouterr().err


def test_plot_axes_follow_the_grid_order_with_readable_labels(tmp_path):
    spec = spec_of(tmp_path, MINE.replace('"remote", "local"', '"remote", "local", "inter"') +
                   '[placements.inter]\npolicy = "--interleave=all"\n[quick]\nlatency_scale = [4, 1]\n', quick=True)
    outcome = outcome_of(spec)
    summary = output.summarize([output.row(r) for r in outcome.records], spec)
    fig = output.figure_of(summary, spec, "virtual_ns", "placement")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["remote", "local", "inter"]  # not alphabetical
    assert ax.get_xlabel() == "placement" and ax.get_ylabel() == "virtual time (ns)"
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["a=2, b=3, scale=4", "a=2, b=3, scale=1"]
    fig = output.figure_of(summary, spec, "virtual_ns", "latency_scale")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["4", "1"]
    assert fig.axes[0].get_xlabel() == "latency scale (x the topology's latencies)"


def test_check_shows_the_commands_as_written(tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_text(MINE)
    assert main(["experiment", "check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "  command mine: python mine.py --a '{a}' --b '{b}' '--scale={latency_scale}'"


def test_the_shipped_example_loads_beside_its_script():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "examples" / "my-workload.toml"
    spec = load_spec(path)
    assert spec.user_parameters == ("pages", "passes") and len(spec.configurations()) == 4
    assert (path.parent / spec.workloads["touch"].script[1]).is_file()
    assert spec.workloads["touch"].argv(sys.executable, spec.configurations()[3].values)[1:] == \
        ["touch_pages.py", "--pages", "16", "--passes", "2"]


def test_quick_replaces_a_parameter_of_the_users_and_options_are_refused_there_too(tmp_path):
    spec = spec_of(tmp_path, MINE + "[quick]\na = [5]\n", quick=True)
    assert spec.grid["a"] == (5,) and spec.swept == ("b", "placement")
    path = tmp_path / "exp.toml"
    path.write_text(MINE + '[quick.workloads.mine]\noptions = ["-x"]\n')
    with pytest.raises(NumaEmuError) as err:
        load_spec(path, quick=True)
    assert err.value.message == (f"{path}: quick.workloads.mine.options: a command list takes its arguments "
                                 f"in the list itself")


def test_without_matplotlib_runs_write_csv_and_json_and_replot_says_how_to_get_plots(tmp_path, capsys, monkeypatch):
    """matplotlib is the optional extra numa-emu[plots]: an import of it fails here as it would
    where it is not installed."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    spec = spec_of(tmp_path)
    summary, pngs = output.write_all(outcome_of(spec), tmp_path / "run")
    assert pngs == [] and sorted(p.name for p in (tmp_path / "run").iterdir()) == ["results.csv", "results.json"]
    assert main(["experiment", "replot", str(tmp_path / "run")]) == 3
    assert capsys.readouterr().err == "numa-emu: error: no plots: matplotlib is not installed: " \
                                      "pip install 'numa-emu[plots]'\n"
