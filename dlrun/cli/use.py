"""Commands that use a trained run: predict, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import app, fmt, out, reported


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<name>/<timestamp>/).")],
    data: Annotated[
        Path, typer.Argument(help="Raw rows (CSV, Parquet or Feather), with the columns the model was trained on.")
    ],
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", help="File to write (CSV, Parquet or Feather by its suffix): the input rows plus predictions."
        ),
    ] = Path("predictions.csv"),
    threshold: Annotated[
        float, typer.Option(help="Binary classification: probability at which the label is the second class.")
    ] = 0.5,
) -> None:
    """Predict raw rows with a trained run, through the run's saved preprocessing."""
    from dlrun.predict import predict as run_predict

    with reported():
        result = run_predict(run_dir, data, out_file, threshold)
    note = (
        f"; {result.skipped} rows left without a prediction (empty cells in drop_rows columns)"
        if result.skipped
        else ""
    )
    if result.unseen:
        note += "; unseen categories (encoded as all zeros): " + ", ".join(f"{c} {n}" for c, n in result.unseen.items())
    out.print(f"wrote {result.rows} predictions to {result.out}{note}", markup=False, soft_wrap=True)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<name>/<timestamp>/).")],
    data: Annotated[
        Path, typer.Argument(help="Labelled rows (CSV, Parquet or Feather): the model's columns plus the target.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Compute the loss and every metric of a trained run on a labelled data file."""
    import json

    from dlrun.predict import evaluate as run_evaluate

    with reported():
        result = run_evaluate(run_dir, data)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return
    table = Table(title=f"{data}: {result.rows} rows")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, fmt(value))
    out.print(table)
    if any(result.dropped.values()):
        out.print(f"rows left out: {result.dropped}", markup=False)
    if result.unseen:
        out.print(f"unseen categories (encoded as all zeros): {result.unseen}", markup=False)
