"""A mixed-type CSV trained end to end, then `dlrun predict` and `dlrun evaluate` on raw rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.prepare import prepare
from dlrun.spec.loader import load_spec

from conftest import binary_spec, mixed_frame, write_spec

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("predict")

runner = CliRunner()


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def trained(tmp_path_factory) -> dict:
    """Train a binary model on numbers, strings, NaNs and an id column (dropped), with a test split."""
    folder = tmp_path_factory.mktemp("mixed")
    frame = mixed_frame(rows=160)
    frame["target"] = frame["target"].astype(float)
    frame.loc[[2, 11], "target"] = np.nan  # dropped and counted
    frame.to_csv(folder / "data.csv", index=False)
    valid = mixed_frame(rows=40, seed=5)
    valid.loc[:1, "city"] = "Lima"  # unseen in training: all zeros, counted
    valid.to_csv(folder / "valid.csv", index=False)
    data = binary_spec(epochs=2, batch_size=16)
    data["data"] = {
        "path": "data.csv",
        "target": "target",
        "validation_path": "valid.csv",
        "test_split": 0.2,
        "drop": ["id"],
        "scale": "standard",
        "missing": "mean",
        "columns": {"code": {"kind": "categorical"}},
    }
    spec_path = write_spec(folder, data)
    result = runner.invoke(app, ["train", str(spec_path), "--out", str(folder / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = next((folder / "runs" / "spec").iterdir())
    return {
        "folder": folder,
        "run": run_dir,
        "spec": spec_path,
        "output": result.output,
        "summary": json.loads((run_dir / "summary.json").read_text()),
    }


def test_summary_counts_dropped_rows_unseen_categories_and_test_metrics(trained):
    summary = trained["summary"]
    assert summary["dropped_rows"] == {"missing_target": 2, "missing_values": 0}
    # 32 of the file's 160 rows are test rows, one of them with an empty target (left out where it falls)
    assert summary["rows"] == {"train": 127, "validation": 40, "test": 31}
    assert summary["unseen_categories"] == {"validation": {"city": 2}}
    assert set(summary["test"]) == {"loss", "binary_accuracy"} and 0 < summary["test"]["loss"] < 5
    lines = [" ".join(line.split()) for line in trained["output"].splitlines()]
    assert "Test (31 rows)" in lines and f"loss {summary['test']['loss']:.6g}" in lines
    saved = json.loads((trained["run"] / "preprocessing.json").read_text())
    assert saved["inputs"][:4] == ["age", "city=Oslo", "city=Paris", "city=Rome"] and saved["task"] == "binary"


def test_predict_on_raw_rows_reproduces_the_validation_predictions(trained):
    from dlrun.backend import import_keras

    out = trained["folder"] / "predictions.csv"
    result = runner.invoke(
        app, ["predict", str(trained["run"]), str(trained["folder"] / "valid.csv"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 40 predictions" in result.output and "city 2" in result.output
    written = pd.read_csv(out)
    assert list(written.columns) == [*pd.read_csv(trained["folder"] / "valid.csv").columns, "probability", "prediction"]
    spec = load_spec(trained["spec"])
    data = prepare(spec.data, spec.seed, spec.training.loss)  # the arrays training validated on
    model = import_keras().saving.load_model(trained["run"] / "model.keras", safe_mode=True)
    expected = model.predict(data.x_valid, verbose=0)[:, 0]
    np.testing.assert_allclose(written["probability"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (written["prediction"] == (expected >= 0.5).astype(int)).all()


def test_threshold_moves_the_binary_labels(trained):
    out = trained["folder"] / "p.csv"
    runner.invoke(
        app,
        ["predict", str(trained["run"]), str(trained["folder"] / "valid.csv"), "--out", str(out), "--threshold", "0.3"],
    )
    written = pd.read_csv(out)
    assert (written["prediction"] == (written["probability"] >= 0.3).astype(int)).all()
    result = runner.invoke(
        app, ["predict", str(trained["run"]), str(trained["folder"] / "valid.csv"), "--threshold", "1.5"]
    )
    assert result.exit_code == 1 and "--threshold 1.5" in result.output


def test_evaluate_matches_the_metrics_in_summary(trained):
    result = runner.invoke(app, ["evaluate", str(trained["run"]), str(trained["folder"] / "valid.csv"), "--json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    final = trained["summary"]["final"]
    assert evaluated["rows"] == 40 and evaluated["unseen_categories"] == {"city": 2}
    assert evaluated["metrics"]["loss"] == pytest.approx(final["val_loss"], abs=1e-5)
    assert evaluated["metrics"]["binary_accuracy"] == pytest.approx(final["val_binary_accuracy"], abs=1e-6)
    table = runner.invoke(
        app, ["evaluate", str(trained["run"]), str(trained["folder"] / "valid.csv")], env={"COLUMNS": "80"}
    )
    assert table.exit_code == 0 and "binary_accuracy" in table.output
    assert "valid.csv: 40 rows" in [line.strip() for line in table.output.splitlines()]  # the title, whole


def test_rows_left_out_are_said_in_words_by_train_and_evaluate(trained):
    lines = [" ".join(line.split()) for line in trained["output"].splitlines()]
    assert "Left out 2 rows with an empty target 'target'" in lines
    rows = pd.read_csv(trained["folder"] / "valid.csv")
    rows.loc[[0, 3, 7], "target"] = np.nan
    rows.to_csv(trained["folder"] / "gaps.csv", index=False)
    result = runner.invoke(app, ["evaluate", str(trained["run"]), str(trained["folder"] / "gaps.csv")])
    assert result.exit_code == 0, result.output
    assert "rows left out: 3 rows with an empty target 'target'" in result.output.splitlines()


def test_predict_on_a_csv_missing_columns_names_them(trained):
    rows = pd.read_csv(trained["folder"] / "valid.csv").drop(columns=["age", "city"])
    rows.to_csv(trained["folder"] / "partial.csv", index=False)
    for command in ("predict", "evaluate"):
        result = runner.invoke(app, [command, str(trained["run"]), str(trained["folder"] / "partial.csv")])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "lacks columns 'age', 'city'" in result.output


def test_predict_with_text_in_a_numeric_column_names_the_value_and_line(trained):
    rows = pd.read_csv(trained["folder"] / "valid.csv")
    rows["income"] = rows["income"].astype(object)
    rows.loc[4, "income"] = "lots"
    rows.to_csv(trained["folder"] / "typo.csv", index=False)
    result = runner.invoke(app, ["predict", str(trained["run"]), str(trained["folder"] / "typo.csv")])
    assert result.exit_code == 1 and "column 'income' is numeric but line 6 holds 'lots'" in result.output


def test_evaluate_without_the_target_says_predict_needs_none_before_importing_tensorflow(trained):
    rows = pd.read_csv(trained["folder"] / "valid.csv").drop(columns=["target"])
    rows.to_csv(trained["folder"] / "unlabelled.csv", index=False)
    args = ["evaluate", str(trained["run"]), str(trained["folder"] / "unlabelled.csv")]
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom dlrun.cli import app\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        "print(r.exit_code, 'tensorflow' in sys.modules, ' '.join(r.output.split()))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    code, imported, message = result.stdout.strip().split(" ", 2)
    assert (code, imported) == ("1", "False"), result.stdout  # refused from the header, TensorFlow never loaded
    assert "lacks the target column 'target'" in message and "`dlrun predict` needs no target" in message
    assert "that the model needs" not in message


def test_predict_out_dash_writes_csv_to_standard_output_and_says_what_it_did_on_standard_error(trained, tmp_path):
    file = tmp_path / "p.csv"
    valid = str(trained["folder"] / "valid.csv")
    assert runner.invoke(app, ["predict", str(trained["run"]), valid, "--out", str(file)]).exit_code == 0
    result = runner.invoke(app, ["predict", str(trained["run"]), valid, "--out", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout == file.read_text()  # the same CSV, with no line of chatter in it
    said = "wrote 40 predictions to standard output; unseen categories (encoded as all zeros): city 2\n"
    assert result.stderr == said
    assert not (tmp_path / "-").exists()


def test_predict_on_a_missing_file_given_on_the_command_line_says_where_it_is_looked_for(trained, tmp_path):
    for command in ("predict", "evaluate"):
        result = runner.invoke(app, [command, str(trained["run"]), "nosuch.csv"])
        assert result.exit_code == 1
        assert result.output == (
            f"error: data file not found: nosuch.csv (a path on the command line is relative to {tmp_path})\n"
        )


def test_predict_on_something_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path), "x.csv"])
    assert result.exit_code == 1 and "has no preprocessing.json" in result.output


def test_multiclass_predictions_use_the_original_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2))
    frame = pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "kind": np.array(["setosa", "virginica", "versicolor"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)],
        }
    )
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec(loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"], epochs=1)
    data["data"].update(target="kind", stratify=True)
    data["model"]["layers"][-1] = {"type": "dense", "units": 3, "activation": "softmax"}
    result = runner.invoke(app, ["train", str(write_spec(tmp_path, data)), "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = next(Path("runs/spec").iterdir())
    assert json.loads((run_dir / "preprocessing.json").read_text())["classes"] == ["setosa", "versicolor", "virginica"]
    frame.drop(columns=["kind"]).to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(app, ["predict", str(run_dir), "new.csv", "--out", "p.csv"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv("p.csv")
    probabilities = written[["probability_setosa", "probability_versicolor", "probability_virginica"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    labels = np.array(["setosa", "versicolor", "virginica"])[probabilities.argmax(axis=1)]
    assert (written["prediction"] == labels).all()
