"""Checkpoints of a run in training, so `dlrun train --resume` continues exactly where it stopped.

One file, `checkpoint.npz` in the run directory, replaced atomically: every variable of the model
(weights, batch-normalization statistics, dropout's seed-generator state) and of the optimizer
(its iteration count, moments, learning rate), early stopping's counters and best weights, the
last finished epoch and the wall time so far. Each epoch's shuffle order is a function of the seed
and the epoch (`dlrun.data.datasets`), so with these a resumed run computes what an uninterrupted
one would, value for value.

`Checkpoint` is a Keras callback driven by `on_epoch_end` alone. Saving takes far longer than a
small model's epoch, so it saves when `every_s` seconds have passed since the last save (and never
spends more than about 5% of the time saving), at the run's last epoch, when early stopping ends
it, and when Ctrl-C or SIGTERM asks it to stop (see `dlrun.training.interrupts`).
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.backend import import_keras
from dlrun.errors import DlrunError
from dlrun.runs.layout import CHECKPOINT, HISTORY, atomic_path
from dlrun.training import keras_compat
from dlrun.training.interrupts import StopRequest

keras = import_keras()

EVERY_S = 5.0
"""Default seconds between checkpoints: a kill -9 loses at most this much training."""
MAX_SHARE = 0.05
"""Checkpoints wait at least 1/MAX_SHARE times as long as the last one took, so big models train on."""


@dataclass
class State:
    """Everything a resumed run needs, as of the end of one epoch."""

    epoch: int
    """The last finished epoch, 0-based as Keras counts."""
    wall: float
    """Seconds spent training up to the end of that epoch."""
    stopped: bool
    """Early stopping ended training at that epoch: nothing is left to train."""
    early: dict[str, Any] | None
    """Early stopping's counters (`keras_compat.EARLY_COUNTERS`), when the spec has early stopping."""
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray] | None = None
    """The weights early stopping keeps for `restore_best_weights`, when it has some."""
    plateau: dict[str, Any] | None = None
    """ReduceLROnPlateau's counters (`keras_compat.PLATEAU_COUNTERS`), when the spec has it."""

    @property
    def epochs_done(self) -> int:
        return self.epoch + 1


def capture(model, early, epoch: int, wall: float, plateau=None) -> State:
    """Copy a model's, its optimizer's, early stopping's and ReduceLROnPlateau's state at the end of `epoch`."""
    counters = keras_compat.counters(early, keras_compat.EARLY_COUNTERS)
    return State(
        epoch=epoch,
        wall=wall,
        stopped=early is not None and early.stopped_epoch > 0,
        early=counters,
        model=[np.asarray(v.numpy()) for v in model.variables],
        optimizer=[np.asarray(v.numpy()) for v in model.optimizer.variables],
        best_weights=None if early is None or early.best_weights is None else list(early.best_weights),
        plateau=keras_compat.counters(plateau, keras_compat.PLATEAU_COUNTERS),
    )


def restore_model(model, state: State) -> None:
    """Set a freshly built and compiled model's variables, and its optimizer's, to a checkpoint's.

    Raises:
        DlrunError: the checkpoint holds other variables than the spec's model (another spec wrote it).
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    _assign(model.variables, state.model, "model")
    _assign(model.optimizer.variables, state.optimizer, "optimizer")


def restore_early(early, state: State) -> None:
    """Give early stopping back its counters and best weights (call after its `on_train_begin`)."""
    keras_compat.set_counters(early, state.early)
    early.best_weights = state.best_weights


def restore_plateau(plateau, state: State) -> None:
    """Give ReduceLROnPlateau back its counters (call after its `on_train_begin`)."""
    keras_compat.set_counters(plateau, state.plateau)


def _assign(variables, values: list[np.ndarray], what: str) -> None:
    variables = list(variables)
    shapes = [tuple(v.shape) for v in variables]
    if shapes != [tuple(a.shape) for a in values]:
        raise DlrunError(
            f"the checkpoint's {what} variables do not match the spec's {what} ({len(values)} saved, "
            f"{len(variables)} expected): it was not written for this config.yaml; delete {CHECKPOINT} "
            "to resume from the first epoch"
        )
    for variable, value in zip(variables, values):
        variable.assign(value)


def write_checkpoint(path: Path, state: State) -> None:
    """Write a checkpoint atomically (a reader sees the previous one or this one, never half of one)."""
    meta = {
        "epoch": state.epoch,
        "wall": state.wall,
        "stopped": state.stopped,
        "early": state.early,
        "plateau": state.plateau,
    }
    arrays: dict[str, np.ndarray] = {"state": np.array(json.dumps(meta))}
    for prefix, values in (("model", state.model), ("optimizer", state.optimizer), ("best", state.best_weights)):
        for index, value in enumerate(values or []):
            arrays[f"{prefix}_{index}"] = value
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def read_checkpoint(path: Path) -> State | None:
    """Read a checkpoint; None when there is none (the run stopped before its first one).

    Raises:
        DlrunError: the file cannot be read.
    """
    if not path.is_file():
        return None
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with archive:
            if "state" not in archive.files:
                raise ValueError("no 'state' in the archive")
            meta = json.loads(str(archive["state"]))
            groups: dict[str, list[np.ndarray]] = {"model": [], "optimizer": [], "best": []}
            for prefix, values in groups.items():
                while f"{prefix}_{len(values)}" in archive.files:
                    values.append(archive[f"{prefix}_{len(values)}"])
        return State(
            epoch=int(meta["epoch"]),
            wall=float(meta["wall"]),
            stopped=bool(meta["stopped"]),
            early=meta["early"],
            model=groups["model"],
            optimizer=groups["optimizer"],
            best_weights=groups["best"] if meta["early"] is not None and groups["best"] else None,
            plateau=meta.get("plateau"),
        )
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        # NumPy takes bytes that are no archive for a pickle, and advises allow_pickle: never the fix here
        pickled = isinstance(exc, ValueError) and "allow_pickle" in str(exc)
        reason = "it is not a NumPy .npz archive" if pickled or isinstance(exc, zipfile.BadZipFile) else exc
        reason = f"its state lacks {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else reason
        raise DlrunError(
            f"{path} cannot be read (it is damaged or not a dlrun checkpoint: {reason}); delete it to resume from "
            "the first epoch"
        ) from None


class Checkpoint(keras.callbacks.Callback):
    """Save the run's state at the end of epochs (see the module's docstring for when), and stop on request.

    Place it after `CSVLogger` (a checkpoint never counts an epoch history.csv does not hold yet) and
    after `EarlyStopping` and `ReduceLROnPlateau` (whose counters it saves, and restores after their
    `on_train_begin` resets them).

    A loop that runs several epochs per call and replays their ends afterwards (`dlrun.training.loop`)
    sets `weights_at`: a save, or a stop asked for, waits for the epoch whose end the model is at.
    """

    @property
    def replayable(self) -> bool:
        """It may be handed epochs that ended before the model's (see `weights_at`), unless asked to save every one."""
        return self.every_s > 0

    def __init__(
        self,
        run_dir: Path,
        epochs: int,
        early=None,
        stop: StopRequest | None = None,
        resumed: State | None = None,
        every_s: float = EVERY_S,
        plateau=None,
    ):
        super().__init__()
        self.plateau = plateau
        self.path = Path(run_dir) / CHECKPOINT
        self.history = Path(run_dir) / HISTORY
        self.epochs = epochs
        self.early = early
        self.stop = stop or StopRequest()
        self.resumed = resumed
        self.every_s = every_s
        self.interval = every_s
        self.last_epoch: int | None = resumed.epoch if resumed else None
        """The last epoch that finished with a finite loss, 0-based."""
        self.saved_epoch: int | None = resumed.epoch if resumed else None
        self.interrupted = False
        """A stop request ended training before its last epoch."""
        self.weights_at: int | None = None
        """The epoch whose end the model's variables are at, while earlier epochs are replayed; None: the one ending."""
        self._wall_before = resumed.wall if resumed else 0.0
        self._started = self._last_save = time.monotonic()

    def on_train_begin(self, logs=None):
        self._started = self._last_save = time.monotonic()
        if self.resumed is not None and self.early is not None:
            restore_early(self.early, self.resumed)
        if self.resumed is not None and self.plateau is not None:
            restore_plateau(self.plateau, self.resumed)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return  # TerminateOnNaN ends the run; the last checkpoint stays the last good state
        self.last_epoch = epoch
        if self.weights_at is not None and epoch < self.weights_at:
            return  # the model is already past this epoch: nothing of it can be saved
        ending = bool(self.model.stop_training) or epoch + 1 >= self.epochs
        if self.stop.requested and not ending:
            self.model.stop_training = True
            self.interrupted = True
        if ending or self.stop.requested or time.monotonic() - self._last_save >= self.interval:
            self.save(epoch)

    def wall(self) -> float:
        """Seconds spent training, earlier sessions of a resumed run included."""
        return self._wall_before + time.monotonic() - self._started

    def save(self, epoch: int) -> None:
        """Write the checkpoint of `epoch`, whose end the model is at."""
        began = time.monotonic()
        _sync(self.history)  # the rows this checkpoint counts reach the disk before it does
        write_checkpoint(self.path, capture(self.model, self.early, epoch, self.wall(), self.plateau))
        self.saved_epoch = epoch
        self._last_save = time.monotonic()
        if self.every_s > 0:  # 0 asks for every epoch, whatever it costs
            self.interval = max(self.every_s, (self._last_save - began) / MAX_SHARE)

    def restore_saved(self) -> int | None:
        """Set the model to the last checkpoint's weights; return that epoch (1-based), or None without one."""
        state = read_checkpoint(self.path) if self.saved_epoch is not None else None
        if state is None:
            return None
        _assign(self.model.variables, state.model, "model")
        return state.epochs_done


def _sync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
