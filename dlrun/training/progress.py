"""Training progress as Keras callbacks: a rich bar on a terminal, an HTML bar in Jupyter, plain lines in a log
(imported only when training).

On a terminal the bar redraws in place. Anywhere else (stdout redirected to a file, `nohup`, CI) a
bar would be written only when training ends, so `EpochLines` writes one flushed line per epoch
instead, thinned to about one every `EVERY_S` seconds on long runs. Both read only the `logs` Keras
hands every callback at the end of an epoch, so they work under any loop that drives callbacks.
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dlrun.backend import import_keras

keras = import_keras()

EVERY_EPOCH_UP_TO = 50
"""Runs of at most this many epochs print every epoch; longer ones are thinned to one line per `EVERY_S`."""
EVERY_S = 5.0


def progress_callback(epochs: int, console: Console | None = None, done: int = 0):
    """Return the progress display for a console: a bar on a terminal, plain lines anywhere else.

    `done`: epochs a resumed run already has (the bar starts there; lines number epochs as Keras does).
    """
    console = console or Console()
    if console.is_jupyter:
        return EpochHtml(epochs, done)
    return EpochProgress(epochs, console, done) if console.is_terminal else EpochLines(epochs, console)


class EpochProgress(keras.callbacks.Callback):
    """Show epochs done out of `epochs` (`done` already, for a resumed run), with the latest loss and val_loss."""

    replayable = True
    """It reads only the logs, so a loop may hand it epochs after they ran (`dlrun.training.loop`)."""

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
        self.progress.update(self.task, completed=epoch + 1, latest=_losses(logs))

    def on_train_end(self, logs=None):
        self.progress.stop()


class EpochHtml(keras.callbacks.Callback):
    """In a Jupyter notebook: one HTML progress bar (epochs done of `epochs`, the latest losses), updated in place."""

    replayable = True
    """It reads only the logs, so a loop may hand it epochs after they ran (`dlrun.training.loop`)."""

    def __init__(self, epochs: int, done: int = 0):
        super().__init__()
        self.epochs, self.done, self.latest = epochs, done, ""
        self.started = time.monotonic()
        self.handle = None

    def html(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"<div><b>training</b> <progress value='{self.done}' max='{self.epochs}' style='width:24em'></progress> "
            f"{self.done}/{self.epochs} epochs, {elapsed:.1f} s &nbsp; {self.latest}</div>"
        )

    def on_train_begin(self, logs=None):
        from IPython.display import HTML, display

        self.started = time.monotonic()
        self.handle = display(HTML(self.html()), display_id=True)

    def on_epoch_end(self, epoch, logs=None):
        from IPython.display import HTML

        self.done, self.latest = epoch + 1, _losses(logs)
        if self.handle is not None:
            self.handle.update(HTML(self.html()))


class EpochLines(keras.callbacks.Callback):
    """Write `epoch 3/20  loss 0.4521  val_loss 0.4701  elapsed 2.1 s`, flushed, as epochs end.

    Every epoch of a run of up to `EVERY_EPOCH_UP_TO` epochs gets a line; longer runs get the first
    epoch, then one line when at least `EVERY_S` seconds passed since the last, and the last epoch.
    """

    replayable = True
    """It reads only the logs, so a loop may hand it epochs after they ran (`dlrun.training.loop`)."""

    def __init__(self, epochs: int, console: Console | None = None, every_s: float = EVERY_S):
        super().__init__()
        self.epochs = epochs
        self.console = console or Console()
        self.every_s = every_s if epochs > EVERY_EPOCH_UP_TO else 0.0
        self.started = self.printed = time.monotonic()
        self.pending: str | None = None

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
        self.printed = -math.inf

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        line = f"epoch {epoch + 1}/{self.epochs}  {_losses(logs)}  elapsed {now - self.started:.1f} s"
        if now - self.printed >= self.every_s or epoch + 1 == self.epochs:
            self._write(line)
            self.printed, self.pending = now, None
        else:
            self.pending = line

    def on_train_end(self, logs=None):
        if self.pending:  # early stopping or an interrupt: say where training ended
            self._write(self.pending)
            self.pending = None

    def _write(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()


def _losses(logs) -> str:
    logs = logs or {}
    return "  ".join(f"{k} {_fmt(logs[k])}" for k in ("loss", "val_loss") if k in logs)


def _fmt(value) -> str:
    value = float(value)
    return "nan" if math.isnan(value) else f"{value:.4g}"
