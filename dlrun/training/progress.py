"""A rich progress bar over epochs, as a Keras callback (imported only when training)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dlrun.backend import import_keras

keras = import_keras()


class EpochProgress(keras.callbacks.Callback):
    """Show epochs done out of `epochs` (`done` already, for a resumed run), with the latest loss and val_loss."""

    def __init__(self, epochs: int, console: Console | None = None, done: int = 0):
        super().__init__()
        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[latest]}"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=epochs, completed=done, latest="")

    def on_train_begin(self, logs=None):
        self.progress.start()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        latest = "  ".join(f"{k} {_fmt(logs[k])}" for k in ("loss", "val_loss") if k in logs)
        self.progress.update(self.task, completed=epoch + 1, latest=latest)

    def on_train_end(self, logs=None):
        self.progress.stop()


def _fmt(value) -> str:
    value = float(value)
    return "nan" if math.isnan(value) else f"{value:.4g}"
