"""Commands over finished runs: plot, compare, diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.common import command, err, out, reported
from dlrun.errors import DlrunError
from dlrun.runs.plot import Band


@command()
def plot(
    sources: Annotated[
        list[Path], typer.Argument(metavar="SOURCES...", help="history.csv files, run directories or their parents.")
    ],
    metrics: Annotated[
        str | None, typer.Option(metavar="NAMES", help="Columns to draw, comma-separated: loss,val_loss.")
    ] = None,
    from_epoch: Annotated[
        int, typer.Option(min=1, metavar="N", help="First epoch to draw, 1-based (skip the noisy start).")
    ] = 1,
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE", help="PNG file to write.")] = Path("plot.png"),
    group_seeds: Annotated[
        bool,
        typer.Option("--group-seeds", help="Draw runs that differ only by seed as one mean line with a shaded band."),
    ] = False,
    band: Annotated[
        Band, typer.Option(help="Band of a seed group: minmax (lowest to highest run) or std (mean +/- std).")
    ] = Band.minmax,
) -> None:
    """Draw learning curves from one or several runs, overlaid and labelled by run."""
    from dlrun.runs.finishing import finish_found
    from dlrun.runs.plot import plot_histories

    with reported():
        for run_dir, lacking, summary in finish_found(sources):  # a run whose own plots were never written
            shown = ", ".join(lacking) or "nothing (they were on disk)"
            out.print(f"finished {run_dir}: wrote {shown}; it is {summary['status']}", markup=False, soft_wrap=True)
        chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        written = plot_histories(sources, chosen, from_epoch, out_file, group_seeds=group_seeds, band=band.value)
    out.print(f"wrote {written}")


@command()
def compare(
    sources: Annotated[
        list[Path], typer.Argument(metavar="SOURCES...", help="Run directories, or folders holding runs.")
    ],
    sort: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="Column to sort by, like best:val_loss or lr (as the table heads it); descending: --sort=-lr.",
        ),
    ] = None,
    all_params: Annotated[
        bool,
        typer.Option("--all-params", help="Show every spec value, each layer field on its own, not only what differs."),
    ] = False,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", metavar="FILE", help="Also write the rows, every column, to this CSV file.")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the rows, every column, as JSON instead of a table.")
    ] = False,
) -> None:
    """Compare runs: the spec values that differ, and each metric at the best epoch and the last."""
    from dlrun.api import compare_rows
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
        columns, rows = compare_rows(loaded, all_params, sort)
        if csv_file is not None:
            comparing.write_csv(csv_file, columns, rows)
    if json_out:
        print(to_json([{c: row.get(c) for c in columns} for row in rows]))
        note = comparing.mixed_losses_note(rows)
        if note:
            err.print(note, markup=False, soft_wrap=True)
    else:
        comparing.show(out, columns, rows)
    if csv_file is not None:
        (err if json_out else out).print(f"wrote {csv_file}")


@command()
def diff(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="A run directory.")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="Another run directory.")],
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE", help="PNG of both runs' curves overlaid.")] = Path(
        "diff.png"
    ),
) -> None:
    """Show what differs between two runs: spec values, metrics at the best epoch, and their curves."""
    from dlrun.runs import compare as comparing
    from dlrun.runs import reading
    from dlrun.runs.plot import plot_histories

    with reported():
        a, b = reading.load_run(run_a), reading.load_run(run_b)
        written = plot_histories([a.run_dir, b.run_dir], None, 1, out_file)
    comparing.show_diff(out, a, b)
    out.print(f"wrote {written}")
