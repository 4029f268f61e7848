"""`dlrun train`: train a spec and print the end-of-run table."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import SetOption, command, fmt, out, reported
from dlrun.runs.history import NOT_QUANTITIES


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
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The experiment's YAML spec.")],
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder for run directories.")] = Path("runs"),
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or progress lines.")] = False,
    track: TrackOption = None,
    track_uri: TrackUriOption = None,
) -> None:
    """Train a spec's model and write runs/<name>/<timestamp>/ (config, history, model, summary, plots)."""
    from dlrun.spec.loader import load_spec

    with reported():
        loaded = load_spec(spec, overrides)
        tracking = tracking_of(loaded.tracking, track, track_uri, out_dir)
        from dlrun.training.fit import train as run_training

        outcome = run_training(loaded, out_dir, overrides, console=out, quiet=quiet, tracking=tracking)
        show_summary(outcome.run_dir, outcome.summary)
        if tracking is not None and tracking.logged:
            out.print(tracking.where(), soft_wrap=True, markup=False)


def tracking_of(section, track: Track | None, uri: str | None, out_dir: Path, earlier: dict | None = None):
    """Resolve --track and --track-uri with the spec's tracking: section (mlflow is imported only when on)."""
    from dlrun.training.tracking import resolve

    return resolve(section, track.value if track else None, uri, out_dir, earlier)


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
            table.add_row(f"  {key}", fmt(value))
    for label, text in notes:
        table.add_row(label, text)
    if summary.get("test"):
        table.add_row(f"Test ({summary['rows'].get('test', '?')} rows)", "")
        for key, value in summary["test"].items():
            table.add_row(f"  {key}", fmt(value))
    table.add_row("Wall time", f"{summary['wall_time_s']:.1f} s")
    out.print(table)
    out.print(f"Run directory: {run_dir}", soft_wrap=True, markup=False)  # whole, never folded: users copy it


def best_lines(summary: dict) -> list[tuple[str, str]]:
    """Say which epoch is best and which the model holds, in words where the lowest val_loss is elsewhere.

    Returns:
        (label, phrase) rows, the best epoch first; a label is empty where a phrase goes on the one above.
    """
    best, monitor = summary.get("best_epoch"), summary["monitor"]
    if best is None:
        return [("Best epoch", f"none: no epoch logged {monitor}")]
    lines = [("Best epoch", f"{best}: {monitor} {fmt(summary['best_value'])}")]
    held = summary.get("model_epoch")
    if held is not None and held != best:
        lines += [("", f"model.keras holds epoch {held}, the last"), ("", "(restore_best_weights keeps the best)")]
    lowest, low = summary.get("min_val_loss_epoch"), summary.get("min_val_loss")
    if lowest is None:
        return lines
    if lowest == best and monitor == "val_loss":
        lines[0] = ("Best epoch", f"{best}: val_loss {fmt(low)}, the minimum validation loss")
    elif monitor == "val_loss" and summary.get("min_delta"):
        lines.append(("Lowest val_loss", f"{fmt(low)} at epoch {lowest}; it improved on epoch {best}"))
        lines.append(("", f"by less than min_delta {fmt(summary.get('min_delta'))}: not counted as better"))
    elif monitor == "val_loss":
        lines.append(("Lowest val_loss", f"{fmt(low)} at epoch {lowest}, not counted as better:"))
        lines.append(("", "early stopping did not watch it yet (start_from_epoch)"))
    else:
        lines += [("Lowest val_loss", f"{fmt(low)} at epoch {lowest}"), ("", f"(the best epoch is by {monitor})")]
    return lines
