"""Fitting the preprocessing on the training rows, the same way for data in memory and streamed data.

`plan_columns` decides, before any row is read, the features, their kinds (`dlrun.data.kinds`) and how
each is to be fitted. `Fitter` then accumulates statistics chunk by chunk (the whole training frame is
one chunk in memory, a streamed CSV is many), so both ways of reading give the same numbers, and
`Fitter.finish` returns the `Preprocessing`. `Prepared` is what both ways hand to training.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlrun.data.csvfile import missing_texts
from dlrun.data.files import read_header
from dlrun.data.kinds import (
    CATEGORICAL,
    DATE,
    INFINITY,
    MOSTLY,
    NUMERIC,
    Kind,
    column_kinds,
    looks_like_numbers,
    number_pattern,
    select_features,
    sorted_labels,
)
from dlrun.data.preprocess import (
    DEFAULT_CATEGORY_FILL,
    Column,
    Preprocessing,
    category_keys,
    check_labels,
    date_values,
    label_of,
    missing_error,
    missing_mask,
    not_a_date_error,
    task_of,
    to_numbers,
)
from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions, DataSpec, label_text

SHOWN_GAPS = 5
"""Lines a message about empty cells names."""


@dataclass
class Prepared:
    """Model-ready data and what made it: arrays in memory, or a `Stream` over the CSV."""

    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_valid: np.ndarray | None
    y_valid: np.ndarray | None
    preprocessing: Preprocessing
    sha256: dict[str, str]
    """sha256 of each CSV read, by path."""
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    rows: dict[str, int] = field(default_factory=dict)
    """Rows used per part: train, validation, test."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows left out: missing_target (empty target), missing_values (data.missing: drop_rows)."""
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per part (validation, test), rows per column whose category was not in the training rows."""
    stream: Any = None
    """A `dlrun.data.stream.Stream` when the CSV is streamed; None when the arrays above hold the data."""
    w_train: np.ndarray | None = None
    w_valid: np.ndarray | None = None
    w_test: np.ndarray | None = None
    """Sample weights of each part's rows (data.weight_column); None without a weight column, or when streamed."""
    class_counts: dict[Any, int] = field(default_factory=dict)
    """Training rows per class label (classification only)."""
    warnings: list[str] = field(default_factory=list)
    """What the fitted data says is likely a mistake: an input that is constant on the training rows."""
    split: dict[str, Any] | None = None
    """How the training file's rows were split (`dlrun.data.split`); None when no rows were held out of it."""

    @property
    def has_test(self) -> bool:
        return self.rows.get("test", 0) > 0


@dataclass
class Plan:
    """How a column is to be fitted, before the data is seen."""

    name: str
    kind: str
    missing: str
    fill_value: float | int | str | None
    scale: str
    format: str | None = None
    """A date column's strptime format; None for ISO dates."""
    parts: tuple[str, ...] = ()
    """A date column's parts, each fitted like a numeric column."""


@dataclass
class Columns:
    """What is decided before any row is read: the task, the features, their kinds and plans."""

    task: str
    target: str
    header: list[str]
    features: list[str]
    kinds: dict[str, Kind]
    plans: list[Plan]

    @property
    def drop_rows(self) -> list[Plan]:
        """Plans of the columns whose gaps remove the row."""
        return [plan for plan in self.plans if plan.missing == "drop_rows"]

    weight: str | None = None
    """The sample-weight column, if any."""

    @property
    def dropped_columns(self) -> list[str]:
        """Columns of the training CSV that the model does not use (as input, target or weight)."""
        return [c for c in self.header if c not in self.features and c not in (self.target, self.weight)]

    @property
    def text_columns(self) -> list[str]:
        """Columns to read as text (`csvfile.read_chunks`): categorical and date features."""
        return [plan.name for plan in self.plans if plan.kind in (CATEGORICAL, DATE)]

    def fitter(self, spec: DataSpec, keep_values: bool = True) -> Fitter:
        """Return a `Fitter` for these plans (`keep_values=False` when streaming)."""
        return Fitter(
            self.plans,
            self.target,
            self.task,
            spec.path,
            spec.csv,
            keep_values=keep_values,
            max_categories=spec.max_categories,
            inferred={name for name, kind in self.kinds.items() if not kind.declared},
            weight=self.weight,
        )


def plan_columns(spec: DataSpec, loss: str) -> Columns:
    """Read the training file's header and first rows, decide each feature's kind and how it is fitted.

    Raises:
        DataError: a missing file or column, a ragged row among the first ones, a column that cannot be used.
    """
    header = read_header(spec.path, spec.csv)
    features = select_features(header, spec, spec.path)
    kinds = column_kinds(spec, header, features)
    return Columns(task_of(loss), spec.target, header, features, kinds, plans_for(spec, kinds), spec.weight_column)


def plans_for(spec: DataSpec, kinds: dict[str, Kind]) -> list[Plan]:
    """Combine the columns' kinds with the spec's per-column and data-set-wide settings."""
    plans = []
    for name, kind in kinds.items():
        column = spec.columns.get(name)
        missing = (column.missing if column else None) or spec.missing
        if kind.kind == CATEGORICAL and missing in ("mean", "median") and not (column and column.missing):
            missing = "most_frequent"  # a data-set-wide mean/median means the most frequent category here
        fill = column.fill_value if column is not None and column.fill_value is not None else spec.fill_value
        scale = (column.scale if column else None) or spec.scale
        plans.append(Plan(name, kind.kind, missing, fill, scale, kind.format, kind.parts))
    return plans


_YAML_WORDS = {"true": ("true", "yes", "y", "on"), "false": ("false", "no", "n", "off")}
"""What YAML 1.1 reads as true or false in an unquoted key: `yes: 5` may mean a label 'yes'."""


def class_weights(setting: str | dict[str, float] | None, pre: Preprocessing, counts: dict) -> dict[int, float] | None:
    """Return each class id's weight for `model.fit(class_weight=...)`, from `training.class_weight`.

    `balanced` gives a class n_rows / (n_classes * its rows), counted on the training rows (scikit-learn's
    rule); a mapping names classes by the CSV's labels (as `label_text` writes them), others weigh 1.

    Raises:
        DataError: a label in the mapping is not a class of the target.
    """
    labels = pre.class_labels
    if setting is None or labels is None:
        return None
    if setting == "balanced":
        total = sum(counts.get(label, 0) for label in labels)
        return {i: total / (len(labels) * counts[label]) for i, label in enumerate(labels)}
    weights = {i: 1.0 for i in range(len(labels))}
    texts = [label_text(label) for label in labels]
    for key, weight in setting.items():
        matches = [i for i, text in enumerate(texts) if text == key]
        if not matches and key in _YAML_WORDS:
            matches = [i for i, text in enumerate(texts) if text.lower() in _YAML_WORDS[key]]
        if len(matches) != 1:
            quote = (
                "; YAML reads unquoted yes/no/on/off as true/false, so quote such labels" if key in _YAML_WORDS else ""
            )
            raise DataError(
                f"training.class_weight: {key!r} is not a class of target {pre.target!r}; its classes are "
                f"{', '.join(texts)} (give the labels as the CSV writes them{quote})"
            )
        weights[matches[0]] = weight
    return weights


def weights_by_label(weights: dict[int, float] | None, pre: Preprocessing) -> dict[str, float] | None:
    """Return class weights by the CSV's labels (as `label_text` writes them), for summary.json and `dlrun check`."""
    if weights is None:
        return None
    return {label_text(label): round(weights[i], 6) for i, label in enumerate(pre.class_labels)}


def check_target(frame, spec: DataSpec, task: str, source: str) -> None:
    """Refuse a target that is empty everywhere, or text when the loss needs numbers."""
    column = frame[spec.target]
    present = column[~missing_mask(column, missing_texts(spec.csv))]
    if present.empty:
        raise DataError(
            f"data.target: column {spec.target!r} is empty in every row of {source}; there is nothing "
            "to learn from. Check data.target and data.csv.separator"
        )
    if task == "regression" and present.dtype.kind not in "biuf":
        text = present.astype("string").str.strip()
        numbers = text.str.fullmatch(number_pattern(spec.csv.decimal)) | text.str.fullmatch(INFINITY)
        numbers = numbers.fillna(False).to_numpy(dtype=bool)
        if numbers.mean() < MOSTLY:  # a few odd cells are named with their line when converted
            example = present[~numbers].iloc[0]  # a cell that is not a number
            raise DataError(
                f"data.target: column {spec.target!r} in {source} holds text like {example!r}; the loss "
                "needs numbers. For class labels use loss: sparse_categorical_crossentropy with a softmax output "
                "layer (or binary_crossentropy for two classes)"
            )


# --- statistics, chunk by chunk ----------------------------------------------------------------------


def _numeric_stats(keep_values: bool) -> dict[str, Any]:
    return {
        "n": 0,
        "mean": 0.0,
        "m2": 0.0,
        "min": math.inf,
        "max": -math.inf,
        "gaps": 0,
        "values": [] if keep_values else None,
    }


class Fitter:
    """Accumulate training-row statistics chunk by chunk; `finish` turns them into a `Preprocessing`.

    Numeric columns (and each part of a date column) keep count, mean, squared deviations, min and max
    (merged exactly across chunks); categorical columns keep value counts. Median and most_frequent of
    a number need every value, so they are refused when streaming (`keep_values=False`).
    """

    def __init__(
        self,
        plans: list[Plan],
        target: str,
        task: str,
        source: str,
        options: CsvOptions | None = None,
        keep_values: bool = True,
        max_categories: int = 50,
        inferred: set[str] | None = None,
        weight: str | None = None,
    ):
        self.plans, self.target, self.task, self.source = plans, target, task, source
        self.options = options or CsvOptions()
        self.na = missing_texts(self.options)
        self.max_categories, self.inferred, self.weight = max_categories, inferred or set(), weight
        self.stats: dict[str, Any] = {}
        for plan in plans:
            _check_plan(plan, keep_values)
            values = plan.missing in ("median", "most_frequent")
            if plan.kind == NUMERIC:
                self.stats[plan.name] = _numeric_stats(values)
            elif plan.kind == DATE:
                self.stats[plan.name] = {part: _numeric_stats(values) for part in plan.parts}
            else:
                self.stats[plan.name] = {"counts": Counter(), "gaps": 0}
        self.labels: Counter = Counter()
        self.rows = 0
        self.gaps: dict[str, tuple[int, list]] = {}
        """Per column whose `missing` is error: its empty cells in kept rows, and the first ones' row indexes."""
        self.not_dates: dict[str, tuple[int, tuple]] = {}
        """Per date column whose `missing` is error: its cells that are not dates, and the first one (index, value)."""

    def update(self, frame, numbers: dict[str, np.ndarray] | None = None) -> None:
        """Add training rows (already free of empty targets and drop_rows gaps) to the statistics.

        `numbers`: the rows' numeric columns as `check_cells` returned them (then each cell is parsed once,
        and the target was checked there); without it, they are parsed and the target checked here.
        """
        if numbers is None:
            numbers = {plan.name: self._numbers(plan, frame[plan.name]) for plan in self.plans if plan.kind == NUMERIC}
            self._check_target(frame[self.target])
        self.rows += len(frame)
        for plan in self.plans:
            stats, series = self.stats[plan.name], frame[plan.name]
            if plan.kind == NUMERIC:
                _add_numbers(stats, numbers[plan.name])
            elif plan.kind == DATE:
                values, _ = date_values(series, plan.format, list(plan.parts), self.na)
                for part in plan.parts:
                    _add_numbers(stats[part], values[part])
            else:
                self._add_categories(plan, stats, series)
        if self.task != "regression":
            for value, count in series_counts(frame[self.target].to_numpy(dtype=object)).items():
                self.labels[label_of(value)] += count

    def check_cells(self, frame) -> dict[str, np.ndarray]:
        """Refuse what no fitted statistic is needed to refuse (text or a non-finite number in a numeric column or
        the target), count the gaps of columns whose `missing` is error, and return each numeric column's numbers.

        Every kept row of the file passes here once, whichever part it is in; `update` then takes the
        training rows' numbers from the returned arrays (row-aligned with `frame`).
        """
        numbers = {}
        for plan in self.plans:
            if plan.kind == NUMERIC:
                numbers[plan.name] = values = self._numbers(plan, frame[plan.name])
                if plan.missing == "error":
                    self._count_gaps(plan.name, frame.index[np.isnan(values)])
            elif plan.kind == CATEGORICAL and plan.missing == "error":
                keys = category_keys(frame[plan.name], self.na)
                self._count_gaps(plan.name, frame.index[_isna(keys)])
            elif plan.kind == DATE and plan.missing == "error":
                self._count_dates(plan, frame[plan.name])
        self._check_target(frame[self.target])
        return numbers

    def _numbers(self, plan: Plan, series) -> np.ndarray:
        return to_numbers(series, plan.name, self.source, self.options)

    def _check_target(self, series) -> None:
        if self.task == "regression":
            to_numbers(series, self.target, self.source, self.options)
        else:
            check_labels(series, self.target, self.source, self.options)

    def _count_gaps(self, name: str, indexes) -> None:
        if len(indexes):
            count, first = self.gaps.get(name, (0, []))
            self.gaps[name] = (count + len(indexes), (first + list(indexes))[:SHOWN_GAPS])

    def _count_dates(self, plan: Plan, series) -> None:
        values, unreadable = date_values(series, plan.format, [plan.parts[0]], self.na)
        self._count_gaps(plan.name, series.index[np.isnan(values[plan.parts[0]])])
        if unreadable.any():
            first = unreadable.nonzero()[0][0]
            count, found = self.not_dates.get(plan.name, (0, None))
            found = found or (series.index[first], series.iloc[first])
            self.not_dates[plan.name] = (count + int(unreadable.sum()), found)

    def check_gaps(self) -> None:
        """Refuse the gaps (and, in a date column, the cells that are not dates) counted in columns whose `missing`
        is error, the first such column's, over the whole file.

        Raises:
            DataError: the column, how many rows, their first lines, and the strategies to choose from.
        """
        for plan in self.plans:
            if plan.name in self.not_dates:
                count, (index, value) = self.not_dates[plan.name]
                raise not_a_date_error(plan.name, plan.format, self.source, index, value, count)
            if plan.name in self.gaps:
                count, first = self.gaps[plan.name]
                raise missing_error(plan.name, self.source, count, first)

    def _add_categories(self, plan: Plan, stats: dict[str, Any], series) -> None:
        counts = series_counts(category_keys(series, self.na))
        stats["gaps"] += len(series) - sum(counts.values())
        stats["counts"].update(counts)
        if plan.name in self.inferred and len(stats["counts"]) > self.max_categories:
            raise DataError(
                f"column in {self.source} that cannot be used as model input: {plan.name!r} looks like free "
                f"text (more than {self.max_categories} distinct values, data.max_categories). Leave it out "
                f"with data.drop: [{plan.name}], or declare it with data.columns.{plan.name}.kind: categorical"
            )

    def finish(self, features: list[str], csv: dict[str, str], dropped_columns: list[str]) -> Preprocessing:
        """Return the fitted preprocessing.

        Raises:
            DataError: no training rows, an empty column, a classification target with a single class.
        """
        if self.rows == 0:
            raise DataError(
                f"{self.source}: no training rows left (after leaving out empty targets and "
                "drop_rows rows); check the target column and data.missing"
            )
        columns = [self._column(plan) for plan in self.plans]
        classes = labels = None
        if self.task != "regression":
            found = sorted_labels(self.labels)
            if len(found) < 2:
                raise DataError(
                    f"data.target: column {self.target!r} in {self.source} has a single class "
                    f"({found[0]!r}) in the training rows; a classifier needs at least two. Check the target column "
                    "or the split"
                )
            if self.task == "multiclass":
                classes = found
            elif len(found) > 2:
                shown = ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
                if looks_like_numbers(found):
                    raise DataError(
                        f"data.target: column {self.target!r} in {self.source} has {len(found)} distinct numbers "
                        f"({shown}): a number to predict, but a binary loss needs two classes; use loss: mae "
                        "(or mse) with a one-unit linear output layer"
                    )
                raise DataError(
                    f"data.target: column {self.target!r} in {self.source} has {len(found)} classes "
                    f"({shown}) but a binary loss needs two; use loss: "
                    "sparse_categorical_crossentropy with a softmax output layer"
                )
            elif found != [0, 1]:
                labels = found
        return Preprocessing(
            features, self.target, columns, classes, self.task, labels, csv, dropped_columns, self.weight
        )

    def constant_warnings(self) -> list[str]:
        """Warn of each column that holds one value in every training row (after filling gaps): its inputs
        teach the model nothing. A date column is named with the parts that do not vary (a Jan-1-only date:
        month and day). Call after `finish`, whose fill values the statistics then include."""
        found = []
        for plan in self.plans:
            stats = self.stats[plan.name]
            if plan.kind == DATE:
                same = {part: stats[part]["min"] for part in plan.parts if _constant(stats[part])}
                if not same:
                    continue
                shown = ", ".join(f"{part} {value:g}" for part, value in same.items())
                if len(same) < len(plan.parts):
                    keep = ", ".join(part for part in plan.parts if part not in same)
                    fix = f"keep the others with data.columns.{plan.name}.date_parts: [{keep}]"
                else:
                    fix = f"leave the column out with data.drop: [{plan.name}]"
                found.append(
                    f"date column {plan.name!r} has the same {'part' if len(same) == 1 else 'parts'} in every "
                    f"training row ({shown}): {'that input teaches' if len(same) == 1 else 'those inputs teach'} "
                    f"the model nothing; {fix}"
                )
            elif plan.kind == NUMERIC and _constant(stats):
                found.append(
                    f"column {plan.name!r} is {stats['min']:g} in every training row: it teaches the model nothing; "
                    f"leave it out with data.drop: [{plan.name}]"
                )
            elif plan.kind == CATEGORICAL and len(stats["counts"]) == 1 and plan.missing != "constant":
                (value,) = stats["counts"]
                found.append(
                    f"column {plan.name!r} is {value!r} in every training row: it teaches the model nothing; leave "
                    f"it out with data.drop: [{plan.name}]"
                )
        return found

    def _column(self, plan: Plan) -> Column:
        stats = self.stats[plan.name]
        if plan.kind == CATEGORICAL:
            return self._categorical_column(plan, stats)
        if plan.kind == DATE:
            parts = [_numeric_column(part, plan, stats[part], self.source) for part in plan.parts]
            return Column(plan.name, DATE, plan.missing, format=plan.format, parts=parts)
        return _numeric_column(plan.name, plan, stats, self.source)

    def _categorical_column(self, plan: Plan, stats: dict[str, Any]) -> Column:
        counts: Counter = stats["counts"]
        if not counts:
            raise DataError(
                f"column {plan.name!r} is empty in every training row of {self.source}: leave it out "
                f"with data.drop: [{plan.name}]"
            )
        column = Column(plan.name, CATEGORICAL, plan.missing, categories=sorted(counts))
        if plan.missing == "most_frequent":
            column.fill_value = max(sorted(counts), key=lambda k: counts[k])
        elif plan.missing == "constant":
            fill = plan.fill_value if plan.fill_value is not None else DEFAULT_CATEGORY_FILL
            column.fill_value = category_keys(_series([fill]), ())[0]  # the fill is a value, never a gap
        return column


def _check_plan(plan: Plan, keep_values: bool) -> None:
    if plan.kind == CATEGORICAL and plan.missing in ("mean", "median"):
        raise DataError(
            f"data.columns.{plan.name}.missing: {plan.missing} does not apply to categorical "
            f"column {plan.name!r}; use most_frequent, constant, drop_rows or error"
        )
    if plan.kind in (NUMERIC, DATE) and isinstance(plan.fill_value, str) and plan.missing == "constant":
        raise DataError(
            f"data.columns.{plan.name}.fill_value: {plan.kind} column {plan.name!r} cannot be filled "
            f"with text {plan.fill_value!r}; give a number"
        )
    if plan.kind in (NUMERIC, DATE) and plan.missing in ("median", "most_frequent") and not keep_values:
        raise DataError(
            f"data.columns.{plan.name}.missing: {plan.missing} needs every value of {plan.name!r} "
            "in memory, which streaming avoids; use mean or constant, or set data.streaming: false"
        )


def _add_numbers(stats: dict[str, Any], values: np.ndarray) -> None:
    present = values[~np.isnan(values)]
    stats["gaps"] += len(values) - len(present)
    if stats["values"] is not None:
        stats["values"].append(present)
    if len(present):
        _merge(stats, present)


def _numeric_column(name: str, plan: Plan, stats: dict[str, Any], source: str) -> Column:
    """Return a fitted numeric column (or date part): its fill value, then scaling of the filled values."""
    if stats["n"] == 0:
        raise DataError(
            f"column {plan.name!r} is empty in every training row of {source}: leave it out "
            f"with data.drop: [{plan.name}]"
        )
    fill = None
    if plan.missing == "mean":
        fill = stats["mean"]
    elif plan.missing == "median":
        fill = float(np.median(np.concatenate(stats["values"])))
    elif plan.missing == "most_frequent":
        values, counts = np.unique(np.concatenate(stats["values"]), return_counts=True)
        fill = float(values[np.argmax(counts)])  # ties: the smallest value
    elif plan.missing == "constant":
        fill = float(plan.fill_value) if plan.fill_value is not None else 0.0
    if fill is not None and stats["gaps"]:
        # The scaler sees the imputed column (as an imputer followed by a scaler would).
        _merge(stats, np.full(stats["gaps"], fill))
    n, mean, m2, low, high = stats["n"], stats["mean"], stats["m2"], stats["min"], stats["max"]
    column = Column(name, NUMERIC, plan.missing, fill, plan.scale)
    if plan.scale == "minmax":
        column.offset, spread = low, high - low
    elif plan.scale == "standard":
        column.offset, spread = mean, math.sqrt(m2 / n)
    else:
        spread = 1.0
    column.divisor = spread if spread > 0 else 1.0  # a constant column scales to 0, never divides by 0
    return column


def _constant(stats: dict[str, Any]) -> bool:
    """Whether a numeric column (or date part) held one value in every training row."""
    return stats["n"] > 0 and stats["min"] == stats["max"]


def _merge(stats: dict[str, Any], values: np.ndarray) -> None:
    """Merge a batch of values into running count/mean/M2/min/max (Chan et al.'s parallel update)."""
    n_b = len(values)
    mean_b = float(values.mean())
    m2_b = float(((values - mean_b) ** 2).sum())
    n_a, mean_a = stats["n"], stats["mean"]
    n = n_a + n_b
    delta = mean_b - mean_a
    stats["mean"] = mean_a + delta * n_b / n
    stats["m2"] += m2_b + delta * delta * n_a * n_b / n
    stats["n"] = n
    stats["min"] = min(stats["min"], float(values.min()))
    stats["max"] = max(stats["max"], float(values.max()))


def series_counts(values: np.ndarray) -> dict:
    """Count the non-empty values of an object array (fast, through pandas)."""
    import pandas as pd

    return {k: int(v) for k, v in pd.Series(values, dtype=object).value_counts(dropna=True).items()}


def _isna(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _series(values: list):
    import pandas as pd

    return pd.Series(values)
