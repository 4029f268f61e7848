"""`dlrun init`: a commented starter spec for a CSV and its target column, built as data and written as YAML.

Each column's kind comes from `dlrun.data.kinds`, the rule training applies to the same first rows. The
whole file is then read once (standard library, no pandas) for what the first rows cannot tell: text far
down a numeric column, more categories than data.max_categories, empty cells. So a spec `dlrun init`
writes trains as it is, or `dlrun init` says which column stops it.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dlrun.data.csvfile import first_rows, is_missing, read_header, rows, sniff_options
from dlrun.data.files import is_arrow
from dlrun.data.kinds import (
    CATEGORICAL,
    DATE,
    KIND_ROWS,
    MOSTLY,
    NUMERIC,
    Kind,
    infer_kinds,
    is_number,
    parse_date,
)
from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions, DataSpec

MAX_CLASSES = 10  # an integer target with at most this many distinct values is taken as class labels
VALIDATION_SPLIT = 0.2
MIN_PRESENT = 5  # a column with fewer non-empty cells is left out: too few to learn from, maybe none in training
SCHEMA_FILE = "dlrun.schema.json"


@dataclass
class Task:
    """What the target asks of the network's output layer and loss."""

    kind: str
    """regression, binary or multiclass."""
    classes: list
    units: int
    activation: str | None
    loss: str
    metrics: list[str]
    why: str


def infer_task(values: list) -> Task:
    """Decide regression, binary or multi-class from a target column's non-empty values (numbers or text)."""
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    numeric = not any(isinstance(v, str) for v in distinct)
    integral = numeric and all(float(v).is_integer() for v in distinct)
    if len(distinct) == 2:
        return Task(
            "binary",
            distinct,
            1,
            "sigmoid",
            "binary_crossentropy",
            ["binary_accuracy"],
            f"two distinct values ({distinct[0]!r}, {distinct[1]!r}): binary classification",
        )
    if not numeric or (integral and len(distinct) <= MAX_CLASSES):
        reason = "text labels" if not numeric else f"{len(distinct)} distinct whole numbers"
        return Task(
            "multiclass",
            distinct,
            len(distinct),
            "softmax",
            "sparse_categorical_crossentropy",
            ["sparse_categorical_accuracy"],
            f"{reason}: multi-class classification into {len(distinct)} classes"
            + (" (if these are amounts, not classes, use the regression output: units 1, loss mae)" if numeric else ""),
        )
    return Task("regression", [], 1, None, "mae", ["mse"], "numbers: regression (a linear output, mean absolute error)")


# --- reading the whole file once -----------------------------------------------------------------------


@dataclass
class Scan:
    """What one pass over every row tells about a column, beyond its kind."""

    kind: Kind
    present: int = 0
    gaps: int = 0
    """Empty cells, and in a date column cells that are not dates."""
    bad: tuple[int, str] | None = None
    """(line, cell) of the first cell a numeric column cannot convert."""
    distinct: set = field(default_factory=set)
    """A categorical column's values, collected up to one more than data.max_categories."""

    def add(self, line: int, cell: str, spec: DataSpec, dates: dict) -> None:
        if is_missing(cell):
            self.gaps += 1
            return
        text = cell.strip()
        self.present += 1
        if self.kind.kind == NUMERIC:
            if self.bad is None and not is_number(text, spec.csv.decimal):
                self.bad = (line, cell)
        elif self.kind.kind == DATE:
            if text not in dates:
                dates[text] = parse_date(text, self.kind.format) is not None
            if not dates[text]:
                self.gaps += 1
        elif self.kind.kind == CATEGORICAL and len(self.distinct) <= spec.max_categories:
            self.distinct.add(text)


def _number(text: str, spec: DataSpec) -> float:
    return float(text.replace(spec.csv.decimal, ".")) if spec.csv.decimal != "." else float(text)


def _target_value(text: str, spec: DataSpec):
    if not is_number(text, spec.csv.decimal):
        return text
    number = _number(text, spec)
    return int(number) if number.is_integer() and re.fullmatch(r"[+-]?[0-9]+", text) else number


def _scan(csv_path: Path, header: list[str], target: str, kinds: dict[str, Kind], spec: DataSpec):
    """Read every row once: each feature's `Scan`, the target's values (with the first text cell's line) and rows."""
    scans = {name: Scan(kind) for name, kind in kinds.items() if kind.kind is not None}
    where = {name: header.index(name) for name in scans}
    target_at = header.index(target)
    labels: list = []
    first_text = None
    dates: dict[str, dict[str, bool]] = {name: {} for name in scans}
    count = 0
    for line, cells in rows(csv_path, spec.csv):
        count += 1
        for name, scan in scans.items():
            scan.add(line, cells[where[name]], spec, dates[name])
        cell = cells[target_at]
        if not is_missing(cell):
            value = _target_value(cell.strip(), spec)
            labels.append(value)
            if first_text is None and isinstance(value, str):
                first_text = (line, cell)
    return scans, labels, first_text, count


# --- deciding the spec ------------------------------------------------------------------------------------


@dataclass
class Choices:
    """What the starter spec says about the data."""

    features: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(column, why) for each column left out."""
    dates: dict[str, Kind] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    """Features with empty cells (or, for dates, cells that are not dates)."""


def _choose(csv_path: Path, scans: dict[str, Scan], kinds: dict[str, Kind], spec: DataSpec) -> Choices:
    choices = Choices()
    for name, kind in kinds.items():
        scan = scans.get(name)
        if scan is None:
            choices.dropped.append((name, kind.reason))
            continue
        if scan.bad is not None:
            line, cell = scan.bad
            raise DataError(
                f"{csv_path}: column {name!r} is numeric (judged on its first rows) but line {line} holds {cell!r}; "
                f"fix that cell, or leave the column out by editing the CSV"
            )
        if scan.present < MIN_PRESENT:
            choices.dropped.append((name, f"almost empty ({scan.present} non-empty cells)"))
        elif kind.kind == CATEGORICAL and len(scan.distinct) > spec.max_categories:
            choices.dropped.append(
                (name, f"looks like free text (more than {spec.max_categories} distinct values over the file)")
            )
        else:
            choices.features.append(name)
            if kind.kind == DATE:
                choices.dates[name] = kind
            elif kind.kind == CATEGORICAL:
                choices.categorical.append(name)
            if scan.gaps:
                choices.gaps.append(name)
    return choices


def _task(csv_path: Path, target: str, labels: list, first_text) -> Task:
    if not labels:
        raise DataError(f"--target: column {target!r} in {csv_path} is empty; pick the column to predict")
    texts = sum(isinstance(v, str) for v in labels)
    if first_text is not None and texts <= (1 - MOSTLY) * len(labels):  # numbers, as training would judge them
        line, cell = first_text
        raise DataError(
            f"{csv_path}: target {target!r} holds numbers but line {line} holds {cell!r}; fix that cell "
            "(or empty it: rows with an empty target are left out)"
        )
    if texts:
        labels = [str(v) for v in labels]  # mixed labels: training reads them all as text
    if len(set(labels)) < 2:
        raise DataError(
            f"--target: column {target!r} in {csv_path} has a single value ({labels[0]!r}); there is nothing to "
            "predict: pick another column"
        )
    return infer_task(labels)


def _check_split(csv_path: Path, labels: list, task: Task) -> None:
    """Refuse a file too small to hold out validation rows the way training will (per class when stratified)."""
    groups = Counter(map(str, labels)).values() if task.kind != "regression" else [len(labels)]
    held_out = sum(int(round(n * VALIDATION_SPLIT)) for n in groups)
    if held_out == 0 or held_out == len(labels):
        raise DataError(
            f"{csv_path} has {len(labels)} rows with a target: too few to hold out {VALIDATION_SPLIT:.0%} for "
            "validation and train on the rest; add rows"
        )


# --- writing -------------------------------------------------------------------------------------------------


def spec_name(csv_path: Path) -> str:
    """Return a run name from a file name, with only the characters a spec's name allows."""
    ascii_stem = unicodedata.normalize("NFKD", csv_path.stem).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_stem).strip("-._")
    return name or "experiment"


def _scalar(text: str):
    """Return text as a YAML scalar that dlrun reads back as this text: quoted when it would read as something else.

    `yes`, `on`, `null`, `1e3`, `#` or `a: b` would read as a boolean, nothing, a number or a mapping.
    """
    import yaml
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    from dlrun.spec.loader import parse_value

    try:
        same = parse_value(text) == text
    except yaml.YAMLError:  # not valid YAML as a bare scalar
        same = False
    return text if same else SingleQuotedScalarString(text)


def _flow(mapping: dict):
    from ruamel.yaml.comments import CommentedMap

    node = CommentedMap(mapping)
    node.fa.set_flow_style()
    return node


def _build(csv_path: Path, spec_path: Path, data_spec: DataSpec, task: Task, choices: Choices, count: int):
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    target = data_spec.target
    lines = []
    if (spec_path.parent / SCHEMA_FILE).is_file():  # from `dlrun schema --out`: editors complete the fields
        lines.append(f"yaml-language-server: $schema={SCHEMA_FILE}")
    lines += [
        f"Starter spec written by `dlrun init` for {csv_path.name} ({count} rows).",
        f"Target {target!r}: {task.why}.",
        f"Check it with `dlrun check {shlex.quote(spec_path.name)}`, then train with "
        f"`dlrun train {shlex.quote(spec_path.name)}`.",
    ]
    spec = CommentedMap()
    spec.yaml_set_start_comment("\n".join(lines))
    spec["name"] = spec_name(csv_path)
    spec["seed"] = 0
    data = spec["data"] = CommentedMap()
    data["path"] = _scalar(Path(os.path.relpath(csv_path.resolve(), spec_path.resolve().parent)).as_posix())
    data["target"] = _scalar(target)
    data["features"] = CommentedSeq(_scalar(name) for name in choices.features)
    if choices.dropped:
        data["drop"] = CommentedSeq(_scalar(name) for name, _ in choices.dropped)
        data.yaml_set_comment_before_after_key("drop", before="left out (see why after each):", indent=2)
        column = 6 + max(_width(_scalar(name)) for name, _ in choices.dropped) + 2  # past "    - " and the name
        for index, (_, why) in enumerate(choices.dropped):
            data["drop"].yaml_add_eol_comment(f"# {why}", index, column=column)
    if choices.dates:
        columns = data["columns"] = CommentedMap()
        for name, kind in choices.dates.items():
            key = _scalar(name)
            columns[key] = _flow({"kind": "date"})
            inputs = ", ".join(f"{name}.{part}" for part in kind.parts)
            columns.yaml_add_eol_comment(f"# inputs {inputs}", key, column=4 + _width(key) + len(": {kind: date}") + 2)
        data.yaml_set_comment_before_after_key(
            "columns", before="dates become numeric inputs (data.columns.<name>.date_parts chooses them)", indent=2
        )
    options = data_spec.csv.model_dump(exclude_defaults=True)
    if options:
        data["csv"] = _flow(options)
        data.yaml_set_comment_before_after_key("csv", before="how the file is written, as dlrun init read it", indent=2)
    data["validation_split"] = VALIDATION_SPLIT
    if task.kind != "regression":
        data["stratify"] = True
        data.yaml_set_comment_before_after_key(
            "stratify", before="keep each class's share in the validation rows", indent=2
        )
    data["scale"] = "standard"
    data.yaml_set_comment_before_after_key(
        "scale", before="numeric inputs to mean 0, variance 1 (fitted on the training rows)", indent=2
    )
    if choices.gaps:
        # A streamed file cannot keep every value for a median; a mean is gathered chunk by chunk.
        streamed = csv_path.stat().st_size > data_spec.streaming_above_mb * 1e6
        data["missing"] = "mean" if streamed else "median"
        note = " (the most frequent for categories)" if set(choices.gaps) & set(choices.categorical) else ""
        data.yaml_set_comment_before_after_key(
            "missing", before=f"empty cells in {', '.join(choices.gaps)}{note}", indent=2
        )
    hidden = 64 if len(choices.features) > 16 else 32
    output = {"type": "dense", "units": task.units}
    if task.activation:
        output["activation"] = task.activation
    spec["model"] = CommentedMap(
        layers=CommentedSeq(
            [
                _flow({"type": "dense", "units": hidden, "activation": "relu"}),
                _flow({"type": "dropout", "rate": 0.2}),
                _flow({"type": "dense", "units": hidden // 2, "activation": "relu"}),
                _flow(output),
            ]
        )
    )
    spec["model"].yaml_set_comment_before_after_key(
        "layers", before=f"two hidden layers, then the {task.kind} output", indent=2
    )
    training = spec["training"] = CommentedMap()
    training["optimizer"] = _flow({"name": "adam", "learning_rate": 0.001})
    training["loss"] = task.loss
    training["metrics"] = CommentedSeq(task.metrics)
    training["metrics"].fa.set_flow_style()
    training["batch_size"] = 256 if count > 20000 else 32
    training["epochs"] = 500
    training["early_stopping"] = CommentedMap(monitor="val_loss", min_delta=0.0001, patience=20)
    training["early_stopping"]["restore_best_weights"] = True
    training.yaml_set_comment_before_after_key(
        "early_stopping", before="stop when val_loss has not improved for 20 epochs; keep the best weights", indent=2
    )
    return spec


def _width(scalar) -> int:
    return len(scalar) + (0 if type(scalar) is str else 2)


def _dump(spec) -> str:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # one line per value: comments stay next to what they explain
    stream = io.StringIO()
    yaml.dump(spec, stream)
    return stream.getvalue()


def starter_spec(csv_path: Path, target: str, spec_path: Path) -> str:
    """Return the text of a starter spec for `csv_path`, to be written at `spec_path`.

    Raises:
        DataError: the CSV cannot be read, has no such target column, no usable feature, too few rows, or a
            column training would refuse whatever the spec says (text in a numeric column, named with its line).
    """
    if is_arrow(csv_path):
        raise DataError(
            f"dlrun init reads CSV files, and {csv_path} is not one: run it on a CSV of the file's first rows "
            f"(pandas: frame.head(10000).to_csv('sample.csv', index=False)), then set data.path: {csv_path.name} "
            "in the spec it writes (training reads Parquet and Feather files by their suffix)"
        )
    options = sniff_options(csv_path)
    header = read_header(csv_path, options)
    if target not in header:
        raise DataError(f"--target: column {target!r} is not in {csv_path}; its columns are: {', '.join(header)}")
    sample = first_rows(csv_path, options, KIND_ROWS)
    options = _with_decimal(options, sample)
    spec = DataSpec(path=str(csv_path), target=target, validation_split=VALIDATION_SPLIT, csv=options)
    features = [name for name in header if name != target]
    kinds = infer_kinds(header, sample, features, spec)
    scans, labels, first_text, count = _scan(csv_path, header, target, kinds, spec)
    task = _task(csv_path, target, labels, first_text)
    choices = _choose(csv_path, scans, kinds, spec)
    if not choices.features:
        reasons = "; ".join(f"{name!r}: {why}" for name, why in choices.dropped)
        raise DataError(f"{csv_path} has no usable feature columns besides {target!r} ({reasons or 'no other column'})")
    _check_split(csv_path, labels, task)
    return _dump(_build(csv_path, spec_path, spec, task, choices, count))


def _with_decimal(options: CsvOptions, sample: list[list[str]]) -> CsvOptions:
    """Return the options with decimal ',' when the file's separator allows it and its numbers are written so."""
    if options.separator == ",":
        return options
    cells = [cell.strip() for row in sample[:1000] for cell in row]
    commas = sum("," in cell and is_number(cell, ",") for cell in cells)
    points = sum("." in cell and is_number(cell, ".") for cell in cells)
    return options.model_copy(update={"decimal": ","}) if commas > points else options
