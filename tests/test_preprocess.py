"""Preprocessing from the spec: column kinds, missing values, categories, CSV options, splits, bad input.

None of these trains a model: `prepare` and the CLI fail before TensorFlow is imported.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.prepare import prepare
from dlrun.data.preprocess import Preprocessing
from dlrun.data.split import split_rows
from dlrun.errors import DataError, SpecError
from dlrun.spec.loader import load_spec

from conftest import binary_spec, mixed_frame, write_spec


def spec_for(tmp_path, frame: pd.DataFrame | None = None, text: str | None = None, **data) -> object:
    """Write the CSV (from a frame or raw text) and a binary spec with `data` keys changed; load it."""
    if text is not None:
        (tmp_path / "data.csv").write_text(text, encoding="utf-8")
    elif frame is not None:
        frame.to_csv(tmp_path / "data.csv", index=False)
    spec = binary_spec()
    spec["data"].update(data)
    spec["data"] = {k: v for k, v in spec["data"].items() if v is not None}
    return load_spec(write_spec(tmp_path, spec))


def prepared(spec):
    return prepare(spec.data, spec.seed, spec.training.loss)


def failing_train(spec_path) -> str:
    """Run `dlrun train` expecting a user error: exit 1, one message, no traceback; return the message."""
    result = CliRunner().invoke(app, ["train", str(spec_path), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.startswith("error: ")
    return result.output


# --- kinds ------------------------------------------------------------------------------------------


def test_kinds_are_inferred_and_statistics_come_from_training_rows_only(tmp_path):
    frame = mixed_frame()
    spec = spec_for(tmp_path, frame, drop=["id"], missing="mean", scale="standard")
    data = prepared(spec)
    pre = data.preprocessing
    kinds = {c.name: c.kind for c in pre.columns}
    assert kinds == {"age": "numeric", "city": "categorical", "code": "numeric", "income": "numeric"}
    assert pre.input_names == ["age", "city=Oslo", "city=Paris", "city=Rome", "code", "income"]
    assert data.x_train.shape == (90, 6) and data.x_valid.shape == (30, 6)
    train = frame.iloc[split_rows(len(frame), {"validation": 0.25}, 0)["train"]]
    age = next(c for c in pre.columns if c.name == "age")
    assert age.offset == pytest.approx(train["age"].mean())  # not the whole file's mean
    assert age.offset != pytest.approx(frame["age"].mean())
    assert age.fill_value == pytest.approx(train["age"].mean())
    filled = train["age"].fillna(train["age"].mean())
    assert age.divisor == pytest.approx(filled.std(ddof=0))  # the scaler sees the imputed column
    city = next(c for c in pre.columns if c.name == "city")
    assert city.missing == "most_frequent" and city.fill_value == train["city"].mode()[0]
    assert np.allclose(data.x_train[:, 1:4].sum(axis=1), 1.0)  # exactly one city per row, gaps filled


def test_declared_kinds_override_inference(tmp_path):
    spec = spec_for(
        tmp_path,
        mixed_frame(),
        missing="mean",
        columns={"code": {"kind": "categorical"}, "id": {"kind": "ignore"}, "income": {"scale": "minmax"}},
    )
    pre = prepared(spec).preprocessing
    assert "id" not in pre.features and "id" in pre.dropped_columns
    code = next(c for c in pre.columns if c.name == "code")
    assert code.kind == "categorical" and code.categories == ["1", "2", "3"]
    income = next(c for c in pre.columns if c.name == "income")
    assert income.scale == "minmax" and income.offset == pytest.approx(
        mixed_frame()["income"].iloc[split_rows(120, {"validation": 0.25}, 0)["train"]].min()
    )


def test_unusable_columns_are_named_with_how_to_drop_or_declare_them(tmp_path):
    frame = mixed_frame(rows=60)
    rng = np.random.default_rng(1)
    frame["notes"] = [" ".join(rng.choice(["good", "bad", "late", "ok", "fine", "slow"], 4)) for _ in range(60)]
    frame["when"] = pd.date_range("2024-01-01", periods=60).strftime("%d/%m/%Y")
    frame.to_csv(tmp_path / "data.csv", index=False)
    message = failing_train(
        write_spec(
            tmp_path,
            {
                **binary_spec(),
                "data": {"path": "data.csv", "target": "target", "validation_split": 0.25, "missing": "mean"},
            },
        )
    )
    for words in (
        "'id'",
        "looks like an id",
        "'notes'",
        "free text",
        "'when'",
        "holds dates not in ISO form (e.g. '01/01/2024')",
        "data.columns.when.format: '%d/%m/%Y'",
        "data.drop: [id, notes, when]",
        "kind: categorical",
    ):
        assert words in message
    assert "'city'" not in message and "'age'" not in message


def test_a_text_category_seen_only_in_validation_rows_is_all_zeros_and_counted(tmp_path):
    frame = mixed_frame()
    valid = mixed_frame(rows=20, seed=3)
    valid.loc[:3, "city"] = "Lima"
    valid.to_csv(tmp_path / "valid.csv", index=False)
    spec = spec_for(tmp_path, frame, drop=["id"], missing="mean", validation_split=None, validation_path="valid.csv")
    data = prepared(spec)
    assert data.unseen == {"validation": {"city": 4}}
    assert (data.x_valid[:4, 1:4] == 0).all() and (data.x_valid[4:, 1:4].sum(axis=1) == 1).all()


# --- missing values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
def test_missing_value_strategies_fill_from_training_rows(tmp_path, strategy):
    frame = mixed_frame()
    spec = spec_for(
        tmp_path,
        frame,
        drop=["id"],
        missing="mean",
        validation_split=None,
        validation_path="data.csv",
        columns={"age": {"missing": strategy, "fill_value": -1.0}},
    )
    age = next(c for c in prepared(spec).preprocessing.columns if c.name == "age")
    expected = {
        "mean": frame["age"].mean(),
        "median": frame["age"].median(),
        "most_frequent": frame["age"].mode().min(),
        "constant": -1.0,
    }[strategy]
    assert age.fill_value == pytest.approx(expected)


def test_drop_rows_and_missing_targets_are_left_out_and_counted(tmp_path):
    frame = mixed_frame()
    frame["target"] = frame["target"].astype(float)
    frame.loc[[0, 5, 9], "target"] = np.nan
    spec = spec_for(tmp_path, frame, drop=["id"], missing="drop_rows")
    data = prepared(spec)
    gaps = frame["target"].notna() & (frame["age"].isna() | frame["city"].isna())
    assert data.dropped == {"missing_target": 3, "missing_values": int(gaps.sum())}
    assert data.rows["train"] + data.rows["validation"] == 120 - 3 - int(gaps.sum())


def test_strategy_error_names_the_column_and_its_lines(tmp_path):
    frame = mixed_frame()
    spec_path = write_spec(
        tmp_path,
        {
            **binary_spec(),
            "data": {"path": "data.csv", "target": "target", "validation_path": "data.csv", "drop": ["id", "city"]},
        },
    )
    frame.to_csv(tmp_path / "data.csv", index=False)
    message = failing_train(spec_path)
    first = frame.index[frame["age"].isna()][0] + 2
    assert "'age' (8 rows)" in message and f"line {first}" in message and "data.missing" in message


def test_mean_of_a_categorical_column_is_refused_when_asked_per_column(tmp_path):
    spec = spec_for(tmp_path, mixed_frame(), drop=["id"], missing="mean", columns={"city": {"missing": "mean"}})
    with pytest.raises(DataError, match=r"columns.city.missing: mean does not apply to categorical column 'city'"):
        prepared(spec)


# --- CSV options --------------------------------------------------------------------------------------


def test_semicolons_decimal_commas_bom_and_quoted_fields(tmp_path):
    lines = ["x;city;target"] + [f'{i},5;"Rome; Italy";{i % 2}' if i % 3 else f"{i},25;Oslo;{i % 2}" for i in range(12)]
    (tmp_path / "data.csv").write_bytes(("\n".join(lines) + "\n").encode("utf-8-sig"))
    spec = spec_for(tmp_path, csv={"separator": ";", "decimal": ","})
    pre = prepared(spec).preprocessing
    assert pre.features == ["x", "city"]  # the BOM is not part of the first column's name
    city = next(c for c in pre.columns if c.name == "city")
    assert city.categories == ["Oslo", "Rome; Italy"]
    x = next(c for c in pre.columns if c.name == "x")
    values = [i + (0.25 if i % 3 == 0 else 0.5) for i in range(12)]
    train = np.array(values)[split_rows(12, {"validation": 0.25}, 0)["train"]]
    assert x.offset == pytest.approx(train.mean())


def test_latin1_encoding(tmp_path):
    text = "x,ville,target\n" + "".join(f"{i / 2},{'Besançon' if i % 2 else 'Orléans'},{i % 2}\n" for i in range(12))
    (tmp_path / "data.csv").write_bytes(text.encode("latin-1"))
    city = prepared(spec_for(tmp_path, csv={"encoding": "latin-1"})).preprocessing.columns[1]
    assert city.categories == ["Besançon", "Orléans"]
    message = failing_train(write_spec(tmp_path, binary_spec()))  # read as the default utf-8
    assert "utf-8" in message and "data.csv.encoding" in message


@pytest.mark.parametrize("bad_line", ["1,2,3,4,1", "1,2"])
def test_ragged_row_is_an_error_naming_its_line(tmp_path, bad_line):
    rows = [f"{i},{i * 2},{i % 2}" for i in range(10)]
    rows[6] = bad_line
    (tmp_path / "data.csv").write_text("a,b,target\n" + "\n".join(rows) + "\n")
    message = failing_train(write_spec(tmp_path, binary_spec()))
    assert "line 8 has" in message and "ragged row" in message and "the header has 3" in message


def test_wrong_separator_says_which_one_to_set(tmp_path):
    (tmp_path / "data.csv").write_text("a;b;target\n" + "".join(f"{i};{i};{i % 2}\n" for i in range(10)))
    message = failing_train(write_spec(tmp_path, binary_spec()))
    assert "single column 'a;b;target'" in message and "data.csv.separator: ';'" in message
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 1 and "data.csv.separator: ';'" in result.output


# --- bad input ------------------------------------------------------------------------------------------


def test_all_empty_column(tmp_path):
    frame = mixed_frame().drop(columns=["id"])
    frame["empty"] = np.nan
    frame.to_csv(tmp_path / "data.csv", index=False)
    message = failing_train(
        write_spec(
            tmp_path,
            {
                **binary_spec(),
                "data": {"path": "data.csv", "target": "target", "validation_split": 0.25, "missing": "mean"},
            },
        )
    )
    assert "'empty': empty in every row" in message and "data.drop: [empty]" in message


def test_constant_column_with_minmax_scales_to_zero(tmp_path):
    frame = mixed_frame().drop(columns=["id", "city"])
    frame["flat"] = 7.0
    spec = spec_for(tmp_path, frame, scale="minmax", missing="mean")
    data = prepared(spec)
    flat = data.preprocessing.features.index("flat")
    assert np.isfinite(data.x_train).all() and (data.x_train[:, flat] == 0).all()
    assert data.x_train[:, 0].min() == 0 and data.x_train[:, 0].max() == pytest.approx(1)


def test_target_entirely_missing(tmp_path):
    frame = mixed_frame().drop(columns=["id"])
    frame["target"] = np.nan
    frame.to_csv(tmp_path / "data.csv", index=False)
    message = failing_train(write_spec(tmp_path, binary_spec()))
    assert "column 'target' is empty in every row" in message


@pytest.mark.parametrize("loss", ["binary_crossentropy", "sparse_categorical_crossentropy"])
def test_categorical_target_with_a_single_class(tmp_path, loss):
    frame = mixed_frame().drop(columns=["id", "city"])
    frame["target"] = "yes"
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec(loss=loss, metrics=[])
    if loss == "sparse_categorical_crossentropy":
        data["model"]["layers"][-1].update(units=2, activation="softmax")
    data["data"]["missing"] = "mean"
    message = failing_train(write_spec(tmp_path, data))
    assert "column 'target'" in message and "single class ('yes')" in message


def test_text_in_a_numeric_column_names_value_and_line(tmp_path):
    frame = mixed_frame().drop(columns=["id", "city"])
    frame["income"] = frame["income"].astype(object)
    frame.loc[17, "income"] = "n/a?"
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec()
    data["data"]["missing"] = "mean"
    message = failing_train(write_spec(tmp_path, data))
    assert "column 'income' is numeric but line 19 holds 'n/a?'" in message and "kind: categorical" in message


def test_binary_text_labels_map_to_0_and_1_and_are_saved(tmp_path):
    frame = mixed_frame().drop(columns=["id", "city"])
    frame["target"] = np.where(frame["target"] == 1, "spam", "ham")
    data = prepared(spec_for(tmp_path, frame, missing="mean"))
    assert data.preprocessing.labels == ["ham", "spam"] and set(np.unique(data.y_train)) == {0.0, 1.0}


# --- splits -------------------------------------------------------------------------------------------------


def test_stratified_split_keeps_class_shares_and_test_rows_are_held_out(tmp_path):
    frame = mixed_frame(rows=200).drop(columns=["id", "city"])
    frame["target"] = np.where(np.arange(200) < 40, "rare", np.where(np.arange(200) % 2, "a", "b"))
    data = binary_spec(loss="sparse_categorical_crossentropy", metrics=[])
    data["model"]["layers"][-1].update(units=3, activation="softmax")
    data["data"].update(missing="mean", stratify=True, test_split=0.2)
    spec = load_spec(write_spec(tmp_path, data))
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = prepared(spec)
    assert result.preprocessing.classes == ["a", "b", "rare"]
    rare = result.preprocessing.classes.index("rare")
    assert result.rows == {"train": 110, "validation": 50, "test": 40}
    for y in (result.y_train, result.y_valid, result.y_test):
        assert (y == rare).mean() == pytest.approx(0.2)  # 40 of 200 everywhere


def test_stratify_needs_a_classification_loss(tmp_path):
    data = binary_spec(loss="mse", metrics=[])
    data["data"].update(stratify=True)
    with pytest.raises(SpecError, match="data.stratify"):
        load_spec(write_spec(tmp_path, data))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"test_split": 0.2, "test_path": "t.csv"}, "at most one of test_split"),
        ({"test_split": 0.8}, "leaves no training rows"),
        ({"csv": {"separator": ";", "decimal": ";"}}, "data.csv.decimal: expected '.' or ','"),
        ({"csv": {"decimal": ","}}, "decimal and separator are both ','"),
        ({"csv": {"encoding": "klingon"}}, "unknown encoding 'klingon'"),
        ({"columns": {"age": {"kind": "text"}}}, "'numeric', 'categorical', 'date' or 'ignore'"),
        ({"columns": {"target": {"kind": "numeric"}}}, "the target is not preprocessed"),
    ],
)
def test_invalid_data_options_are_spec_errors(tmp_path, change, words):
    data = binary_spec()
    data["data"].update(change)
    with pytest.raises(SpecError, match=re.escape(words)):
        load_spec(write_spec(tmp_path, data))


def test_preprocessing_json_is_readable_and_round_trips(tmp_path):
    pre = prepared(spec_for(tmp_path, mixed_frame(), drop=["id"], missing="mean")).preprocessing
    text = json.dumps(pre.to_dict(), indent=2)
    data = json.loads(text)
    assert data["inputs"] == pre.input_names and data["csv"]["separator"] == ","
    assert "categories" not in data["columns"][0] and "offset" not in data["columns"][1]
    again = Preprocessing.from_dict(data)
    frame = mixed_frame(rows=10, seed=9)
    assert np.array_equal(again.inputs(frame), pre.inputs(frame))
    legacy = Preprocessing.from_dict(
        {"features": ["a"], "target": "y", "scale": "minmax", "offset": [1.0], "divisor": [2.0], "classes": None}, "mse"
    )
    assert legacy.inputs(pd.DataFrame({"a": [3.0]}))[0, 0] == 1.0 and legacy.task == "regression"


# --- dates ----------------------------------------------------------------------------------------------


def dated_frame(cells: list[str]) -> pd.DataFrame:
    rows = len(cells)
    return pd.DataFrame({"x": np.arange(rows) / 10, "when": cells, "target": np.arange(rows) % 2})


def test_an_iso_date_column_becomes_its_parts(tmp_path):
    cells = ["2024-03-01", "2023-12-31", "2024-01-01", "2024-02-29"] * 3
    spec = spec_for(tmp_path, dated_frame(cells), scale="none", validation_split=None, validation_path="data.csv")
    data = prepared(spec)
    pre = data.preprocessing
    assert pre.input_names == ["x", "when.year", "when.month", "when.day", "when.day_of_week", "when.day_of_year"]
    expected = {
        "2024-03-01": [2024, 3, 1, 4, 61],  # a Friday (Monday is 0); 31 + 29 + 1
        "2023-12-31": [2023, 12, 31, 6, 365],
        "2024-01-01": [2024, 1, 1, 0, 1],
        "2024-02-29": [2024, 2, 29, 3, 60],
    }
    np.testing.assert_array_equal(data.x_train[:, 1:], [expected[c] for c in cells])
    assert data.x_valid.shape == (12, 6)


def test_times_add_hour_and_minute_and_parts_are_scaled_like_numbers(tmp_path):
    cells = [f"2024-03-{day:02d}T{hour:02d}:{minute:02d}:00" for day, hour, minute in [(1, 9, 5), (2, 17, 45)] * 6]
    spec = spec_for(tmp_path, dated_frame(cells), scale="minmax", validation_split=None, validation_path="data.csv")
    data = prepared(spec)
    names = data.preprocessing.input_names
    assert names[-2:] == ["when.hour", "when.minute"]
    hour = data.x_train[:, names.index("when.hour")]
    np.testing.assert_array_equal(hour, [0.0, 1.0] * 6)  # 9 -> 0, 17 -> 1
    year = data.x_train[:, names.index("when.year")]
    assert (year == 0).all()  # a constant part scales to 0, never divides by 0


def test_a_format_and_date_parts_are_declared_per_column(tmp_path):
    cells = ["01/03/2024 10:30", "15/06/2023 08:00"] * 5
    spec = spec_for(
        tmp_path,
        dated_frame(cells),
        scale="none",
        validation_split=None,
        validation_path="data.csv",
        columns={"when": {"format": "%d/%m/%Y %H:%M", "date_parts": ["month", "hour"]}},
    )
    data = prepared(spec)
    assert data.preprocessing.input_names == ["x", "when.month", "when.hour"]
    np.testing.assert_array_equal(data.x_train[:2, 1:], [[3, 10], [6, 8]])


def test_a_cell_that_is_not_a_date_is_a_gap_for_the_missing_strategy(tmp_path):
    cells = [f"2024-03-{day:02d}" for day in range(1, 19)] + ["soon", ""]  # 18 of 19: a date column
    frame = dated_frame(cells)
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = {"path": "data.csv", "target": "target", "validation_path": "data.csv"}
    message = failing_train(write_spec(tmp_path, {**binary_spec(), "data": data}))
    assert "column 'when' holds dates, but line 20 holds 'soon' (1 such row), not a date like 2024-03-01" in message
    assert "data.columns.when.missing" in message and "data.columns.when.format" in message
    filled = spec_for(
        tmp_path, frame, validation_split=None, validation_path="data.csv", columns={"when": {"missing": "mean"}}
    )
    pre = prepared(filled).preprocessing
    day = pre.columns[1].parts[2]
    assert day.name == "day" and day.fill_value == pytest.approx(9.5)  # the mean of days 1 to 18
    dropped = spec_for(tmp_path, frame, columns={"when": {"missing": "drop_rows"}})
    assert prepared(dropped).dropped == {"missing_target": 0, "missing_values": 2}


def test_date_columns_are_saved_with_their_parts_and_read_back(tmp_path):
    cells = ["2024-03-01", "2024-05-17 08:30"] * 6
    pre = prepared(spec_for(tmp_path, dated_frame(cells), scale="standard")).preprocessing
    saved = json.loads(json.dumps(pre.to_dict()))
    when = saved["columns"][1]
    assert when["kind"] == "date" and when["format"] is None and "offset" not in when
    assert [p["name"] for p in when["parts"]] == [
        "year",
        "month",
        "day",
        "day_of_week",
        "day_of_year",
        "hour",
        "minute",
    ]
    assert {"offset", "divisor", "fill_value", "scale"} <= set(when["parts"][0])
    assert saved["inputs"][1:3] == ["when.year", "when.month"]
    again = Preprocessing.from_dict(saved)
    rows = dated_frame(["2025-01-02 03:04", "2024-03-01"])
    np.testing.assert_array_equal(again.inputs(rows), pre.inputs(rows))


@pytest.mark.parametrize(
    ("column", "words"),
    [
        ({"kind": "numeric", "format": "%d/%m/%Y"}, "format only makes sense for a date column, but kind is 'numeric'"),
        ({"kind": "categorical", "date_parts": ["year"]}, "date_parts only makes sense for a date column"),
        ({"format": "day/month"}, "'day/month' is not a date format; expected a strptime format like '%d/%m/%Y'"),
        ({"date_parts": ["year", "week"]}, "'year', 'month', 'day', 'day_of_week', 'day_of_year', 'hour' or 'minute'"),
        ({"date_parts": ["year", "year"]}, "year listed more than once"),
    ],
)
def test_date_options_are_checked_with_the_spec(tmp_path, column, words):
    data = binary_spec()
    data["data"]["columns"] = {"when": column}
    with pytest.raises(SpecError, match=re.escape(words)):
        load_spec(write_spec(tmp_path, data))


@pytest.mark.parametrize("streaming", [False, True])
def test_a_row_that_drop_rows_leaves_out_is_not_read_in_memory_as_when_streamed(tmp_path, streaming):
    # The found-by-fuzzing case: the one non-number target is on a row whose feature gap drops it. In memory
    # the whole column used to be judged first: "holds text like '0'", while a stream trained.
    rows = [f"{i},{i % 2},{i * 0.5}" for i in range(8)] + ["3,,#N/A"]
    spec = spec_for(
        tmp_path,
        text="x,c,y\n" + "\n".join(rows) + "\n",
        target="y",
        missing="drop_rows",
        validation_split=0.25,
        streaming=streaming,
        chunk_rows=4,
        csv={"keep_default_na": False},
    )
    spec.training.loss = "mae"
    data = prepare(spec.data, spec.seed, "mae")
    assert data.preprocessing.target == "y"
    (tmp_path / "data.csv").write_text("x,c,y\n" + "\n".join(rows[:4] + ["3,1,abc", "4,0,n/a"]) + "\n")
    with pytest.raises(DataError, match=r"holds (text like )?'abc'"):  # the example is a cell that is not a number
        prepare(spec.data, spec.seed, "mae")


def test_a_binary_loss_on_a_target_of_many_numbers_gets_the_regression_advice(tmp_path):
    # The Miles_per_Gallon with sigmoid and binary_crossentropy: not a 12-class classifier.
    frame = mixed_frame().drop(columns=["id", "city"])
    frame["target"] = 9 + 0.5 * (np.arange(len(frame)) % 12)
    spec = spec_for(tmp_path, frame, missing="mean", validation_split=None, validation_path="data.csv")
    with pytest.raises(DataError) as caught:
        prepared(spec)
    assert str(caught.value) == (
        f"data.target: column 'target' in {tmp_path / 'data.csv'} has 12 distinct numbers (9, 9.5, 10, 10.5, 11, "
        "11.5, 12, 12.5, 13, 13.5, ...): a number to predict, but a binary loss needs two classes; use loss: mae "
        "(or mse) with a one-unit linear output layer"
    )


def test_a_binary_loss_on_three_classes_gets_the_softmax_advice_with_the_classes_sorted(tmp_path):
    frame = mixed_frame().drop(columns=["id", "city"])
    frame["target"] = np.array(["setosa", "virginica", "versicolor"])[np.arange(len(frame)) % 3][::-1]
    spec = spec_for(tmp_path, frame, missing="mean", validation_split=None, validation_path="data.csv")
    with pytest.raises(DataError) as caught:
        prepared(spec)
    assert str(caught.value) == (
        f"data.target: column 'target' in {tmp_path / 'data.csv'} has 3 classes (setosa, versicolor, virginica) "
        "but a binary loss needs two; use loss: sparse_categorical_crossentropy with a softmax output layer"
    )
