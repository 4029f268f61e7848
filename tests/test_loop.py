"""The lean training loop against `model.fit`: the same histories, stops, weights and resumes; and when fit trains.

Every comparison trains the same spec twice in this process, once with `training.loop: fit` and once
as dlrun trains by default, and asserts that history.csv, summary.json (but the wall time and the
loop) and model.keras's weights are identical, value for value.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrun.backend import import_keras
from dlrun.errors import DlrunError, TrainingError
from dlrun.runs import layout
from dlrun.spec.loader import load_spec
from dlrun.spec.models import TrainingSpec
from dlrun.training import checkpoint as checkpoints
from dlrun.training import fit as fit_module
from dlrun.training import loop as loops
from dlrun.training.fit import train
from dlrun.training.resume import _check_spec, plan_resume, resume

from conftest import CONFIGS, binary_spec, make_binary_csv, make_regression_csv, write_spec

keras = import_keras()
EXAMPLES = sorted(CONFIGS.glob("*.yaml"))
REPLAYED = {"01_single_neuron", "02_deep_network", "03_sgd_adam_mae"}
"""The examples without early stopping, ReduceLROnPlateau or a schedule: several epochs per call."""


@pytest.fixture(autouse=True)
def no_plots(monkeypatch) -> None:
    """Skip the PNGs (about half a second a run; tests/test_plot.py covers them): the runs compare their numbers."""
    from dlrun.runs import plot

    monkeypatch.setattr(plot, "write_run_plots", lambda *args, **kwargs: [])


class Calls(list):
    """The epochs each call ran, and the executors that ran the calls ("" is TensorFlow's default)."""

    executors: set[str]


@pytest.fixture(autouse=True)
def calls(monkeypatch) -> Calls:
    """Let a call run as many epochs as it may, whatever the machine's speed; return the epochs each call ran.

    No epoch counts as long either (a test that wants slices sets SLICE_S to 0): on a busy machine the
    first epoch, which also traces the graph, can take longer than SLICE_S and change the calls.
    """
    monkeypatch.setattr(loops, "CALL_S", 3600.0)
    monkeypatch.setattr(loops, "SLICE_S", float("inf"))
    ran = Calls()
    ran.executors = set()
    original = loops._Epochs.run

    def run(self, count):
        results = original(self, count)
        ran.append(len(results))
        ran.executors.add(self.executor)
        return results

    monkeypatch.setattr(loops._Epochs, "run", run)
    return ran


def run_dir_of(out: Path) -> Path:
    (run_dir,) = [p for p in out.glob("*/*") if p.is_dir()]
    return run_dir


def train_with(spec_path: Path, out: Path, loop: str, overrides=(), expect_error: bool = False, **kwargs) -> Path:
    """Train a spec with `training.loop` set; return its run directory (a TrainingError is allowed when expected)."""
    spec = load_spec(spec_path, [*overrides, f"training.loop={loop}"])
    try:
        train(spec, out, quiet=True, **kwargs)
    except TrainingError:
        if not expect_error:
            raise
    return run_dir_of(out)


def assert_same_run(fitted: Path, lean: Path) -> dict:
    """Assert two runs computed the same: history, summary and saved weights. Return the lean summary."""
    assert (lean / layout.HISTORY).read_text() == (fitted / layout.HISTORY).read_text()
    a, b = (json.loads((run / layout.SUMMARY).read_text()) for run in (fitted, lean))
    assert a["loop"]["kind"] == "fit" and b["loop"]["kind"] == "lean", b["loop"]
    for key in set(a) | set(b):
        if key not in ("wall_time_s", "loop"):
            assert a.get(key) == b.get(key), key
    assert (fitted / layout.MODEL).is_file() == (lean / layout.MODEL).is_file()
    if (lean / layout.MODEL).is_file():
        weights = [keras.saving.load_model(run / layout.MODEL).get_weights() for run in (fitted, lean)]
        assert len(weights[0]) == len(weights[1])
        for x, y in zip(*weights):
            np.testing.assert_array_equal(x, y)
    return b


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
@pytest.mark.parametrize("config", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_trains_as_model_fit_does(config, shuffle, tmp_path, calls):
    overrides = ["training.epochs=3", f"training.shuffle={str(shuffle).lower()}"]
    fitted = train_with(config, tmp_path / "fit", "fit", overrides)
    assert calls == []
    lean = train_with(config, tmp_path / "lean", "auto", overrides)
    assert_same_run(fitted, lean)
    # One call per epoch with early stopping, a schedule or ReduceLROnPlateau; else the first epoch
    # (which traces the graph), then the other two in one call, replayed to the callbacks.
    assert calls == ([1, 2] if config.stem in REPLAYED else [1, 1, 1])
    # One batch an epoch and a small model (configs/06): each call's few tiny ops run on one thread
    one_batch = config.stem == "06_binary_classification"
    assert calls.executors == ({"SINGLE_THREADED_EXECUTOR"} if one_batch else {""})


def overfitting_spec(folder: Path, **training) -> Path:
    """Random labels and a wide layer: val_loss bottoms out within a few epochs, then rises."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(160, 6)), columns=[f"f{i}" for i in range(6)])
    frame["target"] = rng.integers(0, 2, size=160)
    frame.to_csv(folder / "data.csv", index=False)
    data = binary_spec(epochs=200, optimizer={"name": "adam", "learning_rate": 0.03}, **training)
    data["model"]["layers"][0]["units"] = 64
    return write_spec(folder, data)


def test_early_stopping_stops_at_the_same_epoch_and_restores_the_same_weights(tmp_path, monkeypatch):
    spec = overfitting_spec(tmp_path, early_stopping={"patience": 4, "restore_best_weights": True})
    fitted = train_with(spec, tmp_path / "fit", "fit")
    # Early stopping copies the weights the epoch's call returned, not the model's variables one eager read each
    reads = []
    original = keras.Model.get_weights
    monkeypatch.setattr(keras.Model, "get_weights", lambda self: reads.append(1) or original(self))
    lean = train_with(spec, tmp_path / "lean", "auto")
    assert reads == []
    monkeypatch.undo()
    summary = assert_same_run(fitted, lean)
    assert summary["status"] == "early-stopped" and summary["epochs_run"] < 200
    assert summary["model_epoch"] == summary["best_epoch"] < summary["epochs_run"]


def test_held_weights_serve_get_weights_until_set_weights_and_leave_no_trace():
    from dlrun.training.epoch_ends import HeldWeights

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    before = model.get_weights()
    held = HeldWeights(model)
    held.install()
    held.held = [np.full_like(w, 7.0) for w in before]
    served = model.get_weights()
    assert all((w == 7.0).all() for w in served) and not np.shares_memory(served[0], held.held[0])
    model.set_weights([np.full_like(w, 3.0) for w in before])  # a callback's change: read from the model again
    assert held.held is None and all((w == 3.0).all() for w in model.get_weights())
    held.remove()
    assert "get_weights" not in vars(model) and "set_weights" not in vars(model)


def test_a_monitor_compares_as_keras_ops_do_without_an_eager_op():
    from dlrun.training.epoch_ends import _Float32Compare

    ops = keras.ops
    # float64 neighbours that are one float32 (0.1 + 1e-12), far apart, equal, zeros of both signs,
    # a subnormal float32 (TensorFlow flushes it to zero), NaN, infinity, and the min_delta subtraction
    values = [0.1, 0.1 + 1e-12, 0.1 - 1e-12, 0.2, 1e-40, 1.2e-38, 0.0, -0.0, float("nan"), float("inf"), 0.6931 - 0.001]
    for op in (ops.less, ops.greater):
        compare = _Float32Compare(op)
        for a in values:
            for b in values:
                assert compare(a, b) == bool(op(a, b)), (op, a, b)
        assert compare(np.float64(0.1 + 1e-12), 0.1) == bool(op(np.float64(0.1 + 1e-12), 0.1))  # not two floats


def nan_spec(folder: Path, learning_rate: float, epochs: int = 30) -> Path:
    """SGD with momentum too fast for a regression: the loss overflows after a few epochs, mid-epoch."""
    make_regression_csv(folder / "data.csv")
    data = {
        "data": {"path": "data.csv", "target": "y", "validation_split": 0.25},
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}]},
        "training": {
            "optimizer": {"name": "sgd", "learning_rate": learning_rate, "momentum": 0.9},
            "loss": "mse",
            "metrics": ["mae"],
            "epochs": epochs,
            "batch_size": 8,
        },
    }
    return write_spec(folder, data)


@pytest.mark.parametrize(
    "learning_rate, epoch, sliced",
    [(1e12, 1, False), (0.05, 5, False), (0.05, 5, True)],
    ids=["first", "replayed", "sliced"],
)
def test_a_nan_loss_stops_at_its_batch_as_terminate_on_nan_does(
    tmp_path, monkeypatch, calls, learning_rate, epoch, sliced
):
    # TerminateOnNaN checks the loss after every batch; model.fit hands it the logs of every
    # execution, so fit is run here with one step per execution, the contract the lean loop keeps.
    monkeypatch.setattr(fit_module, "MAX_STEPS_PER_EXECUTION", 1)
    if sliced:  # every epoch counts as long: after the first two, calls of one batch
        monkeypatch.setattr(loops, "SLICE_S", 0.0)
    spec = nan_spec(tmp_path, learning_rate)
    fitted = train_with(spec, tmp_path / "fit", "fit", expect_error=True)
    lean = train_with(spec, tmp_path / "lean", "auto", expect_error=True)
    summary = assert_same_run(fitted, lean)
    history = pd.read_csv(lean / layout.HISTORY)
    assert summary["status"] == "nan" and len(history) == epoch and not np.isfinite(history["loss"].iloc[-1])
    # Whole epochs per call: the first, then (replayed) epochs 2 to 5, where the NaN stopped the call;
    # sliced: the first (which built the graph) and the second (timed on its own), then slices
    assert calls == ([1] if epoch == 1 else [1, 1] if sliced else [1, 4])


def test_long_epochs_run_in_slices_of_batches_as_model_fit_does(tmp_path, monkeypatch, calls):
    # Every epoch counts as long: from the third on, one batch a call; a second Ctrl-C never waits for an epoch
    monkeypatch.setattr(loops, "SLICE_S", 0.0)
    parts = []
    original = loops._Epochs._train_part

    def train_part(self, train, limit):
        parts.append(limit)
        return original(self, train, limit)

    monkeypatch.setattr(loops._Epochs, "_train_part", train_part)
    spec = overfitting_spec(tmp_path, early_stopping={"patience": 3, "restore_best_weights": True})
    summary = assert_same_run(train_with(spec, tmp_path / "fit", "fit"), train_with(spec, tmp_path / "lean", "auto"))
    assert summary["status"] == "early-stopped" and len(parts) == 1  # traced once, for calls of any length
    assert calls == [1, 1]  # whole epochs: the first, which built the graph, and the second, timed on its own


class Killed(BaseException):
    """Ends training the way kill -9 does: no handler of dlrun's catches a BaseException."""


def resumable_spec(folder: Path) -> Path:
    """Shuffling, dropout, batch norm and Adam, no early stopping: several epochs per call."""
    make_binary_csv(folder / "data.csv")
    data = binary_spec(epochs=12, batch_size=16)
    data["seed"] = 7
    data["model"]["layers"][1:1] = [{"type": "dropout", "rate": 0.3}, {"type": "batch_normalization"}]
    return write_spec(folder, data)


def test_a_run_killed_within_a_call_resumes_to_the_uninterrupted_history(tmp_path, monkeypatch):
    spec = resumable_spec(tmp_path)
    full = train_with(spec, tmp_path / "full", "auto")
    monkeypatch.setattr(loops, "MAX_EPOCHS_PER_CALL", 4)  # calls of epochs 1, 2-5, 6-9, 10-12
    original = checkpoints.Checkpoint.on_epoch_end

    def dying(self, index, logs=None):
        original(self, index, logs)
        if index == 6:  # the second epoch replayed from the third call
            raise Killed

    monkeypatch.setattr(checkpoints.Checkpoint, "on_epoch_end", dying)
    monkeypatch.setattr(checkpoints, "MAX_SHARE", 1e9)  # no slower saving for slow saves: due at every chance
    with pytest.raises(Killed):
        train(load_spec(spec), tmp_path / "runs", quiet=True, checkpoint_every=1e-9)  # 0 would mean one epoch a call
    monkeypatch.undo()
    run_dir = run_dir_of(tmp_path / "runs")
    # Saved after every epoch the model was at: the first, then each call's last; never mid-call
    assert plan_resume(run_dir).first_epoch == 6
    assert len(pd.read_csv(run_dir / layout.HISTORY)) == 7
    resume(plan_resume(run_dir), quiet=True)
    assert (run_dir / layout.HISTORY).read_text() == (full / layout.HISTORY).read_text()
    fitted = train_with(spec, tmp_path / "fit", "fit")
    assert (run_dir / layout.HISTORY).read_text() == (fitted / layout.HISTORY).read_text()


def test_ctrl_c_within_a_call_stops_after_its_last_epoch_and_resumes_exactly(tmp_path, monkeypatch):
    from dlrun.training.progress import EpochLines  # the progress display when output is not a terminal

    spec = resumable_spec(tmp_path)
    full = train_with(spec, tmp_path / "full", "auto")
    monkeypatch.setattr(loops, "MAX_EPOCHS_PER_CALL", 4)

    def press(self, epoch, logs=None):
        if epoch == 2:  # replayed from the call of epochs 2-5 (1-based)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(EpochLines, "on_epoch_begin", press, raising=False)
    with pytest.raises(TrainingError, match="interrupted after 5 finished epochs"):
        train(load_spec(spec), tmp_path / "runs")
    monkeypatch.undo()
    run_dir = run_dir_of(tmp_path / "runs")
    summary = json.loads((run_dir / layout.SUMMARY).read_text())
    assert (summary["status"], summary["model_epoch"]) == ("interrupted", 5)
    assert plan_resume(run_dir).first_epoch == 6
    resume(plan_resume(run_dir), quiet=True)
    assert (run_dir / layout.HISTORY).read_text() == (full / layout.HISTORY).read_text()


def test_training_loop_fit_and_streamed_data_train_with_model_fit_and_say_why(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    forced = train_with(write_spec(tmp_path, binary_spec(epochs=1)), tmp_path / "forced", "fit")
    assert json.loads((forced / layout.SUMMARY).read_text())["loop"] == {
        "kind": "fit",
        "why": "training.loop: fit asks for model.fit",
    }
    data = binary_spec(epochs=1)
    data["data"].update(streaming=True, chunk_rows=50)
    streamed = train_with(write_spec(tmp_path, data), tmp_path / "streamed", "auto")
    loop = json.loads((streamed / layout.SUMMARY).read_text())["loop"]
    assert loop["kind"] == "fit" and "streamed" in loop["why"]


def test_a_callback_that_acts_after_every_batch_is_left_to_model_fit():
    training = TrainingSpec(loss="mse", epochs=1)

    class Counter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    board = keras.callbacks.TensorBoard  # built without the tensorboard package, which writes only later
    cases = {
        "Counter": [Counter()],
        "TensorBoard": [board(update_freq="batch")],
    }
    for name, callbacks in cases.items():
        loop = loops.choose(training, False, [keras.callbacks.TerminateOnNaN(), *callbacks])
        assert loop.kind == "fit" and name in loop.why, loop
    assert loops.choose(training, False, [board(profile_batch=2)]).kind == "fit"
    assert loops.choose(TrainingSpec(loss="mse", epochs=1, distribute="mirrored"), False, []).kind == "fit"
    # Epoch-level TensorBoard, TerminateOnNaN and early stopping: lean, one epoch per call
    lean = loops.choose(training, False, [board(), keras.callbacks.TerminateOnNaN(), keras.callbacks.EarlyStopping()])
    assert (lean.kind, lean.replay, lean.stop_on_nan) == ("lean", False, True)
    assert "EarlyStopping" in lean.why and "TensorBoard" in lean.why
    # Callbacks that only read the logs: several epochs per call
    plain = loops.choose(training, False, [keras.callbacks.TerminateOnNaN(), keras.callbacks.History()])
    assert (plain.kind, plain.replay) == ("lean", True)


def test_a_run_started_before_training_loop_existed_resumes(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    spec = load_spec(write_spec(tmp_path, binary_spec()))
    started = spec.resolved()
    del started["training"]["loop"]  # start.json as an older dlrun wrote it
    _check_spec(tmp_path, spec, started)  # no change
    started["training"]["epochs"] = 9
    with pytest.raises(DlrunError, match=r"training.epochs: 9 -> 3"):
        _check_spec(tmp_path, spec, started)


def test_without_keras_internals_the_lean_loop_takes_keras_own_paths(monkeypatch, tmp_path):
    """A Keras whose CallbackList lacks the internals EpochCallbacks repeats, or a TensorFlow without
    executor switches, still trains the lean loop: Keras's own hooks, the default executor, the same run."""
    from dlrun.training import epoch_ends

    spec = overfitting_spec(tmp_path, early_stopping={"patience": 2, "restore_best_weights": True})
    overrides = ["training.epochs=6"]
    reference = train_with(spec, tmp_path / "a", "auto", overrides)
    monkeypatch.setattr(epoch_ends.EpochCallbacks, "_INTERNALS", ("_no_such_internal",))
    monkeypatch.setattr(loops, "_executor", lambda name: contextlib.nullcontext())
    hooks = []
    original = keras.callbacks.CallbackList.on_epoch_end
    monkeypatch.setattr(
        keras.callbacks.CallbackList, "on_epoch_end", lambda self, *a, **k: hooks.append(1) or original(self, *a, **k)
    )
    other = train_with(spec, tmp_path / "b", "auto", overrides)
    history = (other / layout.HISTORY).read_text()
    assert history == (reference / layout.HISTORY).read_text()
    assert len(hooks) == len(history.splitlines()) - 1  # Keras's own hook ran at every epoch's end


def _break_internal(monkeypatch, name: str) -> None:
    """Make one internal of keras_compat.INTERNALS missing (or changed), as a later Keras or TensorFlow might."""
    import sys

    from dlrun.training import keras_compat

    if name == "is_default":
        monkeypatch.delattr(keras.callbacks.Callback.on_train_batch_end, "_is_default")
    elif name == "callback_list":
        monkeypatch.delattr(keras.callbacks.CallbackList, "_flush_futures")
    elif name == "monitor_callback":
        monkeypatch.setitem(sys.modules, "keras.src.callbacks.monitor_callback", None)
    elif name == "executor":
        from tensorflow.python.eager import context

        monkeypatch.delattr(context, "function_executor_type")
    elif name in ("early_counters", "plateau_counters"):  # a counter Keras no longer keeps under that name
        key = name.upper()
        monkeypatch.setattr(keras_compat, key, (*getattr(keras_compat, key), "renamed_counter"))
    elif name == "should_trace":  # Keras reads the flag's truth, so fit still runs: dlrun wants a bool
        real = keras.callbacks.TensorBoard._init_profile_batch

        def init_profile_batch(self, profile_batch):
            real(self, profile_batch)
            self._should_trace = None

        monkeypatch.setattr(keras.callbacks.TensorBoard, "_init_profile_batch", init_profile_batch)


def test_a_keras_or_tensorflow_without_an_internal_trains_with_model_fit_to_the_same_history(monkeypatch, tmp_path):
    # 9 short runs of 4 epochs (~15 s on a busy machine): one reference per spec, then one per missing internal
    from dlrun.training import keras_compat

    early = {"early_stopping": {"patience": 2, "restore_best_weights": True}}
    plateau = {"reduce_lr_on_plateau": {"patience": 1}, "tensorboard": True}
    specs = {"early": overfitting_spec(tmp_path, **early)}
    (tmp_path / "other").mkdir()
    specs["plateau"] = overfitting_spec(tmp_path / "other", **plateau)
    overrides = ["training.epochs=4"]
    references = {key: train_with(spec, tmp_path / f"ref-{key}", "auto", overrides) for key, spec in specs.items()}
    for reference in references.values():
        assert json.loads((reference / layout.SUMMARY).read_text())["loop"]["kind"] == "lean"
    broken = {
        "is_default": ("early", "keras.callbacks.Callback's _is_default marks"),
        "callback_list": ("early", f"keras.callbacks.CallbackList's {'/'.join(keras_compat.CALLBACK_LIST)}"),
        "monitor_callback": ("early", "keras.src.callbacks.monitor_callback.MonitorCallback"),
        "executor": ("early", "tensorflow.python.eager.context.function_executor_type"),
        "early_counters": ("early", "keras.callbacks.EarlyStopping's counters"),
        "plateau_counters": ("plateau", "keras.callbacks.ReduceLROnPlateau's counters"),
        "should_trace": ("plateau", "keras.callbacks.TensorBoard._should_trace"),
    }
    for name, (key, internal) in broken.items():
        with monkeypatch.context() as patched:
            _break_internal(patched, name)
            run_dir = train_with(specs[key], tmp_path / name, "auto", overrides)
        summary = json.loads((run_dir / layout.SUMMARY).read_text())
        assert summary["loop"]["kind"] == "fit", name
        assert summary["loop"]["why"].startswith(f"this Keras or TensorFlow lacks {internal}"), summary["loop"]
        assert summary["loop"]["why"].endswith("as the lean loop relies on it: model.fit trains (the same history)")
        assert (run_dir / layout.HISTORY).read_text() == (references[key] / layout.HISTORY).read_text(), name
