"""Property-based fuzz of the loaders: every CSV and spec either reads right or ends in one clean DlrunError.

"Reads right" is checked against an independent model of what the test wrote: the cells Python's csv
module wrote, which of them are missing by the documented rule (pandas' markers, `na_values`,
`keep_default_na`), and what each number is by Python's float(). Bounded: small files and few
examples (well under a minute for the file); the data path is fuzzed through `prepare`, without training.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.csvfile import read_csv, rows
from dlrun.data.prepare import prepare
from dlrun.errors import DataError, DlrunError, SpecError
from dlrun.spec.loader import load_spec
from dlrun.spec.models import DataSpec

from conftest import binary_spec

EXAMPLES = int(os.environ.get("DLRUN_FUZZ_EXAMPLES", "60"))
"""Examples per fuzz test; set DLRUN_FUZZ_EXAMPLES=2000 for a longer hunt."""
HUNT = "DLRUN_FUZZ_EXAMPLES" in os.environ
"""A hunt draws new examples each time; the suite's own run draws the same ones every time, so a test
run never fails by chance: what a hunt finds becomes a test of its own."""
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=not HUNT,
)
PANDAS_MARKERS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
PANDAS_MARKERS |= {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}  # pandas' documented list
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
INFINITE_WORD = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)
FLOAT32_MAX = float(np.finfo(np.float32).max)

numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.3e}"),
    st.sampled_from(["007", "+7", ".5", "5.", "1e-400", "9" * 400, "1e308", "-0", "3.4e38", "-3.5e38", "1e39"]),
)
odd_numbers = st.sampled_from(["inf", "-inf", "Infinity", "+INF", "1e400", "-1E999", " 1e400 "])
markers = st.sampled_from(sorted(PANDAS_MARKERS) + ["?", "-999", "-999.0", " NA ", "na", "none"])
texts = st.one_of(
    st.text(st.sampled_from("ab é名,;|\t\"'\n\r#=-. x"), min_size=1, max_size=6),
    st.sampled_from(["true", "True", "TRUE", "false", "yes", "1.0", "1", "Rome", " Rome "]),
)
cells = st.one_of(numbers, odd_numbers, markers, texts)


def write_table(header: list[str], body: list[list[str]], sep: str, quote: str, terminator: str, bom: bool) -> str:
    """Write rows with Python's csv module (minimal quoting): an independent writer of what dlrun reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, quotechar=quote, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(body)
    return ("\ufeff" if bom else "") + buffer.getvalue()


def missing_set(keep_default_na: bool, na_values: list[str]) -> set[str]:
    """The documented rule, written again: pandas' markers unless kept, empty cells, na_values (-999 as -999.0 too)."""
    found = set(PANDAS_MARKERS) if keep_default_na else {""}
    for value in na_values:
        found.add(value)
        if re.fullmatch(r"-?[0-9]+", value):
            found.add(value + ".0")
    return found


def finite_value(text: str) -> float | None:
    """A cell's number by Python's float() when it is one a model can take (finite in float32); None otherwise."""
    text = text.strip()
    if not NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if abs(value) <= FLOAT32_MAX else None


def is_infinite(text: str) -> bool:
    """Infinity words, and numbers that float32 model inputs would turn into infinities."""
    text = text.strip()
    return bool(INFINITE_WORD.fullmatch(text)) or (bool(NUMBER.fullmatch(text)) and finite_value(text) is None)


def physical_lines(header: list[str], body: list[list[str]], sep: str, quote: str) -> list[int]:
    """The line each data row starts on, counting the line breaks inside quoted cells as an editor does
    (\r\n, \r and \n are one break each: a hunt found a cell holding \r\n counted twice)."""
    line = 1 + sum(len(LINE_BREAK.findall(cell)) for cell in header)
    starts = []
    for row in body:
        line += 1
        starts.append(line)
        line += sum(len(LINE_BREAK.findall(cell)) for cell in row)
    return starts


def clean(error: DlrunError) -> None:
    """A user's mistake is one message: text, no traceback."""
    message = str(error)
    assert message and "Traceback" not in message


@st.composite
def tables(draw):
    width = draw(st.integers(1, 4))
    names = st.sampled_from(["a", "b", "x", " a", "名前", "é", "y"])
    header = draw(st.lists(names, min_size=width, max_size=width))
    body = draw(st.lists(st.lists(cells, min_size=width, max_size=width), min_size=1, max_size=6))
    ragged = draw(st.none() | st.tuples(st.integers(0, len(body) - 1), st.sampled_from([-1, 1])))
    if ragged is not None:
        row, change = ragged
        body[row] = body[row][:-1] if change < 0 else body[row] + ["extra"]
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    quote = draw(st.sampled_from(['"', "'"]))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    if terminator == "\n":  # csv.writer quotes only the terminator's characters: a bare \r would end the line
        body = [[cell.replace("\r", "") for cell in row] for row in body]
    return header, body, sep, quote, terminator, draw(st.booleans()), ragged


@FUZZ
@given(tables(), st.booleans(), st.lists(st.sampled_from(["?", "-999", "x"]), max_size=2))
@example(  # found by a hunt: a quoted \r\n is one line break
    table=(["a", "b"], [["0", "\r\n"], ["0", "0"]], ",", '"', "\r\n", False, None), keep_default_na=False, na_values=[]
)
def test_csv_reader_returns_what_was_written_or_one_clean_error(table, keep_default_na, na_values):
    header, body, sep, quote, terminator, bom, ragged = table
    # A row cut to no fields is a blank line, a lone field of spaces a line of spaces: no rows, to pandas
    # and to dlrun alike (test_lines_of_spaces_are_no_rows); pandas keeps a quoted lone "\n", dlrun does not.
    assume(all(row and (len(row) > 1 or row[0] == "" or row[0].strip()) for row in body))
    options = {"separator": sep, "quotechar": quote, "keep_default_na": keep_default_na, "na_values": na_values}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_text(write_table(header, body, sep, quote, terminator, bom), encoding="utf-8", newline="")
        stripped = [name.strip() for name in header]
        twice = len(set(stripped)) < len(stripped)
        width_errors = [i for i, row in enumerate(body) if len(row) != len(header)]
        try:
            read = list(rows(path, options))
            frame = read_csv(path, options, text_columns=stripped)
            typed = read_csv(path, options)
        except DataError as error:
            clean(error)
            message = str(error)
            if twice:
                assert "twice" in message
            elif width_errors:
                line = physical_lines(header, body, sep, quote)[width_errors[0]]
                assert f"line {line} has" in message, message
            else:  # a single column whose name holds another separator: the separator hint
                assert len(header) == 1 and "looks separated by" in message, message
            return
    assert not twice and not width_errors, "a duplicate name or a ragged row was read silently"
    assert [cells for _, cells in read] == body
    assert [line for line, _ in read] == physical_lines(header, body, sep, quote)
    assert list(frame.columns) == stripped
    missing = missing_set(keep_default_na, na_values)
    for column, name in enumerate(stripped):
        written = [row[column] for row in body]
        as_text = frame[name].tolist()
        for cell, value in zip(written, as_text):
            if cell in missing:
                assert pd.isna(value), (name, cell, value)
            else:
                assert value == cell or (cell.strip() in missing and pd.isna(value)), (name, cell, value)
        values = typed[name]
        if values.dtype.kind in "iuf":
            for cell, value in zip(written, values.tolist()):
                if pd.isna(value):
                    assert cell in missing or cell.strip() in missing, (name, cell)
                elif INFINITE_WORD.fullmatch(cell.strip()) or not math.isfinite(float(cell.strip())):
                    assert math.isinf(value) and (value > 0) == (not cell.strip().startswith("-")), (cell, value)
                else:  # pandas' parser against Python's: equal to the last bit or two
                    assert math.isclose(float(cell.strip()), value, rel_tol=1e-15, abs_tol=0.0), (cell, value)


# --- the data path: read, judge, fit and apply, in memory and streamed ---------------------------------

x_cells = st.one_of(numbers, odd_numbers, markers, st.sampled_from(["abc", "1_000"]))
c_cells = st.one_of(markers, st.sampled_from(["007", "7", "true", "True", "1.0", "1", " Rome", "NA", "x"]))


@FUZZ
@given(
    st.lists(st.tuples(x_cells, c_cells, st.one_of(numbers, odd_numbers, markers)), min_size=1, max_size=12),
    st.sampled_from(["error", "missing"]),
    st.booleans(),
    st.lists(st.sampled_from(["?", "-999"]), max_size=2, unique=True),
    st.sampled_from(["error", "mean", "drop_rows"]),
    st.sampled_from([None, 2, 5]),
)
@example(  # found by a hunt: the text target is on a row that drop_rows leaves out
    body=[("0", "", "0")] * 3 + [("0", "", "#N/A"), ("0", "#N/A", "0")],
    infinite="error",
    keep_default_na=False,
    na_values=[],
    missing="drop_rows",
    chunk_rows=None,
)
def test_prepare_turns_cells_into_the_right_inputs_or_one_clean_error(
    body, infinite, keep_default_na, na_values, missing, chunk_rows
):
    missing_texts = missing_set(keep_default_na, na_values)
    options = {"infinite": infinite, "keep_default_na": keep_default_na, "na_values": na_values}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_text(write_table(["x", "c", "y"], [list(r) for r in body], ",", '"', "\n", False), encoding="utf-8")
        spec = DataSpec.model_validate(
            {
                "path": str(path),
                "target": "y",
                "validation_path": str(path),
                "columns": {"x": {"kind": "numeric", "missing": missing}, "c": {"kind": "categorical"}},
                "missing": "most_frequent" if missing == "mean" else missing,
                "csv": options,
                "streaming": chunk_rows is not None,
                "chunk_rows": chunk_rows or 100,
            }
        )
        expected = expected_inputs(body, missing_texts, infinite, missing)
        try:
            data = prepare(spec, 0, "mae")
            if data.stream is not None:
                batches = list(data.stream.batches("train", 1000))
                x = np.concatenate([b[0] for b in batches]) if batches else np.zeros((0, 0))
            else:
                x = data.x_train
        except DataError as error:
            clean(error)
            assert expected is None, f"refused rows that read fine: {error}"
            return
    assert expected is not None, "rows that must be refused were read"
    x_values, categories = expected
    pre = data.preprocessing
    assert pre.columns[1].categories == categories
    np.testing.assert_allclose(x[:, 0], np.asarray(x_values, "float32"), rtol=1e-6)


def expected_inputs(body, missing_texts: set[str], infinite: str, missing: str):
    """What `prepare` must return for these rows, worked out cell by cell; None when it must refuse them."""
    kept = []
    for x, c, y in body:
        y_gap = y.strip() in missing_texts or (infinite == "missing" and is_infinite(y))
        if y_gap:
            continue  # the row is left out, unread
        x_gap = x.strip() in missing_texts or (infinite == "missing" and is_infinite(x))
        c_gap = c.strip() in missing_texts
        if (x_gap or c_gap) and missing == "drop_rows":
            continue  # left out before its cells are converted
        if finite_value(y) is None:
            return None  # text, or an infinity that is an error
        if not x_gap and finite_value(x) is None:
            return None  # text, or an infinity that is an error
        if (x_gap or c_gap) and missing == "error":
            return None
        kept.append((None if x_gap else finite_value(x), None if c_gap else c.strip()))
    present = [x for x, _ in kept if x is not None]
    categories = sorted({c for _, c in kept if c is not None})
    if not kept or not present or not categories:
        return None  # no rows left, or a column empty in every training row
    fill = float(np.mean(present)) if missing == "mean" else None
    return [fill if x is None else x for x, _ in kept], categories


# --- the spec loader ------------------------------------------------------------------------------

keys = st.sampled_from(
    ["seed", "name", "data", "model", "training", "layers", "type", "units", "epochs", "loss", "path", "x"]
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3))
paths = st.sampled_from(
    ["seed", "training.epochs", "model.layers[0].units", "model.layers[5]", "data.csv.na_values", "data", "x.y"]
    + ["training.optimizer.learning_rate", "model.layers[0]", "data.columns.f0.kind", "training.optimizer"]
)


snippets = st.sampled_from(
    ["? [a, b]\n: 1\n", "{a: 1}: 2\n", "? {a: 1}\n", "!!binary aGVsbG8=", "!!set {a}", "<<: *x\n", "<<: {seed: 1}\n"]
    + ["&a ", "*a ", "!!python/object:os.system ", "%YAML 1.1\n---\n", "---\n", "...\n", "!!float ", "!!int "]
    + ["!custom ", "1: 2\n", "null: 3\n", ".nan", ".inf", "2001-12-14", "0x1F", "1_000", "[", "}", "'"]
)


@st.composite
def spec_texts(draw):
    """A valid spec, mutated: keys replaced by random values, text cut, characters and anchors inserted."""
    data = binary_spec(epochs=1)
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(["data", "model", "training"]))
        data[section][draw(keys)] = draw(values)
    if draw(st.booleans()):
        data[draw(keys)] = draw(values)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    edit = draw(st.sampled_from(["none", "cut", "insert", "snippet", "alias"]))
    at = draw(st.integers(0, len(text)))
    if edit == "cut":
        text = text[:at]
    elif edit == "insert":
        text = text[:at] + draw(st.text(st.sampled_from(":-[]{}&*!|>'\"#%@`\t \n\ufeff?x1"), max_size=6)) + text[at:]
    elif edit == "snippet":
        text = text[:at] + draw(snippets) + text[at:]
    elif edit == "alias":
        text += "extra: &e [1, 2]\nmore: [*e, *e, *missing]\n" if draw(st.booleans()) else "shared: &s {a: *s}\n"
    return text


@FUZZ
@given(spec_texts(), st.lists(st.tuples(paths, st.text(max_size=10)), max_size=2))
def test_spec_loader_validates_or_ends_in_one_clean_error(text, overrides):
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "spec.yaml"
        spec.write_text(text, encoding="utf-8")
        pd.DataFrame({f"f{i}": [0.1, 0.2] for i in range(4)} | {"target": [0, 1]}).to_csv(
            Path(folder) / "data.csv", index=False
        )
        sets = [f"{path}={value}" for path, value in overrides]
        try:
            load_spec(spec, sets)
        except SpecError as error:
            clean(error)
        args = ["validate", str(spec)] + [part for item in sets for part in ("--set", item)]
        result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ["&a [*a]", "[" * 200 + "]" * 200, "*nowhere", "!!python/object:os.system x"])
def test_hostile_override_values_are_one_clean_error(tmp_path, value):
    pd.DataFrame({"f0": [0.1, 0.2], "target": [0, 1]}).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(binary_spec()), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "spec.yaml"), "--set", f"seed={value}"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit) and "--set" in result.output
