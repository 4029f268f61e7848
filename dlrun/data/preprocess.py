"""Preprocessing learned from the training rows, and the one place that turns raw rows into model inputs.

`Preprocessing.apply` is used for training, validation and test rows, streamed chunks, `dlrun evaluate`
and `dlrun predict` alike. Its conversions follow the cell rules of `dlrun.data.kinds` (what a number
is, what a date is) and `dlrun.data.csvfile` (what a missing cell is), so a column converts exactly as
its kind was judged; `dlrun.data.files` names a row in a message (a CSV's line, a Parquet file's row).
`dlrun.data.fitter` learns a `Preprocessing` from the training rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dlrun.data.csvfile import NA_VALUES
from dlrun.data.files import position, positions
from dlrun.data.kinds import CATEGORICAL, DATE, NUMERIC, number_pattern, parse_date
from dlrun.errors import DataError
from dlrun.spec.names import BINARY_LOSSES, CLASS_LOSSES

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


def task_of(loss: str) -> str:
    """Return regression, binary or multiclass: what the loss makes of the target column."""
    if loss in CLASS_LOSSES:
        return "multiclass"
    return "binary" if loss in BINARY_LOSSES else "regression"


# --- cells to values ------------------------------------------------------------------------------------


def _text(series):
    """Return a column as stripped text (pandas' string type; missing cells stay missing)."""
    return series.astype("string").str.strip()


def missing_mask(series) -> np.ndarray:
    """Return where cells are missing: NaN, or text that is one of `NA_VALUES` after stripping spaces."""
    mask = series.isna().to_numpy(dtype=bool)
    if series.dtype.kind not in "biufcmM":
        mask = mask | _text(series).isin(NA_VALUES).fillna(False).to_numpy(dtype=bool)
    return mask


def to_numbers(series, name: str, source: str, decimal: str = ".") -> np.ndarray:
    """Return a column as float64, missing cells as NaN; a number is what `kinds.number_pattern` says.

    Raises:
        DataError: a cell is not a number, or is an infinite one; the message names the column, value and line.
    """
    if series.dtype.kind in "biuf":
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    else:
        import pandas as pd

        text = _text(series)
        numbers = text.str.fullmatch(number_pattern(decimal)).fillna(False).to_numpy(dtype=bool)
        bad = ~numbers & ~missing_mask(series)
        if bad.any():
            _refuse_text(series, bad, name, source, decimal)
        text = text.where(numbers)
        if decimal != ".":
            text = text.str.replace(decimal, ".", regex=False)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        _refuse_text(series, infinite, name, source, decimal)
    return values


def _refuse_text(series, bad: np.ndarray, name: str, source: str, decimal: str) -> None:
    where = bad.nonzero()[0]
    first = series.index[where[0]]
    raise DataError(
        f"{source}: column {name!r} is numeric but {position(source, first)} holds {series.loc[first]!r}"
        f" ({len(where)} such row{'s' if len(where) > 1 else ''}). Expected a finite number"
        f"{' with decimal mark ' + repr(decimal) if decimal != '.' else ''}: fix the value, or declare the "
        f"column categorical with data.columns.{name}.kind: categorical"
    )


def category_keys(series) -> np.ndarray:
    """Return category values as text (None when missing), so 3, 3.0 and '3' are one category."""
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
    keys = keys.mask(keys.isin(NA_VALUES))
    return keys.astype(object).where(keys.notna(), None).to_numpy(dtype=object)


def date_values(series, format: str | None, parts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return each date part's values (NaN where a cell is missing or not a date), and where cells are not dates.

    Each distinct cell is read once by `kinds.parse_date`, the rule that judged the column a date.
    """
    import pandas as pd

    codes, distinct = pd.factorize(category_keys(series))
    table = np.full((len(distinct) + 1, len(parts)), np.nan)  # the last row serves missing cells (code -1)
    readable = np.zeros(len(distinct) + 1, dtype=bool)
    for index, text in enumerate(distinct):
        value = parse_date(text, format)
        if value is not None:
            table[index] = [_PARTS[part](value) for part in parts]
            readable[index] = True
    unreadable = ~readable[codes] & (codes >= 0)
    return {part: table[codes, i] for i, part in enumerate(parts)}, unreadable


def gaps_of(series, kind: str, format: str | None = None) -> np.ndarray:
    """Return where a column's cells count as missing: empty ones, and in a date column those that are not dates."""
    if kind != DATE:
        return missing_mask(series)
    values, _ = date_values(series, format, ["year"])
    return np.isnan(values["year"])


def label_of(value) -> Any:
    """Return a target label as plain JSON data: 1.0 -> 1, ' yes ' -> 'yes'."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value).strip()


def keep_rows(frame, target: str | None, drop_rows: list) -> tuple[np.ndarray, dict[str, int]]:
    """Return which rows to use, leaving out empty targets and gaps in `drop_rows` columns (or plans).

    Args:
        frame: raw rows.
        target: the target column, or None for unlabelled rows.
        drop_rows: the columns whose gaps remove the row; anything with name, kind and format.
    """
    keep = np.ones(len(frame), bool)
    dropped = {"missing_target": 0, "missing_values": 0}
    if target is not None:
        gaps = missing_mask(frame[target])
        dropped["missing_target"] = int(gaps.sum())
        keep &= ~gaps
    for column in drop_rows:
        gaps = gaps_of(frame[column.name], column.kind, column.format) & keep
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
    csv: dict[str, str] = field(default_factory=dict)
    """How the CSVs were read (separator, decimal, encoding, quotechar); new CSVs are read the same way."""
    dropped_columns: list[str] = field(default_factory=list)
    """Columns of the training CSV that the model does not use."""

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

    def apply(self, frame, source: str, labelled: bool = True) -> Encoded:
        """Turn raw rows into model inputs (and targets when `labelled`).

        Rows with an empty target, or a gap in a drop_rows column, are left out and counted.

        Raises:
            DataError: a required column is missing, a numeric cell holds text, a gap in a column whose
                strategy is error, or a label the model does not know.
        """
        needed = self.features + ([self.target] if labelled else [])
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            raise DataError(
                f"{source} lacks column{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))} "
                f"that the model needs; its columns are: {', '.join(map(str, frame.columns))}"
            )
        kept, dropped = keep_rows(
            frame, self.target if labelled else None, [c for c in self.columns if c.missing == "drop_rows"]
        )
        rows = frame[kept] if not kept.all() else frame
        parts, unseen = [], {}
        for column in self.columns:
            series = rows[column.name]
            if column.kind == NUMERIC:
                parts.append(self._numeric(column, series, source)[:, None])
            elif column.kind == DATE:
                parts.append(self._date(column, series, source))
            else:
                onehot, n_unseen = self._categorical(column, series, source)
                parts.append(onehot)
                if n_unseen:
                    unseen[column.name] = n_unseen
        x = np.hstack(parts).astype("float32") if parts else np.zeros((len(rows), 0), "float32")
        y = self.targets(rows, source) if labelled else None
        return Encoded(x, y, kept, dropped, unseen)

    def _numeric(self, column: Column, series, source: str) -> np.ndarray:
        values = to_numbers(series, column.name, source, self.decimal)
        gaps = np.isnan(values)
        if gaps.any():
            _refuse_missing(column, series, gaps, source)
        return _filled_and_scaled(column, values, gaps)

    def _date(self, column: Column, series, source: str) -> np.ndarray:
        values, unreadable = date_values(series, column.format, [part.name for part in column.parts])
        gaps = np.isnan(values[column.parts[0].name])
        if gaps.any():
            _refuse_missing(column, series, gaps, source, unreadable)
        return np.column_stack([_filled_and_scaled(part, values[part.name], gaps) for part in column.parts])

    def _categorical(self, column: Column, series, source: str) -> tuple[np.ndarray, int]:
        import pandas as pd

        keys = category_keys(series)
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
            return to_numbers(column, self.target, source, self.decimal).astype("float32")
        import pandas as pd

        names = self.classes if self.task == "multiclass" else (self.labels or [0, 1])
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
                if len(names) > 20
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
    strategies = "mean, median, most_frequent, constant, drop_rows"
    if unreadable is not None and unreadable.any():
        first = series.index[unreadable.nonzero()[0][0]]
        count = int(unreadable.sum())
        written = f"in format {column.format!r}" if column.format else "like 2024-03-01 or 2024-03-01 12:30"
        raise DataError(
            f"{source}: column {column.name!r} holds dates, but {position(source, first)} holds "
            f"{series.loc[first]!r} ({count} such row{'s' if count > 1 else ''}), not a date {written}. Fix the "
            f"value, or choose what such cells become with data.columns.{column.name}.missing: {strategies}"
            f"{'' if column.format else f'; or give data.columns.{column.name}.format'}"
        )
    lines = positions(source, series.index[gaps][:5])
    raise DataError(
        f"missing (NaN) values in {source}: {column.name!r} ({int(gaps.sum())} rows) on {lines}"
        f"{', ...' if gaps.sum() > 5 else ''}. Choose a strategy with data.missing (or "
        f"data.columns.{column.name}.missing): {strategies}; or leave the column out with data.drop"
    )
