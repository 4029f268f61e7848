"""Train a spec: prepare the data, build and compile the model, fit it, and write the run directory.

`train` reads top to bottom: data (dlrun.data), the run directory (dlrun.runs.layout), the model
(dlrun.model), datasets and callbacks, `model.fit`, then the outcome: status, model, summary, plots.
`fit` also continues a run from its checkpoint (`dlrun.training.resume`).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dlrun.data.fitter import class_weights, weights_by_label
from dlrun.data.prepare import Prepared
from dlrun.data.preprocess import task_of
from dlrun.errors import DataError, DlrunError, TrainingError, warn
from dlrun.model import check_output_width
from dlrun.runs import finishing, layout, lock
from dlrun.runs.history import History, read_history
from dlrun.runs.status import Status
from dlrun.spec import names
from dlrun.spec.models import KerasMetric, Spec
from dlrun.training.callbacks import Callbacks, make_callbacks, require_tensorboard
from dlrun.training.devices import check_devices, loss_scaled, precision, replicas, strategy
from dlrun.training.loop import Loop, choose, fit_lean
from dlrun.training.reuse import graph_key, prepared, trained_model
from dlrun.training.summary import build_summary
from dlrun.versions import node, versions

MAX_STEPS_PER_EXECUTION = 32


@dataclass
class Outcome:
    """What a finished (or stopped) training left behind."""

    run_dir: Path
    summary: dict[str, Any]


def train(
    spec: Spec,
    out: Path,
    overrides: list[str] | None = None,
    console=None,
    quiet: bool = False,
    checkpoint_every: float | None = None,
    tracking=None,
    callbacks: list | None = None,
) -> Outcome:
    """Train the spec's model and fill a new run directory under `out`.

    The data is read and checked before the run directory is created, so a bad CSV leaves nothing
    behind; once training starts, every finished epoch is on disk whatever happens next.

    Args:
        tracking: where to log the run as well (`dlrun.training.tracking.Tracking`), or None.
        callbacks: More Keras callbacks, called after dlrun's own (a trial's pruning); one that stops
            training may say why in a `stop_status` attribute (a `Status` word), which becomes the run's.

    Raises:
        DataError: the CSV cannot be used as the spec says.
        TrainingError: the loss became NaN, training failed or was interrupted (the run directory keeps
            what it did; the error's `status` says which).
    """
    require_tensorboard(spec.training)
    data = prepared(spec.data, spec.seed, spec.training.loss)  # a sweep worker's last data, when unchanged
    check_output_width(spec.model, spec.data.target, data.preprocessing.classes)
    class_weights(spec.training.class_weight, data.preprocessing, data.class_counts)  # an unknown label: before the run
    check_devices(spec.training)
    run_dir = start_run(spec, data, Path(out), overrides)
    tracker = tracking.start(spec, run_dir, overrides) if tracking is not None else None
    extra = ([tracker.callback()] if tracker else []) + (callbacks or [])
    try:
        return Outcome(run_dir, fit(spec, data, run_dir, console, quiet, None, checkpoint_every, extra))
    finally:
        if tracker is not None:
            tracker.finish()  # whatever the status: MLflow records failed and interrupted runs too
        lock.release(run_dir)


def start_run(spec: Spec, data: Prepared, out: Path, overrides: list[str] | None) -> Path:
    """Create the run directory and write what is known before training: config, overrides, preprocessing, start.

    A write that fails (a full disk) removes the folder again. A kill -9 before the config is in place
    cannot: it leaves a folder with only the lock and a temporary file. The next run into the same
    folder removes such leftovers (`lock.remove_stillborn`), as `sweep --resume` does; `compare` and
    `plot` name them.
    """
    for leftover in lock.remove_stillborn(Path(out) / spec.name):
        warn(f"removed {leftover}: {lock.STILLBORN}")
    run_dir = layout.new_run_dir(out, spec.name)
    try:
        lock.acquire(run_dir)  # before any file: `sweep --resume` never deletes a run a live process writes
        layout.write_text(run_dir / layout.CONFIG, yaml.safe_dump(spec.resolved(), sort_keys=False))
        if overrides:
            layout.write_text(run_dir / layout.OVERRIDES, "".join(f"{o}\n" for o in overrides))
        layout.write_json(run_dir / layout.PREPROCESSING, data.preprocessing.to_dict())
        layout.write_json(
            run_dir / layout.START,
            {"spec": spec.resolved(), "data_sha256": data.sha256, "versions": versions(), "node": node()},
        )
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def fit(
    spec: Spec,
    data: Prepared,
    run_dir: Path,
    console=None,
    quiet: bool = False,
    resumed=None,
    checkpoint_every: float | None = None,
    extra_callbacks: list | None = None,
) -> dict[str, Any]:
    """Fit the model into an existing run directory; write the model, summary and plots; return the summary.

    Args:
        resumed: A `dlrun.training.checkpoint.State` to continue from (its history.csv rows are the
            ones before it), or None to start at the first epoch.
        checkpoint_every: Seconds between checkpoints (None: the default; 0: after every epoch).
        extra_callbacks: Callbacks called after dlrun's own (tracking), seeing the logs they completed.
    """
    from dlrun.backend import import_keras
    from dlrun.data.datasets import fit_datasets
    from dlrun.training.checkpoint import restore_model
    from dlrun.training.interrupts import stop_requests

    keras = import_keras()
    training = spec.training
    keras.config.disable_interactive_logging()  # dlrun reports for Keras (TerminateOnNaN would print mid-bar)
    keras.utils.set_random_seed(spec.seed)
    first = resumed.epochs_done if resumed else 0
    last = first if resumed and resumed.stopped else training.epochs  # early stopping ended it: fit no epoch
    weights = class_weights(training.class_weight, data.preprocessing, data.class_counts)
    datasets = fit_datasets(data, training.batch_size, training.shuffle, spec.seed, first, weights)
    # Keras 3 under MirroredStrategy fails with several steps per execution ("must feed a value for placeholder")
    per_execution = 1 if training.distribute else _steps_per_execution(datasets.steps, datasets.valid_steps)
    with strategy(training).scope():  # the weights are made, mirrored, on the spec's devices
        model = compile_model(spec, data.preprocessing.width, per_execution)
    if resumed:
        restore_model(model, resumed)
    with stop_requests() as stop:
        callbacks = make_callbacks(training, run_dir, console, quiet, stop, resumed, checkpoint_every)
        callbacks.all += extra_callbacks or []  # last: they see the logs the others completed (learning_rate)
        loop = choose(training, data.stream is not None, callbacks.all)
        if loop.kind == "lean" and not resumed:  # a sweep worker's model of the same graph, traced already
            model = trained_model(model, graph_key(spec, data.preprocessing.width, per_execution))
        status, failure = _run_fit(model, datasets, callbacks, first, last, loop)
        history = _logged(run_dir)
        status = _final_status(status, history, callbacks)
        held = _held_epoch(model, callbacks, failure)
        facts = {
            "steps_per_epoch": datasets.steps,
            "class_weight": weights_by_label(weights, data.preprocessing),
            "loop": loop.to_dict(),
        }
        return _finish(spec, data, run_dir, model, history, status, failure, callbacks, held, stop.exit_code, facts)


def compile_model(spec: Spec, input_width: int, steps_per_execution: int = 1):
    """Build the spec's model for `input_width` inputs and compile it with the spec's optimizer, loss and metrics."""
    from dlrun.backend import import_keras
    from dlrun.model import build_model

    keras = import_keras()
    training = spec.training
    with precision(training) as output_dtype:
        model = build_model(spec.model, input_width, output_dtype)
    arguments = training.optimizer.kwargs()
    schedule = training.optimizer.schedule
    if schedule is not None:
        arguments["learning_rate"] = getattr(keras.optimizers.schedules, schedule.keras_class)(**schedule.kwargs())
    optimizer = loss_scaled(type(keras.optimizers.get(training.optimizer.name))(**arguments), training)
    task = task_of(training.loss)
    model.compile(
        optimizer=optimizer,
        loss=training.loss,
        metrics=[keras_metric(keras, metric, task) for metric in training.metrics],
        steps_per_execution=steps_per_execution,
    )
    return model


def keras_metric(keras, metric: KerasMetric, task: str):
    """Return what `compile` gets for a spec metric: its name, or its Keras class built with its arguments.

    A metric built here is named by its column, so history.csv has the columns the spec says (Keras
    would number two AUCs auc and auc_1).
    """
    if metric.by_name:
        return metric.name  # Keras builds it, and `accuracy` as binary or sparse categorical by the output
    class_name = names.METRIC_CLASSES[metric.name]
    if metric.name in names.ANY_OUTPUT_METRICS:  # the class Keras would pick for the name
        class_name = "SparseCategoricalAccuracy" if task == "multiclass" else "BinaryAccuracy"
    return getattr(keras.metrics, class_name)(name=metric.column_name, **metric.kwargs())


def _run_fit(
    model, datasets, callbacks: Callbacks, first: int, last: int, loop: Loop
) -> tuple[Status, BaseException | None]:
    """Train epochs `first` to `last` (0-based, `last` excluded) with the chosen loop; turn how it ended into a status.

    An interrupt or an error inside fit becomes a status, since history.csv holds every epoch. A
    `KeyboardInterrupt` (a second Ctrl-C: the first one stops at the epoch's end) is returned as the failure.
    """
    try:
        if loop.kind == "lean":
            fit_lean(model, datasets, callbacks.all, first, last, loop)
        else:
            _keras_fit(model, datasets, callbacks, first, last)
    except KeyboardInterrupt as exc:
        return Status.INTERRUPTED, exc
    except Exception as exc:  # a Keras or TensorFlow error mid-fit: keep the epochs, report it in one line
        return Status.FAILED, exc
    finally:
        callbacks.stop_displays()
        callbacks.close_history()
    return (Status.INTERRUPTED if callbacks.checkpoint.interrupted else Status.COMPLETED), None


def _keras_fit(model, datasets, callbacks: Callbacks, first: int, last: int) -> None:
    """Call `model.fit` on the datasets for epochs `first` to `last`."""
    model.fit(
        datasets.train,
        validation_data=datasets.valid,
        initial_epoch=first,
        epochs=last,
        steps_per_epoch=datasets.steps,
        validation_steps=datasets.valid_steps,
        callbacks=callbacks.all,
        class_weight=datasets.class_weight,
        shuffle=False,
        verbose=0,
    )


def _final_status(status: Status, history: History, callbacks: Callbacks) -> Status:
    """Refine how fit ended from what it logged: a NaN loss (TerminateOnNaN stops on inf too), early stopping."""
    if not all(math.isfinite(v) for v in history.values.get("loss", [])):
        return Status.NAN
    if status == Status.COMPLETED and callbacks.early is not None and callbacks.early.stopped_epoch > 0:
        return Status.EARLY_STOPPED
    stopped = next((c.stop_status for c in callbacks.all if getattr(c, "stop_status", None)), None)
    if status == Status.COMPLETED and stopped is not None:
        return Status(stopped)  # another callback stopped training and said why (dlrun tune's pruner)
    return status


def _held_epoch(model, callbacks: Callbacks, failure: BaseException | None) -> int | None:
    """Set the weights to save and return their epoch (1-based): the best one with restore_best_weights, else the last.

    After a normal end (or a stop at an epoch's end) Keras has already restored the best weights. After
    an immediate interrupt the weights are mid-epoch: the best ones, or else the last checkpoint's, are
    set instead; None when there are neither.
    """
    early, checkpoint = callbacks.early, callbacks.checkpoint
    best = early is not None and early.restore_best_weights and early.best_weights is not None
    if isinstance(failure, KeyboardInterrupt):
        if best:
            model.set_weights(early.best_weights)
            return early.best_epoch + 1
        return checkpoint.restore_saved()
    if best:
        return early.best_epoch + 1
    return None if checkpoint.last_epoch is None else checkpoint.last_epoch + 1


def _finish(
    spec: Spec,
    data: Prepared,
    run_dir: Path,
    model,
    history: History,
    status: Status,
    failure,
    callbacks: Callbacks,
    held: int | None,
    exit_code: int,
    facts: dict[str, Any],
):
    """Save the model and summary.json, draw the plots, evaluate the test rows; raise for a run that did not finish.

    A finished run's checkpoint is removed once its summary and plots are written (`dlrun.runs.finishing`);
    any other keeps it for `--resume`.
    """
    try:
        if status in (Status.NAN, Status.FAILED):
            held = None
        if held is not None:
            with layout.atomic_path(run_dir / layout.MODEL) as tmp:
                model.save(tmp)
        summary = build_summary(spec, data, history, status, callbacks.checkpoint.wall(), held, **facts)
        if status.finished and data.has_test:
            summary["test"] = _evaluate_test(model, data, spec.training.batch_size)
        if spec.training.distribute:
            summary["devices"] = replicas(model)
        if data.stream is not None:
            summary["unseen_categories"] = {p: u for p, u in data.stream.unseen.items() if u and p != "train"}
            summary["streaming_cache"] = dict(data.stream.caches)
        files = finishing.promised(history)
        if files:  # until every plot is on disk, the run says which are missing and keeps its checkpoint
            layout.write_json(run_dir / layout.SUMMARY, finishing.pending(summary, status, files))
            finishing.finish(run_dir, summary)
        else:
            layout.write_json(run_dir / layout.SUMMARY, summary)
            if status in finishing.ENDED:
                (run_dir / layout.CHECKPOINT).unlink(missing_ok=True)  # nothing to resume: a NaN would come back
    except DlrunError as exc:
        if failure is None or isinstance(failure, KeyboardInterrupt):
            raise
        exc = DlrunError(f"{exc}; and before that: {_failure_text(failure, run_dir)}")
        raise exc from None
    _raise_unfinished(status, failure, len(history), run_dir, exit_code)
    return summary


def _raise_unfinished(status: Status, failure, epochs_run: int, run_dir: Path, exit_code: int) -> None:
    resume = f"continue it with: dlrun train --resume {run_dir}"
    if status == Status.NAN:
        raise TrainingError(
            f"training stopped at epoch {epochs_run}: the loss became NaN (or infinite). The history so far is in "
            f"{run_dir / layout.HISTORY}. Try a lower training.optimizer.learning_rate, or scale the features "
            "(data.scale: standard)",
            status,
            run_dir,
        )
    if status == Status.FAILED:
        error = TrainingError(f"{_failure_text(failure, run_dir)}; they are kept in {run_dir}", status, run_dir)
        raise error from failure
    if status == Status.INTERRUPTED:
        error = TrainingError(
            f"interrupted after {epochs_run} finished epochs, kept in {run_dir}; {resume}", status, run_dir
        )
        error.exit_code = exit_code
        raise error


def _failure_text(failure: BaseException, run_dir: Path) -> str:
    """Say in one line why fit failed: a file it could not write, or the last line of a Keras error."""
    epochs = len(_logged(run_dir))
    if isinstance(failure, DlrunError):  # a checkpoint that could not be written
        return f"training stopped after {epochs} finished epochs: {failure}"
    if isinstance(failure, OSError):  # history.csv could not be written (the only other file fit writes)
        return f"training stopped after {epochs} finished epochs: " + str(
            layout.os_error(failure, failure.filename or run_dir / layout.HISTORY)
        )
    reason = str(failure).strip().splitlines()[-1] if str(failure).strip() else type(failure).__name__
    return (
        f"training failed after {epochs} finished epochs ({type(failure).__name__}: {reason}); "
        "`dlrun check` builds the model and warns of likely mistakes"
    )


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
    try:
        return read_history(path)
    except DataError:  # none yet, or only a header cut short
        return History(path, [], {})
