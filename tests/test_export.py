"""`dlrun export`: the SavedModel, loaded in a fresh process without dlrun, answers as `dlrun predict` does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.csvfile import missing_texts
from dlrun.data.preprocess import Column, Preprocessing, date_values
from dlrun.errors import DataError
from dlrun.export import INFO, check_exportable, date_regex, input_names

from conftest import CONFIGS, write_spec

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("export")

runner = CliRunner()

# What a user of the export runs: no dlrun, raw CSV text in, numbers as float64 (NaN when empty).
SERVE = """
import json, sys
import numpy as np, pandas as pd, tensorflow as tf

for case in json.loads(sys.argv[1]):
    serve = tf.saved_model.load(case["model"]).signatures["serving_default"]
    with open(case["model"] + "/assets.extra/dlrun_export.json") as handle:
        columns = {i["input"]: i["column"] for i in json.load(handle)["inputs"]}
    cells = pd.read_csv(case["csv"], dtype=str, keep_default_na=False)
    inputs = {}
    for name, spec in serve.structured_input_signature[1].items():
        column = cells[columns[name]]
        if spec.dtype == tf.float64:
            inputs[name] = tf.constant(pd.to_numeric(column, errors="coerce").to_numpy("float64"))
        else:
            inputs[name] = tf.constant(column.to_numpy(str))
    outputs = serve(**inputs)
    results = {k: v.numpy().astype(str) if v.dtype == tf.string else v.numpy() for k, v in outputs.items()}
    results["inputs"] = np.array(sorted(inputs))
    np.savez(case["result"], **results)
assert "dlrun" not in sys.modules, "the export must be usable without dlrun"
"""


def _mixed(rows: int, seed: int, new: bool = False) -> pd.DataFrame:
    """Numbers with gaps, categories (text, integer codes, booleans), ISO datetimes, d/m/Y dates, weights.

    The new rows hold what the run's `data.csv` makes missing (`na_values` -999, `?` and 1900-01-01 as
    written; -999 by value in a number column; non-finite numbers with `infinite: missing`).
    """
    rng = np.random.default_rng(seed)
    when = np.datetime64("1962-01-01T00:00") + rng.integers(0, 70 * 365 * 1440, rows).astype("timedelta64[m]")
    born = np.datetime64("1950-01-01") + rng.integers(0, 50 * 365, rows).astype("timedelta64[D]")
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows).round(1),
            "income": rng.normal(50, 5, rows).round(2),
            "city": rng.choice(["Paris", "Rome", "Oslo"], rows).astype(object),
            "code": rng.integers(1, 4, rows).astype(object),
            "flag": rng.choice(["True", "False"], rows).astype(object),
            "signed up": [str(t).replace("T", " ") for t in when],
            "born": [pd.Timestamp(d).strftime("%d/%m/%Y") for d in born],
        }
    )
    frame["price"] = frame["age"] * 2 + (frame["city"] == "Rome") * 10 + rng.normal(0, 1, rows)
    frame["weight"] = rng.uniform(0.5, 2.0, rows).round(2)
    frame.loc[[3, 17], "age"] = np.nan
    frame.loc[[5], "income"] = np.nan
    frame.loc[[8], "city"] = np.nan
    frame.loc[[9], "code"] = np.nan
    frame.loc[[11], "born"] = np.nan  # drop_rows: left out in training, no prediction in predict
    if new:
        frame.loc[[0, 1], "city"] = ["Lima", " Oslo "]  # unseen: all zeros; spaces around a known one
        frame["income"] = frame["income"].astype(object)
        frame.loc[[2, 19, 20], "income"] = ["NA", "-999.00", "-9.99e2"]  # pandas' marker; na_values -999 by value
        frame["age"] = frame["age"].astype(object)
        frame.loc[[21, 22, 23], "age"] = ["inf", "1e400", "-1e39"]  # infinite: missing, so the mean
        frame.loc[[24], "city"] = " ? "  # na_values
        frame.loc[[4, 6, 19], "code"] = ["2.0", "03", " 2 "]  # the text is the category: 2.0 and 03 are unseen
        frame.loc[[7, 10], "flag"] = ["true", "FALSE"]  # unseen too: not the text True or False
        frame.loc[[12, 13, 14], "signed up"] = ["2023-02-29 10:00", "1969-12-31 23:59", "2024-02-29T00:01:30Z"]
        frame.loc[[15, 25], "signed up"] = ["", "1900-01-01"]  # na_values: missing, though a date
        frame.loc[[16, 18], "born"] = ["31/02/2001", "29/02/2000"]
    return frame


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def exported(tmp_path_factory) -> dict:
    """Train configs 06 and 07 and a mixed-column regression briefly, predict and export each, serve them."""
    folder = tmp_path_factory.mktemp("export")
    cases = {}
    for config, csv in (("06_binary_classification", "breast_cancer"), ("07_multiclass_wine", "wine")):
        result = runner.invoke(
            app,
            [
                "train",
                str(CONFIGS / f"{config}.yaml"),
                "-q",
                "--out",
                str(folder / "runs"),
                "--set",
                "training.epochs=2",
            ],
        )
        assert result.exit_code == 0, result.output
        cases[config[:2]] = {"run": next((folder / "runs" / config).iterdir()), "csv": CONFIGS / "data" / f"{csv}.csv"}
    _mixed(160, 0).to_csv(folder / "train.csv", index=False)
    _mixed(40, 1, new=True).to_csv(folder / "new.csv", index=False)
    spec = {
        "data": {
            "path": "train.csv",
            "target": "price",
            "validation_split": 0.25,
            "scale": "standard",
            "missing": "mean",
            "weight_column": "weight",
            "csv": {"na_values": ["-999", "?", "1900-01-01"], "infinite": "missing"},
            "columns": {
                "code": {"kind": "categorical", "missing": "most_frequent"},
                "income": {"scale": "minmax", "missing": "constant", "fill_value": -1},
                "born": {"format": "%d/%m/%Y", "missing": "drop_rows", "date_parts": ["year", "day_of_week"]},
            },
        },
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}]},
        "training": {"loss": "mse", "batch_size": 32, "epochs": 2},
    }
    result = runner.invoke(app, ["train", str(write_spec(folder, spec)), "-q", "--out", str(folder / "runs")])
    assert result.exit_code == 0, result.output
    cases["mixed"] = {"run": next((folder / "runs" / "spec").iterdir()), "csv": folder / "new.csv"}

    first = runner.invoke(app, ["export", str(cases["06"]["run"]), "--out", str(folder / "06"), "--threshold", "0.9"])
    assert first.exit_code == 0, first.output
    for name, case in cases.items():
        case.update(model=str(folder / name), result=str(folder / f"{name}.npz"), csv=str(case["csv"]))
        case["export"] = runner.invoke(app, ["export", str(case["run"]), "--out", case["model"], "--force"])
        assert case["export"].exit_code == 0, case["export"].output
        case["predict"] = runner.invoke(
            app, ["predict", str(case["run"]), case["csv"], "--out", f"{folder}/{name}.csv"]
        )
        assert case["predict"].exit_code == 0, case["predict"].output
        case["predicted"] = pd.read_csv(folder / f"{name}.csv", dtype={"prediction": str}, keep_default_na=False)
        case["info"] = json.loads((folder / name / INFO).read_text())
    shown = {
        k: {key: str(v) for key, v in case.items() if key in ("model", "csv", "result")} for k, case in cases.items()
    }
    served = subprocess.run(
        [sys.executable, "-c", SERVE, json.dumps(list(shown.values()))],
        cwd=folder,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    for case in cases.values():
        case["served"] = dict(np.load(case["result"]))
    return cases


def _numbers(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy("float64")


def test_binary_example_answers_as_predict(exported):
    case = exported["06"]
    served, predicted = case["served"], case["predicted"]
    np.testing.assert_allclose(served["probability"], _numbers(predicted, ["probability"])[:, 0], atol=1e-6, rtol=0)
    assert (served["label"] == predicted["prediction"].to_numpy(str)).all()
    assert case["info"]["threshold"] == 0.5 and case["info"]["labels"] == ["0", "1"]  # --force replaced the 0.9 one
    assert len(served["label"]) == 569 and "returns probability, label" in case["export"].output


def test_multiclass_example_answers_as_predict(exported):
    case = exported["07"]
    served, predicted = case["served"], case["predicted"]
    classes = case["info"]["classes"]
    assert classes == ["class_0", "class_1", "class_2"]
    expected = _numbers(predicted, [f"probability_{c}" for c in classes])
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-6, rtol=0)
    assert (served["label"] == predicted["prediction"].to_numpy(str)).all()


def test_mixed_columns_with_gaps_unseen_categories_and_dates_answer_as_predict(exported):
    case = exported["mixed"]
    served, predicted = case["served"], case["predicted"]
    expected = _numbers(predicted, ["prediction"])[:, 0]
    np.testing.assert_allclose(served["prediction"], expected, atol=1e-6, rtol=0)
    assert np.isnan(expected).sum() == 2 and np.isnan(served["prediction"][[11, 16]]).all()  # drop_rows gaps
    assert "2 rows left without a prediction" in case["predict"].output
    assert all(
        f"{column} {count}" in case["predict"].output for column, count in (("city", 1), ("code", 2), ("flag", 2))
    )
    inputs = {i["column"]: (i["input"], i["dtype"]) for i in case["info"]["inputs"]}
    assert sorted(served["inputs"]) == sorted(i for i, _ in inputs.values()) and "weight" not in inputs
    assert "?" in case["info"]["missing"]["strings"] and "-999.0" in case["info"]["missing"]["numbers"]
    assert inputs["signed up"] == ("signed_up", "string") and inputs["age"] == ("age", "float64")
    assert "'signed up' -> signed_up" in case["export"].output


def test_date_parts_in_the_graph_match_parse_date():
    """Every cell the graph reads gives the parts `date_values` (hence `parse_date`) gives, or a gap where it does."""
    from dlrun.export import date_fields, date_part_values

    rng = np.random.default_rng(0)
    parts = ["year", "month", "day", "day_of_week", "day_of_year", "hour", "minute"]
    formats = {
        None: "{Y:04d}-{m}-{d} {H}:{M:02d}",
        "%d/%m/%Y": "{d:02d}/{m:02d}/{Y:04d}",
        "%m/%d/%y %H:%M": "{m}/{d}/{y:02d} {H}:{M}",
        "%Y%m%d": "{Y:04d}{m:02d}{d:02d}",
        "%d.%m.%Y  T%H:%M:%S.%f": "{d}.{m}.{Y:04d} t{H:02d}:{M:02d}:{S:02d}.123",
    }
    odd = ["", " ", "NA", "2024-03-01", " 2024-03-01T12:30:59.5+01:00 ", "2024-3-1 7:05Z", "0000-01-01", "2023-02-29"]
    odd += ["1900-02-29", "2000-02-29", "2024-13-01", "2024-12-32", "2024-01-01 24:00", "2024-01-01 23:60:00", "x"]
    odd += [
        "01/03/2024",
        "1/3/24 7:05",
        "29/02/1900",
        "20240301",
        "2024031",
        " 1/ 3/2024",
        "30/02/2024",
        "3.1.2024 T1:2:3.4",
        "\xa02024-03-02\u3000",  # Unicode spaces around: stripped as str.strip does
        "4.1.2024\xa0\x0bt1:2:3.4\x1c",  # and matched by a space in the format as strptime's \\s+ does
        "2000-01-01",  # na_values below: missing though a date
        "02/01/2000",
        "?",
    ]
    na = missing_texts({"na_values": ["2000-01-01", "02/01/2000", "?"]})
    for format, written in formats.items():
        numbers = rng.integers([0, 1, 0, 0, 0, 0], [10000, 14, 33, 25, 61, 62], size=(300, 6))
        cells = odd + [written.format(Y=Y, m=m, d=d, y=Y % 100, H=H, M=M, S=S) for Y, m, d, H, M, S in numbers.tolist()]
        expected, _ = date_values(pd.Series(cells, dtype=object), format, parts, na)
        fields, is_date = date_fields(np.array(cells, dtype=object), format, na)
        values = date_part_values(fields)
        assert is_date.numpy().tolist() == (~np.isnan(expected["year"])).tolist(), format
        assert is_date.numpy().sum() > 50, format
        for part in parts:
            np.testing.assert_array_equal(np.where(is_date, values[part], np.nan), expected[part], err_msg=part)


def test_strptime_patterns_are_cpythons():
    """The directives an export reads use CPython's own strptime patterns (as RE2 writes them)."""
    import _strptime

    from dlrun.export import _DIRECTIVES

    python = _strptime.TimeRE()
    for directive, (_, pattern) in _DIRECTIVES.items():
        theirs = re.sub(r"\(\?P<\w+>", "(", python[directive]).replace(r"\d", "[0-9]")
        assert (pattern if pattern.startswith("(") or directive == "%" else f"({pattern})") == theirs, directive


def _as_predict_reads(folder, cells: list[str], options: dict, kind: str) -> pd.DataFrame:
    """Return a column of cells as `dlrun predict` reads it: written to a CSV, read with the run's options."""
    pre = Preprocessing(["c"], "t", [Column("c", kind)], csv=options)
    path = folder / "cells.csv"
    pd.DataFrame({"c": cells}).to_csv(path, index=False)
    return next(pre.read_chunks(path, None))


def test_categories_match_as_predict_keys_them(tmp_path):
    """A category is the cell's text, spaces stripped: `2.0`, `02` and `true` are unseen; gaps are the run's."""
    from dlrun.export import categorical_inputs

    cells = ["1", "2", "2.0", "02", " 10 ", "1e1", "2.5", "2.50", "True", "true", "TRUE", "x", "\xa02\u3000"]
    cells += ["", "NA", "null", "?", "-999", "-999.0", "-999.00"]
    codes = Column("c", "categorical", "most_frequent", "2", categories=["1", "10", "2", "2.5", "NA", "True"])
    found = {}
    for name, options in {
        "default": {},
        "na_values": {"na_values": ["?", -999]},
        "only na_values": {"na_values": ["?"], "keep_default_na": False},
    }.items():
        frame = _as_predict_reads(tmp_path, cells, options, "categorical")
        pre = Preprocessing(["c"], "t", [codes], csv=options)
        onehot, usable = categorical_inputs(codes, np.array(cells, dtype=object), options)
        np.testing.assert_array_equal(onehot.numpy(), pre.inputs(frame), err_msg=name)
        assert usable.numpy().all()
        found[name] = onehot.numpy().argmax(axis=1) - (onehot.numpy().sum(axis=1) == 0) * 10
    fill, unseen = 2, -10  # the fill value's category; no category at all
    first = [0, 2, unseen, unseen, 1, unseen, 3, unseen, 5, unseen, unseen, unseen, 2]
    assert found["na_values"].tolist() == first + [fill] * 6 + [unseen]  # -999.00: text, not the number -999
    assert found["default"][14:].tolist() == [fill, fill] + [unseen] * 4  # NA, null; ?, -999 are categories
    assert found["only na_values"][[13, 14, 15, 16]].tolist() == [fill, 4, unseen, fill]  # NA is a category then
    flags = Column("flag", "categorical", "error", categories=["False", "True"])
    onehot, usable = categorical_inputs(flags, np.array(["true", "FALSE", "True", "yes", "null", "n/a"]))
    assert onehot.numpy().tolist() == [[0, 0], [0, 0], [0, 1], [0, 0], [0, 0], [0, 0]]
    assert usable.numpy().tolist() == [True, True, True, True, False, False]  # strategy error: no prediction


def test_numbers_match_as_predict_reads_them(tmp_path):
    """Missing numbers by value (na_values -999 is -999.00 too), and non-finite ones as `data.csv.infinite` says."""
    from dlrun.export import numeric_inputs

    cells = ["1.5", "-999", "-999.00", "-9.99e2", "-998", "?", "NA", "", "inf", "-Infinity", "1e400", "-1e39", "3e38"]
    x = pd.to_numeric(pd.Series(cells, dtype=str), errors="coerce").to_numpy("float64")  # what a client sends
    age = Column("c", "numeric", "mean", 40.0, scale="standard", offset=40.0, divisor=10.0)
    options = {"na_values": ["-999", "?"], "infinite": "missing"}
    frame = _as_predict_reads(tmp_path, cells, options, "numeric")
    values, usable = numeric_inputs(age, x, options)
    np.testing.assert_array_equal(values.numpy(), Preprocessing(["c"], "t", [age], csv=options).inputs(frame))
    assert usable.numpy().all() and (values.numpy()[1:12, 0] == 0).tolist() == [True] * 3 + [False] + [True] * 7

    options = {"na_values": ["-999", "?"]}  # infinite: error, so predict refuses the file; the export, the rows
    with pytest.raises(DataError, match="non-finite numbers"):
        Preprocessing(["c"], "t", [age], csv=options).inputs(_as_predict_reads(tmp_path, cells, options, "numeric"))
    values, usable = numeric_inputs(age, x, options)
    assert (~usable.numpy()).nonzero()[0].tolist() == [8, 9, 10, 11]
    assert values.numpy()[[0, 1, 12], 0].tolist() == [np.float32(-3.85), 0, np.float32((3e38 - 40) / 10)]
    strict = Column("c", "numeric", "drop_rows", scale="standard", offset=40.0, divisor=10.0)
    values, usable = numeric_inputs(strict, x, {"infinite": "missing"})  # -999 is a number here
    assert (~usable.numpy()).nonzero()[0].tolist() == [5, 6, 7, 8, 9, 10, 11]
    assert values.numpy()[1, 0] == np.float32(-103.9)


def test_spaces_are_stripped_as_str_strip_strips_them():
    from dlrun.export import strip

    spaces = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    assert max(map(ord, spaces)) <= 0x3000  # what _SPACE is built from
    cells = np.array([f"{s}a{s}b{s}" for s in spaces + ["\u200b", "_"]], dtype=object)
    assert [cell.decode() for cell in strip(cells).numpy()] == [cell.strip() for cell in cells]


def test_binary_labels_follow_the_threshold():
    import tensorflow as tf

    from dlrun.export import _outputs

    pre = Preprocessing(["a"], "t", [], task="binary", labels=["no", "yes"])
    out = _outputs(pre, tf.constant([[0.6], [0.95], [0.1]]), tf.constant([True, True, False]), 0.9)
    assert out["label"].numpy().astype(str).tolist() == ["no", "yes", ""]
    assert np.isnan(out["probability"].numpy()[2]) and out["probability"].numpy()[1] == np.float32(0.95)


def test_a_format_with_month_names_is_refused_naming_the_column():
    when = Column("when", "date", "mean", format="%d %b %Y", parts=[Column("when.year", "numeric")])
    with pytest.raises(DataError, match=r"data.columns.when.format: '%d %b %Y' uses %b, which an exported model"):
        check_exportable(Preprocessing(["when"], "t", [when]))
    with pytest.raises(DataError, match="uses %d twice"):
        date_regex("%d/%d", "when")


def test_input_names_are_the_columns_unless_a_savedmodel_refuses_them():
    names = input_names(["age", "signed up", "signed_up", "_x", "é", "a-b.c"])
    assert names == {
        "age": "age",
        "signed up": "signed_up_2",
        "signed_up": "signed_up",
        "_x": "x_x",
        "é": "x_",
        "a-b.c": "a-b.c",
    }


def test_errors_are_one_line(tmp_path):
    def error(*args):
        result = runner.invoke(app, ["export", *map(str, args)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.count("\n") == 1 and result.output.startswith("error: ")
        return result.output

    assert "run directory not found: nowhere" in error("nowhere", "--out", "x")
    run = tmp_path / "run"
    run.mkdir()
    (run / "preprocessing.json").write_text("{}")
    assert "has no model.keras" in error(run, "--out", "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert "--out taken exists: give a new folder, or add --force" in error(run, "--out", "taken")
    assert "is not a SavedModel: --force only replaces an earlier export" in error(run, "--out", "taken", "--force")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert "--threshold 1.5 is not a probability" in error(run, "--out", "y", "--threshold", "1.5")


def test_an_unwritable_out_is_one_message(tmp_path, monkeypatch):
    from dlrun import export as exporting

    def refuse(**_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(exporting.tempfile, "mkdtemp", refuse)
    with pytest.raises(DataError, match=r"cannot write --out .*model: Permission denied"):
        exporting._write(None, tmp_path / "model", {})


def test_force_refuses_to_delete_files_an_export_did_not_write(tmp_path):
    from dlrun.errors import DataError
    from dlrun.export import _check_out

    out = tmp_path / "model"
    (out / "variables").mkdir(parents=True)
    (out / "saved_model.pb").write_bytes(b"graph")
    (out / "assets.extra").mkdir()
    _check_out(out, force=True)  # an earlier export: replaced
    (out / "notes.txt").write_text("mine")
    (out / "serve.py").write_text("mine")
    with pytest.raises(DataError) as caught:
        _check_out(out, force=True)
    assert str(caught.value) == (
        f"--out {out} holds files an export did not write (notes.txt, serve.py), which --force would delete: move "
        "them out of it, or give a new folder"
    )
    assert (out / "notes.txt").read_text() == "mine"
