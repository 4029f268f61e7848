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
    table.add_row("Minimum validation loss", _fmt(summary.get("min_val_loss")))  # as the course prints it
    if summary["best_epoch"] is not None:
        table.add_row(f"Best epoch ({summary['monitor']})", f"{summary['best_epoch']}: {_fmt(summary['best_value'])}")
    for key, value in summary["best"].items():
        if key not in ("learning_rate",):
            table.add_row(f"  {key} at best epoch", _fmt(value))
    for key, value in summary.get("test", {}).items():
        table.add_row(f"Test {key} ({summary['rows'].get('test', '?')} rows)", _fmt(value))
    table.add_row("Wall time", f"{summary['wall_time_s']:.1f} s")
    out.print(table)
    out.print(f"Run directory: {run_dir}", soft_wrap=True, markup=False)  # whole, never folded: users copy it


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
    from dlrun.columns import read_header, select_features, text_columns
    from dlrun.model import describe
    from dlrun.specfile import load_spec

    with reported():
        loaded = load_spec(spec, overrides)
        header = read_header(loaded.data.path, loaded.data.csv)
        features = select_features(header, loaded.data, loaded.data.path)
        for other in (loaded.data.validation_path, loaded.data.test_path):
            if other:
                read_header(other, loaded.data.csv)
        categorical = text_columns(loaded.data, features)
        rows = describe(loaded.model, len(features))
    table = Table(title=f"{loaded.name}: {len(features)} input columns -> {rows[-1].width} outputs")
    for column in ("#", "layer", "", "output width", "params"):
        table.add_column(column, justify="right" if column in ("#", "output width", "params") else "left")
    for row in rows:
        table.add_row(str(row.index), row.kind, row.detail, str(row.width), f"{row.params:,}")
    out.print(table)
    if categorical:
        out.print(f"note: {', '.join(categorical)} {'are' if len(categorical) > 1 else 'is'} categorical: one-hot "
                  "encoding adds an input per category, counted here as one; `dlrun check` builds the exact model.",
                  markup=False, soft_wrap=True)
        out.print(f"Total params: at least {sum(r.params for r in rows):,}. Spec {spec} is valid.", markup=False)
    else:
        out.print(f"Total params: {sum(r.params for r in rows):,}. Spec {spec} is valid.", markup=False)


@app.command()
def plot(
    sources: Annotated[list[Path], typer.Argument(help="history.csv files, run directories or their parents.")],
    metrics: Annotated[Optional[str], typer.Option(help="Columns to draw, comma-separated: loss,val_loss.")] = None,
    from_epoch: Annotated[int, typer.Option(min=1, help="First epoch to draw, 1-based (skip the noisy start).")] = 1,
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("plot.png"),
    group_seeds: Annotated[bool, typer.Option(
        "--group-seeds", help="Draw runs that differ only by seed as one mean line with a shaded band.")] = False,
    band: Annotated[str, typer.Option(help="Band of a seed group: minmax or std (mean +/- std).")] = "minmax",
) -> None:
    """Draw learning curves from one or several runs, overlaid and labelled by run."""
    from dlrun.plot import plot_histories

    with reported():
        if band not in ("minmax", "std"):
            raise DlrunError(f"--band {band!r}: expected minmax or std")
        chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        written = plot_histories(sources, chosen, from_epoch, out_file, group_seeds=group_seeds, band=band)
    out.print(f"wrote {written}")


@app.command()
def compare(
    sources: Annotated[list[Path], typer.Argument(help="Run directories, or folders holding runs.")],
    sort: Annotated[Optional[str], typer.Option(
        help="Column to sort by, like best:val_loss; prefix with - for descending (--sort=-best:val_accuracy).")] = None,
    all_params: Annotated[bool, typer.Option("--all-params", help="Show every spec value, not only those that differ.")] = False,
    csv_file: Annotated[Optional[Path], typer.Option("--csv", help="Also write the rows to this CSV file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON instead of a table.")] = False,
) -> None:
    """Compare runs: the spec values that differ, and each metric at the best epoch and the last."""
    import json

    from dlrun import compare as comparing

    with reported():
        loaded, skipped = comparing.load_runs(sources)
        for item in skipped:
            err.print(f"skipped {item.path}: {item.reason}", markup=False, soft_wrap=True)
        if not loaded:
            raise DlrunError("no run to compare: pass run directories (runs/<name>/<timestamp>) or folders holding them")
        columns, rows = comparing.rows(loaded, all_params)
        if sort:
            rows = comparing.sort_rows(columns, rows, sort.removeprefix("-"), descending=sort.startswith("-"))
        if csv_file is not None:
            comparing.write_csv(csv_file, columns, rows)
    if json_out:
        print(json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2, default=str))
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
    from dlrun import compare as comparing
    from dlrun.plot import plot_histories

    with reported():
        a, b = comparing.load_run(run_a), comparing.load_run(run_b)
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


@app.command()
def sweep(
    spec: Annotated[Optional[Path], typer.Argument(help="The experiment's YAML spec (not needed with --resume).")] = None,
    sets: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="PATH=V1,V2",
        help="A swept value list, or one value for every run: training.optimizer.learning_rate=0.01,0.001 "
             "(repeatable; split at top-level commas only, so [a,b] stays one value).")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Seeds to repeat each point with: 0,1,2.")] = None,
    axes_file: Annotated[Optional[Path], typer.Option(
        "--file", help="YAML mapping of spec paths to value lists, swept like --set.")] = None,
    jobs: Annotated[Optional[int], typer.Option(help="Runs in parallel; default: one per CPU core.")] = None,
    executor: Annotated[str, typer.Option(help="local (processes on this machine) or ray.")] = "local",
    address: Annotated[Optional[str], typer.Option(
        help="Ray cluster to use: ray://HOST:10001 or auto; default: start Ray locally.")] = None,
    resume: Annotated[Optional[Path], typer.Option(
        help="A sweep folder (runs/<name>/sweep-<timestamp>) to finish: runs only the points without a finished run.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for run directories.")] = Path("runs"),
) -> None:
    """Train the grid product of --set value lists (and seeds) in parallel, then compare the runs."""
    from dlrun import compare as comparing
    from dlrun import sweep as sweeping

    with reported():
        if resume is not None:
            if spec is not None or sets or seeds or axes_file:
                raise DlrunError("--resume finishes a sweep as it was started: drop SPEC, --set, --seeds and --file")
            sweep_dir = resume
            manifest = sweeping.read_manifest(sweep_dir)
            points = len(manifest["points"])
            left = sum(sweeping.needs_run(p, sweep_dir) for p in manifest["points"])
        else:
            if spec is None:
                raise DlrunError("missing SPEC: dlrun sweep SPEC --set PATH=V1,V2 (or --resume SWEEP_DIR)")
            grid = sweeping.make_grid(sets or [], seeds, axes_file)
            points = len(grid.points())
        runner = sweeping.make_executor(executor, jobs, address, points)
        if resume is None:
            sweep_dir = sweeping.start(spec, grid, out_dir)
        out.print(f"resuming sweep {sweep_dir}: {left} of {points} runs left" if resume is not None
                  else f"sweep of {points} runs in {sweep_dir}")
        result = sweeping.execute(sweep_dir, runner, console=out)
        for item in result.skipped:
            err.print(f"skipped {item.path}: {item.reason}", markup=False, soft_wrap=True)
        if result.table:
            comparing.print_table(out, comparing.rich_table(result.columns, result.table, title=f"sweep {sweep_dir}"))
            comparing.write_csv(sweep_dir / sweeping.COMPARE_CSV, result.columns, result.table)
        for point in result.failures:
            if point.get("error") and point["status"] != "interrupted":
                err.print(f"point {point['index']} ({' '.join(point['overrides'])}) {point['status']}: {point['error']}",
                          markup=False, soft_wrap=True)
        if result.interrupted:
            error = DlrunError(f"sweep interrupted; finished runs are kept. Run the rest with: dlrun sweep --resume {sweep_dir}")
            error.exit_code = 130
            raise error
        if result.failures:
            raise DlrunError(f"{len(result.failures)} of {points} runs did not finish; see the table and messages above")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<name>/<timestamp>/).")],
    data: Annotated[Path, typer.Argument(help="CSV of raw rows, with the columns the model was trained on.")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV to write: the input rows plus predictions.")] = Path(
        "predictions.csv"),
    threshold: Annotated[float, typer.Option(help="Binary classification: probability at which the label is the "
                                                  "second class.")] = 0.5,
) -> None:
    """Predict raw CSV rows with a trained run, through the run's saved preprocessing."""
    from dlrun.predict import predict as run_predict

    with reported():
        result = run_predict(run_dir, data, out_file, threshold)
    note = f"; {result.skipped} rows left without a prediction (empty cells in drop_rows columns)" if result.skipped else ""
    if result.unseen:
        note += "; unseen categories (encoded as all zeros): " + ", ".join(f"{c} {n}" for c, n in result.unseen.items())
    out.print(f"wrote {result.rows} predictions to {result.out}{note}", markup=False, soft_wrap=True)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<name>/<timestamp>/).")],
    data: Annotated[Path, typer.Argument(help="Labelled CSV: the model's columns plus the target.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Compute the loss and every metric of a trained run on a labelled CSV."""
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
        table.add_row(key, _fmt(value))
    out.print(table)
    if any(result.dropped.values()):
        out.print(f"rows left out: {result.dropped}", markup=False)
    if result.unseen:
        out.print(f"unseen categories (encoded as all zeros): {result.unseen}", markup=False)


config_app = typer.Typer(help="Show the fully resolved spec.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    spec: Annotated[Path, typer.Argument(help="The experiment's YAML spec.")],
    overrides: SetOption = None,
) -> None:
    """Print the spec with every default filled in, as YAML that trains to the same result."""
    import yaml

    from dlrun.specfile import load_spec

    with reported():
        loaded = load_spec(spec, overrides)
    print(yaml.safe_dump(loaded.resolved(), sort_keys=False), end="")


@app.command()
def schema(
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the schema here instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of specs, for editor completion (yaml-language-server)."""
    from dlrun.schema import schema_text

    text = schema_text()
    if out_file is None:
        print(text, end="")
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text, encoding="utf-8")
    err.print(f"wrote {out_file}; point specs at it with: # yaml-language-server: $schema={out_file}",
              markup=False, soft_wrap=True)


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="The CSV to learn from.")],
    target: Annotated[str, typer.Option(help="The column to predict.")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Spec file to write (default: <csv stem>.yaml).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec file.")] = False,
) -> None:
    """Write a commented starter spec for a CSV: task, features, scaling, a network and early stopping."""
    from dlrun.errors import DlrunError
    from dlrun.starter import starter_spec

    spec_path = out_file or Path(f"{data.stem}.yaml")
    with reported():
        if spec_path.exists() and not force:
            raise DlrunError(f"{spec_path} exists; pick another --out, or pass --force to overwrite it")
        text = starter_spec(data, target, spec_path)
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(text, encoding="utf-8")
    out.print(f"wrote {spec_path}; next: dlrun check {spec_path}", markup=False)


@app.command()
def check(
    spec: Annotated[Path, typer.Argument(help="The experiment's YAML spec.")],
    overrides: SetOption = None,
) -> None:
    """Load the data and build the real Keras model without training; warn of likely mistakes."""
    from dlrun.check import check as check_spec
    from dlrun.specfile import load_spec

    with reported():
        report = check_spec(load_spec(spec, overrides))
    print(report.summary)
    out.print("Rows: " + ", ".join(f"{part} {n}" for part, n in report.rows.items()), markup=False)
    if report.classes is not None:
        total = sum(report.classes.values())
        out.print("Training classes: " + ", ".join(f"{label} {n} ({n / total:.0%})"
                                                for label, n in report.classes.items()), markup=False)
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False, soft_wrap=True)
    if not report.warnings:
        out.print("No likely mistakes found.")


def main() -> None:
    """Entry point for `python -m dlrun`."""
    app(prog_name="dlrun")


if __name__ == "__main__":
    sys.exit(main())
