"""The `dlrun` command: parse arguments, call one function, present the result or the error."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from dlrun.errors import DlrunError

app = typer.Typer(
    help="Declarative deep learning: train Keras models from YAML specs and compare the runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a spec value: PATH=VALUE, e.g. training.epochs=5 (repeatable).",
                 metavar="PATH=VALUE"),
]


@contextlib.contextmanager
def reported():
    """Turn a user's mistake into one message on stderr and a non-zero exit, never a traceback."""
    try:
        yield
    except DlrunError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None


@app.command()
def train(
    spec: Annotated[Path, typer.Argument(help="The experiment's YAML spec.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for run directories.")] = Path("runs"),
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a spec's model and write runs/<name>/<timestamp>/ (config, history, model, summary, plots)."""
    from dlrun.specfile import load_spec

    with reported():
        loaded = load_spec(spec, overrides)
        from dlrun.train import train as run_training

        outcome = run_training(loaded, out_dir, overrides, console=out, quiet=quiet)
        show_summary(outcome.run_dir, outcome.summary)


def show_summary(run_dir: Path, summary: dict) -> None:
    """Print the end-of-run table."""
    table = Table(show_header=False, box=None)
    table.add_row("Status", f"{summary['status']} after {summary['epochs_run']} of {summary['epochs']} epochs")
    if "val_loss" in summary["best"] or summary["best_value"] is not None:
        val_losses = [summary["best"].get("val_loss")]
        table.add_row("Minimum validation loss", _fmt(_min_val_loss(run_dir, val_losses)))
    if summary["best_epoch"] is not None:
        table.add_row(f"Best epoch ({summary['monitor']})", f"{summary['best_epoch']}: {_fmt(summary['best_value'])}")
    for key, value in summary["best"].items():
        if key not in ("learning_rate",):
            table.add_row(f"  {key} at best epoch", _fmt(value))
    table.add_row("Wall time", f"{summary['wall_time_s']:.1f} s")
    out.print(table)
    out.print(f"Run directory: {run_dir}", soft_wrap=True, markup=False)  # whole, never folded: users copy it


def _min_val_loss(run_dir: Path, fallback: list) -> float | None:
    import csv

    with contextlib.suppress(OSError, ValueError, KeyError):
        with (run_dir / "history.csv").open(newline="") as handle:
            values = [float(row["val_loss"]) for row in csv.DictReader(handle)]
        finite = [v for v in values if v == v]
        return min(finite) if finite else None
    return fallback[0]


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@app.command()
def validate(
    spec: Annotated[Path, typer.Argument(help="The experiment's YAML spec.")],
    overrides: SetOption = None,
) -> None:
    """Check a spec and its CSV header, and print the layer stack (no TensorFlow, instant)."""
    from dlrun.data import read_header, select_features
    from dlrun.model import describe
    from dlrun.specfile import load_spec

    with reported():
        loaded = load_spec(spec, overrides)
        header = read_header(loaded.data.path)
        features = select_features(header, loaded.data, loaded.data.path)
        if loaded.data.validation_path:
            read_header(loaded.data.validation_path)
        rows = describe(loaded.model, len(features))
    table = Table(title=f"{loaded.name}: {len(features)} input features -> {rows[-1].width} outputs")
    for column in ("#", "layer", "", "output width", "params"):
        table.add_column(column, justify="right" if column in ("#", "output width", "params") else "left")
    for row in rows:
        table.add_row(str(row.index), row.kind, row.detail, str(row.width), f"{row.params:,}")
    out.print(table)
    out.print(f"Total params: {sum(r.params for r in rows):,}. Spec {spec} is valid.")


@app.command()
def plot(
    sources: Annotated[list[Path], typer.Argument(help="history.csv files, run directories or their parents.")],
    metrics: Annotated[Optional[str], typer.Option(help="Columns to draw, comma-separated: loss,val_loss.")] = None,
    from_epoch: Annotated[int, typer.Option(min=1, help="First epoch to draw, 1-based (skip the noisy start).")] = 1,
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("plot.png"),
) -> None:
    """Draw learning curves from one or several runs, overlaid and labelled by run."""
    from dlrun.plot import plot_histories

    with reported():
        chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        written = plot_histories(sources, chosen, from_epoch, out_file)
    out.print(f"wrote {written}")


def main() -> None:
    """Entry point for `python -m dlrun`."""
    app(prog_name="dlrun")


if __name__ == "__main__":
    sys.exit(main())
