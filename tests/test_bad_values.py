"""Cells that are numbers no model can use (inf, 1e400), what counts as missing, columns named twice."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.csvfile import missing_numbers, missing_texts, read_csv, read_header
from dlrun.data.kinds import infer_kind, is_infinite
from dlrun.data.prepare import prepare
from dlrun.errors import DataError
from dlrun.spec.models import DataSpec

from conftest import binary_spec, make_binary_csv, write_spec

runner = CliRunner()


def regression_rows(rows: int = 40, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2)).round(3)
    return [[str(a), str(b), str(round(a + 2 * b, 3))] for a, b in x]


def write_rows(path, rows: list[list[str]], header: str = "a,b,y") -> None:
    path.write_text(header + "\n" + "\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")


def regression_spec(**data) -> dict:
    return {
        "data": {"path": "data.csv", "target": "y", "validation_split": 0.25, "scale": "standard", **data},
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "training": {"loss": "mae", "epochs": 1, "batch_size": 16},
    }


def data_spec(tmp_path, **data) -> DataSpec:
    spec = DataSpec.model_validate({**regression_spec(**data)["data"]})
    spec.path = str(tmp_path / "data.csv")
    return spec


# --- non-finite numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "infinite"),
    [("inf", True), ("-Infinity", True), ("+INF", True), ("1e400", True), ("-1e400", True), ("3.4e38", False)]
    + [("1e39", True), ("1e308", True), ("nan", False), ("info", False), ("1e-400", False), ("", False)],
)
def test_what_a_non_finite_number_is(cell, infinite):
    """Model inputs are float32: 1e39 would reach the model as infinity, so it counts as one."""
    assert is_infinite(cell) is infinite


@pytest.mark.parametrize("streaming", [False, True])
def test_training_names_the_file_column_line_and_text_of_a_non_finite_number(tmp_path, streaming):
    rows = regression_rows()
    rows[3][0], rows[20][0] = "1e400", "-Infinity"  # lines 5 and 22
    write_rows(tmp_path / "data.csv", rows)
    spec = write_spec(tmp_path, regression_spec(streaming=streaming, chunk_rows=8))
    result = runner.invoke(app, ["train", str(spec), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert f"{tmp_path / 'data.csv'}: non-finite numbers" in text
    assert re.search(r"column 'a': (line 5 '1e400'|line 22 '-Infinity')", text), text  # whichever part is read first
    assert "data.csv.infinite: missing" in text
    assert not (tmp_path / "runs").exists()


def test_a_regression_target_and_a_class_label_read_as_infinite_are_errors(tmp_path):
    rows = regression_rows()
    rows[6][2] = "-inf"
    write_rows(tmp_path / "data.csv", rows)
    with pytest.raises(DataError, match=r"column 'y': line 8 '-inf'\. Expected finite numbers"):
        prepare(data_spec(tmp_path), 0, "mae")
    labels = [[a, b, str(i % 3)] for i, (a, b, _) in enumerate(regression_rows())]
    labels[9][2] = "inf"  # pandas reads the column as numbers, so this was a class called inf
    write_rows(tmp_path / "data.csv", labels)
    with pytest.raises(DataError, match=r"column 'y': line 11 'inf'"):
        prepare(data_spec(tmp_path), 0, "sparse_categorical_crossentropy")


def test_infinite_missing_reads_them_as_gaps_that_data_missing_fills_or_drops(tmp_path):
    rows = regression_rows()
    rows[3][0], rows[5][0], rows[7][2] = "inf", "1e400", "-Infinity"
    write_rows(tmp_path / "data.csv", rows)
    spec = data_spec(tmp_path, csv={"infinite": "missing"}, missing="mean", scale="none")
    spec.validation_split = 0.1
    data = prepare(spec, 0, "mae")
    assert data.dropped["missing_target"] == 1  # the row whose target was -Infinity
    finite = [float(r[0]) for i, r in enumerate(rows) if i not in (3, 5, 7)]
    column = data.preprocessing.columns[0]
    assert column.name == "a" and column.missing == "mean"
    kept = np.asarray(data.x_train[:, 0], "float64")
    assert np.isfinite(kept).all() and np.isclose(column.fill_value, np.mean(finite), atol=0.3)
    assert np.isclose(np.isclose(kept, column.fill_value, atol=1e-5).sum(), 2, atol=2)  # both gaps filled
    spec.missing = "error"
    with pytest.raises(DataError, match="missing .*'a'"):  # a gap like any other: data.missing decides
        prepare(spec, 0, "mae")


def test_a_column_of_mostly_infinities_is_still_numeric_and_named_by_line(tmp_path):
    spec = data_spec(tmp_path)
    cells = ["1", "2", "inf", "inf", "3", "-inf"] * 3
    assert infer_kind("a", cells, spec).kind == "numeric"  # was categorical: inf, 1, 2, 3 as categories
    missing = data_spec(tmp_path, csv={"infinite": "missing"})
    assert infer_kind("a", cells, missing).kind == "numeric"
    assert infer_kind("a", ["inf", "-inf", ""] * 4, missing).reason.startswith("empty in the first 12 rows")


def test_check_names_every_column_and_warns_when_they_are_read_as_missing(tmp_path):
    rows = regression_rows()
    rows[3][0], rows[9][1] = "inf", "1e999"
    write_rows(tmp_path / "data.csv", rows)
    spec = write_spec(tmp_path, regression_spec())
    result = runner.invoke(app, ["check", str(spec)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "No likely mistakes found" not in text
    assert "column 'a': line 5 'inf'; column 'b': line 11 '1e999'" in text
    result = runner.invoke(
        app, ["check", str(spec), "--set", "data.csv.infinite=missing", "--set", "data.missing=median"]
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "warning:" in text and "non-finite numbers read as missing cells" in text and "line 11 '1e999'" in text
    assert "No likely mistakes found" not in text


def test_predict_and_evaluate_refuse_a_non_finite_number_and_a_run_that_reads_them_as_gaps_fills_them(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=60)
    spec = binary_spec(epochs=1)
    spec["data"].update(missing="mean", csv={"infinite": "missing"})
    for name, data in (("strict", binary_spec(epochs=1)), ("lenient", spec)):
        assert runner.invoke(app, ["train", str(write_spec(tmp_path, data, f"{name}.yaml")), "-q"]).exit_code == 0
    new = pd.read_csv(tmp_path / "data.csv").head(4).astype(str)
    new.loc[2, "f1"] = "1e400"
    new.to_csv(tmp_path / "new.csv", index=False)
    (strict,) = (tmp_path / "runs" / "strict").iterdir()
    for command in ("predict", "evaluate"):
        result = runner.invoke(app, [command, str(strict), str(tmp_path / "new.csv")])
        text = " ".join(result.output.split())
        assert result.exit_code == 1 and "column 'f1': line 4 '1e400'" in text, text
    (lenient,) = (tmp_path / "runs" / "lenient").iterdir()
    result = runner.invoke(app, ["predict", str(lenient), str(tmp_path / "new.csv"), "--out", "p.csv"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "p.csv")["probability"].notna().all()


# --- what counts as missing ---------------------------------------------------------------------------


def test_na_values_add_markers_and_keep_default_na_false_keeps_na_as_a_value():
    assert {"", "NA", "?", "-999", "-999.0"} <= missing_texts({"na_values": ["?", -999]})
    kept = missing_texts({"keep_default_na": False, "na_values": [" ? "]})
    assert kept == {"", "?"}  # an empty cell is always missing


def test_missing_numbers_are_those_pandas_matches_by_value_in_a_number_column(tmp_path):
    options = {"na_values": ["?", -999, "1e400", "1_000"]}
    assert missing_numbers(options) == {-999.0, float("inf"), 1000.0} and missing_numbers({}) == set()
    cells = ["-999", "-999.00", "-9.99e2", "-998", "inf", "-inf", "1000", "1000.5", "?", "5"]
    (tmp_path / "n.csv").write_text("n\n" + "\n".join(cells) + "\n", encoding="utf-8")
    read = read_csv(tmp_path / "n.csv", options)["n"].to_numpy("float64")
    as_numbers = pd.to_numeric(pd.Series(cells), errors="coerce").to_numpy("float64")
    assert np.isnan(read).tolist() == [np.isnan(v) or v in missing_numbers(options) for v in as_numbers]


def test_a_category_called_na_is_kept_by_every_reader_and_by_predict(tmp_path):
    rng = np.random.default_rng(0)
    region = rng.choice(["NA", "EU", "APAC"], 90)
    frame = pd.DataFrame({"region": region, "x": rng.normal(size=90).round(3)})
    frame["target"] = (region == "NA").astype(int)
    frame.loc[5, "region"] = ""
    frame.to_csv(tmp_path / "data.csv", index=False)
    spec = binary_spec(epochs=1)
    spec["data"].update(csv={"keep_default_na": False}, missing="most_frequent")
    data_part = DataSpec.model_validate({**spec["data"], "path": str(tmp_path / "data.csv")})
    assert infer_kind("region", list(region), data_part).kind == "categorical"
    result = runner.invoke(app, ["train", str(write_spec(tmp_path, spec)), "-q"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    import json

    pre = json.loads((run_dir / "preprocessing.json").read_text())
    assert pre["columns"][0]["categories"] == ["APAC", "EU", "NA"]
    pd.DataFrame({"region": ["NA", "EU"], "x": [0.1, 0.2]}).to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "new.csv"), "--out", "p.csv"])
    assert result.exit_code == 0 and "not seen" not in result.output.lower(), result.output
    default = binary_spec(epochs=1)
    default["data"]["missing"] = "most_frequent"
    data_default = DataSpec.model_validate({**default["data"], "path": str(tmp_path / "data.csv")})
    assert prepare(data_default, 0, "binary_crossentropy").preprocessing.columns[0].categories == ["APAC", "EU"]


def test_na_values_make_a_marker_missing_in_numbers_and_categories(tmp_path):
    rows = regression_rows()
    rows[2][0], rows[4][1] = "?", "-999.0"
    write_rows(tmp_path / "data.csv", rows)
    with pytest.raises(DataError, match=r"column 'a' is numeric but line 4 holds '\?'"):
        prepare(data_spec(tmp_path), 0, "mae")
    spec = data_spec(tmp_path, csv={"na_values": ["?", -999]}, missing="drop_rows")
    assert prepare(spec, 0, "mae").dropped["missing_values"] == 2


def test_categorical_columns_are_read_as_written_in_every_chunk(tmp_path):
    codes = ["007", "7", "true", "True", "1.0", "1"] * 10
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"code": codes, "x": rng.normal(size=60).round(3), "y": rng.normal(size=60).round(3)})
    frame.loc[40:, "code"] = ["7", "1", "True"] * 6 + ["007", "7"]  # late chunks read alone as numbers/booleans
    frame.to_csv(tmp_path / "data.csv", index=False)
    for streaming in (False, True):
        spec = data_spec(tmp_path, columns={"code": {"kind": "categorical"}}, streaming=streaming, chunk_rows=10)
        pre = prepare(spec, 0, "mae").preprocessing
        assert pre.columns[0].categories == sorted(set(codes)), streaming  # 007 and 7 were one category
    assert read_csv(tmp_path / "data.csv", None, ["code"])["code"].tolist() == frame["code"].tolist()


# --- columns named twice ---------------------------------------------------------------------------


def test_a_column_named_twice_is_an_error_from_every_command(tmp_path, binary_experiment):
    assert runner.invoke(app, ["train", str(binary_experiment), "-q", "--set", "training.epochs=1"]).exit_code == 0
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    (tmp_path / "data.csv").write_text("f0,f1,f2,f1,target\n1,2,3,4,1\n5,6,7,8,0\n")
    for args in (["validate", binary_experiment], ["check", binary_experiment], ["train", binary_experiment, "-q"]):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 1 and "names column 'f1' twice (columns 2 and 4); rename one" in result.output
    for command in ("predict", "evaluate"):
        result = runner.invoke(app, [command, str(run_dir), str(tmp_path / "data.csv")])
        assert result.exit_code == 1 and "names column 'f1' twice" in result.output
    with pytest.raises(DataError, match="names column 'a' twice"):
        read_header(_write(tmp_path / "spaces.csv", " a ,b,a\n1,2,3\n"))  # pandas would call them a and a.1


def test_lines_of_spaces_are_no_rows_to_either_reader(tmp_path):
    from dlrun.data.csvfile import first_rows

    path = _write(tmp_path / "data.csv", "a,b\n1,2\n   \n3,4\n \t\n")
    assert first_rows(path, None, 10) == [["1", "2"], ["3", "4"]]  # was a ragged row: line 3 has 1 field
    assert read_csv(path)["a"].tolist() == [1, 3]
    with pytest.raises(DataError, match="has a header but no rows"):  # was StopIteration out of read_csv
        read_csv(_write(tmp_path / "one.csv", "a\n \n"))


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("bad", "message"),
    [([99], "line 101 holds 'big' (1 such row)"), (range(99, 119), "line 101 holds 'big' (20 such rows)")],
)
def test_text_in_a_numeric_column_names_the_first_bad_line_and_counts_the_bad_rows(tmp_path, bad, message):
    rows = regression_rows(200)
    for i in bad:  # rows 99.. are lines 101..
        rows[i][0] = "big"
    write_rows(tmp_path / "data.csv", rows)
    data = DataSpec.model_validate({"path": str(tmp_path / "data.csv"), "target": "y", "validation_split": 0.25})
    with pytest.raises(DataError) as caught:
        prepare(data, 0, "mae")
    assert str(caught.value) == (
        f"{tmp_path / 'data.csv'}: column 'a' is numeric but {message}. Expected a finite number: fix the value, "
        "or declare the column categorical with data.columns.a.kind: categorical"
    )
