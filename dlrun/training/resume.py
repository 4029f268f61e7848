"""`dlrun train --resume RUN_DIR`: continue a stopped run from its checkpoint, in the same folder and history.csv.

A run records what it started from in start.json (its resolved spec, the CSVs' sha256, versions).
A resume refuses when config.yaml or a CSV changed since: the continued run would not be the run
that started. It then drops the history rows after the checkpoint (they are recomputed, exactly),
and fits from the checkpoint's next epoch; without a checkpoint it starts over at epoch 1.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dlrun.data import frames
from dlrun.errors import DlrunError
from dlrun.runs import finishing, layout, lock
from dlrun.runs.history import complete_lines, trim_history
from dlrun.runs.reading import flatten, read_summary
from dlrun.runs.status import Status, status_of
from dlrun.spec.models import Spec, is_dataframe
from dlrun.versions import versions


@dataclass
class Resumption:
    """A run that can be resumed: its spec, its checkpoint, and what the user should know first."""

    run_dir: Path
    spec: Spec | None
    """None for a run that ended and lacks only files (`missing`)."""
    state: object = None
    """The `dlrun.training.checkpoint.State` to continue from; None: start over at the first epoch."""
    notes: list[str] = field(default_factory=list)
    """Warnings: other library versions than at the start (the result may differ slightly)."""
    missing: list[str] = field(default_factory=list)
    """Files a run that ended lacks (its plots: a full disk, a kill): written, with no epoch trained."""

    @property
    def first_epoch(self) -> int:
        """The epoch training continues at, 1-based."""
        return (self.state.epochs_done if self.state is not None else 0) + 1


def plan_resume(run_dir: str | Path) -> Resumption:
    """Check that a run can be resumed and read its checkpoint; change nothing yet.

    Raises:
        DlrunError: not a run directory; a run that finished or ended with a NaN loss; config.yaml or
            a CSV changed since the run started; an unreadable checkpoint.
    """
    from dlrun.spec.loader import load_spec
    from dlrun.training.checkpoint import read_checkpoint

    run_dir = Path(run_dir)
    start = _read_start(run_dir)
    summary = read_summary(run_dir)
    if finishing.FINAL in summary:  # it ended; only files are missing, and writing them trains nothing
        return Resumption(run_dir, None, missing=finishing.missing(run_dir, summary))
    _check_status(run_dir)
    spec = load_spec(run_dir / layout.CONFIG)
    _check_spec(run_dir, spec, start.get("spec") or {})
    _check_data(run_dir, start.get("data_sha256") or {})
    notes = _version_notes(start.get("versions") or {})
    state = read_checkpoint(run_dir / layout.CHECKPOINT)
    if state is not None:
        _check_history(run_dir, state.epochs_done)
    return Resumption(run_dir, spec, state, notes)


def resume(plan: Resumption, console=None, quiet: bool = False, checkpoint_every: float | None = None):
    """Continue a planned run: prepare its data, reset the files after the checkpoint, fit the rest.

    Returns:
        The `dlrun.training.fit.Outcome`, as `train` does.

    Raises:
        As `dlrun.training.fit.train`.
    """
    from dlrun.data.prepare import prepare
    from dlrun.model import check_output_width
    from dlrun.training.fit import Outcome, fit

    spec, run_dir = plan.spec, plan.run_dir
    if spec is None:
        with lock.held(run_dir):
            lock.remove_stale_temporaries(run_dir)
            return Outcome(run_dir, finishing.finish(run_dir))
    data = prepare(spec.data, spec.seed, spec.training.loss)
    check_output_width(spec.model, spec.data.target, data.preprocessing.classes)
    lock.acquire(run_dir)  # another process still training this run (or resuming it) is refused
    try:
        lock.remove_stale_temporaries(run_dir)  # a kill -9 during a write leaves its temporary file
        trim_history(run_dir / layout.HISTORY, plan.state.epochs_done if plan.state is not None else 0)
        # What the stopped run wrote at its end describes the stopped run: gone until this one ends.
        for name in (layout.SUMMARY, layout.MODEL):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / layout.PLOTS, ignore_errors=True)
        return Outcome(run_dir, fit(spec, data, run_dir, console, quiet, plan.state, checkpoint_every))
    finally:
        lock.release(run_dir)


def _read_start(run_dir: Path) -> dict:
    if not run_dir.is_dir():
        raise DlrunError(f"run directory not found: {run_dir} (runs are under runs/<name>/<timestamp>/)")
    path = run_dir / layout.START
    if not path.is_file():
        if not (run_dir / layout.CONFIG).is_file():
            raise DlrunError(f"{run_dir} is not a run directory (no {layout.CONFIG})")
        raise DlrunError(
            f"{run_dir} cannot be resumed: it has no {layout.START} (it was trained before dlrun could resume "
            "runs); train it again with: dlrun train " + str(run_dir / layout.CONFIG)
        )
    try:
        start = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DlrunError(f"{path} cannot be read ({exc}): the run cannot be resumed") from None
    if not isinstance(start, dict):
        raise DlrunError(f"{path} does not hold what the run started from: the run cannot be resumed")
    return start


def _check_status(run_dir: Path) -> None:
    summary = read_summary(run_dir)
    status = status_of(summary)
    if status.finished:
        raise DlrunError(
            f"{run_dir} has finished ({status} after {summary.get('epochs_run')} of {summary.get('epochs')} "
            "epochs): there is nothing to resume. To train longer, start a new run with more training.epochs"
        )
    if status == Status.PRUNED:
        raise DlrunError(
            f"{run_dir} was pruned by dlrun tune after {summary.get('epochs_run')} epochs (it looked worse than the "
            "other trials at that epoch) and keeps no checkpoint; to train it to the end, start a new run: "
            f"dlrun train {run_dir / layout.CONFIG}"
        )
    if status == Status.NAN:
        raise DlrunError(
            f"{run_dir} ended with a NaN loss at epoch {summary.get('epochs_run')}; resuming would repeat it. "
            "Start a new run with a lower training.optimizer.learning_rate, or scaled features"
        )


def _check_spec(run_dir: Path, spec: Spec, started: dict) -> None:
    now, then = flatten(spec.resolved()), flatten(_with_defaults(started))
    changed = [key for key in dict.fromkeys([*then, *now]) if now.get(key) != then.get(key)]
    if changed:
        shown = "; ".join(f"{key}: {then.get(key)!r} -> {now.get(key)!r}" for key in changed[:3])
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise DlrunError(
            f"{run_dir / layout.CONFIG} changed since the run started ({shown}{more}); a resumed run must "
            "train the spec it started with. Undo the change, or train the new spec as a new run: "
            f"dlrun train {run_dir / layout.CONFIG}"
        )


def _with_defaults(started: dict) -> dict:
    """Return the spec a run started with, completed with the defaults of options dlrun gained since.

    An older dlrun that lacked an option trained as its default does (`training.loop: auto`, say), so
    an option missing from start.json is no change; one that no longer validates is compared as written.
    """
    from pydantic import ValidationError

    try:
        return Spec.model_validate(started).resolved()
    except ValidationError:
        return started


def _check_history(run_dir: Path, epochs: int) -> None:
    """A checkpoint counts rows that history.csv must hold (it is flushed to disk before every checkpoint)."""
    path = run_dir / layout.HISTORY
    rows = max(len(complete_lines(path)) - 1, 0) if path.is_file() else 0
    if rows < epochs:
        raise DlrunError(
            f"{path} holds {rows} epochs but the checkpoint is of epoch {epochs}: the history was cut (the disk "
            f"lost its end?). Delete {run_dir / layout.CHECKPOINT} to resume from the first epoch"
        )


def _check_data(run_dir: Path, started: dict[str, str]) -> None:
    for path, sha in started.items():
        if is_dataframe(path):
            if not frames.registered(path):
                raise DlrunError(
                    f"cannot resume {run_dir}: it trained on a DataFrame ({path[:30]}...), which only Python can "
                    f"give again: dlrun.resume({str(run_dir)!r}, data=frame) with the frame it started with"
                )
            continue
        if not Path(path).is_file():
            raise DlrunError(f"cannot resume {run_dir}: its data {path} no longer exists")
        if layout.file_sha256(path) != sha:
            raise DlrunError(
                f"cannot resume {run_dir}: {path} changed since the run started (its sha256 differs); a resumed "
                "run must see the data it started with. Restore the file, or train on the new data as a new run"
            )


def _version_notes(started: dict) -> list[str]:
    now = versions()
    changed = [f"{name} {started[name]} -> {now.get(name)}" for name in started if started[name] != now.get(name)]
    if not changed:
        return []
    return [
        f"resuming with other versions than the run started with ({', '.join(changed)}): the epochs from "
        "here may differ slightly from an uninterrupted run's"
    ]
