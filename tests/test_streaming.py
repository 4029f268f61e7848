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
from dlrun.data.stream import assign
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
    assert rows["train"] + rows["validation"] + rows["test"] == 398 and 60 < rows["validation"] < 140
    for part in ("train", "validation", "test"):
        first = np.concatenate([x for x, _ in data.stream.batches(part, 50)])
        again = np.concatenate([x for x, _ in data.stream.batches(part, 50)])
        assert len(first) == rows[part] and np.array_equal(first, again)
    codes = assign(np.random.default_rng(0), 10, spec.data)
    assert np.array_equal(
        codes, np.concatenate([assign(rng := np.random.default_rng(0), 4, spec.data), assign(rng, 6, spec.data)])
    )  # independent of chunk sizes


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
