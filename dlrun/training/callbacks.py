"""The Keras callbacks a spec asks for, plus dlrun's own: learning-rate logging, history.csv, checkpoints, progress.

Keras calls them in list order at each epoch's end: the learning rate is logged first (the one the
epoch ended with), early stopping and ReduceLROnPlateau read the logs before history.csv and TensorBoard
write them, so every file agrees; the checkpoint comes after them all, so it saves their counters and
never counts an epoch that history.csv does not hold yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError
from dlrun.runs.layout import HISTORY, TENSORBOARD
from dlrun.spec.models import TrainingSpec


@dataclass
class Callbacks:
    """The callbacks of one fit, and the ones the outcome needs to ask afterwards."""

    all: list[Any] = field(default_factory=list)
    early: Any = None
    """The `EarlyStopping` callback, when the spec asks for early stopping."""
    checkpoint: Any = None
    """The `dlrun.training.checkpoint.Checkpoint` callback."""
    plateau: Any = None
    """The `ReduceLROnPlateau` callback, when the spec asks for it (the checkpoint saves its counters)."""

    def stop_displays(self) -> None:
        """Stop any live display, even when fit ended by an exception (the bar would stay on screen)."""
        for callback in self.all:
            if hasattr(callback, "progress"):
                callback.progress.stop()

    def close_history(self) -> None:
        """Close history.csv after fit ended by an exception (Keras closes it only at the end of training).

        A full disk fails CSVLogger's flush with an epoch's row still in its buffer: closing writes it
        when it can, so the epochs read afterwards (and told to the user) are the ones on disk.
        """
        for callback in self.all:
            handle = getattr(callback, "csv_file", None)
            if handle is not None and not handle.closed:
                try:
                    handle.close()
                except OSError:
                    pass  # still no space: the row stays half-written, and the history reader leaves it out


def require_tensorboard(training: TrainingSpec) -> None:
    """Refuse `training.tensorboard` before any work when the tensorboard package, which writes the logs, is missing.

    Raises:
        DlrunError: TensorBoard logs are asked for and cannot be written.
    """
    import importlib.util

    if training.tensorboard is not None and importlib.util.find_spec("tensorboard") is None:
        raise DlrunError(
            "training.tensorboard: writing TensorBoard logs needs the tensorboard package, which is not installed: "
            "pip install 'dlrun[tensorboard]' (or pip install tensorboard), or remove training.tensorboard"
        )


def make_callbacks(
    training: TrainingSpec,
    run_dir: Path,
    console=None,
    quiet: bool = False,
    stop_request=None,
    resumed=None,
    checkpoint_every: float | None = None,
) -> Callbacks:
    """Build the callbacks for `model.fit`: history.csv is written as each epoch ends, so nothing finished is lost.

    Args:
        stop_request: The `StopRequest` that Ctrl-C and SIGTERM set (see `dlrun.training.interrupts`).
        resumed: The checkpoint a resumed run starts from: history.csv is appended to, early
            stopping gets its counters back, the progress bar starts at its epoch.
        checkpoint_every: Seconds between checkpoints (default `checkpoint.EVERY_S`; 0: every epoch).
    """
    from dlrun.backend import import_keras
    from dlrun.training.checkpoint import EVERY_S, Checkpoint

    keras = import_keras()
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
    plateau = training.reduce_lr_on_plateau
    plateau = keras.callbacks.ReduceLROnPlateau(**plateau.model_dump()) if plateau else None  # mode is min or max
    board = training.tensorboard
    board = keras.callbacks.TensorBoard(log_dir=str(run_dir / TENSORBOARD), **board.model_dump()) if board else None
    every = EVERY_S if checkpoint_every is None else checkpoint_every
    checkpoint = Checkpoint(run_dir, training.epochs, early, stop_request, resumed, every, plateau)
    rate_log = _learning_rate_log(keras)
    # Neither a schedule nor ReduceLROnPlateau changes the rate: it may be logged after later epochs ran
    rate_log.replayable = training.optimizer.schedule is None and plateau is None
    callbacks = [
        rate_log,
        keras.callbacks.TerminateOnNaN(),
        *([early] if early else []),
        *([plateau] if plateau else []),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=resumed is not None),
        *([board] if board else []),
        checkpoint,
    ]
    if not quiet:
        from dlrun.training.progress import progress_callback

        callbacks.append(progress_callback(training.epochs, console, resumed.epochs_done if resumed else 0))
    return Callbacks(callbacks, early, checkpoint, plateau)


def _learning_rate_log(keras):
    """Build a callback that adds the optimizer's learning rate to each epoch's logs (and so to history.csv).

    It is the rate at the epoch's end: a schedule's value at the step reached, or the number
    ReduceLROnPlateau is about to lower (it logs that same number before lowering it).

    Its `replayable` is set (by `make_callbacks`) when neither a schedule nor ReduceLROnPlateau changes
    the rate during the run: it is then read once, as training begins (after a resume restored it),
    and an epoch's rate can be logged after later epochs ran (`dlrun.training.loop` replays epochs).
    """

    class LearningRateLog(keras.callbacks.Callback):
        replayable = False

        def on_train_begin(self, logs=None):
            self.rate = self._read() if self.replayable else None

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = self._read() if self.rate is None else self.rate

        def _read(self) -> float:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    return LearningRateLog()
