"""`dlrun train`: train a spec and print the end-of-run table."""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import SetOption, command, err, fmt, out, reported
from dlrun.errors import DlrunError
from dlrun.runs.history import NOT_QUANTITIES, VAL


class Track(str, Enum):
    """Where a run is logged besides its run directory."""

    mlflow = "mlflow"
    """MLflow (pip install 'dlrun[mlflow]')."""
    none = "none"
    """Nowhere else, even when the spec's tracking: asks."""


TrackOption = Annotated[
    Track | None,
    typer.Option(
        "--track",
        help="Also log the run to MLflow (mlflow), or not even when the spec's tracking: asks (none).",
    ),
]
TrackUriOption = Annotated[
    str | None,
    typer.Option(
        "--track-uri",
        metavar="URI",
        help="Where MLflow logs: a server (http://host:5000) or a store (sqlite:///x.db); implies --track "
        "mlflow. Default: tracking.uri, $MLFLOW_TRACKING_URI, or mlflow.db beside --out.",
    ),
]


@command()
def train(
    spec: Annotated[
        Path | None, typer.Argument(metavar="SPEC", help="The experiment's YAML spec (not needed with --resume).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", metavar="DIR", help="Folder for run directories [default: runs].")
    ] = None,
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or progress lines.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="A stopped run (runs/<name>/<timestamp>) to continue from its last checkpoint, in the same "
            "folder and history.csv.",
            metavar="RUN_DIR",
        ),
    ] = None,
    checkpoint_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between checkpoints for --resume (0: after every epoch); a run is also checkpointed at "
            "its end and when Ctrl-C or SIGTERM stops it.",
            metavar="SECONDS",
        ),
    ] = 5.0,
    track: TrackOption = None,
    track_uri: TrackUriOption = None,
) -> None:
    """Train a spec's model and write runs/<name>/<timestamp>/ (config, history, model, summary, plots).

    Ctrl-C (or SIGTERM) stops at the end of the epoch in flight and keeps everything; a second Ctrl-C
    stops at once. `dlrun train --resume RUN_DIR` continues a stopped or killed run exactly.
    """
    from dlrun import api

    with reported():
        if resume is not None:
            if track is not None or track_uri is not None:
                raise DlrunError("--resume continues a run without tracking it: drop --track and --track-uri")
            if spec is not None or overrides or out_dir is not None:
                raise DlrunError(
                    "--resume continues a run as it was started, in its own folder: drop SPEC, --set and --out"
                )
            run = api.resume(
                resume,
                quiet=quiet,
                checkpoint_every=checkpoint_every,
                console=out,
                interrupted="raise",
                announce=_announce,
            )
        else:
            if spec is None:
                raise DlrunError("missing SPEC: dlrun train SPEC (or dlrun train --resume RUN_DIR)")
            run = api.train(
                spec,
                out=out_dir or Path("runs"),
                overrides=overrides or (),
                quiet=quiet,
                checkpoint_every=checkpoint_every,
                track=track.value if track else None,
                track_uri=track_uri,
                console=out,
                interrupted="raise",
            )
        show_summary(run.dir, run.summary.raw)
        if run.tracked:
            out.print(run.tracked, soft_wrap=True, markup=False)


def _announce(plan) -> None:
    """Say what `--resume` is about to do: its notes as warnings, then where it picks up."""
    for note in plan.notes:
        err.print(f"warning: {note}", markup=False, soft_wrap=True)
    if plan.spec is None:
        shown = ", ".join(plan.missing) or "nothing (they are on disk)"
        out.print(f"finishing {plan.run_dir}: it ended; writing {shown}", markup=False, soft_wrap=True)
        return
    epochs = plan.spec.training.epochs
    where = "its checkpoint" if plan.state is not None else "the start (no checkpoint yet)"
    out.print(
        f"resuming {plan.run_dir} at epoch {plan.first_epoch} of {epochs}, from {where}", markup=False, soft_wrap=True
    )


def show_summary(run_dir: Path, summary: dict) -> None:
    """Print the end-of-run table: how the run ended, its one best epoch, the values there, the test rows.

    Each explanation is a row of its own, a phrase short enough for 80 columns, so a narrow terminal
    breaks lines between phrases rather than inside one.
    """
    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_row("Status", f"{summary['status']} after {summary['epochs_run']} of {summary['epochs']} epochs")
    best, *notes = best_lines(summary)
    table.add_row(*best)
    for key, value in summary["best"].items():
        if key not in NOT_QUANTITIES and key != summary["monitor"]:
            table.add_row(f"  {key}", fmt(value) + baseline_note(summary, key))
    for label, text in notes:
        table.add_row(label, text)
    if summary.get("test"):
        table.add_row(f"Test ({summary['rows'].get('test', '?')} rows)", "")
        for key, value in summary["test"].items():
            table.add_row(f"  {key}", fmt(value))
    gone = _left_out(run_dir, summary)
    if gone:
        table.add_row("Left out", gone)
    table.add_row("Wall time", f"{summary['wall_time_s']:.1f} s")
    out.print(table)
    for warning in summary.get("data_warnings") or []:
        err.print(f"warning: {warning}", markup=False, soft_wrap=True)
    for line in diagnosis_lines(summary, run_dir):
        out.print(line, soft_wrap=True, markup=False)  # --set lines are copied whole
    out.print(f"Run directory: {run_dir}", soft_wrap=True, markup=False)  # whole, never folded: users copy it


def _left_out(run_dir: Path, summary: dict) -> str | None:
    """The rows training left out, in words, with the target's name from the run's config."""
    from dlrun.data.preprocess import left_out
    from dlrun.runs.reading import read_config

    dropped = summary.get("dropped_rows") or {}
    if not any(dropped.values()):
        return None
    try:
        target = (read_config(run_dir).get("data") or {}).get("target")
    except DlrunError:  # an unreadable config costs the column's name, never the table
        target = None
    return left_out(dropped, target if isinstance(target, str) else None)


def baseline_note(summary: dict, column: str) -> str:
    """Say what the best constant prediction scores beside a validation value: ` (baseline 0.655)`."""
    value = (summary.get("baseline") or {}).get(column.removeprefix(VAL)) if column.startswith(VAL) else None
    return "" if value is None else f" (baseline {fmt(value)})"


def diagnosis_lines(summary: dict, run_dir: Path) -> list[str]:
    """A few lines on the learning curves (summary.json's diagnosis): each finding, one thing to try."""
    diagnosis = summary.get("diagnosis") or {}
    findings = diagnosis.get("findings") or []
    if not findings:
        return []
    lines = [f"Diagnosis: {findings[0]['summary']}"]
    lines += [f"           {finding['summary']}" for finding in findings[1:]]
    tries = [s for finding in findings for s in finding.get("suggestions", [])]
    if tries:
        lines.append(f"  try: --set {shlex.quote(tries[0]['set'])}")
    if diagnosis.get("fit") != "ok" or tries:
        lines.append(f"  the evidence and more to try: dlrun diagnose {shlex.quote(str(run_dir))}")
    return lines


def best_lines(summary: dict) -> list[tuple[str, str]]:
    """Say which epoch is best and which the model holds, in words where the lowest val_loss is elsewhere.

    Returns:
        (label, phrase) rows, the best epoch first; a label is empty where a phrase goes on the one above.
    """
    best, monitor = summary.get("best_epoch"), summary["monitor"]
    if best is None:
        return [("Best epoch", f"none: no epoch logged {monitor}")]
    lines = [("Best epoch", f"{best}: {monitor} {fmt(summary['best_value'])}{baseline_note(summary, monitor)}")]
    held = summary.get("model_epoch")
    if held is not None and held != best:
        which = "the last" if held == summary.get("epochs_run") else "the last checkpoint's"
        lines += [("", f"model.keras holds epoch {held}, {which}"), ("", "(restore_best_weights keeps the best)")]
    lowest, low = summary.get("min_val_loss_epoch"), summary.get("min_val_loss")
    if lowest is None:
        return lines
    if lowest == best and monitor == "val_loss":
        lines[0] = (
            "Best epoch",
            f"{best}: val_loss {fmt(low)}, the minimum validation loss{baseline_note(summary, monitor)}",
        )
    elif monitor == "val_loss" and summary.get("min_delta"):
        lines.append(("Lowest val_loss", f"{fmt(low)} at epoch {lowest}; it improved on epoch {best}"))
        lines.append(("", f"by less than min_delta {fmt(summary.get('min_delta'))}: not counted as better"))
    elif monitor == "val_loss":
        lines.append(("Lowest val_loss", f"{fmt(low)} at epoch {lowest}, not counted as better:"))
        lines.append(("", "early stopping did not watch it yet (start_from_epoch)"))
    else:
        lines += [("Lowest val_loss", f"{fmt(low)} at epoch {lowest}"), ("", f"(the best epoch is by {monitor})")]
    return lines
