"""Preprocessing learned from the training rows, and the one place that turns raw rows into model inputs.

`Preprocessing.apply` is used for training, validation and test rows, streamed chunks, `dlrun evaluate`
and `dlrun predict` alike. Its conversions follow the cell rules of `dlrun.data.kinds` (what a number
is, what a date, what a non-finite number) and `dlrun.data.csvfile` (what a missing cell is, under the
spec's `data.csv`), so a column converts exactly as its kind was judged; `dlrun.data.files` names a row
in a message (a CSV's line, a Parquet file's row). `dlrun.data.fitter` learns a `Preprocessing` from the
training rows.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.csvfile import csv_options, locate, missing_texts, read_header
from dlrun.data.files import position, positions, read_chunks
from dlrun.data.kinds import (
    CATEGORICAL,
    DATE,
    INFINITY,
    LARGEST,
    NUMERIC,
    looks_like_numbers,
    number_pattern,
    parse_date,
)
from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions
from dlrun.spec.names import task_of

DEFAULT_CATEGORY_FILL = "missing"
_PARTS = {
    "year": lambda d: d.year,
    "month": lambda d: d.month,
    "day": lambda d: d.day,
    "day_of_week": lambda d: d.weekday(),
    "day_of_year": lambda d: d.timetuple().tm_yday,
    "hour": lambda d: d.hour,
    "minute": lambda d: d.minute,
}


def target_shape(task: str) -> tuple[int, ...]:
    """Return the shape of one row's target as the model reads it: a class id, or a column of one number.

    A model with one output reads (rows, 1) targets, as wide as its output: Keras's F1Score and
    FBetaScore refuse anything else, and its crossentropy metrics want targets of the output's rank.
    """
    return () if task == "multiclass" else (1,)


# --- cells to values ------------------------------------------------------------------------------------


def _text(series):
    """Return a column as stripped text (pandas' string type; missing cells stay missing)."""
    return series.astype("string").str.strip()


def missing_mask(series, na: Collection[str]) -> np.ndarray:
    """Return where cells are missing: NaN, or text in `na` (`csvfile.missing_texts`) after stripping spaces."""
    mask = series.isna().to_numpy(dtype=bool)
    if series.dtype.kind not in "biufcmM":
        mask = mask | _text(series).isin(na).fillna(False).to_numpy(dtype=bool)
    return mask


def _parse(series, options: CsvOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return a column's numbers (NaN where missing or not a number), where cells are not numbers, and
    where they are non-finite ones (`kinds.is_infinite`: inf read by pandas, `-Infinity` or `1e400` text,
    and numbers beyond float32's range, which model inputs would turn into infinities)."""
    if series.dtype.kind in "biuf":
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        return values, np.zeros(len(values), bool), np.abs(values) > LARGEST
    import pandas as pd

    text = _text(series)
    gaps = missing_mask(series, missing_texts(options))
    numbers = text.str.fullmatch(number_pattern(options.decimal)).fillna(False).to_numpy(dtype=bool) & ~gaps
    words = text.str.fullmatch(INFINITY).fillna(False).to_numpy(dtype=bool) & ~gaps
    text = text.where(numbers)
    if options.decimal != ".":
        text = text.str.replace(options.decimal, ".", regex=False)
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values, ~numbers & ~words & ~gaps, (np.abs(values) > LARGEST) | words


def infinite_mask(series, options: CsvOptions | dict | None = None, numeric: bool = True) -> np.ndarray:
    """Return where a column's cells are non-finite numbers; for a column of labels (`numeric` false), only
    the infinities pandas read as numbers count, since a text label `inf` is a label."""
    if not numeric and series.dtype.kind != "f":
        return np.zeros(len(series), bool)
    return _parse(series, csv_options(options))[2]


def to_numbers(series, name: str, source: str, options: CsvOptions | dict | None = None) -> np.ndarray:
    """Return a column as float64, missing cells as NaN; a number is what `kinds.number_pattern` says.

    A non-finite number (`kinds.is_infinite`) is an error, or NaN with `data.csv.infinite: missing`.

    Raises:
        DataError: a cell is not a number, or is a non-finite one; the message names the column, value and line.
    """
    options = csv_options(options)
    values, bad, infinite = _parse(series, options)
    if bad.any():
        _refuse_text(series, bad, name, source, options)
    if infinite.any():
        if options.infinite == "error":
            raise nonfinite_error(source, options, {name: found_cells(series, infinite)})
        values = np.where(infinite, np.nan, values)
    return values


def found_cells(series, mask: np.ndarray, shown: int = 3) -> tuple[int, list[tuple[Any, Any]]]:
    """Return how many cells `mask` marks, and (row index, value) of the first `shown` of them."""
    where = mask.nonzero()[0]
    first = where[np.argsort(np.asarray(series.index[where]), kind="stable")[:shown]]  # split rows come shuffled
    return len(where), [(series.index[i], _plain(series.iloc[i])) for i in first]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def nonfinite_error(source: str, options: CsvOptions, found: dict[str, tuple[int, list[tuple[Any, Any]]]]) -> DataError:
    """Return the error for non-finite numbers, by column: (count, the first (row index, value) pairs).

    Each cell is named by its line and its text as written in the file, when `source` is a readable CSV.
    """
    return DataError(
        f"{source}: non-finite numbers (inf, -inf, or beyond float32's range like 1e39 and 1e400) in "
        f"{describe_cells(source, options, found)}. "
        "Expected finite numbers: fix those cells, or read them as missing with data.csv.infinite: missing "
        "(data.missing then decides what a feature's gap becomes; a row with a missing target is left out)"
    )


def describe_cells(source: str, options: CsvOptions, found: dict[str, tuple[int, list[tuple[Any, Any]]]]) -> str:
    """Name cells by column: `column 'a': line 11 'inf', line 21 '1e400' (5 rows)`, each line and text as
    written in the file when `source` is a readable CSV."""
    parts = []
    for name, (count, firsts) in found.items():
        cells = _cells(source, options, name, [index for index, _ in firsts])
        shown = ", ".join(
            f"line {cells[index][0]} {cells[index][1]!r}" if index in cells else f"{position(source, index)} {value!r}"
            for index, value in firsts
        )
        more = f" ({count} rows)" if count > len(firsts) else ""
        parts.append(f"column {name!r}: {shown}{more}")
    return "; ".join(parts)


def _cells(source: str, options: CsvOptions, name: str, indexes: list) -> dict[Any, tuple[int, str]]:
    """Return the exact line and text as written of a column's cells, by row index; {} if `source` is no CSV."""
    try:
        if not Path(source).is_file():
            return {}
        where = read_header(source, options).index(name)
        return {i: (line, cells[where]) for i, (line, cells) in locate(source, options, indexes).items()}
    except (DataError, OSError, ValueError, TypeError):
        return {}


def sample_weights(series, name: str, source: str, options: CsvOptions) -> np.ndarray:
    """Return a weight column as float32: numbers 0 or more, every cell filled.

    Raises:
        DataError: a cell is empty, not a number, or negative; the message names the column and lines.
    """
    values = to_numbers(series, name, source, options)
    for bad, what in ((np.isnan(values), "empty"), (values < 0, "negative")):
        if bad.any():
            where = positions(source, sorted(series.index[bad])[:5])
            raise DataError(
                f"{source}: data.weight_column {name!r} is {what} on {where}{', ...' if bad.sum() > 5 else ''} "
                f"({int(bad.sum())} row{'s' if bad.sum() > 1 else ''}); every row needs a weight of 0 or more: fix "
                "the cells, or leave the rows out"
            )
    return values.astype("float32")


def _refuse_text(series, bad: np.ndarray, name: str, source: str, options: CsvOptions) -> None:
    rows = bad.nonzero()[0]
    at = rows[np.argmin(np.asarray(series.index[rows]))]  # the first in the file: split rows come shuffled
    first = series.index[at]
    cell = _cells(source, options, name, [first]).get(first)
    where = f"line {cell[0]}" if cell else position(source, first)
    decimal = options.decimal
    raise DataError(
        f"{source}: column {name!r} is numeric but {where} holds {_plain(series.iloc[at])!r}"
        f" ({len(rows)} such row{'s' if len(rows) > 1 else ''}). Expected a finite number"
        f"{' with decimal mark ' + repr(decimal) if decimal != '.' else ''}: fix the value, or declare the "
        f"column categorical with data.columns.{name}.kind: categorical"
    )


def category_keys(series, na: Collection[str]) -> np.ndarray:
    """Return category values as text (None when missing, by `na`).

    The data path reads categorical and date columns as text (`csvfile.read_chunks`'s `text_columns`),
    so a key is the cell as written, spaces stripped: `007` and `7` are two categories, in every chunk
    alike. Numbers read as numbers (a class label column) become their shortest text: 3.0 -> '3'.
    """
    kind = series.dtype.kind
    if kind in "iu":
        return series.astype(str).to_numpy(dtype=object)
    if kind == "b":
        return series.map(str).to_numpy(dtype=object)
    if kind == "f":
        return np.array(
            [None if v != v else (str(int(v)) if float(v).is_integer() else repr(float(v))) for v in series.to_numpy()],
            dtype=object,
        )
    keys = _text(series)
    keys = keys.mask(keys.isin(na))
    return keys.astype(object).where(keys.notna(), None).to_numpy(dtype=object)


def date_values(
    series, format: str | None, parts: list[str], na: Collection[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return each date part's values (NaN where a cell is missing or not a date), and where cells are not dates.

    Each distinct cell is read once by `kinds.parse_date`, the rule that judged the column a date.
    """
    import pandas as pd

    codes, distinct = pd.factorize(category_keys(series, na))
    table = np.full((len(distinct) + 1, len(parts)), np.nan)  # the last row serves missing cells (code -1)
    readable = np.zeros(len(distinct) + 1, dtype=bool)
    for index, text in enumerate(distinct):
        value = parse_date(text, format)
        if value is not None:
            table[index] = [_PARTS[part](value) for part in parts]
            readable[index] = True
    unreadable = ~readable[codes] & (codes >= 0)
    return {part: table[codes, i] for i, part in enumerate(parts)}, unreadable


def gaps_of(series, kind: str, format: str | None, options: CsvOptions) -> np.ndarray:
    """Return where a column's cells count as missing: empty ones, in a date column those that are not dates,
    and in a numeric one its non-finite numbers with `data.csv.infinite: missing`."""
    na = missing_texts(options)
    if kind == DATE:
        values, _ = date_values(series, format, ["year"], na)
        return np.isnan(values["year"])
    gaps = missing_mask(series, na)
    if kind == NUMERIC and options.infinite == "missing":
        gaps = gaps | infinite_mask(series, options)
    return gaps


def check_labels(series, name: str, source: str, options: CsvOptions) -> None:
    """Refuse class labels that pandas read as non-finite numbers (left out as missing targets, with
    `data.csv.infinite: missing`, before this is asked)."""
    infinite = infinite_mask(series, options, numeric=False)
    if infinite.any():
        raise nonfinite_error(source, options, {name: found_cells(series, infinite)})


def label_of(value) -> Any:
    """Return a target label as plain JSON data: 1.0 -> 1, ' yes ' -> 'yes'."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value).strip()


def left_out(dropped: dict[str, int], target: str | None = None) -> str | None:
    """Say in words which rows `keep_rows` left out and why (None when none):
    `8 rows with an empty target 'mpg', 2 with an empty cell in a drop_rows column`."""
    empty_target, gaps = dropped.get("missing_target", 0), dropped.get("missing_values", 0)
    parts = []
    if empty_target:
        parts.append(
            f"{empty_target} row{'s' if empty_target != 1 else ''} with an empty target"
            + (f" {target!r}" if target else "")
        )
    if gaps:
        parts.append(
            f"{gaps} row{'s' if gaps != 1 else ''} with an empty cell in a column whose data.missing is drop_rows"
        )
    return ", ".join(parts) or None


def keep_rows(
    frame, target: str | None, drop_rows: list, options: CsvOptions | dict | None = None, task: str = "regression"
) -> tuple[np.ndarray, dict[str, int]]:
    """Return which rows to use, leaving out empty targets and gaps in `drop_rows` columns (or plans).

    Args:
        frame: raw rows.
        target: the target column, or None for unlabelled rows.
        drop_rows: the columns whose gaps remove the row; anything with name, kind and format.
        options: the spec's CSV options: which cells are missing, and whether a non-finite number is one.
        task: what the loss makes of the target; a regression target is numeric.
    """
    options = csv_options(options)
    keep = np.ones(len(frame), bool)
    dropped = {"missing_target": 0, "missing_values": 0}
    if target is not None:
        gaps = missing_mask(frame[target], missing_texts(options))
        if options.infinite == "missing":
            gaps = gaps | infinite_mask(frame[target], options, numeric=task == "regression")
        dropped["missing_target"] = int(gaps.sum())
        keep &= ~gaps
    for column in drop_rows:
        gaps = gaps_of(frame[column.name], column.kind, column.format, options) & keep
        dropped["missing_values"] += int(gaps.sum())
        keep &= ~gaps
    return keep, dropped


# --- what was learned ------------------------------------------------------------------------------


@dataclass
class Column:
    """One feature column and what was learned about it."""

    name: str
    kind: str
    """numeric, categorical or date."""
    missing: str = "error"
    """What happens to an empty cell: mean, median, most_frequent, constant, drop_rows or error."""
    fill_value: float | str | None = None
    """The value an empty cell becomes (learned for mean, median, most_frequent)."""
    scale: str = "none"
    offset: float = 0.0
    """Subtracted from a numeric value (minimum or mean)."""
    divisor: float = 1.0
    """A numeric value is divided by this after the offset (range or std; 1 for a constant column)."""
    categories: list[str] = field(default_factory=list)
    """Categories seen in the training rows, one model input each; any other value is all zeros."""
    format: str | None = None
    """A date column's strptime format; None for ISO dates (2024-03-01, 2024-03-01 12:30)."""
    parts: list[Column] = field(default_factory=list)
    """A date column's parts (year, month, ...), each fitted like a numeric column; input `<name>.<part>`."""

    @property
    def inputs(self) -> list[str]:
        if self.kind == CATEGORICAL:
            return [f"{self.name}={c}" for c in self.categories]
        if self.kind == DATE:
            return [f"{self.name}.{part.name}" for part in self.parts]
        return [self.name]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Column:
        return cls(**{**data, "parts": [cls.from_dict(part) for part in data.get("parts", [])]})


_UNUSED = {
    NUMERIC: ("categories", "format", "parts"),
    CATEGORICAL: ("scale", "offset", "divisor", "format", "parts"),
    DATE: ("fill_value", "scale", "offset", "divisor", "categories"),
}


def _shown(column: dict[str, Any]) -> dict[str, Any]:
    """Return a column's dict with only the fields its kind uses."""
    shown = {k: v for k, v in column.items() if k not in _UNUSED[column["kind"]]}
    if "parts" in shown:
        shown["parts"] = [_shown(part) for part in shown["parts"]]
    return shown


@dataclass
class Encoded:
    """Rows turned into model inputs, and what happened to the ones that could not be used."""

    x: np.ndarray
    y: np.ndarray | None
    kept: np.ndarray
    """Which of the given rows are in x (rows with an empty target or a drop_rows cell are not)."""
    dropped: dict[str, int]
    unseen: dict[str, int]
    """Per categorical column, rows whose value was not a training category (encoded as all zeros)."""
    w: np.ndarray | None = None
    """Each row's sample weight (data.weight_column), when asked for; None otherwise."""


@dataclass
class Preprocessing:
    """What was learned from the training rows, applied the same way to every other row."""

    features: list[str]
    """Feature columns, in the model's input order."""
    target: str
    columns: list[Column] = field(default_factory=list)
    """How each feature column becomes model inputs, in `features` order."""
    classes: list[Any] | None = None
    """Target labels in class-id order, for classification with a softmax output; None otherwise."""
    task: str = "regression"
    """regression, binary or multiclass."""
    labels: list[Any] | None = None
    """A binary target's two original labels, for 0 and 1; None when the target is already 0/1."""
    csv: dict[str, Any] = field(default_factory=dict)
    """How the CSVs were read (separator, decimal, encoding, quotechar, missing markers, infinities); new CSVs
    are read the same way."""
    dropped_columns: list[str] = field(default_factory=list)
    """Columns of the training CSV that the model does not use."""
    weight_column: str | None = None
    """The column of per-row sample weights (data.weight_column); None: every row weighs 1."""

    @property
    def input_names(self) -> list[str]:
        """Names of the model's inputs: a numeric column, `column=category` per one-hot input, `column.part`."""
        return [name for column in self.columns for name in column.inputs]

    @property
    def width(self) -> int:
        return len(self.input_names)

    @property
    def decimal(self) -> str:
        return self.csv.get("decimal", ".")

    @functools.cached_property
    def options(self) -> CsvOptions:
        """The CSV options as a model (the defaults for what older preprocessing.json files lack)."""
        return csv_options(self.csv)

    @property
    def text_columns(self) -> list[str]:
        """Columns a CSV reader must return as text (`csvfile.read_chunks`): categorical and date features."""
        return [column.name for column in self.columns if column.kind in (CATEGORICAL, DATE)]

    def read_chunks(self, path, chunk_rows: int | None, check_ragged: bool = True):
        """Read a CSV of new rows as training read its own: the same options, the same text columns."""
        return read_chunks(path, self.options, chunk_rows, check_ragged, self.text_columns)

    @property
    def class_labels(self) -> list[Any] | None:
        """The target's labels in class-id order (the CSV's own, for 0, 1, ...); None for regression."""
        if self.task == "regression":
            return None
        return self.classes if self.task == "multiclass" else (self.labels or [0, 1])

    def apply(
        self, frame, source: str, labelled: bool = True, weighted: bool = False, numbers: dict | None = None
    ) -> Encoded:
        """Turn raw rows into model inputs (and targets when `labelled`, sample weights when `weighted`).

        Rows with an empty target, or a gap in a drop_rows column, are left out and counted. `numbers`:
        numeric columns already parsed (`Fitter.check_cells`, row-aligned with `frame`), not parsed again.

        Raises:
            DataError: a required column is missing, a numeric cell holds text, a gap in a column whose
                strategy is error, a label the model does not know, or a weight that is empty or negative.
        """
        weighted = weighted and self.weight_column is not None
        self.check_columns(list(frame.columns), source, labelled, weighted)
        kept, dropped = keep_rows(
            frame,
            self.target if labelled else None,
            [c for c in self.columns if c.missing == "drop_rows"],
            self.options,
            self.task,
        )
        rows = frame[kept] if not kept.all() else frame
        parts, unseen = [], {}
        for column in self.columns:
            series = rows[column.name]
            if column.kind == NUMERIC:
                parsed = numbers.get(column.name) if numbers is not None else None
                if parsed is not None and not kept.all():
                    parsed = parsed[kept]
                parts.append(self._numeric(column, series, source, parsed)[:, None])
            elif column.kind == DATE:
                parts.append(self._date(column, series, source))
            else:
                onehot, n_unseen = self._categorical(column, series, source)
                parts.append(onehot)
                if n_unseen:
                    unseen[column.name] = n_unseen
        x = np.hstack(parts).astype("float32") if parts else np.zeros((len(rows), 0), "float32")
        y = self.targets(rows, source) if labelled else None
        w = sample_weights(rows[self.weight_column], self.weight_column, source, self.options) if weighted else None
        return Encoded(x, y, kept, dropped, unseen, w)

    def check_columns(self, columns: list, source: str, labelled: bool = True, weighted: bool = False) -> None:
        """Refuse a CSV that lacks a feature column, (when `labelled`) the target, or (when `weighted`) the weights.

        Raises:
            DataError: the missing columns, and for a missing target that predicting needs none.
        """
        needed = self.features + ([self.weight_column] if weighted and self.weight_column is not None else [])
        absent = [c for c in needed if c not in columns]
        if absent:
            raise DataError(
                f"{source} lacks column{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))} "
                f"that the model needs; its columns are: {', '.join(map(str, columns))}"
            )
        if labelled and self.target not in columns:
            raise DataError(
                f"{source} lacks the target column {self.target!r}, the labels evaluate scores the model's "
                f"predictions against; `dlrun predict` needs no target, for rows without labels"
            )

    def _numeric(self, column: Column, series, source: str, values: np.ndarray | None = None) -> np.ndarray:
        if values is None:
            values = to_numbers(series, column.name, source, self.options)
        gaps = np.isnan(values)
        if gaps.any():
            _refuse_missing(column, series, gaps, source)
        return _filled_and_scaled(column, values, gaps)

    def _date(self, column: Column, series, source: str) -> np.ndarray:
        values, unreadable = date_values(
            series, column.format, [part.name for part in column.parts], missing_texts(self.options)
        )
        gaps = np.isnan(values[column.parts[0].name])
        if gaps.any():
            _refuse_missing(column, series, gaps, source, unreadable)
        return np.column_stack([_filled_and_scaled(part, values[part.name], gaps) for part in column.parts])

    def _categorical(self, column: Column, series, source: str) -> tuple[np.ndarray, int]:
        import pandas as pd

        keys = category_keys(series, missing_texts(self.options))
        gaps = pd.isna(keys)
        if gaps.any():
            _refuse_missing(column, series, gaps, source)
            keys = np.where(gaps, str(column.fill_value), keys)
        codes = pd.Index(column.categories).get_indexer(keys)  # -1: not a training category
        onehot = np.zeros((len(keys), len(column.categories)), "float32")
        known = codes >= 0
        onehot[np.nonzero(known)[0], codes[known]] = 1.0
        return onehot, int((~known).sum())

    def inputs(self, frame, source: str = "data") -> np.ndarray:
        """Return the model's input matrix for rows of a data frame (rows are never dropped here)."""
        return self.apply(frame, source, labelled=False).x

    def targets(self, frame, source: str) -> np.ndarray:
        """Return the training targets: class ids for classification, floats otherwise."""
        column = frame[self.target]
        if self.task == "regression":
            return to_numbers(column, self.target, source, self.options).astype("float32")
        check_labels(column, self.target, source, self.options)
        import pandas as pd

        names = self.class_labels
        index = {label: i for i, label in enumerate(names)}
        codes, uniques = pd.factorize(column)  # label_of once per distinct value, not per row
        labels = [label_of(v) for v in uniques]
        unseen = sorted({str(v) for v in labels if v not in index})
        if unseen:
            known = ", ".join(map(str, names[:10])) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
            hint = (
                (
                    f"; {len(names)} classes looks like a number to predict: use a regression loss such as mae "
                    "with a one-unit linear output"
                )
                if looks_like_numbers(names)
                else ""
            )
            raise DataError(
                f"{source}: target {self.target!r} has labels not seen in the training rows: "
                f"{', '.join(unseen[:10])}; the model only knows {known}{hint}"
            )
        ids = np.array([index[v] for v in labels], dtype="int64")[codes] if len(codes) else np.zeros(0, "int64")
        return ids.astype("int32" if self.task == "multiclass" else "float32")

    def to_dict(self) -> dict[str, Any]:
        """Return plain data for preprocessing.json: each column shows only the fields its kind uses."""
        data = asdict(self)
        data["columns"] = [_shown(c) for c in data["columns"]]
        data["inputs"] = self.input_names
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], loss: str | None = None) -> Preprocessing:
        """Rebuild from preprocessing.json; `loss` tells the task of files written before columns existed."""
        data = {k: v for k, v in data.items() if k != "inputs"}
        if "columns" not in data:  # the first format: numeric features, one offset and divisor each
            scale = data.pop("scale", "none")
            data["columns"] = [
                Column(name, NUMERIC, "error", None, scale, offset, divisor)
                for name, offset, divisor in zip(data["features"], data.pop("offset", []), data.pop("divisor", []))
            ]
            data["task"] = "multiclass" if data.get("classes") is not None else task_of(loss or "mse")
            return cls(**data)
        data["columns"] = [Column.from_dict(c) for c in data["columns"]]
        return cls(**data)


def _filled_and_scaled(column: Column, values: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    if gaps.any():
        values = np.where(gaps, float(column.fill_value), values)
    return (values - column.offset) / column.divisor


def _refuse_missing(column: Column, series, gaps: np.ndarray, source: str, unreadable=None) -> None:
    if column.missing not in ("error", "drop_rows"):  # drop_rows rows are gone before this; error means stop
        return
    if unreadable is not None and unreadable.any():
        first = series.index[unreadable.nonzero()[0][0]]
        raise not_a_date_error(column.name, column.format, source, first, series.loc[first], int(unreadable.sum()))
    raise missing_error(column.name, source, int(gaps.sum()), list(series.index[gaps][:5]))


def not_a_date_error(name: str, format: str | None, source: str, index, value, count: int) -> DataError:
    """Return the error for `count` cells of a date column (missing: error) that are not dates, the first at `index`."""
    strategies = "mean, median, most_frequent, constant, drop_rows"
    written = f"in format {format!r}" if format else "like 2024-03-01 or 2024-03-01 12:30"
    return DataError(
        f"{source}: column {name!r} holds dates, but {position(source, index)} holds "
        f"{value!r} ({count} such row{'s' if count > 1 else ''}), not a date {written}. Fix the "
        f"value, or choose what such cells become with data.columns.{name}.missing: {strategies}"
        f"{'' if format else f'; or give data.columns.{name}.format'}"
    )


def missing_error(name: str, source: str, count: int, first: list) -> DataError:
    """Return the error for `count` empty cells in a column whose `missing` is error (`first`: the first rows)."""
    strategies = "mean, median, most_frequent, constant, drop_rows"
    return DataError(
        f"missing (NaN) values in {source}: {name!r} ({count} rows) on {positions(source, first[:5])}"
        f"{', ...' if count > 5 else ''}. Choose a strategy with data.missing (or "
        f"data.columns.{name}.missing): {strategies}; or leave the column out with data.drop"
    )
