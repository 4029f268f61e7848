"""`dlrun train`: train a spec and print the end-of-run table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import SetOption, app, err, fmt, out, reported
from dlrun.errors import DlrunError
from dlrun.runs.history import NOT_QUANTITIES


@app.command()
def train(
    spec: Annotated[Path | None, typer.Argument(help="The experiment's YAML spec (not needed with --resume).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for run directories [default: runs].")] = None,
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
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
) -> None:
    """Train a spec's model and write runs/<name>/<timestamp>/ (config, history, model, summary, plots).

    Ctrl-C (or SIGTERM) stops at the end of the epoch in flight and keeps everything; a second Ctrl-C
    stops at once. `dlrun train --resume RUN_DIR` continues a stopped or killed run exactly.
    """
    with reported():
        if resume is not None:
            outcome = _resume(resume, spec, out_dir, overrides, quiet, checkpoint_every)
        else:
            if spec is None:
                raise DlrunError("missing SPEC: dlrun train SPEC (or dlrun train --resume RUN_DIR)")
            from dlrun.spec.loader import load_spec

            loaded = load_spec(spec, overrides)
            from dlrun.training.fit import train as run_training

            outcome = run_training(loaded, out_dir or Path("runs"), overrides, out, quiet, checkpoint_every)
        show_summary(outcome.run_dir, outcome.summary)


def _resume(run_dir: Path, spec: Path | None, out_dir: Path | None, overrides, quiet: bool, every: float):
    from dlrun.training.resume import plan_resume, resume

    if spec is not None or overrides or out_dir is not None:
        raise DlrunError("--resume continues a run as it was started, in its own folder: drop SPEC, --set and --out")
    plan = plan_resume(run_dir)
    for note in plan.notes:
        err.print(f"warning: {note}", markup=False, soft_wrap=True)
    epochs = plan.spec.training.epochs
    where = "its checkpoint" if plan.state is not None else "the start (no checkpoint yet)"
    out.print(f"resuming {run_dir} at epoch {plan.first_epoch} of {epochs}, from {where}", markup=False, soft_wrap=True)
    return resume(plan, out, quiet, every)


def show_summary(run_dir: Path, summary: dict) -> None:
    """Print the end-of-run table: how the run ended, its one best epoch, the values there, the test rows."""
    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_row("Status", f"{summary['status']} after {summary['epochs_run']} of {summary['epochs']} epochs")
    for label, text in best_lines(summary):
        table.add_row(label, text)
    for key, value in summary["best"].items():
        if key not in NOT_QUANTITIES and key != summary["monitor"]:
            table.add_row(f"  {key}", fmt(value))
    for key, value in summary.get("test", {}).items():
        table.add_row(f"Test {key} ({summary['rows'].get('test', '?')} rows)", fmt(value))
    table.add_row("Wall time", f"{summary['wall_time_s']:.1f} s")
    out.print(table)
    out.print(f"Run directory: {run_dir}", soft_wrap=True, markup=False)  # whole, never folded: users copy it


def best_lines(summary: dict) -> list[tuple[str, str]]:
    """Say which epoch is best and which the model holds, in words where the lowest val_loss is elsewhere."""
    best, monitor = summary.get("best_epoch"), summary["monitor"]
    if best is None:
        return [("Best epoch", f"none: no epoch logged {monitor}")]
    lines = [("Best epoch", f"{best}: {monitor} {fmt(summary['best_value'])}")]
    held = summary.get("model_epoch")
    if held is not None and held != best:
        which = "the last" if held == summary.get("epochs_run") else "the last checkpoint's"
        lines.append(("", f"model.keras holds epoch {held}, {which} (restore_best_weights keeps the best)"))
    lowest, low = summary.get("min_val_loss_epoch"), summary.get("min_val_loss")
    if lowest is None:
        return lines
    if lowest == best and monitor == "val_loss":
        lines[0] = ("Best epoch", f"{best}: val_loss {fmt(low)}, the minimum validation loss")
    elif monitor == "val_loss":
        why = (
            f"it improved on epoch {best} by less than min_delta {fmt(summary.get('min_delta'))}"
            if summary.get("min_delta")
            else "early stopping did not watch it yet (start_from_epoch)"
        )
        lines.append(("Lowest val_loss", f"{fmt(low)} at epoch {lowest}; {why}, so it does not count as better"))
    else:
        lines.append(("Lowest val_loss", f"{fmt(low)} at epoch {lowest} (the best epoch is by {monitor})"))
    return lines
