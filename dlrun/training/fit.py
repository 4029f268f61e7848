"""Compile and fit the model on the prepared data, writing the run directory as training goes."""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dlrun import __version__
from dlrun.data.prepare import Prepared, prepare
from dlrun.errors import DataError, TrainingError
from dlrun.runs import layout as runs
from dlrun.spec.models import Spec

MAX_STEPS_PER_EXECUTION = 32


@dataclass
class Outcome:
    """What a finished (or stopped) training left behind."""

    run_dir: Path
    summary: dict[str, Any]


def train(spec: Spec, out: Path, overrides: list[str] | None = None, console=None, quiet: bool = False) -> Outcome:
    """Train the spec's model and fill a new run directory under `out`.

    The data is read and checked before the run directory is created, so a bad CSV leaves nothing
    behind; once training starts, every finished epoch is on disk whatever happens next.

    Raises:
        DataError: the CSV cannot be used as the spec says.
        TrainingError: the loss became NaN, or training was interrupted (the run directory keeps both).
    """
    data = prepare(spec.data, spec.seed, spec.training.loss)
    _check_output_width(spec, data)
    run_dir = runs.new_run_dir(Path(out), spec.name)
    (run_dir / runs.CONFIG).write_text(yaml.safe_dump(spec.resolved(), sort_keys=False), encoding="utf-8")
    if overrides:
        (run_dir / runs.OVERRIDES).write_text("".join(f"{o}\n" for o in overrides), encoding="utf-8")
    runs.write_json(run_dir / runs.PREPROCESSING, data.preprocessing.to_dict())
    return Outcome(run_dir, _fit(spec, data, run_dir, console, quiet))


def _check_output_width(spec: Spec, data: Prepared) -> None:
    classes = data.preprocessing.classes
    units = [layer.units for layer in spec.model.layers if layer.type == "dense"]
    if classes is not None and units and units[-1] != len(classes):
        raise DataError(
            f"model.layers: the last dense layer has {units[-1]} units but target {spec.data.target!r} has "
            f"{len(classes)} classes ({', '.join(map(str, classes[:10]))}); set its units to {len(classes)} "
            "with activation: softmax"
        )


def _fit(spec: Spec, data: Prepared, run_dir: Path, console, quiet: bool) -> dict[str, Any]:
    from dlrun.backend import import_keras

    keras = import_keras()
    import tensorflow as tf

    from dlrun.model import build_model

    training = spec.training
    keras.config.disable_interactive_logging()  # dlrun reports for Keras (TerminateOnNaN would print mid-bar)
    keras.utils.set_random_seed(spec.seed)
    model = build_model(spec.model, data.preprocessing.width)
    optimizer = type(keras.optimizers.get(training.optimizer.name))(**training.optimizer.kwargs())
    steps = math.ceil(data.rows["train"] / training.batch_size)
    valid_steps = math.ceil(data.rows["validation"] / training.batch_size)
    model.compile(
        optimizer=optimizer,
        loss=training.loss,
        metrics=list(training.metrics),
        steps_per_execution=_steps_per_execution(steps, valid_steps),
    )

    # Keras rebuilds its input pipeline every epoch when given arrays; on small data that costs far
    # more than the math. Datasets built once, cached and repeated, keep one iterator for the whole fit.
    if data.stream is not None:  # a CSV larger than memory: re-read in chunks every epoch
        train_ds = data.stream.dataset("train", training.batch_size, shuffle=training.shuffle)
        valid_ds = data.stream.dataset("validation", training.batch_size, repeat=False)
    else:
        train_ds = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).cache()
        if training.shuffle:
            train_ds = train_ds.shuffle(len(data.x_train), seed=spec.seed, reshuffle_each_iteration=True)
        train_ds = train_ds.batch(training.batch_size).repeat().prefetch(1)
        # Repeated too, so Keras keeps one validation iterator for the whole fit; steps_per_execution
        # divides validation_steps, so no evaluation reads into the next pass.
        valid_ds = tf.data.Dataset.from_tensor_slices((data.x_valid, data.y_valid)).batch(training.batch_size)
        valid_ds = valid_ds.cache().repeat()
        # Keras makes a new validation iterator every epoch. With tf.data's autotuner and graph
        # rewrites on, each one starts a tuning thread and rewrites the pipeline: 17 ms an epoch when
        # another process holds the other core, 0.3 ms without. Cached arrays have nothing to tune.
        options = tf.data.Options()
        options.autotune.enabled = False
        options.experimental_optimization.apply_default_optimizations = False
        train_ds, valid_ds = train_ds.with_options(options), valid_ds.with_options(options)

    stop = training.early_stopping
    early = (
        keras.callbacks.EarlyStopping(
            monitor=stop.monitor,
            min_delta=stop.min_delta,
            patience=stop.patience,
            mode=stop.mode,
            baseline=stop.baseline,
            restore_best_weights=stop.restore_best_weights,
            start_from_epoch=stop.start_from_epoch,
        )
        if stop
        else None
    )
    callbacks = [
        _LearningRateLog(keras),
        keras.callbacks.TerminateOnNaN(),
        *([early] if early else []),
        keras.callbacks.CSVLogger(str(run_dir / runs.HISTORY)),
    ]
    if not quiet:
        from dlrun.training.progress import EpochProgress

        callbacks.append(EpochProgress(training.epochs, console))

    started = time.time()
    status, failure = "completed", None
    history: dict[str, list[float]] = {}
    try:
        result = model.fit(
            train_ds,
            validation_data=valid_ds,
            epochs=training.epochs,
            steps_per_epoch=steps,
            validation_steps=valid_steps,
            callbacks=callbacks,
            shuffle=False,
            verbose=0,
        )
        history = result.history
    except KeyboardInterrupt:
        status = "interrupted"  # history.csv, written as each epoch ends, is the record of what finished
    except Exception as exc:  # a Keras or TensorFlow error mid-fit: keep the epochs, report it in one line
        status, failure = "failed", exc
    finally:
        for callback in callbacks:
            if hasattr(callback, "progress"):
                callback.progress.stop()
    wall = time.time() - started
    if not history:
        history = _read_history(run_dir)
    if not all(math.isfinite(v) for v in history.get("loss", [])):  # TerminateOnNaN stops on inf too
        status = "nan"
    elif early is not None and early.stopped_epoch > 0 and status == "completed":
        status = "early-stopped"
    if status not in ("nan", "failed"):
        model.save(run_dir / runs.MODEL)
    summary = _summary(spec, data, history, early, status, wall, keras, tf)
    if status in ("completed", "early-stopped") and data.has_test:
        summary["test"] = _evaluate_test(model, data, training.batch_size, tf)
    if data.stream is not None:
        summary["unseen_categories"] = {p: u for p, u in data.stream.unseen.items() if u and p != "train"}
    runs.write_json(run_dir / runs.SUMMARY, summary)
    if summary["epochs_run"]:
        from dlrun.runs.plot import write_run_plots

        write_run_plots(run_dir / runs.HISTORY, run_dir / runs.PLOTS)
    if status == "nan":
        raise TrainingError(
            f"training stopped at epoch {summary['epochs_run']}: the loss became NaN (or infinite). "
            f"The history so far is in "
            f"{run_dir / runs.HISTORY}. Try a lower training.optimizer.learning_rate, or scale the features "
            "(data.scale: standard)"
        )
    if status == "failed":
        reason = str(failure).strip().splitlines()[-1] if str(failure).strip() else type(failure).__name__
        raise TrainingError(
            f"training failed after {summary['epochs_run']} finished epochs ({type(failure).__name__}: {reason}); "
            f"they are kept in {run_dir}. `dlrun check` builds the model and warns of likely mistakes"
        ) from failure
    if status == "interrupted":
        error = TrainingError(f"interrupted after {summary['epochs_run']} finished epochs; they are kept in {run_dir}")
        error.exit_code = 130
        raise error
    return summary


def _evaluate_test(model, data: Prepared, batch_size: int, tf) -> dict[str, float]:
    """Evaluate the held-out test rows once, with the weights training ended with (restored if so asked)."""
    if data.stream is not None:
        test_ds = data.stream.dataset("test", batch_size, repeat=False)
    else:
        test_ds = tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test)).batch(batch_size)
    steps = math.ceil(data.rows["test"] / batch_size)
    results = model.evaluate(test_ds, steps=steps, verbose=0, return_dict=True)
    return {key: float(value) for key, value in results.items()}


def _steps_per_execution(steps: int, valid_steps: int) -> int:
    """Run several batches per call into TensorFlow, but never past the end of a training or validation pass.

    Keras uses the same value for fit and for the evaluation inside it, so it divides both step counts.
    """
    limit = min(steps, valid_steps, MAX_STEPS_PER_EXECUTION)
    return max(d for d in range(1, limit + 1) if steps % d == 0 and valid_steps % d == 0)


def _read_history(run_dir: Path) -> dict[str, list[float]]:
    import pandas as pd

    path = run_dir / runs.HISTORY
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    frame = pd.read_csv(path)
    return {c: frame[c].astype(float).tolist() for c in frame.columns if c != "epoch"}


def _summary(spec: Spec, data: Prepared, history, early, status: str, wall: float, keras, tf) -> dict[str, Any]:
    monitor, mode = spec.monitor
    values = history.get(monitor, [])
    epochs_run = len(history.get("loss", []))
    best = None
    if (
        early is not None
        and early.best_epoch is not None
        and early.best_epoch < len(values)
        and not math.isinf(early.best)
        and status != "interrupted"
    ):
        best = early.best_epoch
    elif values:
        finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
        if finite:
            best = (min(finite) if mode == "min" else max(finite, key=lambda t: (t[0], -t[1])))[1]
    row = lambda i: {k: v[i] for k, v in history.items() if i < len(v)}  # noqa: E731
    return {
        "name": spec.name,
        "status": status,
        "epochs_run": epochs_run,
        "epochs": spec.training.epochs,
        "stopped_epoch": early.stopped_epoch + 1 if early is not None and early.stopped_epoch > 0 else None,
        "monitor": monitor,
        "mode": mode,
        "best_epoch": best + 1 if best is not None else None,
        "best_value": values[best] if best is not None else None,
        "min_val_loss": min((v for v in history.get("val_loss", []) if math.isfinite(v)), default=None),
        "best": row(best) if best is not None else {},
        "final": row(epochs_run - 1) if epochs_run else {},
        "wall_time_s": round(wall, 3),
        "seed": spec.seed,
        "rows": dict(data.rows),
        "dropped_rows": dict(data.dropped),
        "unseen_categories": data.unseen,
        "streaming": data.stream is not None,
        "data_sha256": data.sha256,
        "versions": {
            "dlrun": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
    }


def _LearningRateLog(keras):
    """Build a callback that adds the optimizer's learning rate to each epoch's logs (and so to history.csv)."""

    class LearningRateLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    return LearningRateLog()
