"""Commands over finished runs: plot, compare, diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import app, err, out, reported
from dlrun.errors import DlrunError


@app.command()
def plot(
    sources: Annotated[list[Path], typer.Argument(help="history.csv files, run directories or their parents.")],
    metrics: Annotated[str | None, typer.Option(help="Columns to draw, comma-separated: loss,val_loss.")] = None,
    from_epoch: Annotated[int, typer.Option(min=1, help="First epoch to draw, 1-based (skip the noisy start).")] = 1,
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("plot.png"),
    group_seeds: Annotated[
        bool,
        typer.Option("--group-seeds", help="Draw runs that differ only by seed as one mean line with a shaded band."),
    ] = False,
    band: Annotated[str, typer.Option(help="Band of a seed group: minmax or std (mean +/- std).")] = "minmax",
) -> None:
    """Draw learning curves from one or several runs, overlaid and labelled by run."""
    from dlrun.runs.plot import plot_histories

    with reported():
        if band not in ("minmax", "std"):
            raise DlrunError(f"--band {band!r}: expected minmax or std")
        chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        written = plot_histories(sources, chosen, from_epoch, out_file, group_seeds=group_seeds, band=band)
    out.print(f"wrote {written}")


@app.command()
def compare(
    sources: Annotated[list[Path], typer.Argument(help="Run directories, or folders holding runs.")],
    sort: Annotated[
        str | None,
        typer.Option(
            help="Column to sort by, like best:val_loss; prefix with - for descending (--sort=-best:val_accuracy)."
        ),
    ] = None,
    all_params: Annotated[
        bool, typer.Option("--all-params", help="Show every spec value, not only those that differ.")
    ] = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the rows to this CSV file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON instead of a table.")] = False,
) -> None:
    """Compare runs: the spec values that differ, and each metric at the best epoch and the last."""
    from dlrun.runs import compare as comparing
    from dlrun.runs import reading
    from dlrun.runs.layout import to_json

    with reported():
        loaded, skipped = reading.load_runs(sources)
        for item in skipped:
            err.print(f"skipped {item.path}: {item.reason}", markup=False, soft_wrap=True)
        if not loaded:
            raise DlrunError(
                "no run to compare: pass run directories (runs/<name>/<timestamp>) or folders holding them"
            )
        columns, rows = comparing.rows(loaded, all_params)
        if sort:
            rows = comparing.sort_rows(columns, rows, sort.removeprefix("-"), descending=sort.startswith("-"))
        if csv_file is not None:
            comparing.write_csv(csv_file, columns, rows)
    if json_out:
        print(to_json([{c: row.get(c) for c in columns} for row in rows]))
    else:
        comparing.print_table(out, comparing.rich_table(columns, rows))
    if csv_file is not None:
        (err if json_out else out).print(f"wrote {csv_file}")


@app.command()
def diff(
    run_a: Annotated[Path, typer.Argument(help="A run directory.")],
    run_b: Annotated[Path, typer.Argument(help="Another run directory.")],
    out_file: Annotated[Path, typer.Option("--out", help="PNG of both runs' curves overlaid.")] = Path("diff.png"),
) -> None:
    """Show what differs between two runs: spec values, metrics at the best epoch, and their curves."""
    from dlrun.runs import compare as comparing
    from dlrun.runs import reading
    from dlrun.runs.plot import plot_histories

    with reported():
        a, b = reading.load_run(run_a), reading.load_run(run_b)
        config = comparing.diff_configs(a, b)
        metrics = comparing.diff_metrics(a, b)
        written = plot_histories([a.run_dir, b.run_dir], None, 1, out_file)
    head = Table(show_header=False, box=None)
    head.add_row("A", f"{a.label}  ({a.run_dir})")
    head.add_row("B", f"{b.label}  ({b.run_dir})")
    out.print(head)
    if config:
        table = Table(title="Spec differences")
        for column in ("path", "A", "B"):
            table.add_column(column)
        for path, value_a, value_b in config:
            table.add_row(path, comparing.cell_text(value_a) or "-", comparing.cell_text(value_b) or "-")
        out.print(table)
    else:
        out.print("The specs are identical.")
    table = Table(title="At each run's best epoch")
    for column in ("quantity", "A", "B", "B-A"):
        table.add_column(column, justify="left" if column == "quantity" else "right")
    for name, value_a, value_b, delta in metrics:
        table.add_row(name, *(comparing.cell_text(v) or "-" for v in (value_a, value_b, delta)))
    out.print(table)
    out.print(f"wrote {written}")
