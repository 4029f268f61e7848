"""What a sweep worker keeps between points (dlrun.training.reuse): invisible in every number a run records.

The same points train in this process as one worker trains them, once keeping data, baselines and
traced models and once keeping nothing; every run's history.csv, summary.json (but its wall time and
node) and model.keras weights must be identical, value for value.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlrun.backend import import_keras
from dlrun.runs import layout
from dlrun.search import executors
from dlrun.training import loop as loops
from dlrun.training import reuse

from conftest import binary_spec, make_binary_csv, write_spec

keras = import_keras()
POINTS = [
    ["training.optimizer.learning_rate=0.01"],
    ["training.optimizer.learning_rate=0.003", "seed=1"],  # the same graph: the first point's model, traced
    ["model.layers[0].units=4"],  # another graph
    ["seed=2", "training.class_weight=balanced"],  # the first model again; weighted batches: its calls traced again
]


@pytest.fixture(autouse=True)
def no_plots(monkeypatch) -> None:
    """Skip the PNGs (tests/test_plot.py covers them): the runs compare their numbers."""
    from dlrun.runs import plot

    monkeypatch.setattr(plot, "write_run_plots", lambda *args, **kwargs: [])


@pytest.fixture
def spec_path(tmp_path) -> Path:
    """A binary spec with dropout (a seed state) and early stopping that restores the best weights."""
    make_binary_csv(tmp_path / "data.csv")
    data = binary_spec(epochs=4, early_stopping={"patience": 1, "restore_best_weights": True})
    data["model"]["layers"].insert(1, {"type": "dropout", "rate": 0.25})
    return write_spec(tmp_path, data)


def train_points(spec_path: Path, out: Path, keep: bool, monkeypatch) -> list[Path]:
    """Train every point in turn as one sweep worker does; return their run directories."""
    monkeypatch.setattr(executors, "REUSE", keep)
    reuse.forget()
    runs = []
    for index, overrides in enumerate(POINTS):
        result = executors.run_point(index, str(spec_path), overrides, str(out / str(index)), None, 1)
        assert result["error"] is None, result
        runs.append(Path(result["run_dir"]))
    reuse.forget()
    return runs


def weights(run_dir: Path) -> list[np.ndarray]:
    return keras.saving.load_model(run_dir / layout.MODEL).get_weights()


def test_points_kept_and_not_record_the_same_numbers(spec_path, tmp_path, monkeypatch):
    # 8 trainings (about 40 s on a busy 2-core machine): kept models in both ways they are reused
    traced = []
    original = loops._Epochs.__init__

    def counting(self, *args, **kwargs):
        traced.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(loops._Epochs, "__init__", counting)
    kept = train_points(spec_path, tmp_path / "kept", True, monkeypatch)
    assert len(traced) == 3  # all but the second point's
    fresh = train_points(spec_path, tmp_path / "fresh", False, monkeypatch)
    assert len(traced) == 3 + len(POINTS)
    for a, b in zip(kept, fresh):
        assert (a / layout.HISTORY).read_text() == (b / layout.HISTORY).read_text()
        x, y = (json.loads((run / layout.SUMMARY).read_text()) for run in (a, b))
        assert {k: v for k, v in x.items() if k != "wall_time_s"} == {k: v for k, v in y.items() if k != "wall_time_s"}
        assert (a / layout.PREPROCESSING).read_text() == (b / layout.PREPROCESSING).read_text()
        for u, v in zip(weights(a), weights(b), strict=True):
            np.testing.assert_array_equal(u, v)


def test_kept_data_is_served_while_its_file_is_unchanged_and_read_again_once_it_changed(tmp_path):
    from dlrun.data.prepare import prepare
    from dlrun.spec.loader import load_spec

    csv = make_binary_csv(tmp_path / "data.csv")
    spec = load_spec(write_spec(tmp_path, binary_spec()), [])
    with reuse.keeping():
        first = reuse.prepared(spec.data, 0, "binary_crossentropy")
        assert reuse.prepared(spec.data, 0, "binary_crossentropy") is first
        assert not first.x_train.flags.writeable  # no point can change what the next one reads
        assert reuse.prepared(spec.data, 1, "binary_crossentropy") is not first  # another split
        again = reuse.prepared(spec.data, 0, "binary_crossentropy")
        make_binary_csv(csv, seed=1)  # new numbers in the same file
        changed = reuse.prepared(spec.data, 0, "binary_crossentropy")
        assert changed is not again and changed.sha256 != again.sha256
        read = prepare(spec.data, 0, "binary_crossentropy")
        assert changed.sha256 == read.sha256
        np.testing.assert_array_equal(changed.x_train, read.x_train)
        np.testing.assert_array_equal(changed.y_valid, read.y_valid)
    assert reuse.prepared(spec.data, 0, "binary_crossentropy") is not reuse.prepared(
        spec.data, 0, "binary_crossentropy"
    )


def test_kept_data_has_its_baseline_computed_once_per_loss_and_metrics(tmp_path, monkeypatch):
    from dlrun.spec.loader import load_spec
    from dlrun.training import baseline

    make_binary_csv(tmp_path / "data.csv")
    path = write_spec(tmp_path, binary_spec())
    spec, other = load_spec(path, []), load_spec(path, ["training.metrics=[auc]"])
    computed = []
    original = baseline.baseline
    monkeypatch.setattr(baseline, "baseline", lambda *args: computed.append(1) or original(*args))
    with reuse.keeping():
        data = reuse.prepared(spec.data, 0, "binary_crossentropy")
        first = reuse.baseline(spec, data)
        assert reuse.baseline(spec, data) == first == original(spec, data)
        assert reuse.baseline(other, data) == original(other, data)
    assert len(computed) == 2
