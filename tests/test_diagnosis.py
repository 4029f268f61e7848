"""The learning-curve diagnosis on synthetic histories: every pattern, and the borderline ones it must leave alone."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlrun.runs import diagnosis
from dlrun.runs.diagnosis import Kind, diagnose
from dlrun.runs.history import History, best_epoch
from dlrun.spec.loader import load_spec

from conftest import binary_spec, write_spec

T = np.arange(1, 101)


def run(loss, val=None, status="completed", epochs=None, min_delta=0.0, baseline=None, **extra) -> tuple:
    """A history and the summary.json `dlrun train` would write for it (best epoch by Keras's rule)."""
    loss = [float(v) for v in loss]
    values = {"loss": loss}
    if val is not None:
        values["val_loss"] = [float(v) for v in val]
    history = History(Path("history.csv"), list(range(1, len(loss) + 1)), values)
    monitor = "val_loss" if val is not None else "loss"
    summary = {
        "status": status,
        "epochs": epochs or len(loss),
        "epochs_run": len(loss),
        "monitor": monitor,
        "mode": "min",
        "min_delta": min_delta,
        "best_epoch": best_epoch(values[monitor], "min", min_delta),
        **extra,
    }
    if baseline is not None:
        summary["baseline"] = {"loss": baseline}
        summary["baseline_constants"] = {"loss": {"predict": 0.62, "rule": "the positive rate of the training rows"}}
    return history, summary


def noise(scale: float, n: int = len(T), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, n)


@pytest.fixture
def config(tmp_path) -> tuple[Path, dict]:
    """A spec without early stopping or dropout, as a file (to check suggestions) and as config.yaml data."""
    spec = write_spec(tmp_path, binary_spec(epochs=100))
    return spec, load_spec(spec).resolved()


def assert_suggestions_valid(spec: Path, found: diagnosis.Finding) -> None:
    """Every suggestion is a `--set` the spec accepts."""
    assert found.suggestions
    for suggestion in found.suggestions:
        load_spec(spec, [suggestion.override])
        assert suggestion.option.startswith("--set ")


# --- each pattern --------------------------------------------------------------------------------


def test_converging_curves_early_stopped_look_healthy():
    val = 0.3 + 0.5 * np.exp(-T / 8) + noise(0.002)
    history, summary = run(0.25 + 0.5 * np.exp(-T / 8), val, status="early-stopped", epochs=500)
    reading = diagnose(history, summary, None)
    assert [f.kind for f in reading.findings] == [Kind.HEALTHY] and reading.fit == "ok"
    assert "val_loss fell from" in reading.findings[0].evidence[0]


def test_overfitting_says_from_which_epoch_and_by_how_much(config):
    spec, resolved = config
    val = 0.2 + 0.3 * np.exp(-T / 5) + 0.004 * np.maximum(0, T - 20)
    history, summary = run(0.5 * np.exp(-T / 10), val, model_epoch=100)
    reading = diagnose(history, summary, resolved)
    assert reading.fit == "overfit"
    found = reading.find(Kind.OVERFIT)
    best = summary["best_epoch"]
    assert found.numbers["from_epoch"] == best and found.numbers["to_epoch"] == 100
    end = found.numbers["val_loss_epoch"]
    assert found.numbers["rise"] == pytest.approx((val[end - 1] - val[best - 1]) / val[best - 1])
    assert found.numbers["rise"] > 1  # 0.2 + ... climbing by 0.32 over 80 epochs
    assert f"overfit from epoch {best}" in found.summary
    assert any("model.keras holds epoch 100" in line for line in found.evidence)
    sets = [s.override for s in found.suggestions]
    assert sets[0] == "training.early_stopping={patience: 20, restore_best_weights: true}"
    assert f"training.epochs={best}" in sets
    assert any(s.startswith("model.layers=[") and "{type: dropout, rate: 0.3}" in s for s in sets)
    assert_suggestions_valid(spec, found)
    with_dropout = load_spec(spec, [s for s in sets if s.startswith("model.layers")])
    assert [layer.type for layer in with_dropout.model.layers] == ["dense", "dropout", "dense"]


def test_overfitting_caught_by_restored_weights_says_so():
    val = 0.2 + 0.3 * np.exp(-T[:40] / 5) + 0.01 * np.maximum(0, T[:40] - 20)
    history, summary = run(0.5 * np.exp(-T[:40] / 10), val, status="early-stopped", epochs=500)
    summary["model_epoch"] = summary["best_epoch"]
    found = diagnose(history, summary).find(Kind.OVERFIT)
    assert found is not None
    assert any("restore_best_weights" in line and "before the rise" in line for line in found.evidence)


def test_still_improving_at_the_epoch_limit_is_underfit(config):
    spec, resolved = config
    val = 0.73 - 0.004 * np.arange(5)  # the course's 5 epochs at Adam's default: a slow straight line
    history, summary = run(val + 0.1, val, epochs=5)
    reading = diagnose(history, summary, resolved)
    found = reading.find(Kind.UNDERFIT)
    assert reading.fit == "underfit" and found.numbers["still_improving"] and found.numbers["straight"]
    assert "still improving at the epoch limit" in found.summary
    sets = [s.override for s in found.suggestions]
    assert sets[:2] == ["training.optimizer.learning_rate=0.01", "training.epochs=200"]
    assert_suggestions_valid(spec, found)


def test_a_curve_still_falling_but_leveling_off_is_not_straight():
    val = 0.3 + 0.5 * np.exp(-T[:30] / 15)  # two time constants: 13% of the fall still to come
    found = diagnose(*run(val + 0.05, val)).find(Kind.UNDERFIT)
    assert found is not None and found.numbers["still_improving"] and not found.numbers["straight"]


def test_best_val_loss_at_the_baseline_learned_nothing():
    val = 0.66 + noise(0.01, 30)
    history, summary = run(0.7 + noise(0.01, 30, seed=1), val, baseline=0.655)
    found = diagnose(history, summary).find(Kind.UNDERFIT)
    assert found.summary == "underfit: no better than a constant prediction; the model learned nothing usable"
    assert "the positive rate of the training rows" in found.evidence[-1]
    assert found.numbers["baseline"] == 0.655


def test_best_val_loss_a_little_below_the_baseline_is_underfit_with_its_share():
    val = 0.62 - 0.02 * (1 - np.exp(-T[:50] / 5))
    found = diagnose(*run(val, val, baseline=0.655)).find(Kind.UNDERFIT)
    assert found.summary == "underfit: only 8% better than a constant prediction"
    assert found.numbers["better_than_baseline"] == pytest.approx((0.655 - min(val)) / 0.655)


def test_a_loss_that_jumps_again_and_again_is_unstable(config):
    spec, resolved = config
    loss = [0.8, 0.6, 1.4, 0.7, 0.5, 1.3, 0.6, 0.5, 0.45, 1.1, 0.5]
    reading = diagnose(*run(loss, [v + 0.05 for v in loss]), resolved)
    found = reading.find(Kind.UNSTABLE)
    assert reading.fit == "unstable" and found.numbers["jump_epochs"] == [3, 6, 10]
    assert [s.override for s in found.suggestions] == ["training.optimizer.learning_rate=0.0001"]
    assert_suggestions_valid(spec, found)


def test_a_loss_that_diverges_is_unstable_and_says_where():
    loss = [0.82, 14334.0, 176.9, 2.98, 2.97, 1.12, 1.25, 2.12, 2.3, 1.9]  # the bundled data at learning rate 10
    found = diagnose(*run(loss, [0.7] * 10)).find(Kind.UNSTABLE)
    assert found.numbers["diverged_epoch"] == 2 and "diverged" in found.summary
    assert any("ended above where it started" in line for line in found.evidence)


def test_a_nan_loss_is_unstable_even_after_one_epoch():
    reading = diagnose(*run([math.nan], [math.nan], status="nan"))
    assert reading.fit == "unstable" and reading.find(Kind.UNSTABLE).numbers["nan_epoch"] == 1


def test_many_epochs_past_the_best_without_early_stopping_is_a_plateau(config):
    spec, resolved = config
    val = np.concatenate([0.3 + 0.4 * np.exp(-T[:20] / 4), 0.305 + noise(0.004, 80)])
    reading = diagnose(*run(np.linspace(0.7, 0.2, 100), val), resolved)
    found = reading.find(Kind.PLATEAU)
    assert found is not None and reading.fit == "ok"
    assert found.numbers["epochs_after"] == 100 - found.numbers["best_epoch"] >= 25
    assert [s.override for s in found.suggestions] == [
        "training.early_stopping={patience: 20, restore_best_weights: true}"
    ]
    assert_suggestions_valid(spec, found)


def test_without_validation_the_training_loss_is_read():
    loss = 1 - 0.05 * np.arange(10)
    history, summary = run(loss, None)
    reading = diagnose(history, summary)
    assert reading.fit == "underfit" and reading.find(Kind.UNDERFIT).evidence[0].startswith("loss was still falling")


def test_the_best_epoch_is_the_summary_one_not_the_lowest_value():
    # min_delta 0.01: epochs 21..25 improve by less, so Keras (and the summary) keep epoch 20 as best.
    val = np.concatenate([np.linspace(0.8, 0.3, 20), [0.298, 0.296, 0.295, 0.294, 0.293], 0.293 + 0.01 * T[:20]])
    history, summary = run(np.linspace(0.8, 0.05, 45), val, min_delta=0.01)
    assert summary["best_epoch"] == 20 and int(np.argmin(val)) + 1 == 25
    assert diagnose(history, summary).find(Kind.OVERFIT).numbers["from_epoch"] == 20


# --- borderline curves that must not be flagged ---------------------------------------------------


def test_noise_within_min_delta_at_the_end_is_not_still_improving():
    val = np.concatenate([0.3 + 0.4 * np.exp(-T[:60] / 6), 0.3 + noise(0.0004, 40)])
    for min_delta in (0.0, 0.001):
        history, summary = run(val - 0.02, val, min_delta=min_delta)
        reading = diagnose(history, summary)
        assert reading.find(Kind.UNDERFIT) is None and reading.find(Kind.OVERFIT) is None, min_delta


def test_a_dip_and_recovery_is_not_overfitting():
    # val_loss climbs 15% for a few epochs, then comes back below its old best; early stopping ends it.
    val = list(0.3 + 0.4 * np.exp(-T[:30] / 6))
    val += [val[-1] * f for f in (1.05, 1.1, 1.15, 1.1, 1.0, 0.97, 0.96)] + [0.96 * val[29]] * 10
    history, summary = run(np.linspace(0.7, 0.1, len(val)), val, status="early-stopped", epochs=500)
    reading = diagnose(history, summary)
    assert reading.fit == "ok" and reading.findings[0].kind == Kind.HEALTHY


def test_one_spike_of_the_training_loss_that_recovers_is_not_unstable():
    loss = list(0.3 + 0.5 * np.exp(-T[:40] / 8))
    loss[15] *= 1.8
    reading = diagnose(*run(loss, [v + 0.03 for v in loss], status="early-stopped"))
    assert reading.find(Kind.UNSTABLE) is None


def test_val_loss_rising_a_little_after_its_best_is_not_overfitting():
    val = np.concatenate([0.3 + 0.4 * np.exp(-T[:30] / 4), 0.3 * (1 + 0.002 * T[:20])])  # +4% in 20 epochs
    history, summary = run(np.linspace(0.7, 0.1, 50), val, status="early-stopped")
    assert diagnose(history, summary).find(Kind.OVERFIT) is None


def test_val_loss_rising_while_the_training_loss_rises_too_is_not_overfitting():
    val = np.concatenate([np.linspace(0.8, 0.3, 20), np.linspace(0.3, 0.5, 20)])
    loss = np.concatenate([np.linspace(0.8, 0.3, 20), np.linspace(0.3, 0.45, 20)])
    assert diagnose(*run(loss, val)).find(Kind.OVERFIT) is None


def test_a_tiny_rise_of_a_val_loss_near_zero_is_not_overfitting():
    # The penguins run: accuracy 1.0, val_loss 0.0059 -> 0.0077 (+30%), 0.2% of the gap to the baseline.
    val = np.concatenate([0.0059 + np.exp(-T[:66] / 6), 0.0059 + 0.0018 * T[:34] / 34]) + noise(0.0001)
    loss = 0.002 + np.exp(-T / 6)
    for baseline in (1.07, None):  # the gap to the baseline, or the fall since epoch 1
        history, summary = run(loss, val, baseline=baseline)
        reading = diagnose(history, summary)
        assert reading.find(Kind.OVERFIT) is None and reading.fit == "ok", baseline
        assert reading.findings[0].summary == "plateau: no improvement in the last 37 epochs"


def test_a_zigzag_whose_low_points_sit_above_the_best_is_noise_not_a_climb():
    # After its best, val_loss alternates +0.03 / +0.09: its lows are 15% up, but the noise is 0.06 an epoch.
    val = list(0.2 + 0.5 * np.exp(-T[:30] / 5))
    val[-1] = 0.2
    val += [0.2 + (0.03 if i % 2 else 0.09) for i in range(20)]
    reading = diagnose(*run(np.linspace(0.7, 0.1, 50), val))
    assert reading.find(Kind.OVERFIT) is None and reading.fit == "ok"


def test_still_falling_at_the_last_epoch_is_underfit_not_healthy():
    # The cars run: 30 epochs of mae, best at the last epoch, the tail a small share of the fall.
    val = 2.4 + 20 * np.exp(-T[:30] / 6) + noise(0.01, 30)
    history, summary = run(val - 0.3, val, baseline=6.5)
    reading = diagnose(history, summary)
    found = reading.find(Kind.UNDERFIT)
    assert reading.fit == "underfit" and found.summary == "underfit: still improving at the last epoch"
    assert found.evidence == [
        "val_loss was still falling at epoch 30, the limit (training.epochs): its best is epoch 30 of 30 (2.538), "
        "and a straight line through epochs 21-30 falls by 0.4447, 14.2 times the scatter around it"
    ]
    assert [s.override for s in found.suggestions] == ["training.epochs=60"]
    assert found.numbers["trend_epochs"] == 10 and found.numbers["trend"] == pytest.approx(-0.4447, abs=1e-4)


def test_best_epoch_just_before_the_last_of_a_long_run_still_falling_is_underfit(config):
    spec, resolved = config
    val = 0.3 + 0.5 * np.exp(-np.arange(1, 201) / 80) + noise(0.002, 200)
    history, summary = run(val - 0.05, val)
    reading = diagnose(history, summary, resolved)
    found = reading.find(Kind.UNDERFIT)
    assert summary["best_epoch"] == 197 and found.summary == "underfit: still improving at the last epoch"
    sets = [s.override for s in found.suggestions]
    assert sets == ["training.epochs=200", "training.early_stopping={patience: 20, restore_best_weights: true}"]
    assert_suggestions_valid(spec, found)


def test_a_converged_curve_that_still_slides_by_a_hair_is_healthy():
    val = 0.3 + 0.5 * np.exp(-T / 8)  # falls every epoch, by 1e-6 at the end
    reading = diagnose(*run(val - 0.05, val))
    assert reading.fit == "ok" and reading.findings[0].summary == "looks healthy"


def test_flat_noise_with_its_best_at_the_last_epoch_is_not_still_improving():
    val = np.concatenate([0.3 + 0.4 * np.exp(-T[:40] / 4), 0.3 + noise(0.003, 60)])
    val[-1] = 0.29  # best by a noisy last epoch, with no trend before it
    reading = diagnose(*run(np.linspace(0.7, 0.2, 100), val))
    assert reading.find(Kind.UNDERFIT) is None


def test_a_single_epoch_is_not_read():
    reading = diagnose(*run([0.7], [0.6]))
    assert reading.findings == [] and reading.fit is None


def test_a_bare_history_is_read_without_a_summary():
    val = 0.2 + 0.3 * np.exp(-T / 5) + 0.004 * np.maximum(0, T - 20)
    history, _ = run(0.5 * np.exp(-T / 10), val)
    assert diagnose(history).fit == "overfit"


# --- the record -----------------------------------------------------------------------------------


def test_the_diagnosis_is_plain_json():
    val = 0.2 + 0.3 * np.exp(-T / 5) + 0.004 * np.maximum(0, T - 20)
    data = diagnose(*run(0.5 * np.exp(-T / 10), val)).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["fit"] == "overfit" and data["findings"][0]["kind"] == "overfit"
    assert set(data["findings"][0]) == {"kind", "summary", "evidence", "numbers", "suggestions"}


def test_importing_diagnosis_imports_no_heavy_library():
    heavy = ("tensorflow", "keras", "pandas", "matplotlib", "numpy")
    code = f"import sys, dlrun.runs.diagnosis; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
