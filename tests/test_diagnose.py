"""Short real trainings of the bundled data whose curves are known, read everywhere a user sees the reading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.runs import compare, reading
from dlrun.runs.history import best_of, read_history
from dlrun.runs.plot import run_figures

from conftest import CONFIGS

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("diagnose")

runner = CliRunner()
SPEC = CONFIGS / "06_binary_classification.yaml"
WIDE = (
    "model.layers=[{type: dense, units: 512, activation: relu}, {type: dense, units: 512, activation: relu}, "
    "{type: dense, units: 1, activation: sigmoid}]"
)
KNOWN = {
    # Adam's default on one batch an epoch: 5 steps barely move the loss, still at the prior's level.
    "underfit": ["name=underfit", "training.epochs=5"],
    # 512-512 without regularization memorizes ~400 rows: val_loss bottoms out, then climbs.
    "overfit": ["name=overfit", WIDE, "training.epochs=150", "training.early_stopping=null"],
    # A learning rate of 10 throws the loss to 1e4 and back.
    "unstable": ["name=unstable", "training.optimizer.learning_rate=10", "training.epochs=30"],
}


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def runs(tmp_path_factory) -> dict[str, Path]:
    """Train the three runs; `underfit` through the CLI, whose end-of-run output is kept."""
    from dlrun.spec.loader import load_spec
    from dlrun.training.fit import train

    out = tmp_path_factory.mktemp("runs")
    found = {}
    result = runner.invoke(app, ["train", str(SPEC), "-q", "--out", str(out), *_sets(KNOWN["underfit"])])
    assert result.exit_code == 0, result.output
    (found["underfit"],) = (out / "underfit").iterdir()
    (out / "underfit-output.txt").write_text(result.output)
    for kind in ("overfit", "unstable"):
        found[kind] = train(load_spec(SPEC, KNOWN[kind]), out, KNOWN[kind], quiet=True).run_dir
    return found


def _sets(overrides: list[str]) -> list[str]:
    return [word for o in overrides for word in ("--set", o)]


def test_each_known_pattern_is_read_from_the_real_run(runs):
    for kind, run_dir in runs.items():
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["diagnosis"]["fit"] == kind, (kind, summary["diagnosis"])
    overfit = json.loads((runs["overfit"] / "summary.json").read_text())
    finding = overfit["diagnosis"]["findings"][0]
    assert finding["numbers"]["from_epoch"] == overfit["best_epoch"]
    assert finding["numbers"]["rise"] > 0.1 and finding["numbers"]["loss"] < finding["numbers"]["loss_at_best"]


def test_the_baseline_is_in_the_summary_and_the_5_epoch_run_is_no_better(runs):
    summary = json.loads((runs["underfit"] / "summary.json").read_text())
    assert set(summary["baseline"]) == {"loss", "binary_accuracy"}
    assert 0.6 < summary["baseline"]["loss"] < 0.7  # the prior of a 64/36 split
    assert summary["baseline_constants"]["binary_accuracy"]["predict"] == 1.0
    assert summary["best_value"] > summary["baseline"]["loss"]
    finding = summary["diagnosis"]["findings"][0]
    assert "no better than a constant prediction" in finding["summary"]


def test_the_end_of_run_output_shows_baselines_and_a_few_lines_of_diagnosis(runs):
    text = (runs["underfit"].parent.parent / "underfit-output.txt").read_text()
    assert "(baseline 0.674799" in text and "val_binary_accuracy" in text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Diagnosis: underfit: no better"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Run directory:"))
    assert end - start <= 4  # a few lines, not a wall
    assert "try: --set training.optimizer.learning_rate=0.01" in text
    assert f"dlrun diagnose {runs['underfit']}" in text


def test_compare_has_a_fit_column(runs):
    loaded, _ = reading.load_runs(list(runs.values()))
    columns, rows = compare.rows(loaded)
    assert "fit" in columns
    assert {row["run"].split("/")[0]: row["fit"] for row in rows} == {k: k for k in runs}


def test_the_loss_plot_shades_the_overfitting_and_draws_the_baseline(runs):
    run_dir = runs["overfit"]
    summary = json.loads((run_dir / "summary.json").read_text())
    history = read_history(run_dir)
    ax = run_figures(history, best_of(history, summary), "overfit", summary)["loss"].axes[0]
    (span,) = ax.patches
    finding = summary["diagnosis"]["findings"][0]
    assert span.get_x() == finding["numbers"]["from_epoch"] and span.get_label().startswith("overfitting")
    baseline = [line for line in ax.lines if line.get_label().startswith("baseline")]
    assert len(baseline) == 1 and list(baseline[0].get_ydata()) == [summary["baseline"]["loss"]] * 2
    assert (run_dir / "plots" / "loss.png").is_file()


def test_diagnose_prints_the_full_reading(runs):
    result = runner.invoke(app, ["diagnose", str(runs["overfit"])])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{runs['overfit']}: overfit"
    assert "baseline val_loss 0.674799" in result.output and "overfit from epoch" in result.output
    assert "--set 'training.early_stopping={patience: 20, restore_best_weights: true}'" in result.output
    assert "--set 'model.layers=[{type: dense, units: 512, activation: relu}, {type: dropout" in result.output
    unstable = runner.invoke(app, ["diagnose", str(runs["unstable"] / "history.csv")])
    assert "unstable: the training loss diverged" in unstable.output
    assert "--set training.optimizer.learning_rate=1\n" in unstable.output


def test_diagnose_json(runs):
    result = runner.invoke(app, ["diagnose", str(runs["unstable"]), "--json"])
    data = json.loads(result.output)
    assert data["fit"] == "unstable" and data["findings"][0]["numbers"]["diverged_epoch"] == 2


def test_diagnose_recomputes_the_baseline_of_an_older_run_only_when_its_csv_is_unchanged(runs, tmp_path):
    old = tmp_path / "old" / "20240101-120000"
    shutil.copytree(runs["underfit"], old)
    summary = json.loads((old / "summary.json").read_text())
    expected = summary["baseline"]["loss"]
    for key in ("baseline", "baseline_constants", "diagnosis"):
        del summary[key]
    (old / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["diagnose", str(old)])
    assert "baseline recomputed" in result.output and f"baseline val_loss {expected:.6g}" in result.output
    assert "no better than a constant prediction" in result.output
    assert "baseline" not in json.loads((old / "summary.json").read_text())  # nothing written
    summary["data_sha256"] = {path: "0" * 64 for path in summary["data_sha256"]}
    (old / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["diagnose", str(old)])
    assert "changed since training" in result.output and "baseline val_loss" not in result.output
    assert result.output.splitlines()[0].endswith(": underfit")  # still improving at the limit


def test_diagnose_of_a_run_with_a_baseline_does_not_import_tensorflow(runs):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom dlrun.cli import app\n"
        f"result = CliRunner().invoke(app, ['diagnose', {str(runs['overfit'])!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_diagnose_of_something_that_is_not_a_run_is_one_line(tmp_path):
    result = runner.invoke(app, ["diagnose", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
