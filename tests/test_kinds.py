"""One column-kind rule: the cell rules, the inference, and every command giving the same answer."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.kinds import KIND_ROWS, infer_kind, is_number, parse_date
from dlrun.data.prepare import prepare
from dlrun.data.preprocess import to_numbers
from dlrun.errors import DataError
from dlrun.spec.loader import load_spec
from dlrun.spec.models import DataSpec

from conftest import binary_spec, write_spec

runner = CliRunner()


def data_spec(**changes) -> DataSpec:
    return DataSpec(path="data.csv", target="target", validation_split=0.25, **changes)


# --- cell rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "decimal", "number"),
    [
        ("1.5", ".", True),
        (" -2 ", ".", True),
        ("3e-4", ".", True),
        (".5", ".", True),
        ("5.", ".", True),
        ("+7E2", ".", True),
        ("1,5", ",", True),
        ("1.5", ",", False),
        ("1,5", ".", False),
        ("1_000", ".", False),  # float() reads it, pandas does not
        ("١٢", ".", False),  # Arabic-Indic digits: float() reads them
        ("inf", ".", False),
        ("1e999", ".", False),  # a number too large is infinite: refused like inf
        ("nan", ".", False),
        ("0x10", ".", False),
        ("1e", ".", False),
        ("", ".", False),
    ],
)
def test_what_a_number_is(cell, decimal, number):
    assert is_number(cell, decimal) is number


@given(st.text(alphabet="0123456789.,eE+-_ \u0661x", max_size=8), st.sampled_from([".", ","]))
@example("1e999", ".")
def test_the_number_rule_is_the_conversion_rule(cell, decimal):
    series = pd.Series(["0", cell], dtype=object)
    try:
        values = to_numbers(series, "x", "data.csv", {"decimal": decimal, "separator": ";"})
    except DataError:
        converts = False
    else:
        converts = not np.isnan(values[1])
    assert converts == is_number(cell, decimal) or (cell.strip() == "" and not converts)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2024-03-01", datetime(2024, 3, 1)),
        ("2024-3-1", datetime(2024, 3, 1)),
        ("2024-03-01 12:30", datetime(2024, 3, 1, 12, 30)),
        ("2024-03-01T12:30:15", datetime(2024, 3, 1, 12, 30, 15)),
        ("2024-03-01T12:30:15.250Z", datetime(2024, 3, 1, 12, 30, 15)),
        ("2024-03-01 12:30+01:00", datetime(2024, 3, 1, 12, 30)),
        ("2024-02-30", None),
        ("2024-13-01", None),
        ("01/03/2024", None),
        ("20240301", None),
        ("soon", None),
    ],
)
def test_what_an_iso_date_is(cell, expected):
    assert parse_date(cell) == expected


def test_a_format_reads_other_dates():
    assert parse_date("01/03/2024", "%d/%m/%Y") == datetime(2024, 3, 1)
    assert parse_date("2024-03-01", "%d/%m/%Y") is None


# --- the inference -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cells", "kind", "reason"),
    [
        ("age", ["31", "45.5", "", "NA", "22"], "numeric", ""),
        ("age", ["31"] * 19 + ["n/a?"], "numeric", ""),  # mostly numbers: the odd cell is named when converted
        ("code", [str(i) for i in range(100, 112)], None, "looks like an id"),
        ("customer_id", [str(i * 7) for i in range(12)], None, "looks like an id"),
        ("score", [str(i * 7) for i in range(12)], "numeric", ""),
        ("city", ["Rome", "Oslo", "Rome", "Lima"], "categorical", ""),
        ("name", ["ann", "bob", "cid"], None, "looks like an id or names"),
        ("note", [f"w{i % 30}" for i in range(40)], None, "looks like free text (30 distinct values in 40 rows"),
        ("empty", ["", " ", "NA"], None, "empty in every row"),
        ("when", ["2024-03-01", "2024-03-02", "2024-03-02"], "date", ""),
        ("when", ["13/01/2024", "14/01/2024"], None, "data.columns.when.format: '%d/%m/%Y'"),
        ("when", ["01/02/2024", "02/01/2024"], None, "'%d/%m/%Y' or '%m/%d/%Y'"),
        ("when", [f"{day}/01/2024 10:30" for day in range(13, 31)] + ["?"], None, "format: '%d/%m/%Y %H:%M'"),
    ],
)
def test_infer_kind(name, cells, kind, reason):
    found = infer_kind(name, cells, data_spec(), complete=True)
    assert found.kind == kind and reason in found.reason and (kind is None) == bool(found.reason)


def test_date_parts_follow_the_cells_and_the_spec():
    assert infer_kind("d", ["2024-03-01", "2024-03-02"], data_spec()).parts == (
        "year",
        "month",
        "day",
        "day_of_week",
        "day_of_year",
    )
    assert infer_kind("d", ["2024-03-01", "2024-03-02 10:15"], data_spec()).parts[-2:] == ("hour", "minute")
    declared = data_spec(columns={"d": {"date_parts": ["month", "hour"], "format": "%d/%m/%Y %H:%M"}})
    found = infer_kind("d", ["01/03/2024 10:00"], declared)
    assert (found.kind, found.declared, found.parts, found.format) == (
        "date",
        True,
        ("month", "hour"),
        "%d/%m/%Y %H:%M",
    )


def test_declared_kinds_win():
    spec = data_spec(columns={"code": {"kind": "categorical"}, "city": {"kind": "numeric"}})
    assert infer_kind("code", [str(i) for i in range(100, 112)], spec).kind == "categorical"
    assert infer_kind("city", ["Rome"], spec).kind == "numeric"
    declared_date = data_spec(columns={"when": {"kind": "date"}})
    refused = infer_kind("when", ["01/03/2024"], declared_date)
    assert refused.kind is None and "declared a date, but no cell reads as a date" in refused.reason


# --- every command, one answer -------------------------------------------------------------------------------


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def mixed_csv(path: Path, rows: int = 80, seed: int = 0) -> None:
    """Numbers, a text category, an ISO date column and a 30-in-40-style text column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows).round(3),
            "city": rng.choice(["Paris", "Rome", "Oslo"], rows),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, rows), unit="D"),
            "note": [f"word{i % 60}" for i in range(rows)],
            "target": rng.integers(0, 2, rows),
        }
    )
    frame["when"] = frame["when"].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False)


def test_validate_check_and_train_agree_on_every_column(tmp_path):
    mixed_csv(tmp_path / "data.csv")
    spec = binary_spec(epochs=1)
    spec_path = write_spec(tmp_path, spec)
    for command in ("validate", "check", "train"):
        result = invoke(command, spec_path)
        assert result.exit_code == 1, (command, result.output)
        message = " ".join(result.output.split())
        assert "'note': looks like free text (60 distinct values in 80 rows" in message and "'when'" not in message
    spec["data"]["drop"] = ["note"]
    spec_path = write_spec(tmp_path, spec)
    validated = " ".join(invoke("validate", spec_path).output.split())
    assert "note: when holds dates: 5 numeric inputs when.year, when.month, when.day, when.day_of_week" in validated
    assert "note: city is categorical" in validated
    width = 1 + 3 + 5  # x, three cities, five date parts
    checked = invoke("check", spec_path)
    assert checked.exit_code == 0 and f"Total params: {width * 8 + 8 + 9}" in checked.output
    assert invoke("train", spec_path, "-q").exit_code == 0
    (run_dir,) = Path("runs/spec").iterdir()
    saved = json.loads((run_dir / "preprocessing.json").read_text())
    assert {c["name"]: c["kind"] for c in saved["columns"]} == {"x": "numeric", "city": "categorical", "when": "date"}
    assert len(saved["inputs"]) == width


def test_streamed_and_in_memory_data_judge_kinds_on_the_same_rows(tmp_path):
    rows = 200
    level = np.where(np.arange(rows) < 30, np.arange(rows) % 2 + 1, 0).astype(str)
    level[30:] = np.where(np.arange(rows - 30) % 2, "low", "high")  # the first chunk alone looks numeric
    pd.DataFrame({"x": np.arange(rows) % 7, "level": level, "target": np.arange(rows) % 2}).to_csv(
        tmp_path / "data.csv", index=False
    )
    kinds = {}
    for streaming in (False, True):
        spec = binary_spec()
        spec["data"].update(streaming=streaming, chunk_rows=30)
        loaded = load_spec(write_spec(tmp_path, spec))
        pre = prepare(loaded.data, loaded.seed, loaded.training.loss).preprocessing
        kinds[streaming] = {c.name: (c.kind, c.categories) for c in pre.columns}
    assert kinds[False] == kinds[True] == {"x": ("numeric", []), "level": ("categorical", ["1", "2", "high", "low"])}


def test_a_text_cell_below_the_deciding_rows_is_named_with_its_line_by_every_command(tmp_path):
    frame = pd.DataFrame({"x": np.arange(KIND_ROWS + 20) / 10, "target": np.arange(KIND_ROWS + 20) % 2})
    frame["x"] = frame["x"].astype(object)
    frame.loc[KIND_ROWS + 10, "x"] = "lots"
    frame.to_csv(tmp_path / "data.csv", index=False)
    spec_path = write_spec(tmp_path, binary_spec())
    assert invoke("validate", spec_path).exit_code == 0  # the quick look judges the first rows only
    for command in ("check", "train"):
        result = invoke(command, spec_path)
        assert result.exit_code == 1
        assert f"column 'x' is numeric but line {KIND_ROWS + 12} holds 'lots'" in " ".join(result.output.split())
