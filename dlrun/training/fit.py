"""Train a spec: prepare the data, build and compile the model, fit it, and write the run directory.

`train` reads top to bottom: data (dlrun.data), the run directory (dlrun.runs.layout), the model
(dlrun.model), datasets and callbacks, `model.fit`, then the outcome: status, model, summary, plots.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dlrun.data.prepare import Prepared, prepare
from dlrun.errors import TrainingError
from dlrun.model import check_output_width
from dlrun.runs import layout, lock
from dlrun.runs.history import History, read_history
from dlrun.runs.status import Status
from dlrun.spec.models import Spec
from dlrun.training.callbacks import Callbacks, make_callbacks
from dlrun.training.summary import build_summary

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
        TrainingError: the loss became NaN, training failed or was interrupted (the run directory keeps
            what it did; the error's `status` says which).
    """
    data = prepare(spec.data, spec.seed, spec.training.loss)
    check_output_width(spec.model, spec.data.target, data.preprocessing.classes)
    run_dir = start_run(spec, data, Path(out), overrides)
    try:
        return Outcome(run_dir, fit(spec, data, run_dir, console, quiet))
    finally:
        lock.release(run_dir)


def start_run(spec: Spec, data: Prepared, out: Path, overrides: list[str] | None) -> Path:
    """Create the run directory and write what is known before training: config, overrides, preprocessing."""
    run_dir = layout.new_run_dir(out, spec.name)
    lock.acquire(run_dir)  # before any file: `sweep --resume` never deletes a run a live process writes
    (run_dir / layout.CONFIG).write_text(yaml.safe_dump(spec.resolved(), sort_keys=False), encoding="utf-8")
    if overrides:
        (run_dir / layout.OVERRIDES).write_text("".join(f"{o}\n" for o in overrides), encoding="utf-8")
    layout.write_json(run_dir / layout.PREPROCESSING, data.preprocessing.to_dict())
    return run_dir


def fit(spec: Spec, data: Prepared, run_dir: Path, console=None, quiet: bool = False) -> dict[str, Any]:
    """Fit the model into an existing run directory; write the model, summary and plots; return the summary."""
    from dlrun.backend import import_keras
    from dlrun.data.datasets import fit_datasets

    keras = import_keras()
    training = spec.training
    keras.config.disable_interactive_logging()  # dlrun reports for Keras (TerminateOnNaN would print mid-bar)
    keras.utils.set_random_seed(spec.seed)
    datasets = fit_datasets(data, training.batch_size, training.shuffle, spec.seed)
    model = compile_model(spec, data.preprocessing.width, _steps_per_execution(datasets.steps, datasets.valid_steps))
    callbacks = make_callbacks(training, run_dir, console, quiet)
    started = time.time()
    status, failure = _run_fit(model, datasets, callbacks, training.epochs)
    wall = time.time() - started
    history = _logged(run_dir)
    status = _final_status(status, history, callbacks)
    return _finish(spec, data, run_dir, model, history, status, failure, wall)


def compile_model(spec: Spec, input_width: int, steps_per_execution: int = 1):
    """Build the spec's model for `input_width` inputs and compile it with the spec's optimizer, loss and metrics."""
    from dlrun.backend import import_keras
    from dlrun.model import build_model

    keras = import_keras()
    training = spec.training
    model = build_model(spec.model, input_width)
    optimizer = type(keras.optimizers.get(training.optimizer.name))(**training.optimizer.kwargs())
    model.compile(
        optimizer=optimizer,
        loss=training.loss,
        metrics=list(training.metrics),
        steps_per_execution=steps_per_execution,
    )
    return model


def _run_fit(model, datasets, callbacks: Callbacks, epochs: int) -> tuple[Status, BaseException | None]:
    """Call `model.fit`; an interrupt or an error inside it becomes a status, since history.csv holds every epoch."""
    try:
        model.fit(
            datasets.train,
            validation_data=datasets.valid,
            epochs=epochs,
            steps_per_epoch=datasets.steps,
            validation_steps=datasets.valid_steps,
            callbacks=callbacks.all,
            shuffle=False,
            verbose=0,
        )
    except KeyboardInterrupt:
        return Status.INTERRUPTED, None
    except Exception as exc:  # a Keras or TensorFlow error mid-fit: keep the epochs, report it in one line
        return Status.FAILED, exc
    finally:
        callbacks.stop_displays()
    return Status.COMPLETED, None


def _final_status(status: Status, history: History, callbacks: Callbacks) -> Status:
    """Refine how fit ended from what it logged: a NaN loss (TerminateOnNaN stops on inf too), early stopping."""
    if not all(math.isfinite(v) for v in history.values.get("loss", [])):
        return Status.NAN
    if status == Status.COMPLETED and callbacks.early is not None and callbacks.early.stopped_epoch > 0:
        return Status.EARLY_STOPPED
    return status


def _finish(spec: Spec, data: Prepared, run_dir: Path, model, history: History, status: Status, failure, wall: float):
    """Save the model and summary.json, draw the plots, evaluate the test rows; raise for a run that did not finish."""
    import keras
    import tensorflow as tf

    if status not in (Status.NAN, Status.FAILED):
        model.save(run_dir / layout.MODEL)
    summary = build_summary(
        spec, data, history, status, wall, {"tensorflow": tf.__version__, "keras": keras.__version__}
    )
    if status.finished and data.has_test:
        summary["test"] = _evaluate_test(model, data, spec.training.batch_size)
    if data.stream is not None:
        summary["unseen_categories"] = {p: u for p, u in data.stream.unseen.items() if u and p != "train"}
    layout.write_json(run_dir / layout.SUMMARY, summary)
    if len(history):
        from dlrun.runs.plot import write_run_plots

        write_run_plots(run_dir)
    _raise_unfinished(status, failure, len(history), run_dir)
    return summary


def _raise_unfinished(status: Status, failure, epochs_run: int, run_dir: Path) -> None:
    if status == Status.NAN:
        raise TrainingError(
            f"training stopped at epoch {epochs_run}: the loss became NaN (or infinite). The history so far is in "
            f"{run_dir / layout.HISTORY}. Try a lower training.optimizer.learning_rate, or scale the features "
            "(data.scale: standard)",
            status,
        )
    if status == Status.FAILED:
        reason = str(failure).strip().splitlines()[-1] if str(failure).strip() else type(failure).__name__
        raise TrainingError(
            f"training failed after {epochs_run} finished epochs ({type(failure).__name__}: {reason}); "
            f"they are kept in {run_dir}. `dlrun check` builds the model and warns of likely mistakes",
            status,
        ) from failure
    if status == Status.INTERRUPTED:
        raise TrainingError(f"interrupted after {epochs_run} finished epochs; they are kept in {run_dir}", status)


def _evaluate_test(model, data: Prepared, batch_size: int) -> dict[str, float]:
    """Evaluate the held-out test rows once, with the weights training ended with (restored if so asked)."""
    from dlrun.data.datasets import test_dataset

    dataset, steps = test_dataset(data, batch_size)
    results = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return {key: float(value) for key, value in results.items()}


def _steps_per_execution(steps: int, valid_steps: int) -> int:
    """Run several batches per call into TensorFlow, but never past the end of a training or validation pass.

    Keras uses the same value for fit and for the evaluation inside it, so it divides both step counts.
    """
    limit = min(steps, valid_steps, MAX_STEPS_PER_EXECUTION)
    return max(d for d in range(1, limit + 1) if steps % d == 0 and valid_steps % d == 0)


def _logged(run_dir: Path) -> History:
    """Read what CSVLogger wrote; no epochs when it wrote nothing (interrupted during the first epoch)."""
    path = run_dir / layout.HISTORY
    if not path.is_file() or path.stat().st_size == 0:
        return History(path, [], {})
    return read_history(path)
