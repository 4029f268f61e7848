"""Schedules, ReduceLROnPlateau, class and sample weights, metrics with arguments and TensorBoard, trained briefly.

Each test trains a real model on a tiny seeded CSV and asserts the option's effect on what Keras logged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.backend import import_keras
from dlrun.cli import app
from dlrun.data.prepare import prepare
from dlrun.errors import DataError, DlrunError
from dlrun.runs import layout
from dlrun.spec.loader import load_spec
from dlrun.training.fit import train

from conftest import CONFIGS, binary_spec, keras_best_epoch, make_binary_csv, write_spec

keras = import_keras()
runner = CliRunner()


def run(tmp_path: Path, data: dict, overrides=None) -> tuple[dict, pd.DataFrame, Path]:
    """Train spec data against tmp_path/data.csv; return summary.json, history.csv and the run directory."""
    if not (tmp_path / "data.csv").exists():
        make_binary_csv(tmp_path / "data.csv")
    spec = load_spec(write_spec(tmp_path, data), overrides)
    outcome = train(spec, tmp_path / "runs", quiet=True)
    return outcome.summary, pd.read_csv(outcome.run_dir / layout.HISTORY), outcome.run_dir


def test_a_schedule_lowers_the_learning_rate_step_by_step(tmp_path):
    # 90 training rows in batches of 32: 3 steps an epoch, so a halving every 3 steps halves each epoch.
    schedule = {"name": "exponential_decay", "initial_learning_rate": 0.04, "decay_steps": 3, "decay_rate": 0.5}
    summary, history, run_dir = run(
        tmp_path, binary_spec(epochs=4, optimizer={"name": "sgd", "learning_rate": schedule})
    )
    assert summary["steps_per_epoch"] == 3
    assert list(history["learning_rate"]) == pytest.approx([0.02, 0.01, 0.005, 0.0025])  # at each epoch's end
    assert (run_dir / layout.PLOTS / "learning_rate.png").is_file()
    assert load_spec(run_dir / layout.CONFIG).training.optimizer.learning_rate.model_dump() == schedule
    fixed, _, fixed_dir = run(tmp_path, binary_spec(epochs=2, optimizer={"name": "sgd", "learning_rate": 0.04}))
    assert not (fixed_dir / layout.PLOTS / "learning_rate.png").exists()  # drawn only when it changes


def test_reduce_lr_on_plateau_lowers_the_rate_history_shows(tmp_path):
    # min_delta 10: no epoch after the first counts as better, so with patience 0 every epoch reduces.
    plateau = {"monitor": "val_auc_pr", "factor": 0.5, "patience": 0, "min_delta": 10, "min_lr": 0.003}
    data = binary_spec(
        epochs=6,
        optimizer={"name": "sgd", "learning_rate": 0.02},
        metrics=[{"name": "auc", "curve": "PR"}],
        reduce_lr_on_plateau=plateau,
    )
    spec = load_spec(write_spec(tmp_path, data))
    assert spec.training.reduce_lr_on_plateau.mode == "max"  # resolved by the spec, passed to Keras as max
    _, history, run_dir = run(tmp_path, data)
    # Logged before each reduction: the rate the epoch trained with; never below min_lr.
    assert list(history["learning_rate"]) == pytest.approx([0.02, 0.02, 0.01, 0.005, 0.003, 0.003])
    assert (run_dir / layout.PLOTS / "learning_rate.png").is_file()


def test_class_weights_change_the_loss_as_sample_weights_would(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    frame = pd.read_csv(tmp_path / "data.csv")
    frame["by_class"] = np.where(frame["target"] == 1, 5.0, 1.0)
    frame.to_csv(tmp_path / "data.csv", index=False)
    plain, plain_history, _ = run(tmp_path, binary_spec(epochs=3), ["data.drop=[by_class]"])
    weighted, weighted_history, _ = run(
        tmp_path, binary_spec(epochs=3, class_weight={0: 1, 1: 5}), ["data.drop=[by_class]"]
    )
    assert weighted["class_weight"] == {"0": 1.0, "1": 5.0}
    assert not np.allclose(weighted_history["loss"], plain_history["loss"])
    assert weighted_history["val_loss"].iloc[0] != plain_history["val_loss"].iloc[0]  # the weights were trained with
    # Keras's fit(class_weight=...) on dlrun's tf.data datasets weighs the training rows exactly as a weight
    # column of 5 and 1 by class does; only the weight column weighs the validation rows too.
    as_column = binary_spec(epochs=3)
    as_column["data"]["weight_column"] = "by_class"
    _, column_history, _ = run(tmp_path, as_column)
    np.testing.assert_allclose(column_history["loss"], weighted_history["loss"], rtol=1e-5)
    assert not np.allclose(column_history["val_loss"], weighted_history["val_loss"])


def test_balanced_weights_come_from_the_training_rows_and_labels_name_classes(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["mail"] = np.where(x[:, 0] > 0.9, "spam", "ham")  # about 18% spam
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec(epochs=2, class_weight="balanced", metrics=[{"name": "auc", "curve": "PR"}])
    data["data"].update(target="mail", stratify=True)
    summary, _, _ = run(tmp_path, data)
    spec = load_spec(write_spec(tmp_path, data))
    counts = pd.Series(prepare(spec.data, spec.seed, spec.training.loss).y_train).value_counts()
    rows = summary["rows"]["train"]
    assert summary["class_weight"] == pytest.approx({"ham": rows / (2 * counts[0]), "spam": rows / (2 * counts[1])})
    by_label, _, _ = run(tmp_path, data, ["training.class_weight={spam: 4}"])
    assert by_label["class_weight"] == {"ham": 1.0, "spam": 4.0}
    with pytest.raises(DataError, match=r"'junk' is not a class of target 'mail'; its classes are ham, spam"):
        run(tmp_path, data, ["training.class_weight={junk: 4}"])
    assert len(list((tmp_path / "runs" / "spec").iterdir())) == 2  # the mistake left no run directory


def test_sample_weights_weigh_training_and_validation_rows(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    frame = pd.read_csv(tmp_path / "data.csv")
    frame["w"] = np.random.default_rng(1).uniform(0, 3, len(frame)).round(3)
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec(epochs=3)
    data["data"]["weight_column"] = "w"
    summary, weighted, run_dir = run(tmp_path, data)
    preprocessing = json.loads((run_dir / layout.PREPROCESSING).read_text())
    assert preprocessing["weight_column"] == "w" and "w" not in preprocessing["features"]
    # The logged val_loss is the validation rows' loss weighted by their w, as Keras weighs validation_data.
    spec = load_spec(run_dir / layout.CONFIG)
    prepared = prepare(spec.data, spec.seed, spec.training.loss)
    model = keras.saving.load_model(run_dir / layout.MODEL)
    y = prepared.y_valid[:, None]
    weighted_val = model.evaluate(prepared.x_valid, y, sample_weight=prepared.w_valid, verbose=0, return_dict=True)
    plain_val = model.evaluate(prepared.x_valid, y, verbose=0, return_dict=True)
    assert weighted_val["loss"] == pytest.approx(weighted["val_loss"].iloc[-1], abs=1e-5)
    assert plain_val["loss"] != pytest.approx(weighted["val_loss"].iloc[-1], abs=1e-4)
    # The training rows' weights change the loss: unweighted, the same seed logs another one.
    _, plain, _ = run(tmp_path, binary_spec(epochs=1), ["data.drop=[w]"])
    assert plain["loss"].iloc[0] != pytest.approx(weighted["loss"].iloc[0], abs=1e-4)


@pytest.mark.parametrize(
    ("cell", "words"),
    [("-1", "is negative on line 4"), ("", "is empty on line 4"), ("heavy", "holds 'heavy'")],
)
def test_a_bad_weight_is_an_error_with_its_line(tmp_path, cell, words):
    make_binary_csv(tmp_path / "data.csv")
    frame = pd.read_csv(tmp_path / "data.csv").astype({"f3": object})
    frame["f3"] = frame["f3"].abs()
    frame.loc[2, "f3"] = cell  # line 4: the header is line 1
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec(epochs=1)
    data["data"]["weight_column"] = "f3"
    for streaming in (False, True):
        data["data"]["streaming"] = streaming
        with pytest.raises(DataError, match=words):
            run(tmp_path, data)
    assert not (tmp_path / "runs").exists()
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path, data)), "--set", "data.weight_column=nope"])
    assert result.exit_code == 1 and "data.weight_column: column 'nope' is not in" in result.output


def test_streamed_weights_train_as_weights_in_memory(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    frame = pd.read_csv(tmp_path / "data.csv")
    frame["w"] = np.where(frame["target"] == 1, 2.0, 0.5)
    frame.iloc[90:].to_csv(tmp_path / "valid.csv", index=False)
    frame.iloc[:90].to_csv(tmp_path / "data.csv", index=False)
    summaries = []
    for streaming in (False, True):
        data = binary_spec(epochs=1, shuffle=False, class_weight={1: 3})
        data["data"] = {
            "path": "data.csv",
            "target": "target",
            "validation_path": "valid.csv",
            "weight_column": "w",
            "streaming": streaming,
            "chunk_rows": 17,
        }
        summaries.append(run(tmp_path, data)[0])
    for key in ("loss", "val_loss"):
        assert summaries[1]["final"][key] == pytest.approx(summaries[0]["final"][key], abs=1e-5)


def test_metrics_with_arguments_log_their_columns_and_early_stopping_watches_one(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(160, 6)), columns=[f"f{i}" for i in range(6)])
    frame["target"] = rng.integers(0, 2, size=160)  # random labels: val_auc_pr soon stops rising
    frame.to_csv(tmp_path / "data.csv", index=False)
    metrics = [
        "binary_accuracy",
        {"name": "auc", "curve": "PR"},
        "auc",
        {"name": "precision", "thresholds": 0.3},
        "f1_score",
    ]
    data = binary_spec(
        epochs=200,
        metrics=metrics,
        optimizer={"name": "adam", "learning_rate": 0.03},
        early_stopping={"monitor": "val_auc_pr", "patience": 3, "restore_best_weights": True},
    )
    data["model"]["layers"][0]["units"] = 64
    summary, history, run_dir = run(tmp_path, data)
    for column in ("auc_pr", "auc", "precision_at_0.3", "f1_score"):
        assert column in history and f"val_{column}" in history
        assert history[column].notna().all()  # one number per epoch, even for F1 on one output
    assert "auc_1" not in history
    assert (summary["monitor"], summary["mode"], summary["status"]) == ("val_auc_pr", "max", "early-stopped")
    assert summary["best_epoch"] == keras_best_epoch(list(history["val_auc_pr"]), "max") == len(history) - 3
    assert (run_dir / layout.PLOTS / "auc_pr.png").is_file()
    model = keras.saving.load_model(run_dir / layout.MODEL)  # restored to the best val_auc_pr
    spec = load_spec(run_dir / layout.CONFIG)
    prepared = prepare(spec.data, spec.seed, spec.training.loss)
    restored = model.evaluate(prepared.x_valid, prepared.y_valid[:, None], verbose=0, return_dict=True)
    assert restored["auc_pr"] == pytest.approx(summary["best_value"], abs=1e-5)
    result = runner.invoke(app, ["compare", str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["best:val_auc_pr"] == pytest.approx(summary["best_value"]) and "best:val_precision_at_0.3" in row


def test_check_warns_of_a_rare_class_until_it_is_weighted_or_stratified(tmp_path):
    config = str(CONFIGS / "08_imbalanced_classification.yaml")
    bare = ["--set", "training.class_weight=null", "--set", "data.stratify=false"]
    result = runner.invoke(app, ["check", config, *bare])
    assert result.exit_code == 0, result.output
    assert "warning: class malignant is 8.8% of the training rows (24 of 274)" in " ".join(result.output.split())
    assert "training.class_weight: balanced" in result.output
    for fix in (["--set", "data.stratify=true"], ["--set", "training.class_weight=balanced"]):
        result = runner.invoke(app, ["check", config, *bare, *fix])
        assert result.exit_code == 0 and "warning" not in result.output, result.output
    result = runner.invoke(app, ["check", config])
    text = " ".join(result.output.split())
    assert "Class weights: benign 0.548, malignant 5.708 (balanced" in text
    assert "Steps per epoch: 5 (274 training rows / batch_size 64)" in text


def test_check_shows_a_schedules_steps_in_epochs():
    result = runner.invoke(app, ["check", str(CONFIGS / "09_learning_rate_schedule.yaml")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Steps per epoch: 10 (309 training rows / batch_size 32)" in text
    assert "decay_steps 950 = 95 epochs; warmup_steps 50 = 5 epochs; training.epochs 100 = 1000 steps" in text


def test_tensorboard_without_its_package_is_one_message_before_any_run(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(DlrunError, match=r"needs the tensorboard package.*pip install 'dlrun\[tensorboard\]'"):
        run(tmp_path, binary_spec(tensorboard=True))
    assert not (tmp_path / "runs").exists()


def test_tensorboard_logs_every_epoch_into_the_run_directory(tmp_path):
    pytest.importorskip("tensorboard")
    import tensorflow as tf

    summary, history, run_dir = run(tmp_path, binary_spec(epochs=3, tensorboard={"histogram_freq": 1}))
    epochs: dict[str, dict[str, list[float]]] = {"train": {}, "validation": {}}
    tags: set[str] = set()
    for part in epochs:
        for events in (run_dir / layout.TENSORBOARD / part).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(events)):
                for value in event.summary.value:
                    tags.add(value.tag)
                    if value.tag.startswith("epoch_"):  # scalars; the model summary is text, histograms tables
                        number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                        epochs[part].setdefault(value.tag, []).append(float(number))
    assert epochs["train"]["epoch_loss"] == pytest.approx(list(history["loss"]), rel=1e-5)
    assert epochs["validation"]["epoch_loss"] == pytest.approx(list(history["val_loss"]), rel=1e-5)
    assert epochs["train"]["epoch_learning_rate"] == pytest.approx(list(history["learning_rate"]), rel=1e-5)
    assert any(tag.endswith("/histogram") for tag in tags)  # histogram_freq: 1
