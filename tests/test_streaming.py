"""Streaming a CSV in chunks gives the statistics and the training of reading it whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.prepare import prepare
from dlrun.data.split import Splitter, split_rows
from dlrun.errors import DataError
from dlrun.spec.loader import load_spec

from conftest import binary_spec, mixed_frame, write_spec

runner = CliRunner()


def write_data(folder: Path, rows: int = 150) -> None:
    frame = mixed_frame(rows=rows).drop(columns=["id"])
    frame["target"] = frame["target"].astype(float)
    frame.loc[[4, 40], "target"] = np.nan
    frame.loc[7, "income"] = np.nan
    frame.to_csv(folder / "data.csv", index=False)
    mixed_frame(rows=30, seed=4).drop(columns=["id"]).to_csv(folder / "valid.csv", index=False)


def spec_data(streaming: bool, **data) -> dict:
    spec = binary_spec(epochs=1, batch_size=16, shuffle=False)
    spec["data"] = {
        "path": "data.csv",
        "target": "target",
        "validation_path": "valid.csv",
        "scale": "standard",
        "missing": "mean",
        "columns": {"income": {"missing": "constant", "fill_value": 40, "scale": "minmax"}},
        "streaming": streaming,
        "chunk_rows": 23,
        **data,
    }  # chunks that do not divide the rows
    return spec


def test_streaming_fits_the_same_statistics_as_reading_whole(tmp_path):
    write_data(tmp_path)
    results = {}
    for streaming in (False, True):
        spec = load_spec(write_spec(tmp_path, spec_data(streaming)))
        results[streaming] = prepare(spec.data, spec.seed, spec.training.loss)
    whole, streamed = results[False], results[True]
    assert streamed.stream is not None and whole.stream is None
    assert streamed.rows == whole.rows and streamed.dropped == whole.dropped == {
        "missing_target": 2,
        "missing_values": 0,
    }
    for a, b in zip(whole.preprocessing.columns, streamed.preprocessing.columns):
        assert (a.name, a.kind, a.categories, a.fill_value) == (
            b.name,
            b.kind,
            b.categories,
            pytest.approx(b.fill_value),
        )
        assert a.offset == pytest.approx(b.offset, rel=1e-12) and a.divisor == pytest.approx(b.divisor, rel=1e-12)
    batches = list(streamed.stream.batches("train", 16))
    assert [len(x) for x, _ in batches] == [16] * 9 + [4]  # 148 rows, batched across chunk boundaries
    np.testing.assert_allclose(np.concatenate([x for x, _ in batches]), whole.x_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), whole.y_train)


def test_streaming_and_in_memory_training_give_the_same_first_epoch_loss(tmp_path):
    write_data(tmp_path)
    summaries = {}
    for streaming in (False, True):
        data = spec_data(streaming, test_path="valid.csv")
        result = runner.invoke(app, ["train", str(write_spec(tmp_path, data)), "--quiet", "--out", f"runs{streaming}"])
        assert result.exit_code == 0, result.output
        run_dir = next(Path(f"runs{streaming}/spec").iterdir())
        summaries[streaming] = json.loads((run_dir / "summary.json").read_text())
    whole, streamed = summaries[False], summaries[True]
    assert streamed["streaming"] and not whole["streaming"]
    for key in ("loss", "val_loss", "binary_accuracy"):
        assert streamed["final"][key] == pytest.approx(whole["final"][key], abs=1e-5)
    assert streamed["test"]["loss"] == pytest.approx(whole["test"]["loss"], abs=1e-5)
    # test_path is the validation CSV here: evaluated once with the final weights, it gives the last val_loss
    assert whole["test"]["loss"] == pytest.approx(whole["final"]["val_loss"], abs=1e-6)
    assert streamed["rows"] == whole["rows"] == {"train": 148, "validation": 30, "test": 30}


def test_a_split_of_a_streamed_file_is_seeded_and_the_same_on_every_pass(tmp_path):
    write_data(tmp_path, rows=400)
    spec = load_spec(
        write_spec(tmp_path, spec_data(True, validation_path=None, validation_split=0.25, test_split=0.25))
    )
    data = prepare(spec.data, spec.seed, spec.training.loss)
    rows = data.rows
    # 100 rows each of the 400 are held out; the two empty targets (rows 4 and 40) are left out of their parts
    assert rows["train"] + rows["validation"] + rows["test"] == 398 and 98 <= rows["validation"] <= 100
    for part in ("train", "validation", "test"):
        first = np.concatenate([x for x, _ in data.stream.batches(part, 50)])
        again = np.concatenate([x for x, _ in data.stream.batches(part, 50)])
        assert len(first) == rows[part] and np.array_equal(first, again)


@pytest.mark.parametrize("chunk_rows", [23, 250])
def test_a_split_gives_the_same_rows_read_whole_and_streamed(tmp_path, chunk_rows):
    write_data(tmp_path, rows=400)
    results = {}
    for streaming in (False, True):
        data = spec_data(streaming, validation_path=None, validation_split=0.3, test_split=0.1, chunk_rows=chunk_rows)
        spec = load_spec(write_spec(tmp_path, data))
        results[streaming] = prepare(spec.data, spec.seed, spec.training.loss)
    whole, streamed = results[False], results[True]
    assert whole.rows == streamed.rows and whole.split == streamed.split
    assert whole.split == {
        "rule": "blocks of 100 rows, seeded order within a block, held-out counts by cumulative rounding",
        "seed": 0,
        "validation": 0.3,
        "test": 0.1,
        "stratify": False,
    }
    for part, x in (("train", whole.x_train), ("validation", whole.x_valid), ("test", whole.x_test)):
        np.testing.assert_allclose(np.concatenate([b[0] for b in streamed.stream.batches(part, 64)]), x, atol=1e-6)
    for a, b in zip(whole.preprocessing.columns, streamed.preprocessing.columns):
        assert a.offset == pytest.approx(b.offset, rel=1e-12) and a.divisor == pytest.approx(b.divisor, rel=1e-12)


def test_a_split_file_trains_the_same_first_epoch_read_whole_and_streamed(tmp_path):
    # ~20 s: two real trainings, whole and streamed, of the split that used to differ (a seeded permutation
    # against a per-row draw)
    write_data(tmp_path, rows=200)
    histories = {}
    for streaming in (False, True):
        data = spec_data(streaming, validation_path=None, validation_split=0.25)
        result = runner.invoke(app, ["train", str(write_spec(tmp_path, data)), "--quiet", "--out", f"runs{streaming}"])
        assert result.exit_code == 0, result.output
        run_dir = next(Path(f"runs{streaming}/spec").iterdir())
        histories[streaming] = pd.read_csv(run_dir / "history.csv")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["rows"] == {"train": 148, "validation": 50}  # the two empty targets were training rows
    whole, streamed = histories[False], histories[True]
    for key in ("loss", "val_loss"):
        assert streamed[key].iloc[0] == pytest.approx(whole[key].iloc[0], abs=1e-5)


def test_empty_cells_without_a_strategy_are_one_error_read_whole_or_streamed(tmp_path):
    rng = np.random.default_rng(1)
    cars = pd.DataFrame({"horsepower": rng.uniform(50, 200, 400).round(), "weight": rng.uniform(1.5, 5, 400).round(2)})
    cars["mpg"] = (60 - cars["horsepower"] / 5).round(1)
    cars["horsepower"] = cars["horsepower"].astype(object)
    cars.loc[[3, 120, 121, 250, 399], "horsepower"] = ""
    cars.to_csv(tmp_path / "cars.csv", index=False)
    messages = []
    for streaming in (False, True):
        spec = binary_spec(epochs=1)
        spec["model"]["layers"][-1] = {"type": "dense", "units": 1}
        spec["training"]["loss"] = "mae"
        spec["training"]["metrics"] = []
        data = {
            "path": "cars.csv",
            "target": "mpg",
            "validation_split": 0.25,
            "streaming": streaming,
            "chunk_rows": 100,
        }
        spec["data"] = data
        spec["seed"] = 1
        result = runner.invoke(app, ["train", str(write_spec(tmp_path, spec)), "--quiet", "--out", "runs"])
        assert result.exit_code == 1
        messages.append(result.stderr)
    assert (
        messages[0]
        == messages[1]
        == (
            f"error: missing (NaN) values in {tmp_path / 'cars.csv'}: 'horsepower' (5 rows) on line 5, 122, 123, 252, "
            "401. Choose a strategy with data.missing (or data.columns.horsepower.missing): mean, median, "
            "most_frequent, constant, drop_rows; or leave the column out with data.drop\n"
        )
    )
    assert not Path("runs").exists()  # refused before a run directory is made


def test_a_cell_that_is_not_a_date_is_one_error_read_whole_or_streamed(tmp_path):
    write_data(tmp_path, rows=300)
    frame = pd.read_csv(tmp_path / "data.csv")
    frame.insert(1, "when", ["2024-03-01"] * len(frame))
    frame.loc[[150, 260], "when"] = "not yet"  # beyond the first chunks, in two of them
    frame.to_csv(tmp_path / "data.csv", index=False)
    messages = []
    for streaming in (False, True):
        columns = {"income": {"missing": "constant", "fill_value": 40}, "when": {"kind": "date", "missing": "error"}}
        spec = load_spec(write_spec(tmp_path, spec_data(streaming, columns=columns)))
        with pytest.raises(DataError) as caught:
            prepare(spec.data, spec.seed, spec.training.loss)
        messages.append(str(caught.value))
    assert (
        messages[0]
        == messages[1]
        == (
            f"{tmp_path / 'data.csv'}: column 'when' holds dates, but line 152 holds 'not yet' (2 such rows), not a "
            "date like 2024-03-01 or 2024-03-01 12:30. Fix the value, or choose what such cells become with "
            "data.columns.when.missing: mean, median, most_frequent, constant, drop_rows; or give "
            "data.columns.when.format"
        )
    )


def test_the_split_meets_the_shares_exactly_and_does_not_depend_on_chunks():
    parts = split_rows(1234, {"validation": 0.25, "test": 0.1}, 7)
    assert {part: len(rows) for part, rows in parts.items()} == {"train": 802, "validation": 309, "test": 123}
    splitter = Splitter({"validation": 0.25, "test": 0.1}, 7)
    codes = np.concatenate([splitter.assign(None, 300), splitter.assign(None, 900), splitter.assign(None, 34)])
    assert np.array_equal(np.flatnonzero(codes == 1), parts["validation"])
    assert not np.array_equal(split_rows(1234, {"validation": 0.25}, 8)["validation"], parts["validation"])
    splitter = Splitter({"validation": 0.5}, 0)
    splitter.assign(None, 30)
    with pytest.raises(ValueError, match="^a chunk starts at row 30, not on a block of 100 rows$"):
        splitter.assign(None, 30)


def test_a_stratified_split_gives_each_class_its_share():
    labels = np.array(["a"] * 50 + ["b"] * 350 + ["c"] * 7)[np.random.default_rng(1).permutation(407)]
    parts = split_rows(407, {"validation": 0.2}, 3, labels)
    held = pd.Series(labels[parts["validation"]]).value_counts().to_dict()
    assert held == {"a": 10, "b": 70, "c": 1}


def test_streaming_is_automatic_above_a_size(tmp_path):
    write_data(tmp_path)
    spec = load_spec(write_spec(tmp_path, spec_data("auto", streaming_above_mb=0.001)))
    assert prepare(spec.data, spec.seed, spec.training.loss).stream is not None
    spec = load_spec(write_spec(tmp_path, spec_data("auto")))
    assert prepare(spec.data, spec.seed, spec.training.loss).stream is None


def test_streaming_refuses_a_median_that_needs_every_value(tmp_path):
    write_data(tmp_path)
    spec = load_spec(write_spec(tmp_path, spec_data(True, columns={"income": {"missing": "median"}})))
    with pytest.raises(DataError, match="median needs every value of 'income' in memory"):
        prepare(spec.data, spec.seed, spec.training.loss)


def test_streaming_finds_a_ragged_row_in_a_later_chunk(tmp_path):
    write_data(tmp_path)
    lines = (tmp_path / "data.csv").read_text().splitlines()
    lines[100] += ",extra"
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["train", str(write_spec(tmp_path, spec_data(True))), "--quiet"])
    assert result.exit_code == 1 and "line 101 has 6 fields but the header has 5" in result.output


def test_a_streamed_date_column_gives_the_parts_of_reading_whole(tmp_path):
    write_data(tmp_path)
    frame = pd.read_csv(tmp_path / "data.csv")
    stamps = pd.Timestamp("2024-01-01 06:00") + pd.to_timedelta(np.arange(len(frame)) * 997, unit="min")
    frame.insert(1, "when", stamps.strftime("%Y-%m-%d %H:%M"))
    frame.loc[9, "when"] = "not yet"  # a gap, filled with each part's training mean
    frame.to_csv(tmp_path / "data.csv", index=False)
    valid = pd.read_csv(tmp_path / "valid.csv")
    valid.insert(1, "when", stamps[:30].strftime("%Y-%m-%dT%H:%M:%S"))
    valid.to_csv(tmp_path / "valid.csv", index=False)
    results = {}
    for streaming in (False, True):
        spec = load_spec(write_spec(tmp_path, spec_data(streaming)))
        results[streaming] = prepare(spec.data, spec.seed, spec.training.loss)
    whole, streamed = results[False], results[True]
    (when,) = [c for c in whole.preprocessing.columns if c.name == "when"]
    (streamed_when,) = [c for c in streamed.preprocessing.columns if c.name == "when"]
    assert [p.name for p in when.parts] == ["year", "month", "day", "day_of_week", "day_of_year", "hour", "minute"]
    for a, b in zip(when.parts, streamed_when.parts):
        assert a.fill_value == pytest.approx(b.fill_value) and a.offset == pytest.approx(b.offset, rel=1e-12)
        assert a.divisor == pytest.approx(b.divisor, rel=1e-12)
    batches = list(streamed.stream.batches("train", 16))
    np.testing.assert_allclose(np.concatenate([x for x, _ in batches]), whole.x_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        np.concatenate([x for x, _ in streamed.stream.batches("validation", 16)]), whole.x_valid, rtol=1e-6, atol=1e-6
    )
