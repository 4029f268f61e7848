"""`dlrun train`: train a spec and print the end-of-run table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import SetOption, app, fmt, out, reported


@app.command()
def train(
    spec: Annotated[Path, typer.Argument(help="The experiment's YAML spec.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for run directories.")] = Path("runs"),
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a spec's model and write runs/<name>/<timestamp>/ (config, history, model, summary, plots)."""
    from dlrun.spec.loader import load_spec

    with reported():
        loaded = load_spec(spec, overrides)
        from dlrun.training.fit import train as run_training

        outcome = run_training(loaded, out_dir, overrides, console=out, quiet=quiet)
        show_summary(outcome.run_dir, outcome.summary)


def show_summary(run_dir: Path, summary: dict) -> None:
    """Print the end-of-run table."""
    table = Table(show_header=False, box=None)
    table.add_row("Status", f"{summary['status']} after {summary['epochs_run']} of {summary['epochs']} epochs")
    table.add_row("Minimum validation loss", fmt(summary.get("min_val_loss")))  # as the course prints it
    if summary["best_epoch"] is not None:
        table.add_row(f"Best epoch ({summary['monitor']})", f"{summary['best_epoch']}: {fmt(summary['best_value'])}")
    for key, value in summary["best"].items():
        if key not in ("learning_rate",):
            table.add_row(f"  {key} at best epoch", fmt(value))
    for key, value in summary.get("test", {}).items():
        table.add_row(f"Test {key} ({summary['rows'].get('test', '?')} rows)", fmt(value))
    table.add_row("Wall time", f"{summary['wall_time_s']:.1f} s")
    out.print(table)
    out.print(f"Run directory: {run_dir}", soft_wrap=True, markup=False)  # whole, never folded: users copy it
