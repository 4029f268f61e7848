"""Training end to end on tiny CSVs: the run directory, early stopping, NaN and interrupts."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrun.backend import import_keras
from dlrun.data.prepare import prepare
from dlrun.errors import DataError, TrainingError
from dlrun.runs import layout as runs
from dlrun.spec.loader import load_spec
from dlrun.training.fit import train

from conftest import CONFIGS, binary_spec, keras_best_epoch, make_binary_csv, make_regression_csv, write_spec

keras = import_keras()


def test_run_directory_holds_everything(binary_experiment, tmp_path):
    spec = load_spec(binary_experiment, ["training.epochs=4"])
    outcome = train(spec, tmp_path / "runs", ["training.epochs=4"], quiet=True)
    run_dir = outcome.run_dir
    assert run_dir.parent == tmp_path / "runs" / "spec"

    resolved = yaml.safe_load((run_dir / runs.CONFIG).read_text())
    assert resolved["training"]["epochs"] == 4 and resolved["training"]["optimizer"]["learning_rate"] == 0.001
    assert load_spec(run_dir / runs.CONFIG) == spec.model_copy(update={"name": "spec"})  # config.yaml trains as is
    assert (run_dir / runs.OVERRIDES).read_text() == "training.epochs=4\n"

    history = pd.read_csv(run_dir / runs.HISTORY)
    assert list(history["epoch"]) == [0, 1, 2, 3]
    assert set(history.columns) == {
        "epoch",
        "loss",
        "val_loss",
        "binary_accuracy",
        "val_binary_accuracy",
        "learning_rate",
    }
    assert np.allclose(history["learning_rate"], 0.001)

    summary = json.loads((run_dir / runs.SUMMARY).read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 4 and summary["stopped_epoch"] is None
    best = int(history["val_loss"].idxmin())
    assert summary["best_epoch"] == best + 1 and summary["best_value"] == pytest.approx(history["val_loss"][best])
    assert summary["min_val_loss"] == pytest.approx(history["val_loss"].min())
    assert summary["final"]["loss"] == pytest.approx(history["loss"].iloc[-1])
    assert summary["rows"] == {"train": 90, "validation": 30}
    assert summary["versions"]["keras"] == keras.__version__
    assert len(next(iter(summary["data_sha256"].values()))) == 64

    model = keras.saving.load_model(run_dir / runs.MODEL)
    data = prepare(spec.data, spec.seed, spec.training.loss)
    final_val_loss = model.evaluate(data.x_valid, data.y_valid, verbose=0, return_dict=True)["loss"]
    assert final_val_loss == pytest.approx(history["val_loss"].iloc[-1], abs=1e-5)

    pngs = sorted(p.name for p in (run_dir / runs.PLOTS).iterdir())
    assert pngs == ["binary_accuracy.png", "loss.png"]
    assert all((run_dir / runs.PLOTS / p).stat().st_size > 1000 for p in pngs)


def test_same_seed_same_history_and_never_the_same_folder(binary_experiment, tmp_path):
    spec = load_spec(binary_experiment)
    first = train(spec, tmp_path / "runs", quiet=True).run_dir
    second = train(spec, tmp_path / "runs", quiet=True).run_dir
    assert first != second
    assert (first / runs.HISTORY).read_text() == (second / runs.HISTORY).read_text()


def test_early_stopping_stops_early_and_restores_the_best_weights(tmp_path):
    # Random labels: a wide network memorizes the training rows, so val_loss soon rises for good.
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(160, 6)), columns=[f"f{i}" for i in range(6)])
    frame["target"] = rng.integers(0, 2, size=160)
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec(
        epochs=300,
        optimizer={"name": "adam", "learning_rate": 0.03},
        early_stopping={"patience": 4, "restore_best_weights": True},
    )
    data["model"]["layers"][0]["units"] = 64
    spec = load_spec(write_spec(tmp_path, data))
    outcome = train(spec, tmp_path / "runs", quiet=True)
    summary, history = outcome.summary, pd.read_csv(outcome.run_dir / runs.HISTORY)

    assert summary["status"] == "early-stopped"
    assert summary["epochs_run"] == len(history) < 300
    assert summary["stopped_epoch"] == len(history)
    best = int(history["val_loss"].idxmin())
    assert summary["best_epoch"] == best + 1 == len(history) - 4

    model = keras.saving.load_model(outcome.run_dir / runs.MODEL)
    prepared = prepare(spec.data, spec.seed, spec.training.loss)
    restored = model.evaluate(prepared.x_valid, prepared.y_valid, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(history["val_loss"][best], abs=1e-5)
    assert restored < history["val_loss"].iloc[-1]


def test_nan_loss_stops_and_keeps_the_history(tmp_path):
    make_regression_csv(tmp_path / "data.csv")
    data = {
        "data": {"path": "data.csv", "target": "y", "validation_split": 0.25},
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}]},
        "training": {"optimizer": {"name": "sgd", "learning_rate": 1e12}, "loss": "mse", "epochs": 50, "batch_size": 8},
    }
    spec = load_spec(write_spec(tmp_path, data))
    with pytest.raises(TrainingError, match="loss became NaN") as info:
        train(spec, tmp_path / "runs", quiet=True)
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    history = pd.read_csv(run_dir / runs.HISTORY)
    # TerminateOnNaN stops at the batch whose loss is NaN or infinite: here it overflows to inf first
    assert 1 <= len(history) < 50 and not np.isfinite(history["loss"].iloc[-1])
    assert json.loads((run_dir / runs.SUMMARY).read_text())["status"] == "nan"
    assert str(run_dir / runs.HISTORY) in str(info.value)


def test_ctrl_c_finishes_the_epoch_in_flight_and_keeps_every_epoch(binary_experiment, tmp_path, monkeypatch):
    from dlrun.training.progress import EpochLines  # the progress display when output is not a terminal

    def ctrl_c_in_the_second_epoch(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(EpochLines, "on_epoch_begin", ctrl_c_in_the_second_epoch, raising=False)
    spec = load_spec(binary_experiment, ["training.epochs=10"])
    with pytest.raises(TrainingError, match="interrupted after 2 finished epochs") as info:
        train(spec, tmp_path / "runs")
    assert info.value.exit_code == 130 and "dlrun train --resume" in str(info.value)
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    assert list(pd.read_csv(run_dir / runs.HISTORY)["epoch"]) == [0, 1]
    summary = json.loads((run_dir / runs.SUMMARY).read_text())
    assert (summary["status"], summary["epochs_run"], summary["model_epoch"]) == ("interrupted", 2, 2)
    assert (run_dir / runs.MODEL).is_file() and (run_dir / runs.CHECKPOINT).is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back


def test_sparse_categorical_maps_string_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2))
    frame = pd.DataFrame(x, columns=["a", "b"])
    frame["kind"] = np.where(x[:, 0] > 0.5, "high", np.where(x[:, 0] < -0.5, "low", "mid"))
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = {
        "data": {"path": "data.csv", "target": "kind", "validation_split": 0.3},
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
        "training": {
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["sparse_categorical_accuracy"],
            "epochs": 2,
        },
    }
    outcome = train(load_spec(write_spec(tmp_path, data)), tmp_path / "runs", quiet=True)
    saved = json.loads((outcome.run_dir / runs.PREPROCESSING).read_text())
    assert saved["classes"] == ["high", "low", "mid"]
    assert "val_sparse_categorical_accuracy" in pd.read_csv(outcome.run_dir / runs.HISTORY).columns


def test_bad_data_leaves_no_run_directory(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    spec = load_spec(write_spec(tmp_path, binary_spec()), ["data.target=nope"])
    with pytest.raises(DataError, match="'nope' is not in"):
        train(spec, tmp_path / "runs", quiet=True)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("batch_size", [8, 7])
def test_logged_val_loss_is_a_plain_evaluation_whatever_the_steps_per_execution(tmp_path, batch_size):
    # 90 training and 30 validation rows: batch 8 runs 4 batches per call, batch 7 one (13 and 5 steps).
    make_binary_csv(tmp_path / "data.csv")
    spec = load_spec(write_spec(tmp_path, binary_spec(batch_size=batch_size, epochs=3)))
    outcome = train(spec, tmp_path / "runs", quiet=True)
    history = pd.read_csv(outcome.run_dir / runs.HISTORY)
    model = keras.saving.load_model(outcome.run_dir / runs.MODEL)
    prepared = prepare(spec.data, spec.seed, spec.training.loss)
    fresh = model.evaluate(prepared.x_valid, prepared.y_valid, batch_size=batch_size, verbose=0, return_dict=True)
    assert fresh["loss"] == pytest.approx(history["val_loss"].iloc[-1], abs=1e-5)
    assert fresh["binary_accuracy"] == pytest.approx(history["val_binary_accuracy"].iloc[-1], abs=1e-6)


def test_an_error_inside_fit_is_one_message_and_keeps_the_epochs(binary_experiment, tmp_path, monkeypatch):
    from dlrun.training.progress import EpochLines

    original = EpochLines.on_epoch_end

    def fail_after_two(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise RuntimeError("something deep in TensorFlow\nResourceExhausted: out of memory")

    monkeypatch.setattr(EpochLines, "on_epoch_end", fail_after_two)
    spec = load_spec(binary_experiment, ["training.epochs=10"])
    with pytest.raises(TrainingError, match=r"failed after 2 finished epochs \(RuntimeError: ResourceExhausted"):
        train(spec, tmp_path / "runs")
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    assert len(pd.read_csv(run_dir / runs.HISTORY)) == 2
    assert json.loads((run_dir / runs.SUMMARY).read_text())["status"] == "failed"
    assert not (run_dir / runs.MODEL).exists()


def test_the_readme_run_has_one_best_epoch_everywhere(tmp_path):
    """The README's first command: min_delta 0.001 keeps an earlier epoch than the lowest val_loss."""
    from typer.testing import CliRunner

    from dlrun.cli import app
    from dlrun.runs import compare, plot
    from dlrun.runs.history import best_of, read_history
    from dlrun.runs.reading import load_runs

    result = CliRunner().invoke(app, ["train", str(CONFIGS / "06_binary_classification.yaml"), "--out", "runs"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs" / "06_binary_classification").iterdir()
    summary = json.loads((run_dir / runs.SUMMARY).read_text())
    history = read_history(run_dir)
    best = summary["best_epoch"]
    assert best == keras_best_epoch(history.values["val_loss"], "min", 0.001) == summary["model_epoch"]
    assert summary["min_val_loss_epoch"] != best  # the case that printed two unexplained numbers
    text = " ".join(result.output.split())
    assert f"Best epoch {best}: val_loss {summary['best_value']:.6g}" in text
    assert f"Lowest val_loss {summary['min_val_loss']:.6g} at epoch {summary['min_val_loss_epoch']}" in text
    assert "by less than min_delta 0.001" in text and "Minimum validation loss" not in text

    figures = plot.run_figures(history, best_of(history, summary), "run")
    marked = [line for line in figures["loss"].axes[0].lines if line.get_linestyle() == ":"]
    assert [list(line.get_xdata()) for line in marked] == [[best, best]]
    columns, rows = compare.rows(load_runs([run_dir])[0])
    assert rows[0]["best_epoch"] == best and rows[0]["best:val_loss"] == summary["best_value"]

    model = keras.saving.load_model(run_dir / runs.MODEL)  # the weights of the best epoch
    spec = load_spec(run_dir / runs.CONFIG)
    prepared = prepare(spec.data, spec.seed, spec.training.loss)
    restored = model.evaluate(prepared.x_valid, prepared.y_valid, batch_size=512, verbose=0, return_dict=True)
    assert restored["loss"] == pytest.approx(summary["best_value"], abs=1e-5)
