"""A run's history.csv: the one reader of it, the quantities it holds, and which epoch is best.

Keras's `CSVLogger` writes one row per finished epoch, `epoch` counted from 0; everything a user
sees counts from 1, so `History.epochs` does. `best_epoch` is the rule Keras's `EarlyStopping`
applies (monitor, mode, min_delta, start_from_epoch), so the epoch dlrun calls best is the one
whose weights `restore_best_weights` keeps; the end-of-run table, summary.json, the plots, compare
and diff all take it from here. Pure Python: `compare` and `diff` start without pandas.
"""

from __future__ import annotations

import csv
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from dlrun.errors import DataError, warn
from dlrun.runs.layout import CONFIG, HISTORY, write_text

VAL = "val_"
NOT_QUANTITIES = frozenset({"epoch", "learning_rate", "lr"})
"""History columns that are bookkeeping, not something a model is scored on ("lr" is Keras 2's name)."""


@dataclass
class History:
    """Every finished epoch of a run, column by column."""

    path: Path
    epochs: list[int]
    """Epoch numbers, from 1 (Keras's 0-based `epoch` column plus one)."""
    values: dict[str, list[float]] = field(default_factory=dict)
    """Each column's value per epoch; NaN where the cell is empty, `NA` or not a number."""

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def columns(self) -> list[str]:
        """The logged columns, in the file's order (`epoch` excluded)."""
        return list(self.values)

    def has_values(self, column: str) -> bool:
        """Tell whether a column holds at least one number (CSVLogger writes `val_*` as NA without validation)."""
        return any(not math.isnan(v) for v in self.values.get(column, []))

    def row(self, epoch: int) -> dict[str, float | None]:
        """Return the values of one epoch (1-based), None for blanks."""
        index = self.epochs.index(epoch)
        return {c: _blank(v[index]) for c, v in self.values.items()}


def read_history(path: str | Path) -> History:
    """Read a Keras CSVLogger history.

    A last line without its line end is half-written (the run was killed, or the disk filled, while
    writing it): it is left out, with a one-line warning on stderr, never read as values.

    Args:
        path: A history CSV, or a run directory (meaning its `history.csv`).

    Returns:
        The history; zero epochs for a run that stopped before its first epoch ended (a header only).

    Raises:
        DataError: The file is missing, empty, not text, or has no `loss` column.
    """
    path = history_path(Path(path))
    lines = complete_lines(path)
    try:
        rows = list(csv.reader(lines))
    except csv.Error as exc:
        raise DataError(f"cannot read {path} as a training history ({exc})") from None
    if not rows:
        raise DataError(f"{path} is empty: the run stopped before its first epoch ended")
    header = [name.strip() for name in rows[0]]
    if "loss" not in header:
        raise DataError(
            f"{path} is not a Keras training history: it has no numeric 'loss' column (columns: {', '.join(header)})"
        )
    body = [row for row in rows[1:] if row]
    columns = {name: [_number(row[i]) if i < len(row) else math.nan for row in body] for i, name in enumerate(header)}
    raw_epochs = columns.pop("epoch", None)
    epochs = (
        [int(e) + 1 for e in raw_epochs]
        if raw_epochs is not None and not any(math.isnan(e) for e in raw_epochs)
        else list(range(1, len(body) + 1))
    )
    return History(path, epochs, columns)


def complete_lines(path: Path) -> list[str]:
    """Return a history file's complete lines (each with its line end); warn once about a half-written last one.

    Raises:
        DataError: the file cannot be read as text.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = handle.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as a training history ({exc})") from None
    if lines and not lines[-1].endswith("\n"):
        _warn_once(
            path,
            f"{path}: its last line is half-written ({lines[-1].strip()[:40]!r}), from a run killed while "
            "writing it; reading the lines before it",
        )
        lines.pop()
    return lines


def trim_history(path: Path, epochs: int) -> None:
    """Keep the header and the first `epochs` rows of a history (a resumed run recomputes the rest).

    With `epochs` 0 the file is removed, so Keras's CSVLogger writes a fresh header.
    """
    if not path.is_file():
        return
    if epochs == 0:
        path.unlink()
        return
    lines = [line for line in complete_lines(path) if line.strip()]
    write_text(path, "".join(lines[: epochs + 1]))


_warned: set[str] = set()


def _warn_once(path: Path, message: str) -> None:
    # Readers are library code called by every command; this warning must reach the user whichever
    # command read the file, once per file, and without Python's two-line warning format.
    if str(path) not in _warned:
        _warned.add(str(path))
        warn(message)


def history_path(path: Path) -> Path:
    """Find the history CSV a path names, or say why there is none."""
    if path.is_file():
        return path
    if (path / HISTORY).is_file():
        return path / HISTORY
    run_dir = path if path.is_dir() else path.parent if path.name == HISTORY else None
    if run_dir is None or not run_dir.is_dir():
        raise DataError(f"{path} does not exist: expected a {HISTORY} file or a run directory")
    if (run_dir / CONFIG).is_file():
        raise DataError(f"no {HISTORY} in {run_dir} yet: the run has not finished an epoch")
    raise DataError(f"no {HISTORY} in {run_dir}: is it a run directory?")


def quantities(columns) -> list[str]:
    """Name the quantities in some history columns: `loss` first, then every metric, each once.

    A validation column counts as its training twin (`val_loss` -> `loss`), so a quantity is found
    even when only its validation column was logged. `epoch` and the learning rate are left out.
    """
    found: list[str] = []
    for column in columns:
        base = column.removeprefix(VAL)
        if base not in NOT_QUANTITIES and base not in found:
            found.append(base)
    return sorted(found, key=lambda name: name != "loss")  # stable: metrics keep the file's order


def best_epoch(values: list[float], mode: str = "min", min_delta: float = 0.0, start_from_epoch: int = 0) -> int | None:
    """Return the best epoch (1-based) of a monitored quantity, as Keras's `EarlyStopping` decides it.

    An epoch is best when it improves on the best so far by more than `min_delta` (lower for
    `min`, higher for `max`); epochs before `start_from_epoch` (0-based, as Keras counts) are not
    watched. So with `min_delta > 0` the best epoch can differ from the lowest value, and with
    `restore_best_weights` it is the epoch whose weights the model keeps.

    Returns:
        The epoch, or None when no watched epoch has a value.
    """
    best, chosen = None, None
    delta = abs(min_delta)
    for index, value in enumerate(values):
        if index < start_from_epoch or value is None:
            continue
        # Keras compares `value - min_delta` (min_delta negated in min mode) with the best as float32
        # tensors; NaN never improves.
        if best is None or (
            _float32(value + delta) < _float32(best) if mode == "min" else _float32(value - delta) > _float32(best)
        ):
            best, chosen = value, index
    return None if chosen is None else chosen + 1


@dataclass
class Best:
    """A run's best epoch and what decided it."""

    epoch: int | None
    monitor: str = "val_loss"
    mode: str = "min"
    min_delta: float = 0.0

    def value(self, history: History) -> float | None:
        """The monitored value at the best epoch."""
        if self.epoch is None or self.monitor not in history.values:
            return None
        return history.row(self.epoch)[self.monitor]


def best_of(history: History, summary: dict | None = None) -> Best:
    """Return a run's best epoch: the one its summary.json records, or for a bare history the lowest val_loss.

    Summaries are written by `dlrun train` with `best_epoch` (see `best_epoch`), so the rule is applied
    once, at the end of training, and every reader agrees with it.
    """
    summary = summary or {}
    if summary.get("monitor"):
        epoch = summary.get("best_epoch")
        return Best(
            epoch if isinstance(epoch, int) and epoch in history.epochs else None,
            summary["monitor"],
            summary.get("mode", "min"),
            float(summary.get("min_delta") or 0.0),
        )
    values = history.values.get(VAL + "loss")
    return Best(best_epoch(values) if values else None)


def extreme_epoch(values: list[float], mode: str = "min") -> int | None:
    """Return the epoch (1-based) of the lowest (`min`) or highest (`max`) finite value, the first on ties."""
    finite = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if not finite:
        return None
    pick = min(finite) if mode == "min" else min(finite, key=lambda t: (-t[0], t[1]))
    return pick[1] + 1


def _float32(value: float) -> float:
    """Round to the nearest float32, as Keras's comparison ops do with Python floats."""
    if math.isnan(value) or abs(value) > _FLOAT32_MAX:
        return value if math.isnan(value) else math.copysign(math.inf, value)
    return struct.unpack("f", struct.pack("f", value))[0]


_FLOAT32_MAX = 3.4028234663852886e38


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _blank(value: float) -> float | None:
    return None if math.isnan(value) else value
