"""summary.json: how a run ended, its best epoch and the one model.keras holds, its data, baseline and diagnosis."""

from __future__ import annotations

from typing import Any

from dlrun.data import frames
from dlrun.data.prepare import Prepared
from dlrun.runs.diagnosis import diagnose
from dlrun.runs.history import VAL, History, best_epoch, extreme_epoch
from dlrun.runs.status import Status
from dlrun.spec.models import Spec, is_dataframe
from dlrun.training.reuse import baseline
from dlrun.versions import node, versions


def best_of_spec(spec: Spec, history: History) -> int | None:
    """Return the best epoch by the spec's early stopping (monitor, mode, min_delta), or the lowest val_loss."""
    stop = spec.training.early_stopping
    monitor, mode = spec.monitor
    values = history.values.get(monitor, [])
    if stop is None:
        return best_epoch(values, mode)
    return best_epoch(values, mode, stop.min_delta, stop.start_from_epoch)


def build_summary(
    spec: Spec,
    data: Prepared,
    history: History,
    status: Status,
    wall: float,
    model_epoch: int | None,
    steps_per_epoch: int | None = None,
    class_weight: dict[str, float] | None = None,
    loop: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return summary.json's content for a run that ended with `status`.

    Args:
        model_epoch: The epoch whose weights model.keras holds (1-based; None: no model was saved).
            Training decides it: the best epoch when Keras restored its weights, else the last one
            (after an immediate interrupt, the last checkpoint's).
        steps_per_epoch: optimizer steps (batches) per epoch, the unit of a learning-rate schedule's steps.
        class_weight: each class's weight by its label, as training used them (balanced ones computed).
        loop: which loop trained (`dlrun.training.loop.Loop.to_dict`): lean or fit, and why.
    """
    monitor, mode = spec.monitor
    stop = spec.training.early_stopping
    best = best_of_spec(spec, history)
    lowest = extreme_epoch(history.values.get(VAL + "loss", []))
    epochs_run = len(history)
    row = history.row
    summary = {
        "name": spec.name,
        "status": str(status),
        "epochs_run": epochs_run,
        "epochs": spec.training.epochs,
        "stopped_epoch": epochs_run if status == Status.EARLY_STOPPED else None,
        "monitor": monitor,
        "mode": mode,
        "min_delta": stop.min_delta if stop else 0.0,
        "best_epoch": best,
        "best_value": row(best)[monitor] if best is not None else None,
        "model_epoch": model_epoch,
        "min_val_loss": row(lowest)[VAL + "loss"] if lowest is not None else None,
        "min_val_loss_epoch": lowest,
        "best": row(best) if best is not None else {},
        "final": row(history.epochs[-1]) if epochs_run else {},
        "wall_time_s": round(wall, 3),
        "seed": spec.seed,
        "steps_per_epoch": steps_per_epoch,
        "class_weight": class_weight,
        "loop": loop,
        "rows": dict(data.rows),
        "dropped_rows": dict(data.dropped),
        "data_warnings": list(data.warnings),
        "unseen_categories": data.unseen,
        "streaming": data.stream is not None,
        "split": data.split,
        "data_sha256": data.sha256,
        "dataframes": {path: frames.describe(path) for path in data.sha256 if is_dataframe(path)} or None,
        "versions": versions(),
        "node": node(),
    }
    summary |= baseline(spec, data)
    summary["diagnosis"] = diagnose(history, summary, spec.resolved()).to_dict()
    return summary
