"""`dlrun init`: a spec it writes trains as written, or it says which column stops it.

The rule test runs init then `dlrun train --set training.epochs=1` on the bundled CSVs, the CSVs the
other tests build, and messy ones (dates, ids, free text, gaps, odd file and column names).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.spec.loader import load_spec
from dlrun.starter import infer_task, spec_name

from conftest import CONFIGS, make_binary_csv, make_regression_csv, mixed_frame, write_spec

runner = CliRunner()
ODD_NAMES = ["yes", "on", "null", "1e3", "#", "naïve col", "a: b", "- x", "[x]", "Total (€)", "~", "true", "0x1F"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    return result.output


# --- CSVs, as users bring them ----------------------------------------------------------------------------


def people(folder: Path, rows: int = 40) -> Path:
    """Ids, names, a 30-in-40 text column, a category with gaps, numbers with gaps, a yes/no target."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + rows),
            "name": [f"person {i}" for i in range(rows)],
            "comment": [f"remark {i % 30}" for i in range(rows)],
            "city": rng.choice(["Paris", "Rome", "Oslo"], rows),
            "age": rng.integers(20, 70, rows).astype(float),
            "churned": rng.choice(["yes", "no"], rows),
        }
    )
    frame.loc[[2, 9], "city"] = None
    frame.loc[[4], "age"] = None
    frame.loc[[7], "churned"] = None
    return _write(frame, folder / "people.csv")


def dated(folder: Path, rows: int = 60) -> Path:
    """ISO dates with a gap and a bad cell, ISO datetimes, day/month/year dates, and a number to predict."""
    rng = np.random.default_rng(2)
    start = pd.Timestamp("2023-11-20")
    frame = pd.DataFrame(
        {
            "day": (start + pd.to_timedelta(rng.integers(0, 500, rows), unit="D")).strftime("%Y-%m-%d"),
            "stamp": (start + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="min")).strftime("%Y-%m-%dT%H:%M:%S"),
            "local": (start + pd.to_timedelta(rng.integers(0, 500, rows), unit="D")).strftime("%d/%m/%Y"),
            "x": rng.normal(size=rows),
        }
    )
    frame["price"] = frame["x"] * 3 + rng.normal(size=rows)
    frame.loc[3, "day"] = None
    frame.loc[5, "day"] = "unknown"
    return _write(frame, folder / "sales.csv")


def odd(folder: Path, rows: int = 48) -> Path:
    """Column names YAML would misread, in a file whose name has spaces and parentheses; a text-label target."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({name: rng.normal(size=rows) for name in ODD_NAMES})
    frame["off"] = rng.choice(["low", "mid", "high"], rows)
    return _write(frame, folder / "my data(1).csv")


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def european(folder: Path) -> Path:
    lines = ["x;city;target"] + [f'{i},5;"Rome; Italy";{i % 2}' if i % 3 else f"{i},25;Oslo;{i % 2}" for i in range(40)]
    path = folder / "european.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8-sig"))
    return path


def latin1(folder: Path) -> Path:
    text = "x,ville,target\n" + "".join(f"{i / 2},{'Besançon' if i % 2 else 'Orléans'},{i % 2}\n" for i in range(40))
    path = folder / "villes.csv"
    path.write_bytes(text.encode("latin-1"))
    return path


def text_far_down(folder: Path) -> Path:
    frame = pd.DataFrame({"x": np.arange(40) / 4, "y": np.arange(40) % 3})
    frame["x"] = frame["x"].astype(object)
    frame.loc[31, "x"] = "lots"
    return _write(frame, folder / "typo.csv")


def ragged(folder: Path) -> Path:
    path = folder / "ragged.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(20)) + "1,2,3,4\n")
    return path


CASES = {
    "breast_cancer": (lambda folder: CONFIGS / "data" / "breast_cancer.csv", "target"),
    "diabetes": (lambda folder: CONFIGS / "data" / "diabetes.csv", "target"),
    "wine": (lambda folder: CONFIGS / "data" / "wine.csv", "cultivar"),
    "binary": (lambda folder: make_binary_csv(folder / "data.csv"), "target"),
    "regression": (lambda folder: make_regression_csv(folder / "data.csv"), "y"),
    "mixed": (lambda folder: _write(mixed_frame(), folder / "mixed.csv"), "target"),
    "people": (people, "churned"),
    "dated": (dated, "price"),
    "odd": (odd, "off"),
    "european": (european, "target"),
    "latin1": (latin1, "target"),
    "text_far_down": (text_far_down, "y"),
    "ragged": (ragged, "y"),
}
REFUSED = {
    "text_far_down": "column 'x' is numeric (judged on its first rows) but line 33 holds 'lots'",
    "ragged": "line 22 has 4 fields but the header has 3",
}


@pytest.mark.parametrize("case", CASES)
def test_init_writes_a_spec_that_trains_or_says_which_column_stops_it(tmp_path, case):
    make, target = CASES[case]
    (tmp_path / "csv").mkdir()
    csv = make(tmp_path / "csv")
    spec_path = tmp_path / "spec.yaml"
    result = invoke("init", csv, "--target", target, "--out", spec_path)
    if case in REFUSED:
        assert REFUSED[case] in one_line_error(result) and not spec_path.exists()
        return
    assert result.exit_code == 0, result.output
    result = invoke("train", spec_path, "-q", "--set", "training.epochs=1", "--out", tmp_path / "runs")
    assert result.exit_code == 0, (result.output, spec_path.read_text())
    (run_dir,) = (tmp_path / "runs").glob("*/*")
    assert json.loads((run_dir / "summary.json").read_text())["epochs_run"] == 1


def test_init_leaves_out_ids_and_free_text_with_the_reason_training_would_give(tmp_path):
    assert invoke("init", people(tmp_path), "--target", "churned").exit_code == 0
    text = (tmp_path / "people.yaml").read_text()
    spec = load_spec(tmp_path / "people.yaml")
    assert spec.data.features == ["city", "age"] and spec.data.drop == ["customer_id", "name", "comment"]
    assert "- comment      # looks like free text (30 distinct values in 40 rows" in text
    assert "- customer_id  # looks like an id (a different whole number in every row" in text
    assert spec.data.missing == "median" and "# empty cells in city, age (the most frequent for categories)" in text
    assert spec.training.loss == "binary_crossentropy" and spec.data.stratify
    # A spec that keeps the 30-in-40 column is refused for the same reason by validate and train.
    data = yaml.safe_load(text)
    data["data"]["drop"].remove("comment")
    data["data"]["features"].append("comment")
    for command in ("validate", "train"):
        message = one_line_error(invoke(command, write_spec(tmp_path, data, "keep.yaml")))
        assert "'comment': looks like free text (30 distinct values in 40 rows" in message


def test_odd_file_and_column_names_round_trip(tmp_path):
    csv = odd(tmp_path)
    assert invoke("init", csv, "--target", "off").exit_code == 0
    spec_path = tmp_path / "my data(1).yaml"
    spec = load_spec(spec_path)
    assert spec.name == "my-data-1" and spec.data.target == "off" and spec.data.features == ODD_NAMES
    assert spec.data.path == str(csv)
    result = invoke("validate", spec_path)
    assert result.exit_code == 0 and f"{len(ODD_NAMES)} input columns" in result.output
    assert "`dlrun check 'my data(1).yaml'`" in spec_path.read_text()  # a command that pastes into a shell


def test_yes_and_on_columns_in_a_file_named_my_data_1_validate(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"yes": rng.normal(size=30), "on": rng.choice(["a", "b"], 30), "target": np.arange(30) % 2})
    frame.to_csv(tmp_path / "my data(1).csv", index=False)
    assert invoke("init", tmp_path / "my data(1).csv", "--target", "target").exit_code == 0
    result = invoke("validate", tmp_path / "my data(1).yaml")
    assert result.exit_code == 0, result.output
    assert load_spec(tmp_path / "my data(1).yaml").data.features == ["yes", "on"]


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("my data(1).csv", "my-data-1"),
        ("données été.csv", "donnees-ete"),
        ("_x.csv", "x"),
        ("(1).csv", "1"),
        ("€.csv", "experiment"),
    ],
)
def test_spec_names_are_safe_folder_names(file, name):
    assert spec_name(Path(file)) == name


def test_dates_become_date_columns_and_other_formats_are_left_out_with_the_fix(tmp_path):
    assert invoke("init", dated(tmp_path), "--target", "price").exit_code == 0
    text = (tmp_path / "sales.yaml").read_text()
    spec = load_spec(tmp_path / "sales.yaml")
    assert spec.data.features == ["day", "stamp", "x"] and spec.data.drop == ["local"]
    assert {name: column.kind for name, column in spec.data.columns.items()} == {"day": "date", "stamp": "date"}
    assert "day: {kind: date}  # inputs day.year, day.month, day.day, day.day_of_week, day.day_of_year" in text
    assert "stamp.hour, stamp.minute" in text and "data.columns.local.format: '%d/%m/%Y'" in text
    assert spec.data.missing == "median" and "empty cells in day\n" in text


def test_a_date_column_from_init_to_predict(tmp_path):
    csv = dated(tmp_path)
    assert invoke("init", csv, "--target", "price").exit_code == 0
    assert invoke("train", tmp_path / "sales.yaml", "-q", "--set", "training.epochs=1").exit_code == 0
    (run_dir,) = Path("runs/sales").iterdir()
    saved = json.loads((run_dir / "preprocessing.json").read_text())
    assert saved["inputs"][:5] == ["day.year", "day.month", "day.day", "day.day_of_week", "day.day_of_year"]
    new = pd.read_csv(csv).iloc[[0, 0, 0, 0]].drop(columns=["price"])  # one row, four days
    new["day"] = ["2024-06-30", "soon", "", "2024-02-29"]
    new.to_csv(tmp_path / "new.csv", index=False)
    result = invoke("predict", run_dir, tmp_path / "new.csv", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0 and "wrote 4 predictions" in result.output
    predicted = pd.read_csv(tmp_path / "p.csv")["prediction"]
    assert predicted.notna().all() and predicted[1] == pytest.approx(predicted[2])  # both filled with the medians
    # With the default strategy, error, the same cell stops predict with its column and line.
    clean = pd.read_csv(csv)
    clean.loc[[3, 5], "day"] = "2024-01-01"
    clean.to_csv(csv.parent / "clean.csv", index=False)
    data = yaml.safe_load((tmp_path / "sales.yaml").read_text())
    del data["data"]["missing"]
    data["data"]["path"] = "clean.csv"
    strict = write_spec(tmp_path, data, "strict.yaml")
    assert invoke("train", strict, "-q", "--set", "training.epochs=1", "--out", "strict").exit_code == 0
    (strict_run,) = Path("strict/sales").iterdir()
    message = one_line_error(invoke("predict", strict_run, tmp_path / "new.csv", "--out", tmp_path / "q.csv"))
    assert "column 'day' holds dates, but line 3 holds 'soon'" in message


def test_init_refuses_what_cannot_be_learned(tmp_path):
    frame = pd.DataFrame({"x": np.arange(30) / 3, "y": 1})
    frame.to_csv(tmp_path / "flat.csv", index=False)
    assert "has a single value (1)" in one_line_error(invoke("init", tmp_path / "flat.csv", "--target", "y"))
    pd.DataFrame({"x": np.arange(6.0), "y": [0, 0, 1, 1, 2, 2]}).to_csv(tmp_path / "tiny.csv", index=False)
    assert "too few to hold out 20% for validation" in one_line_error(
        invoke("init", tmp_path / "tiny.csv", "--target", "y")
    )
    pd.DataFrame({"name": [f"n{i}" for i in range(30)], "y": np.arange(30) % 2}).to_csv(
        tmp_path / "ids.csv", index=False
    )
    message = one_line_error(invoke("init", tmp_path / "ids.csv", "--target", "y"))
    assert "no usable feature columns besides 'y'" in message and "'name': looks like an id or names" in message
    (tmp_path / "header.csv").write_text("x,y\n")
    assert "has a header but no rows" in one_line_error(invoke("init", tmp_path / "header.csv", "--target", "y"))


def test_init_reads_the_whole_file_beyond_the_rows_that_decide_kinds(tmp_path, monkeypatch):
    monkeypatch.setattr("dlrun.data.kinds.KIND_ROWS", 20)  # every command judges kinds on the first 20 rows
    monkeypatch.setattr("dlrun.starter.KIND_ROWS", 20)
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "tag": [f"t{i % 3}" for i in range(20)] + [f"t{i}" for i in range(100)],  # 3 values, then 100
            "x": rng.normal(size=120),
            "y": np.arange(120) % 2,
        }
    )
    frame.to_csv(tmp_path / "long.csv", index=False)
    assert invoke("init", tmp_path / "long.csv", "--target", "y").exit_code == 0
    text = (tmp_path / "long.yaml").read_text()
    assert "- tag  # looks like free text (more than 50 distinct values over the file)" in text
    assert invoke("train", tmp_path / "long.yaml", "-q", "--set", "training.epochs=1").exit_code == 0
    data = yaml.safe_load(text)
    data["data"]["features"].insert(0, data["data"].pop("drop")[0])
    message = one_line_error(invoke("train", write_spec(tmp_path, data, "kept.yaml"), "-q"))
    assert "'tag' looks like free text (more than 50 distinct values" in message


def test_init_refuses_to_overwrite_and_names_a_missing_target(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    assert invoke("init", tmp_path / "data.csv", "--target", "target").exit_code == 0
    assert "--force" in one_line_error(invoke("init", tmp_path / "data.csv", "--target", "target"))
    assert invoke("init", tmp_path / "data.csv", "--target", "target", "--force").exit_code == 0
    message = one_line_error(invoke("init", tmp_path / "data.csv", "--target", "cost", "--out", tmp_path / "x.yaml"))
    assert "'cost' is not in" in message and "f0, f1, f2, f3, target" in message


def test_a_schema_line_only_when_the_schema_is_there(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    assert invoke("init", tmp_path / "data.csv", "--target", "target").exit_code == 0
    assert "yaml-language-server" not in (tmp_path / "data.yaml").read_text()
    assert invoke("schema", "--out", tmp_path / "dlrun.schema.json").exit_code == 0
    assert invoke("init", tmp_path / "data.csv", "--target", "target", "--force").exit_code == 0
    assert (tmp_path / "data.yaml").read_text().startswith("# yaml-language-server: $schema=dlrun.schema.json\n")


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0, 1, 1, 0], "binary"),
        (["yes", "no", "no"], "binary"),
        (["a", "b", "c", "a"], "multiclass"),
        ([1, 2, 3, 2, 1], "multiclass"),
        ([0.5, 1.25, 3.0, 7.5], "regression"),
        (list(range(40)), "regression"),
    ],
)
def test_infer_task(values, kind):
    assert infer_task(values).kind == kind
