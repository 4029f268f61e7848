"""Tests of compare, diff and seed-grouped plots, on trained runs and on hand-written run folders."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.errors import DlrunError
from dlrun.runs import compare, plot, reading

from conftest import assert_fits, binary_spec, make_binary_csv, write_spec

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("compare")

runner = CliRunner()


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Train two real runs that differ in optimizer and metrics: adam + accuracy, sgd + accuracy and auc."""
    from dlrun.spec.loader import load_spec
    from dlrun.training.fit import train

    folder = tmp_path_factory.mktemp("runs")
    make_binary_csv(folder / "data.csv")
    spec_a = write_spec(folder, binary_spec(epochs=4, optimizer="adam"), "a.yaml")
    spec_b = write_spec(
        folder,
        binary_spec(epochs=3, optimizer={"name": "sgd", "learning_rate": 0.05}, metrics=["binary_accuracy", "auc"]),
        "b.yaml",
    )
    run_a = train(load_spec(spec_a), folder / "runs", quiet=True).run_dir
    run_b = train(load_spec(spec_b), folder / "runs", quiet=True).run_dir
    return run_a, run_b


def fake_run(
    root: Path,
    name: str,
    history: dict,
    best_epoch: int,
    config: dict | None = None,
    stamp: str = "20240101-120000",
    monitor: str = "val_loss",
) -> Path:
    """Write a run folder by hand: config.yaml, summary.json and a 0-based history.csv."""
    run_dir = root / name / stamp
    run_dir.mkdir(parents=True)
    epochs = len(next(iter(history.values())))
    pd.DataFrame({"epoch": range(epochs), **history}).to_csv(run_dir / "history.csv", index=False)
    config = config or {"name": name, "seed": 0, "training": {"epochs": epochs}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    summary = {
        "status": "completed",
        "epochs_run": epochs,
        "best_epoch": best_epoch,
        "monitor": monitor,
        "mode": "min",
        "wall_time_s": 1.5,
        "seed": config.get("seed", 0),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir


def test_flatten_indexes_layers_and_keeps_value_lists_whole():
    flat = reading.flatten({"model": {"layers": [{"units": 4}, {"rate": 0.2}]}, "training": {"metrics": ["a", "b"]}})
    assert flat == {"model.layers[0].units": 4, "model.layers[1].rate": 0.2, "training.metrics": ["a", "b"]}


def test_changed_params_are_only_the_values_that_differ(two_runs):
    runs, skipped = reading.load_runs(list(two_runs))
    assert not skipped
    changed = compare.changed_params(runs)
    assert "training.optimizer.name" in changed
    assert "training.optimizer.learning_rate" in changed  # given in one spec only
    assert "training.metrics" in changed and "training.epochs" in changed
    assert "data.path" not in changed and "model.layers[0].units" not in changed and "seed" not in changed
    everything, _ = compare.rows(runs, all_params=True)
    assert "model.layers[0].units" in everything and "seed" in everything


def test_best_and_last_values_match_history_csv(two_runs):
    runs, _ = reading.load_runs(list(two_runs))
    columns, rows = compare.rows(runs)
    assert columns.index("best:val_loss") < columns.index("best:loss")  # the monitored quantity first
    assert {"best:auc", "last:val_auc"} <= set(columns)
    for run, row in zip(runs, rows):
        history = pd.read_csv(run.run_dir / "history.csv")
        best = history.loc[history["val_loss"].idxmin()]
        last = history.iloc[-1]
        assert row["best_epoch"] == int(best["epoch"]) + 1  # history.csv counts epochs from 0
        assert row["epochs_run"] == len(history)
        for column in [c for c in history.columns if c not in ("epoch", "learning_rate")]:
            assert row[f"best:{column}"] == pytest.approx(best[column])
            assert row[f"last:{column}"] == pytest.approx(last[column])
    adam_row = rows[[r.params["training.optimizer.name"] for r in runs].index("adam")]
    assert adam_row["best:auc"] is None and adam_row["last:val_auc"] is None  # blank, not a crash


def test_best_differs_from_last_when_the_best_epoch_is_early(tmp_path):
    run = fake_run(
        tmp_path,
        "early",
        {"loss": [0.9, 0.5, 0.4, 0.3], "val_loss": [0.8, 0.6, 0.7, 0.75], "binary_accuracy": [0.5, 0.7, 0.8, 0.9]},
        best_epoch=2,
    )
    columns, rows = compare.rows(reading.load_runs([run])[0])
    assert rows[0]["best:val_loss"] == 0.6 and rows[0]["last:val_loss"] == 0.75
    assert rows[0]["best:binary_accuracy"] == 0.7 and rows[0]["last:binary_accuracy"] == 0.9
    assert rows[0]["best_epoch"] == 2 and rows[0]["epochs_run"] == 4


def test_sort_puts_blanks_last_and_rejects_unknown_columns(tmp_path):
    a = fake_run(tmp_path, "a", {"loss": [0.5], "val_loss": [0.3]}, 1)
    b = fake_run(tmp_path, "b", {"loss": [0.5], "val_loss": [0.1]}, 1)
    c = fake_run(tmp_path, "c", {"loss": [0.5]}, None)
    columns, rows = compare.rows(reading.load_runs([a, b, c])[0])
    assert [r["run"] for r in compare.sort_rows(columns, rows, "best:val_loss")] == ["b", "a", "c"]  # by name
    assert [r["run"] for r in compare.sort_rows(columns, rows, "best:val_loss", True)][:2] == ["a", "b"]
    with pytest.raises(DlrunError, match="best:val_loss"):
        compare.sort_rows(columns, rows, "best:val_los")


def test_sort_accepts_the_short_names_the_table_shows(tmp_path):
    runs = reading.load_runs(many_runs(tmp_path / "runs", 4))[0]
    columns, rows = compare.rows(runs)
    by_short = compare.sort_rows(columns, rows, "batch", descending=True)
    assert [row["training.batch_size"] for row in by_short] == [35, 34, 33, 32]


def test_cli_compare_reports_and_skips_non_runs(two_runs, tmp_path):
    parent = two_runs[0].parent.parent
    half = parent / "half" / "20240101-000000"
    half.mkdir(parents=True)
    shutil.copy(two_runs[0] / "config.yaml", half / "config.yaml")  # a run killed before its first epoch
    empty = tmp_path / "empty"
    empty.mkdir()
    try:
        result = runner.invoke(
            app, ["compare", str(parent), str(empty), "--sort", "best:val_loss", "--csv", "table.csv"]
        )
    finally:
        shutil.rmtree(half.parent)
    assert result.exit_code == 0, result.output
    assert "half-written" in result.stderr and "empty" in result.stderr
    assert " a " in result.stdout and " b " in result.stdout  # runs of two specs: labelled by name
    assert "optimizer" in result.stdout and "sgd" in result.stdout and "adam" in result.stdout
    with open("table.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert "training.optimizer.name" in table[0] and "data.path" not in table[0]
    assert len(table) == 2
    values = [float(row["best:val_loss"]) for row in table]
    assert values == sorted(values)
    assert table[0]["best:auc"] == "" or table[1]["best:auc"] == ""


def test_cli_compare_json_rows_match_the_table(two_runs):
    result = runner.invoke(app, ["compare", *map(str, two_runs), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    columns, expected = compare.rows(reading.load_runs(list(two_runs))[0])
    assert [list(row) for row in rows] == [columns, columns]
    assert rows[0]["best:val_loss"] == pytest.approx(expected[0]["best:val_loss"])


def test_cli_compare_with_nothing_to_compare(tmp_path):
    result = runner.invoke(app, ["compare", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "no run to compare" in result.stderr
    assert "Traceback" not in result.output


def test_cli_diff_shows_config_and_metric_differences(two_runs, tmp_path):
    result = runner.invoke(app, ["diff", *map(str, two_runs), "--out", "d.png"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("training.optimizer.name" in line and "adam" in line and "sgd" in line for line in lines)
    a, b = (reading.load_run(r) for r in two_runs)
    expected = compare.rows([b])[1][0]["best:val_loss"] - compare.rows([a])[1][0]["best:val_loss"]
    val_loss_line = next(line for line in lines if line.strip("│ ").startswith("val_loss "))
    assert f"{expected:.6g}" in val_loss_line
    assert Path("d.png").read_bytes()[:4] == b"\x89PNG"
    assert not any("data.path" in line for line in lines)


def test_diff_of_a_half_written_run_is_an_error(two_runs, tmp_path):
    result = runner.invoke(app, ["diff", str(two_runs[0]), str(tmp_path)])
    assert result.exit_code == 1 and "half-written" in result.stderr


# --- seed groups -------------------------------------------------------------------------------


def seed_runs(root: Path) -> list[Path]:
    """Three seeds of one config (one stopped early, after 3 epochs), and one run of another config."""
    rng = np.random.default_rng(0)
    made = []
    for seed, configured, epochs in ((0, 4, 4), (1, 4, 4), (2, 4, 3), (0, 5, 5)):
        config = {"name": "exp", "seed": seed, "training": {"epochs": configured, "optimizer": {"name": "adam"}}}
        loss = list(np.linspace(1, 0.5, epochs) + rng.uniform(0, 0.1, epochs))
        made.append(
            fake_run(
                root,
                "exp",
                {"loss": loss, "val_loss": [v + 0.1 for v in loss]},
                1,
                config,
                stamp=f"2024010{len(made)}-000000",
            )
        )
    return made


def test_seed_groups_join_runs_that_differ_only_by_seed(tmp_path):
    made = seed_runs(tmp_path)
    groups = compare.seed_groups(made)
    assert groups == [[0, 1, 2], [3]]
    labels = compare.group_labels(made, groups)
    assert labels == ["epochs=4 (3 seeds)", "epochs=5 (1 seed)"]


@pytest.mark.parametrize("band", ["minmax", "std"])
def test_seed_group_is_the_mean_with_a_band(tmp_path, band):
    made = seed_runs(tmp_path)
    histories = [plot.history_frame(run) for run in made]
    merged, bands = plot._group_seeds([(str(r), h) for r, h in zip(made, histories)], made, band)
    assert len(merged) == 2 and list(bands) == [merged[0][0]]
    mean = merged[0][1]
    epoch_1 = [h.loc[h["epoch"] == 1, "loss"].item() for h in histories[:3]]
    epoch_4 = [h.loc[h["epoch"] == 4, "loss"].item() for h in histories[:2]]  # the third run has 3 epochs
    assert mean.loc[mean["epoch"] == 1, "loss"].item() == pytest.approx(np.mean(epoch_1))
    assert mean.loc[mean["epoch"] == 4, "loss"].item() == pytest.approx(np.mean(epoch_4))
    lower, upper = bands[merged[0][0]]
    low, high = lower.loc[lower["epoch"] == 1, "loss"].item(), upper.loc[upper["epoch"] == 1, "loss"].item()
    if band == "minmax":
        assert (low, high) == pytest.approx((min(epoch_1), max(epoch_1)))
    else:
        assert (low, high) == pytest.approx((np.mean(epoch_1) - np.std(epoch_1), np.mean(epoch_1) + np.std(epoch_1)))
    assert merged[1][0] == "epochs=5 (1 seed)"
    assert merged[1][1]["loss"].tolist() == histories[3]["loss"].tolist()  # a lone run is drawn as it is


def test_cli_plot_group_seeds(tmp_path):
    seed_runs(tmp_path / "runs")
    result = runner.invoke(app, ["plot", "runs", "--group-seeds", "--band", "std", "--out", "g.png"])
    assert result.exit_code == 0, result.output
    assert Path("g.png").read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(app, ["plot", "runs", "--group-seeds", "--band", "range"])
    message = " ".join(bad.stderr.replace("│", " ").split())
    assert bad.exit_code == 2 and "'range' is not one of 'minmax', 'std'" in message  # a choice: typer lists them


# --- tables that fit the screen ----------------------------------------------------------------


def many_runs(root: Path, count: int = 6) -> list[Path]:
    """Runs of one spec differing in learning rate, units and batch size, each logging six columns."""
    rng = np.random.default_rng(1)
    made = []
    for i in range(count):
        config = {
            "name": "exp",
            "seed": 0,
            "model": {"layers": [{"type": "dense", "units": 4 * (i % 3 + 1), "activation": "relu"}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": [0.01, 0.001][i % 2]}, "batch_size": 32 + i},
        }
        loss = list(np.linspace(1, 0.5, 5) + rng.uniform(0, 0.1, 5))
        history = {
            "auc": [0.5 + v / 3 for v in loss],
            "loss": loss,
            "val_auc": [0.4 + v / 3 for v in loss],
            "val_loss": [v + 0.123456 for v in loss],
            "binary_accuracy": [1 - v / 2 for v in loss],
            "val_binary_accuracy": [0.9 - v / 2 for v in loss],
        }
        made.append(fake_run(root, "exp", history, 3, config, stamp=f"2024010{i + 1}-000000"))
    return made


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("count", [2, 6])
def test_compare_fits_the_terminal_and_never_splits_a_number(tmp_path, width, count):
    made = many_runs(tmp_path / "runs", count)
    result = runner.invoke(app, ["compare", "runs"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    _, rows = compare.rows(reading.load_runs(made)[0])
    assert_fits(result.stdout, width, [compare.cell_text(row["best:val_loss"]) for row in rows])
    assert "lr" in result.stdout and "units" in result.stdout and "batch" in result.stdout
    if count == 2:  # two runs turn on their side: every column stays, each run headed by its label
        assert all(part in result.stdout for part in ("units=4", "batch=32", "lr=0.01"))  # a run's header
        assert "last:val_auc" in result.stdout and "Left out" not in result.stdout
    elif width == 80:  # six runs of 16 columns: only what matters stays, and a line says what went
        assert "Left out to fit" in result.stdout and "--csv FILE, --json" in " ".join(result.stdout.split())


def test_compare_files_keep_every_column_whatever_the_width(tmp_path):
    made = many_runs(tmp_path / "runs")
    result = runner.invoke(app, ["compare", "runs", "--csv", "all.csv"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    with open("all.csv", newline="") as handle:
        header = next(csv.reader(handle))
    columns, _ = compare.rows(reading.load_runs(made)[0])
    assert header == columns and "last:val_auc" in header and "model.layers[0].units" in header


def test_piped_compare_keeps_lines_reasonable(tmp_path):
    many_runs(tmp_path / "runs")
    result = runner.invoke(app, ["compare", "runs"])  # CliRunner is no terminal, and COLUMNS is unset
    assert result.exit_code == 0
    assert_fits(result.stdout, 160, [])


def test_a_stack_of_another_shape_is_one_model_column_unless_all_params(tmp_path):
    small = {"name": "exp", "model": {"layers": [{"type": "dense", "units": 1, "activation": "linear"}]}}
    deep = {
        "name": "exp",
        "model": {
            "layers": [
                {"type": "dense", "units": 64, "activation": "relu"},
                {"type": "dropout", "rate": 0.3},
                {"type": "batch_normalization"},
                {"type": "dense", "units": 1, "activation": "linear"},
            ]
        },
    }
    history = {"loss": [0.5, 0.4], "val_loss": [0.6, 0.5]}
    fake_run(tmp_path / "runs", "exp", history, 2, small, stamp="20240101-000000")
    fake_run(tmp_path / "runs", "exp", history, 2, deep, stamp="20240102-000000")
    result = runner.invoke(app, ["compare", "runs"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "64relu-d0.3-bn-1" in result.stdout and "16relu = dense(16, relu)" in result.stdout
    assert "layers[1]" not in result.stdout and "rate" not in result.stdout
    rows = json.loads(runner.invoke(app, ["compare", "runs", "--json"]).stdout)
    assert [row["run"] for row in rows] == ["model=1", "model=64relu-d0.3-bn-1"]
    assert rows[1]["model"] == "64relu-d0.3-bn-1" and rows[1]["model.layers[1].rate"] == 0.3  # files keep both
    every = runner.invoke(app, ["compare", "runs", "--all-params"], env={"COLUMNS": "120"})
    assert "layers[3].units" in every.stdout and "batch_normalization" in every.stdout


@pytest.mark.parametrize("width", [80, 120])
def test_diff_fits_the_terminal(two_runs, tmp_path, width):
    result = runner.invoke(app, ["diff", *map(str, two_runs), "--out", "d.png"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    a, b = (reading.load_run(r) for r in two_runs)
    numbers = [compare.cell_text(v) for _, *values in compare.diff_metrics(a, b) for v in values if v is not None]
    assert_fits(result.stdout, width, numbers)
    assert "optimizer" in result.stdout and "0.05" in result.stdout


@pytest.mark.parametrize("width", [80, 120])
def test_diff_names_runs_by_what_differs_and_keeps_numbers_whole(tmp_path, width):
    a, b = many_runs(tmp_path / "runs", 2)
    result = runner.invoke(app, ["diff", str(a), str(b), "--out", "d.png"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    runs = [reading.load_run(a), reading.load_run(b)]
    numbers = [compare.cell_text(v) for _, *values in compare.diff_metrics(*runs) for v in values if v is not None]
    assert_fits(result.stdout, width, numbers)
    text = " ".join(result.stdout.split())
    assert "units=4 batch=32 lr=0.01" in text and "units=8 batch=33 lr=0.001" in text
    assert "training.optimizer.learning_rate" in result.stdout  # the spec table keeps the full path


def test_runs_with_different_losses_are_grouped_by_loss_and_flagged(tmp_path):
    # The cars (mae, val_loss ~2.7) and penguins (cross-entropy, ~0.006): one column, two scales.
    def run(name, loss, val):
        config = {"name": name, "seed": 0, "training": {"epochs": 1, "loss": loss}}
        return fake_run(tmp_path / "runs", name, {"loss": [val], "val_loss": [val]}, 1, config)

    dirs = [run("cars", "mae", 2.7), run("penguins", "sparse_categorical_crossentropy", 0.006), run("mpg", "mae", 2.5)]
    columns, rows = compare.rows(reading.load_runs(dirs)[0])
    assert "training.loss" in columns
    assert [row["run"] for row in rows] == ["cars", "mpg", "penguins"]  # grouped, in order of first appearance
    ranked = compare.sort_rows(columns, rows, "best:val_loss")
    assert [row["run"] for row in ranked] == ["penguins", "mpg", "cars"]  # ranked within each loss, not across
    note = (
        "note: these runs were trained with different losses (mae, sparse_categorical_crossentropy): loss and "
        "val_loss compare only within one loss, so the rows are grouped by it (the loss column); compare one "
        "loss's runs to rank them"
    )
    table = runner.invoke(app, ["compare", str(tmp_path / "runs"), "--sort", "best:val_loss"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[-1] == note
    as_json = runner.invoke(app, ["compare", str(tmp_path / "runs"), "--json"])
    data = json.loads(as_json.stdout)
    assert [(row["run"], row["training.loss"]) for row in data] == [
        ("cars", "mae"),
        ("mpg", "mae"),
        ("penguins", "sparse_categorical_crossentropy"),
    ]
    assert as_json.stderr == note + "\n"
    one_loss = runner.invoke(app, ["compare", *map(str, dirs[::2])], env={"COLUMNS": "200"})
    assert "note:" not in one_loss.output


def test_csv_lines_end_with_lf_only(tmp_path):
    a = fake_run(tmp_path, "a", {"loss": [0.5], "val_loss": [0.3]}, 1)
    b = fake_run(tmp_path, "b", {"loss": [0.5], "val_loss": [0.1]}, 1)
    result = runner.invoke(app, ["compare", str(a), str(b), "--csv", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    data = (tmp_path / "t.csv").read_bytes()
    assert b"\r" not in data and data.count(b"\n") == 3
