"""Commands that use a trained run: predict, evaluate, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import command, err, fmt, out, reported


@command()
def predict(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory (runs/<name>/<timestamp>/).")],
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA", help="Raw rows (CSV, Parquet or Feather), with the columns the model was trained on."
        ),
    ],
    out_file: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="FILE",
            help="File to write (CSV, Parquet or Feather by its suffix; - for CSV on standard output): the input "
            "rows plus predictions.",
        ),
    ] = Path("predictions.csv"),
    threshold: Annotated[
        float,
        typer.Option(metavar="P", help="Binary classification: probability at which the label is the second class."),
    ] = 0.5,
) -> None:
    """Predict raw rows with a trained run, through the run's saved preprocessing."""
    from dlrun.api import Run
    from dlrun.predict import STDOUT

    with reported():
        result = Run(run_dir).predict(data, threshold, out=out_file)
    note = (
        f"; {result.skipped} rows left without a prediction (empty cells in drop_rows columns)"
        if result.skipped
        else ""
    )
    if result.unseen:
        note += "; unseen categories (encoded as all zeros): " + ", ".join(f"{c} {n}" for c, n in result.unseen.items())
    if str(out_file) == STDOUT:  # standard output holds the CSV; what was done goes to standard error
        err.print(f"wrote {result.rows} predictions to standard output{note}", markup=False, soft_wrap=True)
    else:
        out.print(f"wrote {result.rows} predictions to {result.out}{note}", markup=False, soft_wrap=True)


@command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory (runs/<name>/<timestamp>/).")],
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA", help="Labelled rows (CSV, Parquet or Feather): the model's columns plus the target."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Compute the loss and every metric of a trained run on a labelled data file."""
    from dlrun.api import Run
    from dlrun.runs.layout import to_json

    with reported():
        result = Run(run_dir).evaluate(data, details=True)
    if as_json:
        out.print_json(to_json(result.to_dict()))
        return
    table = Table(title=f"{data.name}: {result.rows} row{'' if result.rows == 1 else 's'}")  # a path would fold
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, fmt(value))
    out.print(table)
    if result.left_out:
        out.print(f"rows left out: {result.left_out}", markup=False, soft_wrap=True)
    if result.unseen:
        out.print(f"unseen categories (encoded as all zeros): {result.unseen}", markup=False)


@command()
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory (runs/<name>/<timestamp>/).")],
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Folder to write the SavedModel to (must not exist).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace --out when it holds an earlier export.")] = False,
    threshold: Annotated[
        float, typer.Option(help="Binary classification: probability at which `label` is the second class.")
    ] = 0.5,
) -> None:
    """Export a trained run as a TensorFlow SavedModel that takes raw columns and applies the preprocessing.

    Inputs by column name: numbers as float64 (NaN if empty), categories and dates as strings ('' if empty).
    """
    from dlrun.api import Run

    with reported():
        result = Run(run_dir).export(out_dir, force, threshold)
    inputs = result.info["inputs"]
    numbers = sum(1 for i in inputs if i["dtype"] == "float64")
    out.print(
        f"wrote {result.out}: signature serving_default takes {len(inputs)} inputs ({numbers} float64, "
        f"{len(inputs) - numbers} string) and returns {', '.join(result.outputs)}",
        markup=False,
        soft_wrap=True,
    )
    renamed = {c: n for c, n in result.inputs.items() if c != n}
    if renamed:
        out.print(
            "inputs named differently from their columns: " + ", ".join(f"{c!r} -> {n}" for c, n in renamed.items()),
            markup=False,
            soft_wrap=True,
        )
    out.print(f"inspect it with: saved_model_cli show --dir {result.out} --all", markup=False, soft_wrap=True)
