"""`dlrun export`: a trained run as a TensorFlow SavedModel that takes raw feature columns by name.

The `serving_default` signature takes one 1-D tensor per feature column (the target, dropped columns
and the weight column are none): a numeric column as float64 (NaN for a missing cell), a categorical or
date column as a string, its cell's text. Its graph applies the run's fitted `Preprocessing` with plain
TensorFlow ops that follow the same rules as `Preprocessing.apply`, op for op, under the run's own CSV
options: missing cells are the run's missing texts (`csvfile.missing_texts`) and, in a numeric column,
the numbers among them (`csvfile.missing_numbers`); a non-finite number is an error or a missing cell as
`data.csv.infinite` says; a category is the cell's text, spaces stripped (`preprocess.category_keys`);
then imputation, scaling in float64, one-hot with unseen categories as zeros, date parts read as
`kinds.parse_date` reads them. It calls the model and returns what `dlrun predict` writes: `prediction`
(regression), `probability` and `label` (binary), `probabilities` and `label` (multi-class). A row that
`predict` cannot encode (a gap in a column whose strategy is drop_rows or error, a non-finite number
under `infinite: error`) gets NaN and an empty label.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.data.csvfile import csv_options, missing_numbers, missing_texts
from dlrun.data.kinds import CATEGORICAL, DATE, ISO_DATE, LARGEST, NUMERIC
from dlrun.data.preprocess import Column, Preprocessing
from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions

SIGNATURE = "serving_default"
INFO = "assets.extra/dlrun_export.json"
WRITTEN = frozenset({"saved_model.pb", "fingerprint.pb", "variables", "assets", INFO.partition("/")[0]})
"""What an export puts in its folder: `--force` replaces a folder that holds nothing else."""
"""Beside the SavedModel (TF Serving's place for extra files): inputs, outputs, class order, conventions."""

_VALID_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*")  # what a SavedModel signature accepts
_FIELDS = ("year", "month", "day", "hour", "minute", "second")
# strptime's own patterns (CPython's _strptime.TimeRE) for the directives an export can read; a test
# checks them against datetime.strptime.
_DIRECTIVES = {
    "Y": ("year", r"([0-9][0-9][0-9][0-9])"),
    "y": ("year2", r"([0-9][0-9])"),
    "m": ("month", r"(1[0-2]|0[1-9]|[1-9])"),
    "d": ("day", r"(3[0-1]|[1-2][0-9]|0[1-9]|[1-9]| [1-9])"),
    "H": ("hour", r"(2[0-3]|[0-1][0-9]|[0-9])"),
    "M": ("minute", r"([0-5][0-9]|[0-9])"),
    "S": ("second", r"(6[0-1]|[0-5][0-9]|[0-9])"),
    "f": (None, r"[0-9]{1,6}"),
    "%": (None, "%"),
}
_CUMULATIVE_DAYS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_SPACE = "[" + "".join(f"\\x{{{code:x}}}" for code in range(0x3001) if chr(code).isspace()) + "]"
"""The spaces `str.strip` takes off (and so pandas' `.str.strip()`, and strptime's whitespace): tabs, line
breaks, U+001C-U+001F, no-break and other Unicode spaces, none above U+3000 (a test checks). RE2's `\\s`
and `tf.strings.strip` know only the ASCII ones."""


@dataclass
class Exported:
    """What `export` wrote."""

    out: Path
    inputs: dict[str, str]
    """Signature input name per feature column (the same unless the column's name is not a valid one)."""
    outputs: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def export(run_dir: str | Path, out: str | Path, force: bool = False, threshold: float = 0.5) -> Exported:
    """Write a run's model and fitted preprocessing as one SavedModel at `out`.

    Args:
        run_dir: a finished run directory.
        out: the SavedModel folder to write.
        force: replace `out` when it holds an earlier export.
        threshold: binary classification: the probability at which `label` is the second label.

    Raises:
        DataError: no such run, a run without a model, `out` exists, a date format the graph cannot read.
    """
    from dlrun.predict import check_threshold, load_trained

    check_threshold(threshold)
    out = Path(out)
    _check_out(out, force)
    run = load_trained(run_dir)
    pre = run.preprocessing
    check_exportable(pre)
    names = input_names(pre.features)
    info = _info(run_dir, pre, names, threshold)
    _write(_archive(run.model, pre, names, threshold), out, info)
    return Exported(out, names, list(info["outputs"]), info)


# --- checks ------------------------------------------------------------------------------------------


def _check_out(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise DataError(f"--out {out} exists: give a new folder, or add --force to replace an earlier export")
    if not out.is_dir() or not ((out / "saved_model.pb").is_file() or not any(out.iterdir())):
        raise DataError(
            f"--out {out} exists and is not a SavedModel: --force only replaces an earlier export; give a new folder"
        )
    added = sorted(p.name for p in out.iterdir() if p.name not in WRITTEN)
    if added:
        raise DataError(
            f"--out {out} holds files an export did not write ({', '.join(added)}), which --force would delete: "
            "move them out of it, or give a new folder"
        )


def check_exportable(pre: Preprocessing) -> None:
    """Refuse a run whose preprocessing the graph cannot reproduce (a date format with names or other fields).

    Raises:
        DataError: naming the column, the directive and what an export can read.
    """
    for column in pre.columns:
        if column.kind == DATE and column.format is not None:
            date_regex(column.format, column.name)


def input_names(features: list[str]) -> dict[str, str]:
    """Return each feature's signature input name: the column's own name when a SavedModel accepts it.

    Other names have each character outside letters, digits, `_`, `.` and `-` replaced by `_` (and
    `x` put in front of a leading `_` or `-`); a name already taken gets `_2`, `_3`, ...
    """
    names = {c: c for c in features if _VALID_NAME.fullmatch(c)}
    taken = set(names.values())
    for column in features:
        if column in names:
            continue
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", column)
        base = base if _VALID_NAME.fullmatch(base) else f"x{base}"
        name, number = base, 2
        while name in taken:
            name, number = f"{base}_{number}", number + 1
        names[column] = name
        taken.add(name)
    return {c: names[c] for c in features}


def date_regex(format: str | None, column: str = "") -> tuple[str, dict[str, tuple[int, str]]]:
    """Return an RE2 pattern for a date column's cells and the capture group of each field.

    None means ISO dates (`kinds.ISO_DATE` itself); a strptime format is translated as CPython's
    `_strptime` does it (whitespace matches any run of whitespace, letters match in either case).

    Returns:
        The pattern, and per field (year, month, day, hour, minute, second) its group and directive.

    Raises:
        DataError: the format uses a directive other than %Y %y %m %d %H %M %S %f %%, or one twice.
    """
    if format is None:
        return ISO_DATE.pattern, {f: (ISO_DATE.groupindex[f], f) for f in _FIELDS}
    pattern, groups, seen, index = "(?i)", {}, set(), 0
    while index < len(format):
        char = format[index]
        if char == "%":
            directive = format[index + 1 : index + 2]
            if directive not in _DIRECTIVES or (directive in seen and directive != "%"):
                _refuse_format(format, column, directive, directive in seen)
            seen.add(directive)
            name, regex = _DIRECTIVES[directive]
            if name is not None:
                groups["year" if name == "year2" else name] = (len(groups) + 1, directive)
            pattern += regex
            index += 2
        elif char.isspace():
            pattern += _SPACE + "+"
            while index < len(format) and format[index].isspace():
                index += 1
        else:
            pattern += char if char.isascii() and char.isalnum() else f"\\x{{{ord(char):x}}}"
            index += 1
    return pattern, groups


def _refuse_format(format: str, column: str, directive: str, twice: bool) -> None:
    what = f"uses %{directive} twice" if twice else f"uses %{directive}" if directive else "ends with a lone %"
    raise DataError(
        f"data.columns.{column}.format: {format!r} {what}, which an exported model cannot read in its graph "
        "(it reads %Y %y %m %d %H %M %S %f and literal characters). Use `dlrun predict` for this run, or "
        f"train with the dates of {column!r} written in ISO form (2024-03-01) or with numeric fields"
    )


# --- the graph: raw columns -> model inputs ------------------------------------------------------------


def strip(x):
    """Return string cells without leading and trailing spaces, as `str.strip` takes them off."""
    import tensorflow as tf

    return tf.strings.regex_replace(x, f"^{_SPACE}+|{_SPACE}+$", "")


def _among(x, values, dtype):
    """Return where a 1-D tensor's elements equal one of `values` (a sorted constant baked into the graph)."""
    import tensorflow as tf

    if not values:
        return tf.zeros_like(x, tf.bool)
    return tf.reduce_any(tf.equal(x[:, None], tf.constant(sorted(values), dtype)[None, :]), axis=1)


def _scaled(column: Column, values, gaps):
    """Fill gaps with the column's fill value (none: the row is unusable), then scale; float64 as numpy does."""
    import tensorflow as tf

    if column.fill_value is None:
        usable = ~gaps
        values = tf.where(gaps, tf.zeros_like(values), values)
    else:
        usable = tf.ones_like(gaps)
        values = tf.where(gaps, tf.constant(float(column.fill_value), tf.float64), values)
    return (values - column.offset) / column.divisor, usable


def numeric_inputs(column: Column, x, options: CsvOptions | dict | None = None):
    """Return a numeric column's model input ([N, 1], float32) and which rows are usable.

    A gap is NaN or one of the run's missing numbers (`csvfile.missing_numbers`: `-999.0` under
    `na_values: [-999]`). A non-finite number (an infinity, or beyond float32's range as `kinds.LARGEST`
    says) makes the row unusable, or is a gap with `data.csv.infinite: missing`, as `to_numbers` has it.
    """
    import tensorflow as tf

    options = csv_options(options)
    gaps = tf.math.is_nan(x) | _among(x, missing_numbers(options), tf.float64)
    infinite = (tf.abs(x) > LARGEST) & ~gaps
    if options.infinite == "missing":
        gaps, infinite = gaps | infinite, tf.zeros_like(infinite)
    values, usable = _scaled(column, tf.where(gaps | infinite, tf.zeros_like(x), x), gaps)
    return tf.cast(values, tf.float32)[:, None], usable & ~infinite


def categorical_inputs(column: Column, x, options: CsvOptions | dict | None = None):
    """Return a categorical column's one-hot inputs ([N, categories], float32) and which rows are usable.

    A cell is its text, spaces stripped, as `preprocess.category_keys` keys it: `007`, `7` and `7.0` are
    three categories and `true` is not `True`; a missing text of the run's (`csvfile.missing_texts`) is
    a gap. Any other text is an unseen category: all zeros.
    """
    import tensorflow as tf

    text = strip(x)
    missing = _among(text, missing_texts(csv_options(options)), tf.string)
    if column.fill_value is None:
        usable = ~missing
    else:
        usable = tf.ones_like(missing)
        text = tf.where(missing, tf.constant(str(column.fill_value)), text)
    hit = tf.equal(text[:, None], tf.constant(column.categories, tf.string)[None, :])
    return tf.cast(hit, tf.float32), usable


def date_fields(x, format: str | None, na: Collection[str]):
    """Read date cells in the graph: each field as int64 (strptime's defaults where absent), and which are dates.

    A cell is a date when its stripped text is not one of the missing texts `na` (`csvfile.missing_texts`),
    matches the pattern in full, and its fields make a real date and time (`datetime` would accept them):
    month 1-12, a day of that month, hour < 24, minute and second < 60, year >= 1.
    """
    import tensorflow as tf

    pattern, groups = date_regex(format)
    text = strip(x)
    matched = tf.strings.regex_full_match(text, pattern) & ~_among(text, na, tf.string)
    rewrite = ",".join(f"\\{groups[f][0]}" if f in groups else "" for f in _FIELDS)
    canonical = tf.strings.regex_replace(text, f"^(?:{pattern})$", rewrite)
    cells = tf.strings.split(tf.where(matched, canonical, "," * (len(_FIELDS) - 1)), ",")
    cells = strip(cells.to_tensor(default_value="", shape=[None, len(_FIELDS)]))
    fields = {}
    for index, name in enumerate(_FIELDS):
        cell = cells[:, index]
        number = tf.strings.to_number(tf.where(tf.equal(cell, ""), "0", cell), tf.int64)
        default = {"year": 1900, "month": 1, "day": 1}.get(name, 0)
        fields[name] = tf.where(tf.equal(cell, ""), tf.constant(default, tf.int64), number)
    if groups.get("year", (0, ""))[1] == "y":  # strptime: 00-68 are 2000-2068, 69-99 are 1969-1999
        fields["year"] += tf.where(fields["year"] <= 68, tf.constant(2000, tf.int64), 1900)
    return fields, matched & _real_date(fields)


def _leap(year):
    import tensorflow as tf

    return (tf.math.floormod(year, 4) == 0) & (tf.math.floormod(year, 100) != 0) | (tf.math.floormod(year, 400) == 0)


def _real_date(fields):
    import tensorflow as tf

    year, month, day = fields["year"], fields["month"], fields["day"]
    leap = _leap(year)
    lengths = tf.constant([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], tf.int64)
    length = tf.gather(lengths, tf.clip_by_value(month, 1, 12) - 1) + tf.cast(leap & (month == 2), tf.int64)
    return (
        (year >= 1)
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= length)
        & (fields["hour"] < 24)
        & (fields["minute"] < 60)
        & (fields["second"] < 60)
    )


def date_part_values(fields) -> dict[str, Any]:
    """Return every date part as float64, as `datetime` gives them (day_of_week 0 is Monday)."""
    import tensorflow as tf

    year, month, day = fields["year"], fields["month"], fields["day"]
    leap = _leap(year)
    before = tf.gather(tf.constant(_CUMULATIVE_DAYS, tf.int64), tf.clip_by_value(month, 1, 12) - 1)
    day_of_year = before + day + tf.cast(leap & (month > 2), tf.int64)
    previous = year - 1  # days since 0001-01-01 (a Monday), as date.toordinal() - 1 counts them
    days = previous * 365 + previous // 4 - previous // 100 + previous // 400 + day_of_year - 1
    parts = {
        "year": year,
        "month": month,
        "day": day,
        "day_of_week": tf.math.floormod(days, 7),
        "day_of_year": day_of_year,
        "hour": fields["hour"],
        "minute": fields["minute"],
    }
    return {name: tf.cast(value, tf.float64) for name, value in parts.items()}


def date_inputs(column: Column, x, options: CsvOptions | dict | None = None):
    """Return a date column's part inputs ([N, parts], float32) and which rows are usable."""
    import tensorflow as tf

    fields, is_date = date_fields(x, column.format, missing_texts(csv_options(options)))
    values = date_part_values(fields)
    inputs, usable = [], tf.ones_like(is_date)
    for part in column.parts:
        scaled, fine = _scaled(part, tf.where(is_date, values[part.name], 0.0), ~is_date)
        inputs.append(tf.cast(scaled, tf.float32))
        usable &= fine
    return tf.stack(inputs, axis=1), usable


def model_inputs(pre: Preprocessing, inputs: dict[str, Any], names: dict[str, str]):
    """Return the model's input matrix ([N, width], float32) from raw columns, and which rows are usable."""
    import tensorflow as tf

    parts, usable = [], None
    for column in pre.columns:
        x = inputs[names[column.name]]
        if column.kind == NUMERIC:
            encoded, fine = numeric_inputs(column, x, pre.options)
        elif column.kind == CATEGORICAL:
            encoded, fine = categorical_inputs(column, x, pre.options)
        else:
            encoded, fine = date_inputs(column, x, pre.options)
        parts.append(encoded)
        usable = fine if usable is None else usable & fine
    return tf.concat(parts, axis=1), usable


# --- the graph: model outputs -> what predict writes -------------------------------------------------


def _outputs(pre: Preprocessing, y, usable, threshold: float) -> dict[str, Any]:
    import tensorflow as tf

    nan = tf.constant(float("nan"), tf.float32)
    if pre.task == "regression":
        y = tf.where(usable[:, None], y, nan)
        return {"prediction": y[:, 0] if y.shape[-1] == 1 else y}
    if pre.task == "binary":
        probability = tf.where(usable, y[:, 0], nan)
        labels = [str(label) for label in (pre.labels or [0, 1])]
        chosen = tf.where(tf.cast(probability, tf.float64) >= threshold, labels[1], labels[0])
        return {"probability": probability, "label": tf.where(usable, chosen, "")}
    label = tf.gather(tf.constant([str(c) for c in pre.classes]), tf.argmax(y, axis=1))
    return {"probabilities": tf.where(usable[:, None], y, nan), "label": tf.where(usable, label, "")}


def _archive(model, pre: Preprocessing, names: dict[str, str], threshold: float):
    import keras
    import tensorflow as tf

    def serve(inputs):
        x, usable = model_inputs(pre, inputs, names)
        return _outputs(pre, model(x, training=False), usable, threshold)

    signature = {
        names[c.name]: tf.TensorSpec([None], tf.float64 if c.kind == NUMERIC else tf.string, name=names[c.name])
        for c in pre.columns
    }
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[signature])
    return archive


# --- writing -------------------------------------------------------------------------------------------


def _info(run_dir, pre: Preprocessing, names: dict[str, str], threshold: float) -> dict[str, Any]:
    """Return what `assets.extra/dlrun_export.json` says: enough to call the model without dlrun."""
    from dlrun import __version__

    inputs = [
        {
            "column": c.name,
            "input": names[c.name],
            "kind": c.kind,
            "dtype": "float64" if c.kind == NUMERIC else "string",
            **({"format": c.format or "ISO"} if c.kind == DATE else {}),
        }
        for c in pre.columns
    ]
    outputs = {
        "regression": {"prediction": "float32, NaN where the row could not be encoded"},
        "binary": {
            "probability": f"float32, of label {str((pre.labels or [0, 1])[1])!r}",
            "label": f"string, the second label at probability >= {threshold}; '' where probability is NaN",
        },
        "multiclass": {
            "probabilities": "float32 [rows, classes], in the order of classes",
            "label": "string, the most probable class; '' where probabilities are NaN",
        },
    }[pre.task]
    return {
        "run": str(Path(run_dir).resolve()),
        "dlrun": __version__,
        "signature": SIGNATURE,
        "task": pre.task,
        "inputs": inputs,
        "outputs": outputs,
        "classes": [str(c) for c in pre.classes] if pre.classes else None,
        "labels": [str(label) for label in (pre.labels or [0, 1])] if pre.task == "binary" else None,
        "threshold": threshold if pre.task == "binary" else None,
        "missing": _missing_info(pre.options),
    }


def _missing_info(options: CsvOptions) -> dict[str, Any]:
    """Return what the graph takes for a missing cell, and for a non-finite number, under the run's CSV options."""
    numbers = ", ".join(repr(v) for v in sorted(missing_numbers(options)))
    return {
        "numbers": "NaN" + (f", or a number equal to one of {numbers}" if numbers else ""),
        "strings": sorted(missing_texts(options)),  # after stripping spaces
        "infinite": {
            "error": "an infinite number, or one beyond float32's range, leaves its row without a prediction",
            "missing": "an infinite number, or one beyond float32's range, is a missing cell",
        }[options.infinite],
    }


def _write(archive, out: Path, info: dict[str, Any]) -> None:
    """Write into a fresh folder beside `out`, then move it into place; an earlier export goes last of all.

    Raises:
        DataError: the folder cannot be written (permissions, a full disk).
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise DataError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    model = work / "model"
    try:
        archive.write_out(str(model), verbose=False)
        (model / INFO).parent.mkdir(parents=True, exist_ok=True)
        (model / INFO).write_text(json.dumps(info, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        if out.exists():
            out.rename(work / "replaced")
            try:
                model.rename(out)
            except OSError:
                (work / "replaced").rename(out)
                raise
        else:
            model.rename(out)
    except OSError as exc:
        raise DataError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
