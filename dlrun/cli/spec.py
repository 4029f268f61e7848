"""Commands that read a spec without training: validate, check, config show, schema, init."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dlrun.cli.common import PANELS, Group, SetOption, app, command, err, out, reported
from dlrun.errors import DlrunError
from dlrun.runs.layout import write_text


@command()
def validate(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The experiment's YAML spec.")],
    overrides: SetOption = None,
) -> None:
    """Check a spec, its CSV header and its columns' kinds, and print the layer stack (no TensorFlow, instant).

    A `search:` section (and `--set PATH=DIST`) is checked as `dlrun tune` would search it.
    """
    from dlrun.data.files import read_header
    from dlrun.data.kinds import CATEGORICAL, DATE, column_kinds, select_features, target_mismatch
    from dlrun.model import describe
    from dlrun.spec.loader import load_spec
    from dlrun.spec.names import task_of
    from dlrun.spec.space import split_sets

    with reported():
        loaded = load_spec(spec, *split_sets(overrides or []), check_search=True)
        header = read_header(loaded.data.path, loaded.data.csv)
        features = select_features(header, loaded.data, loaded.data.path)
        for other in (loaded.data.validation_path, loaded.data.test_path):
            if other:
                read_header(other, loaded.data.csv)
        kinds = column_kinds(loaded.data, header, features)
        loss = loaded.training.loss
        mismatch = target_mismatch(loaded.data, loss, task_of(loss))
        rows = describe(loaded.model, sum(len(kind.parts) if kind.kind == DATE else 1 for kind in kinds.values()))
    categorical = [name for name, kind in kinds.items() if kind.kind == CATEGORICAL]
    dates = {name: kind.parts for name, kind in kinds.items() if kind.kind == DATE}
    table = Table(title=f"{loaded.name}: {_count(len(features), 'input column')} -> {_count(rows[-1].width, 'output')}")
    for column in ("#", "layer", "", "output width", "params"):
        table.add_column(column, justify="right" if column in ("#", "output width", "params") else "left")
    for row in rows:
        table.add_row(str(row.index), row.kind, row.detail, str(row.width), f"{row.params:,}")
    out.print(table)
    for name, parts in dates.items():
        out.print(
            f"note: {name} holds dates: {len(parts)} numeric inputs {', '.join(f'{name}.{p}' for p in parts)}.",
            markup=False,
            soft_wrap=True,
        )
    if loaded.search:
        _print_search(loaded.search)
    if mismatch is not None:
        err.print(f"warning: {mismatch}", markup=False, soft_wrap=True)
    if categorical:
        out.print(
            f"note: {', '.join(categorical)} {'are' if len(categorical) > 1 else 'is'} categorical: one-hot "
            "encoding adds an input per category, counted here as one; `dlrun check` builds the exact model.",
            markup=False,
            soft_wrap=True,
        )
        out.print(f"Total params: at least {sum(r.params for r in rows):,}. Spec {spec} is valid.", markup=False)
    else:
        out.print(f"Total params: {sum(r.params for r in rows):,}. Spec {spec} is valid.", markup=False)


def _print_search(search: dict) -> None:
    """List what `dlrun tune` would search, one distribution a line."""
    from dlrun.spec.space import distribution_text

    out.print(f"search ({len(search)} for dlrun tune; train uses the values above):", markup=False)
    for path, distribution in search.items():
        out.print(f"  {path}: {distribution_text(distribution.model_dump())}", markup=False, soft_wrap=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@command()
def check(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The experiment's YAML spec.")],
    overrides: SetOption = None,
) -> None:
    """Load the data and build the real Keras model without training; warn of likely mistakes."""
    from dlrun.check import check as check_spec
    from dlrun.spec.loader import load_spec

    with reported():
        report = check_spec(load_spec(spec, overrides))
    print(report.summary)
    rows = "Rows: " + ", ".join(f"{part} {n}" for part, n in report.rows.items())
    out.print(rows + (f"; left out: {report.left_out}" if report.left_out else ""), markup=False, soft_wrap=True)
    if report.classes is not None:
        total = sum(report.classes.values())
        out.print(
            "Training classes: " + ", ".join(f"{label} {n} ({n / total:.0%})" for label, n in report.classes.items()),
            markup=False,
        )
    for note in report.notes:
        out.print(note, markup=False, soft_wrap=True)
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False, soft_wrap=True)
    if not report.warnings:
        out.print("No likely mistakes found.")


config_app = typer.Typer(cls=Group, help="Show the fully resolved spec.", no_args_is_help=True)
app.add_typer(config_app, name="config", rich_help_panel=PANELS["config"])


@command("show", config_app)
def config_show(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The experiment's YAML spec.")],
    overrides: SetOption = None,
) -> None:
    """Print the spec with every default filled in, as YAML that trains to the same result (search: included)."""
    import yaml

    from dlrun.spec.loader import load_spec
    from dlrun.spec.space import split_sets

    with reported():
        loaded = load_spec(spec, *split_sets(overrides or []))
    print(yaml.safe_dump(loaded.resolved(search=True), sort_keys=False), end="")


@command()
def schema(
    out_file: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write the schema here instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of specs, for editor completion (yaml-language-server)."""
    from dlrun.spec.schema import schema_text

    text = schema_text()
    if out_file is None:
        print(text, end="")
        return
    with reported():
        write_text(out_file, text, parents=True)
    err.print(
        f"wrote {out_file}; point specs at it with: # yaml-language-server: $schema={out_file}",
        markup=False,
        soft_wrap=True,
    )


@command()
def init(
    data: Annotated[Path, typer.Argument(metavar="CSV", help="The CSV to learn from.")],
    target: Annotated[str, typer.Option(metavar="COLUMN", help="The column to predict.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Spec file to write (default: <csv stem>.yaml).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec file.")] = False,
) -> None:
    """Write a commented starter spec for a CSV: task, features, scaling, a network and early stopping."""
    from dlrun.starter import starter_spec

    spec_path = out_file or Path(f"{data.stem}.yaml")
    with reported():
        if spec_path.exists() and not force:
            raise DlrunError(f"{spec_path} exists; pick another --out, or pass --force to overwrite it")
        text = starter_spec(data, target, spec_path)
        write_text(spec_path, text, parents=True)
    out.print(f"wrote {spec_path}; next: dlrun check {shlex.quote(str(spec_path))}", markup=False)
