"""What each feature column is (numeric, categorical or date) or why it cannot be used, from its cell texts.

One rule for every command: `dlrun validate`, `init`, `check`, `train` and streaming all call
`infer_kind` on the same cells, those of the first `KIND_ROWS` data rows of the training file (before
any split), read as text with the standard library (a Parquet or Feather file's with pyarrow, its schema
telling numbers and dates apart); so no two commands can answer differently, and none of them imports
pandas to ask. Kinds describe a column, not fitted statistics: checks that need every row (a text cell
far down a numeric column, too many categories) stay with the fitting.

The cell rules here, `is_number` and `parse_date`, are also the ones training applies when it converts
a column, so a column's kind and its conversion cannot disagree.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from dlrun.data.arrowfile import INTEGER, NUMBER, TEMPORAL, TEXT, UNUSABLE
from dlrun.data.csvfile import SAMPLE_ROWS, missing_texts
from dlrun.data.files import first_rows, read_header, stored_kinds
from dlrun.errors import DataError
from dlrun.spec.models import DATE_PARTS, DataSpec

UNUSABLE_REASON = "holds lists, structs or bytes, which cannot be model inputs"
"""Why a Parquet or Feather column of such a type is refused: no declared kind makes it usable."""
KIND_ROWS = SAMPLE_ROWS
"""Data rows, from the top of the training file, that decide the kind of every column."""
NUMERIC, CATEGORICAL, DATE = "numeric", "categorical", "date"
TIME_PARTS = ("hour", "minute")
MOSTLY = 0.9
"""Share of a column's cells that makes it numeric (or date); the others are reported by line when converted."""

_NUMBERS = {
    mark: re.compile(rf"[+-]?(?:[0-9]+(?:{re.escape(mark)}[0-9]*)?|{re.escape(mark)}[0-9]+)(?:[eE][+-]?[0-9]+)?")
    for mark in (".", ",")
}
_ALL_NUMBERS = {mark: re.compile(rf"(?:{pattern.pattern}\n)*{pattern.pattern}") for mark, pattern in _NUMBERS.items()}
LARGEST = 3.4028234663852886e38
"""The largest float32, the type of every model input: a number beyond it would reach the model as infinity."""
_EXPONENT = re.compile(r"[eE]\+?[0-9]{2}")  # with 39 characters or more, what might exceed LARGEST
INFINITY = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)
"""The words for an infinite number that pandas and Python read as one: inf, -Inf, Infinity, +INFINITY."""
_INTEGER = re.compile(r"[+-]?[0-9]+")
ISO_DATE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})"
    r"(?:[ T](?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:[.,][0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_OTHER_DATE = re.compile(r"[0-9]{1,4}([/.-])[0-9]{1,2}\1[0-9]{1,4}(?:[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?)?")
_DATE_FORMATS = ("%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y", "%d/%m/%y", "%m/%d/%y")
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%T", "%X", "%c")
_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|key|index)$|^(id|idx|index|uuid)$", re.IGNORECASE)


def number_pattern(decimal: str = ".") -> re.Pattern:
    """Return the rule for a number cell: ASCII digits, the decimal mark, an exponent (`1.5`, `-2`, `3e-4`).

    Training converts a numeric column by this same pattern, so `1_000`, `inf` or other scripts' digits,
    which Python's float() would read, are text everywhere.
    """
    return _NUMBERS[decimal]


def is_number(cell: str, decimal: str = ".") -> bool:
    """Tell whether a cell (spaces stripped) is a usable number by `number_pattern`: finite, and within
    float32's range (`1e39` and `1e999` are not; see `is_infinite`)."""
    text = cell.strip()
    if _NUMBERS[decimal].fullmatch(text) is None:
        return False
    return abs(float(text.replace(decimal, "."))) <= LARGEST


NUMBER_LIKE_CLASSES = 20
"""More distinct whole-number labels than this look like a quantity to predict, not classes."""


def sorted_labels(labels) -> list:
    """Return target labels in order: numbers by value (1, 1.5, 2), then text."""
    return sorted(labels, key=lambda v: (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)))


def looks_like_numbers(labels) -> bool:
    """Whether a target's labels look like a quantity to predict rather than classes: every one a number,
    and some not whole (14.5) or more than `NUMBER_LIKE_CLASSES` of them."""
    labels = list(labels)
    if not labels or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return False
    return len(labels) > NUMBER_LIKE_CLASSES or any(isinstance(v, float) for v in labels)


def target_mismatch(spec: DataSpec, loss: str, task: str) -> str | None:
    """Say when a classification loss meets a target whose first `KIND_ROWS` cells look like a number to
    predict (`looks_like_numbers`); None otherwise. `validate` warns with it before anything trains."""
    if task == "regression":
        return None
    header = read_header(spec.path, spec.csv)
    index, na, decimal = header.index(spec.target), missing_texts(spec.csv), spec.csv.decimal
    labels = set()
    for row in first_rows(spec.path, spec.csv, KIND_ROWS):
        cell = row[index].strip() if index < len(row) else ""
        if not cell or cell in na:
            continue
        if not is_number(cell, decimal):
            return None
        value = float(cell.replace(decimal, "."))
        labels.add(int(value) if value.is_integer() else value)
    if not looks_like_numbers(labels):
        return None
    found = sorted_labels(labels)
    shown = ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
    return (
        f"data.target: column {spec.target!r} holds {len(found)} distinct numbers in its first rows ({shown}): "
        f"a number to predict, but loss {loss!r} is for classes; use loss: mae (or mse) with a one-unit linear "
        "output layer"
    )


def is_infinite(cell: str, decimal: str = ".") -> bool:
    """Tell whether a cell (spaces stripped) is a non-finite number: `inf`, `-Infinity`, or one beyond float32's
    range (`1e39`, `1e400`), which a model would see as infinity.

    Such a cell is a number that no model can use: in a numeric column it is an error naming its line,
    or a missing cell with `data.csv.infinite: missing`.
    """
    text = cell.strip()
    if INFINITY.fullmatch(text):
        return True
    return _NUMBERS[decimal].fullmatch(text) is not None and not abs(float(text.replace(decimal, "."))) <= LARGEST


def parse_date(cell: str, format: str | None = None) -> datetime | None:
    """Return a cell's date and time, or None when it is not one.

    Without `format`, ISO dates and datetimes are read (`2024-03-01`, `2024-03-01 12:30`,
    `2024-03-01T12:30:00`; seconds' fractions and a time zone are allowed and ignored); with it, Python's
    `datetime.strptime` reads the cell.
    """
    text = cell.strip()
    if format is not None:
        try:
            return datetime.strptime(text, format)
        except ValueError:
            return None
    match = ISO_DATE.fullmatch(text)
    if match is None:
        return None
    fields = match.group("year", "month", "day", "hour", "minute", "second")
    try:
        return datetime(*(int(value or 0) for value in fields))
    except ValueError:  # 2024-02-30
        return None


def has_time(cell: str, format: str | None = None) -> bool:
    """Tell whether a date cell (or every cell of its `format`) carries a time of day."""
    if format is not None:
        return any(directive in format for directive in _TIME_DIRECTIVES)
    match = ISO_DATE.fullmatch(cell.strip())
    return match is not None and match.group("hour") is not None


@dataclass(frozen=True)
class Kind:
    """What a feature column is, and how that was decided."""

    kind: str | None
    """numeric, categorical or date; None when the column cannot be used as it is."""
    reason: str = ""
    """Why the column cannot be used (kind None): empty, an id, free text, dates not in ISO form."""
    declared: bool = False
    """Decided by the spec's data.columns.<name> (kind, format or date_parts), not by the data."""
    format: str | None = None
    """A date column's strptime format; None for ISO dates."""
    parts: tuple[str, ...] = ()
    """A date column's parts, each a numeric model input (`when.year`, `when.month`, ...)."""


def infer_kind(name: str, cells: list[str], spec: DataSpec, complete: bool = False, stored: str = TEXT) -> Kind:
    """Decide a feature column's kind from its cells; the spec's data.columns.<name> wins over the data.

    A CSV stores text, judged by the rules below. A Parquet or Feather column's type decides first:
    numbers are numeric (whole numbers that look like an id are refused, as in a CSV), dates and
    timestamps are dates, strings and booleans are judged as CSV text.

    Args:
        name: the column.
        cells: its cells in the first `KIND_ROWS` data rows of the training file, as text.
        spec: the data section (declared kinds, max_categories, the decimal mark).
        complete: `cells` are the whole column (the file has at most `KIND_ROWS` rows); only wording.
        stored: what the file stores in the column (`dlrun.data.arrowfile.stored_kind`); TEXT for a CSV.
    """
    column = spec.columns.get(name)
    na = missing_texts(spec.csv)
    present = [text for text in (cell.strip() for cell in cells) if text not in na]
    declared = column.kind if column is not None else None
    if declared is None and column is not None and (column.format or column.date_parts):
        declared = DATE
    if stored == UNUSABLE:
        return Kind(None, UNUSABLE_REASON, declared=declared is not None)
    if declared in (NUMERIC, CATEGORICAL):
        return Kind(declared, declared=True)
    if declared == DATE:
        if stored == TEMPORAL and column.format:
            return Kind(
                None,
                f"is stored as dates and times, which need no format: remove data.columns.{name}.format",
                declared=True,
            )
        return _date(name, present, column.format, column.date_parts, declared=True)
    where = "every row" if complete else f"the first {len(cells):,} rows"
    if not present:
        return Kind(None, f"empty in {where}")
    if stored in (NUMBER, INTEGER):
        if stored == INTEGER and _looks_like_id(name, present, Counter(present)):
            return Kind(None, f"looks like an id (a different whole number in every row, e.g. {present[0]!r})")
        return Kind(NUMERIC)
    if stored == TEMPORAL:
        return _date(name, present, None, None, declared=False)
    counts = Counter(present)
    infinite = _infinite(counts, spec.csv.decimal)
    if infinite and spec.csv.infinite == "missing":  # gaps, not values
        present = [cell for cell in present if cell not in infinite]
        counts = Counter(present)
        if not present:
            return Kind(None, f"empty in {where} (its numbers are all infinite, read as missing)")
    numbers = _numbers(counts, spec.csv.decimal) + sum(infinite.values())  # an infinite one is named when converted
    if numbers >= MOSTLY * len(present):
        if _looks_like_id(name, present, counts):
            return Kind(None, f"looks like an id (a different whole number in every row, e.g. {present[0]!r})")
        return Kind(NUMERIC)
    dates = sum(n for cell, n in counts.items() if parse_date(cell) is not None)
    if dates >= MOSTLY * len(present):
        return _date(name, present, None, None, declared=False)
    if sum(n for cell, n in counts.items() if _OTHER_DATE.fullmatch(cell)) >= MOSTLY * len(present):
        return Kind(None, _other_dates(name, list(counts)))
    distinct = len(counts)
    if distinct == len(present) and len(present) > 2:
        return Kind(None, f"looks like an id or names (a different value in every row, e.g. {present[0]!r})")
    if distinct > spec.max_categories or (len(present) >= 20 and distinct > len(present) / 2):
        return Kind(
            None,
            f"looks like free text ({distinct} distinct values in {len(present)} rows, e.g. {present[0]!r}; "
            f"data.max_categories is {spec.max_categories})",
        )
    return Kind(CATEGORICAL)


def _numbers(counts: Counter, decimal: str) -> int:
    """Count the cells that are numbers by `is_number`; one regex pass over the column when all of them are."""
    joined = "\n".join(counts)
    if _ALL_NUMBERS[decimal].fullmatch(joined) and not _might_exceed(counts, joined):
        return sum(counts.values())
    return sum(n for cell, n in counts.items() if is_number(cell, decimal))


def _infinite(counts: Counter, decimal: str) -> dict[str, int]:
    """Return the non-finite numbers among distinct cells, with their counts (cheap when there is none)."""
    joined = "\n".join(counts)
    if "inf" not in joined.lower() and not _might_exceed(counts, joined):  # one pass, not one per cell
        return {}
    return {cell: n for cell, n in counts.items() if is_infinite(cell, decimal)}


def _might_exceed(counts: Counter, joined: str) -> bool:
    """Tell whether a distinct cell might be a number beyond `LARGEST`, so cells must be checked one by one."""
    return _EXPONENT.search(joined) is not None or max(map(len, counts), default=0) > 38


def _date(name: str, present: list[str], format: str | None, parts, declared: bool) -> Kind:
    if declared and present and not any(parse_date(cell, format) for cell in present[:1000]):
        shown = f"format {format!r}" if format else "ISO form (2024-03-01, 2024-03-01 12:30)"
        return Kind(
            None,
            f"declared a date, but no cell reads as a date in {shown}, e.g. {present[0]!r}; "
            f"set data.columns.{name}.format to how its dates are written (a strptime format like '%d/%m/%Y')",
            declared=True,
        )
    if parts is None:
        timed = has_time("", format) if format is not None else any(has_time(cell) for cell in present)
        parts = [p for p in DATE_PARTS if timed or p not in TIME_PARTS]
    return Kind(DATE, declared=declared, format=format, parts=tuple(parts))


def _looks_like_id(name: str, present: list[str], counts: Counter) -> bool:
    if len(present) < 10 or len(counts) != len(present) or not all(_INTEGER.fullmatch(c) for c in counts):
        return False
    ordered = sorted(int(c) for c in counts)
    return bool(_ID_NAME.search(name)) or all(b - a == 1 for a, b in zip(ordered, ordered[1:]))


def _other_dates(name: str, distinct: list[str]) -> str:
    sample = [cell for cell in distinct if _OTHER_DATE.fullmatch(cell)][:200]
    timed = ":" in sample[0]
    fitting = []
    for date_format in _DATE_FORMATS:
        for time_format in (" %H:%M:%S", " %H:%M") if timed else ("",):
            if all(parse_date(cell, date_format + time_format) for cell in sample):
                fitting.append(date_format + time_format)
    if len(fitting) == 1:
        fix = f"set data.columns.{name}.format: {fitting[0]!r}"
    elif fitting:
        fix = f"set data.columns.{name}.format to the one it is: {' or '.join(map(repr, fitting[:2]))}"
    else:
        fix = f"set data.columns.{name}.format to how they are written (a strptime format like '%d/%m/%Y')"
    return f"holds dates not in ISO form (e.g. {sample[0]!r}): {fix}"


# --- every column of a spec ---------------------------------------------------------------------------


def infer_kinds(
    header: list[str],
    rows: list[list[str]],
    features: list[str],
    spec: DataSpec,
    stored: dict[str, str] | None = None,
) -> dict[str, Kind]:
    """Return each feature's `Kind`, from the cells of `rows` (the first `KIND_ROWS` data rows).

    `stored` tells what a Parquet or Feather file stores in each column; None: text (a CSV).
    """
    complete = len(rows) < KIND_ROWS
    stored = stored or {}
    return {
        name: infer_kind(name, [row[index] for row in rows], spec, complete, stored.get(name, TEXT))
        for name, index in ((name, header.index(name)) for name in features)
    }


def unusable_error(kinds: dict[str, Kind], source: str) -> DataError | None:
    """Return one error naming every column that cannot be used as it is, with the fix; None if there is none."""
    refused = [(name, kind.reason) for name, kind in kinds.items() if kind.kind is None]
    if not refused:
        return None
    listed = "; ".join(f"{name!r}: {why}" for name, why in refused)
    names = ", ".join(name for name, _ in refused)
    stored = [name for name, why in refused if why == UNUSABLE_REASON]
    declare = "declare how to use a column with data.columns.<name>.kind: categorical, numeric or date"
    if not stored:
        fix = f", or {declare}"
    elif len(stored) == len(refused):
        fix = (
            ", or store its values as columns of numbers or text"
            if len(stored) == 1
            else (", or store their values as columns of numbers or text")
        )
    else:
        fix = f", or {declare} (not {', '.join(stored)}: store lists and structs as columns of numbers or text)"
    return DataError(
        f"feature column{'s' if len(refused) > 1 else ''} in {source} that cannot be used as "
        f"{'they are' if len(refused) > 1 else 'it is'}: {listed}. Leave {'them' if len(refused) > 1 else 'it'} "
        f"out with data.drop: [{names}]{fix}"
    )


def column_kinds(spec: DataSpec, header: list[str], features: list[str]) -> dict[str, Kind]:
    """Return the kind of every feature, judged on the first `KIND_ROWS` rows of the training file.

    Raises:
        DataError: the file cannot be read, or a column cannot be used as it is (all such columns named).
    """
    stored = stored_kinds(spec.path, spec.csv)
    kinds = infer_kinds(header, first_rows(spec.path, spec.csv, KIND_ROWS), features, spec, stored)
    error = unusable_error(kinds, spec.path)
    if error is not None:
        raise error
    return kinds


def select_features(columns: list[str], spec: DataSpec, source: str) -> list[str]:
    """Return the feature columns the spec asks for, checked against a CSV's columns.

    Raises:
        DataError: the target, the weight column, a feature, a dropped or a configured column is not in the CSV,
            or no feature is left.
    """
    available = ", ".join(columns)
    if spec.target not in columns:
        raise DataError(f"data.target: column {spec.target!r} is not in {source}; its columns are: {available}")
    if spec.weight_column is not None and spec.weight_column not in columns:
        raise DataError(
            f"data.weight_column: column {spec.weight_column!r} is not in {source}; its columns are: {available}"
        )
    for key, wanted in (
        ("data.features", spec.features or []),
        ("data.drop", spec.drop),
        ("data.columns", list(spec.columns)),
    ):
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(f"{key}: {', '.join(map(repr, missing))} not in {source}; its columns are: {available}")
    left_out = set(spec.drop) | {c for c, s in spec.columns.items() if s.kind == "ignore"} | {spec.weight_column}
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
