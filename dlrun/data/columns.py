"""CSV headers and column selection: what `dlrun validate` needs, without pandas or numpy."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import Any

from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions, DataSpec

_SEPARATORS = {";": "';'", "\t": "'\\t' (tab)", "|": "'|'", ",": "','"}


def pandas_options(options: CsvOptions | dict | None) -> dict[str, Any]:
    """Return `pandas.read_csv` keyword arguments for the spec's CSV options."""
    options = csv_options(options)
    encoding = options.encoding
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # reads files with or without a byte-order mark
    return {
        "sep": options.separator,
        "decimal": options.decimal,
        "encoding": encoding,
        "quotechar": options.quotechar,
        "index_col": False,
    }


def csv_options(options: CsvOptions | dict | None) -> CsvOptions:
    """Return the spec's CSV options as a model, from a model, a saved dict, or None (the defaults)."""
    if options is None:
        return CsvOptions()
    return options if isinstance(options, CsvOptions) else CsvOptions.model_validate(options)


def read_header(path: str | Path, options: CsvOptions | dict | None = None) -> list[str]:
    """Return a CSV's column names without reading the rest (fast; no pandas)."""
    path, options = Path(path), csv_options(options)
    encoding = pandas_options(options)["encoding"]
    try:
        with path.open(newline="", encoding=encoding) as handle:
            header = next(csv.reader(handle, delimiter=options.separator, quotechar=options.quotechar), None)
    except FileNotFoundError:
        raise DataError(
            f"data file not found: {path} (paths in a spec are relative to the spec file's folder)"
        ) from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {path} as {options.encoding} text ({exc.reason} at byte {exc.start}); "
            "set data.csv.encoding (latin-1, cp1252, utf-16, ...)"
        ) from None
    if not header:
        raise DataError(f"{path} is empty: a CSV with a header line and at least one row is needed")
    columns = [name.strip() for name in header]
    _check_separator(columns, options, path)
    return columns


def text_columns(spec: DataSpec, features: list[str], rows: int = 200) -> list[str]:
    """Return the features that will be one-hot encoded, judged from the first `rows` rows (fast; no pandas).

    Declared kinds win; otherwise a column with a cell that is not a number is taken as categorical.
    Only `dlrun check` and training see every row: this is the quick look `dlrun validate` takes.
    """
    options = spec.csv
    declared = declared_kinds(spec)
    found = {name for name in features if declared.get(name) == "categorical"}
    undecided = [name for name in features if name not in declared]
    with Path(spec.path).open(newline="", encoding=pandas_options(options)["encoding"]) as handle:
        reader = csv.reader(handle, delimiter=options.separator, quotechar=options.quotechar)
        header = [name.strip() for name in next(reader, [])]
        where = {name: header.index(name) for name in undecided if name in header}
        for _, row in zip(range(rows), reader):
            for name, index in where.items():
                cell = row[index].strip() if index < len(row) else ""
                if cell and cell.lower() not in ("na", "nan", "null") and not _is_number(cell, options.decimal):
                    found.add(name)
    return [name for name in features if name in found]


def _is_number(cell: str, decimal: str) -> bool:
    try:
        float(cell.replace(decimal, ".") if decimal != "." else cell)
    except ValueError:
        return False
    return True


def _check_separator(columns: list[str], options: CsvOptions, path) -> None:
    if len(columns) != 1:
        return
    for sep, shown in _SEPARATORS.items():
        if sep != options.separator and sep in columns[0]:
            raise DataError(
                f"{path}: found a single column {columns[0][:60]!r} with separator {options.separator!r}; the file "
                f"looks separated by {shown}: set data.csv.separator: {shown.split()[0]}"
            )


def select_features(columns: list[str], spec: DataSpec, source: str) -> list[str]:
    """Return the feature columns the spec asks for, checked against a CSV's columns.

    Raises:
        DataError: the target, a feature, a dropped or a configured column is not in the CSV, or no feature is left.
    """
    available = ", ".join(columns)
    if spec.target not in columns:
        raise DataError(f"data.target: column {spec.target!r} is not in {source}; its columns are: {available}")
    for key, wanted in (
        ("data.features", spec.features or []),
        ("data.drop", spec.drop),
        ("data.columns", list(spec.columns)),
    ):
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(f"{key}: {', '.join(map(repr, missing))} not in {source}; its columns are: {available}")
    left_out = set(spec.drop) | {c for c, s in spec.columns.items() if s.kind == "ignore"}
    if spec.features is not None:
        features = [c for c in spec.features if c not in left_out]
    else:
        features = [c for c in columns if c != spec.target and c not in left_out]
    if spec.target in features:
        raise DataError(
            f"data.features: the target {spec.target!r} cannot also be a feature; remove it from data.features"
        )
    if not features:
        raise DataError(f"no feature columns left in {source}: list some in data.features or drop fewer in data.drop")
    return features


def declared_kinds(spec: DataSpec) -> dict[str, str]:
    return {name: c.kind for name, c in spec.columns.items() if c.kind in ("numeric", "categorical")}
