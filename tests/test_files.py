"""Parquet and Feather files are read by their suffix, everywhere a CSV is, with kinds from their schema."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.files import read_chunks, read_frame
from dlrun.data.kinds import column_kinds
from dlrun.data.prepare import prepare
from dlrun.errors import DataError
from dlrun.spec.loader import load_spec

from conftest import binary_spec, mixed_frame, write_spec

runner = CliRunner()
PARIS_MIDNIGHT = datetime(2024, 3, 1, tzinfo=ZoneInfo("Europe/Paris"))


def dated_frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """mixed_frame plus a date column (midnight timestamps) and a nullable whole-number column."""
    frame = mixed_frame(rows, seed).drop(columns=["id"])
    frame["signed"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(rows) * 3 + seed, unit="D")
    frame["visits"] = pd.array(np.random.default_rng(seed).integers(0, 9, rows), dtype="Int64")
    frame.loc[[3, rows // 2], "visits"] = pd.NA
    return frame


def write_all(folder: Path, frame: pd.DataFrame, stem: str) -> None:
    """Write one frame as CSV (dates as pandas writes them), Parquet with small row groups, and Feather."""
    frame.to_csv(folder / f"{stem}.csv", index=False)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"{stem}.parquet", row_group_size=40)
    frame.to_feather(folder / f"{stem}.feather")


def spec_for(path: str, **data) -> dict:
    spec = binary_spec(epochs=2, batch_size=16, shuffle=False)
    spec["data"] = {
        "path": path,
        "target": "target",
        "validation_split": 0.25,
        "scale": "standard",
        "missing": "mean",
        **data,
    }
    return spec


def prepared(folder: Path, path: str, **data):
    spec = load_spec(write_spec(folder, spec_for(path, **data)))
    return prepare(spec.data, spec.seed, spec.training.loss)


def test_parquet_and_feather_give_the_preprocessing_and_inputs_of_the_same_csv(tmp_path):
    write_all(tmp_path, dated_frame(), "data")
    results = {suffix: prepared(tmp_path, f"data.{suffix}") for suffix in ("csv", "parquet", "feather")}
    csv = results["csv"]
    assert csv.preprocessing.input_names == [
        "age",
        "city=Oslo",
        "city=Paris",
        "city=Rome",
        "code",
        "income",
        "signed.year",
        "signed.month",
        "signed.day",
        "signed.day_of_week",
        "signed.day_of_year",
        "visits",
    ]  # midnight timestamps are dates without hour and minute, as pandas writes them to a CSV
    for suffix in ("parquet", "feather"):
        other = results[suffix]
        assert other.preprocessing.input_names == csv.preprocessing.input_names
        for a, b in zip(csv.preprocessing.columns, other.preprocessing.columns):
            assert (a.name, a.kind, a.categories) == (b.name, b.kind, b.categories)
            assert a.offset == pytest.approx(b.offset) and a.divisor == pytest.approx(b.divisor)
        np.testing.assert_allclose(other.x_train, csv.x_train, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(other.y_valid, csv.y_valid)


def test_column_kinds_come_from_the_schema(tmp_path):
    rows = 60
    table = pa.table(
        {
            "price": pa.array(np.linspace(1, 2, rows)),
            "customer_id": pa.array(np.arange(1000, 1000 + rows)),  # whole numbers, one per row: an id
            "zip": pa.array([str(10000 + i % 7) for i in range(rows)]),  # text of numbers: judged as CSV text
            "member": pa.array([i % 3 == 0 for i in range(rows)]),
            "seen": pa.array(pd.Timestamp("2024-03-01 08:15") + pd.to_timedelta(np.arange(rows), unit="h")),
            # midnight in Paris, stored as 23:00 or 22:00 UTC: dates, judged in their own time zone
            "opened": pa.array(
                [PARIS_MIDNIGHT + timedelta(days=day) for day in range(rows)], pa.timestamp("us", "Europe/Paris")
            ),
            "tags": pa.array([[1, 2]] * rows),
            "target": pa.array([i % 2 for i in range(rows)]),
        }
    )
    pq.write_table(table, tmp_path / "data.parquet")
    spec = load_spec(write_spec(tmp_path, spec_for("data.parquet", drop=["customer_id", "tags"], scale="none")))
    header = list(table.column_names)
    kinds = column_kinds(spec.data, header, ["price", "zip", "member", "seen", "opened"])
    assert {name: kind.kind for name, kind in kinds.items()} == {
        "price": "numeric",
        "zip": "numeric",
        "member": "categorical",
        "seen": "date",
        "opened": "date",
    }
    assert kinds["seen"].parts == ("year", "month", "day", "day_of_week", "day_of_year", "hour", "minute")
    assert kinds["opened"].parts == ("year", "month", "day", "day_of_week", "day_of_year")
    data = prepare(spec.data, spec.seed, spec.training.loss)
    inputs = data.preprocessing.apply(read_frame(tmp_path / "data.parquet"), "data.parquet").x
    days = inputs[:, data.preprocessing.input_names.index("opened.day")]
    assert days[:35].tolist() == [*range(1, 32), 1, 2, 3, 4]  # Paris dates, before and after the clocks change
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path, spec_for("data.parquet")))])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "'customer_id': looks like an id" in message
    assert "'tags': holds lists, structs or bytes, which cannot be model inputs" in message


def test_a_timestamp_column_declared_with_a_format_is_refused_with_the_fix(tmp_path):
    write_all(tmp_path, dated_frame(), "data")
    data = spec_for("data.parquet", columns={"signed": {"format": "%d/%m/%Y"}})
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path, data))])
    assert result.exit_code == 1
    assert "is stored as dates and times, which need no format: remove data.columns.signed.format" in " ".join(
        result.output.split()
    )


VALIDATE = """
import sys
from typer.testing import CliRunner
from dlrun.cli import app
result = CliRunner().invoke(app, ["validate", {spec!r}])
assert result.exit_code == 0, result.output
print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'tensorflow', 'keras', 'pandas', 'matplotlib'}}))
"""


def test_validate_reads_a_parquet_file_without_pandas_or_tensorflow(tmp_path):
    write_all(tmp_path, dated_frame(), "data")
    spec = write_spec(tmp_path, spec_for("data.parquet", validation_path="data.feather", validation_split=None))
    result = subprocess.run(
        [sys.executable, "-c", VALIDATE.format(spec=str(spec))], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_streamed_parquet_file_is_read_in_batches_and_gives_the_rows_of_reading_it_whole(tmp_path):
    frame = dated_frame(rows=150)
    write_all(tmp_path, frame, "data")
    write_all(tmp_path, dated_frame(rows=30, seed=2), "valid")
    chunks = list(read_chunks(tmp_path / "data.parquet", None, 23))
    assert [len(chunk) for chunk in chunks] == [23] * 6 + [12]
    assert [chunk.index[0] for chunk in chunks[:3]] == [0, 23, 46]  # the row index runs on, for messages
    pd.testing.assert_frame_equal(pd.concat(chunks), frame, check_dtype=False)
    own = {"validation_path": "valid.parquet", "validation_split": None}
    whole = prepared(tmp_path, "data.parquet", **own)
    streamed = prepared(tmp_path, "data.parquet", streaming=True, chunk_rows=23, **own)
    assert streamed.stream is not None and streamed.rows == whole.rows == {"train": 150, "validation": 30}
    x = np.concatenate([x for x, _ in streamed.stream.batches("train", 16)])
    np.testing.assert_allclose(x, whole.x_train, rtol=1e-6, atol=1e-6)


def test_an_empty_cell_in_a_parquet_file_is_named_by_its_row(tmp_path):
    frame = dated_frame()
    frame.loc[6, "income"] = np.nan
    write_all(tmp_path, frame, "data")
    strict = {"income": {"missing": "error"}}
    result = runner.invoke(app, ["train", str(write_spec(tmp_path, spec_for("data.parquet", columns=strict)))])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "missing (NaN) values in" in message and "'income' (1 rows) on row 7" in message
    result = runner.invoke(app, ["train", str(write_spec(tmp_path, spec_for("data.csv", columns=strict)))])
    assert "'income' (1 rows) on line 8" in " ".join(result.output.split())  # the header is line 1


def test_train_predict_and_evaluate_on_parquet_and_feather(tmp_path):
    write_all(tmp_path, dated_frame(rows=160), "data")
    write_all(tmp_path, dated_frame(rows=40, seed=3), "new")
    data = spec_for("data.parquet", validation_path="new.feather", validation_split=None, test_path="new.parquet")
    result = runner.invoke(app, ["train", str(write_spec(tmp_path, data)), "--quiet", "--out", "runs"])
    assert result.exit_code == 0, result.output
    run_dir = next(Path("runs/spec").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rows"] == {"train": 160, "validation": 40, "test": 40}
    assert set(summary["data_sha256"]) == {
        str(tmp_path / name) for name in ("data.parquet", "new.feather", "new.parquet")
    }
    written = {}
    for source, out in (("new.csv", "p.csv"), ("new.parquet", "p.parquet"), ("new.feather", "p.feather")):
        result = runner.invoke(app, ["predict", str(run_dir), source, "--out", out])
        assert result.exit_code == 0, result.output
        assert "wrote 40 predictions" in result.output
        written[out] = (
            pd.read_csv(out)
            if out.endswith(".csv")
            else pd.read_parquet(out)
            if "parquet" in out
            else (pd.read_feather(out))
        )
    np.testing.assert_allclose(written["p.parquet"]["probability"], written["p.csv"]["probability"], rtol=1e-6)
    np.testing.assert_allclose(written["p.feather"]["probability"], written["p.csv"]["probability"], rtol=1e-6)
    assert written["p.parquet"]["signed"].dtype.kind == "M"  # the input columns keep their types
    metrics = {}
    for source in ("new.csv", "new.feather"):
        result = runner.invoke(app, ["evaluate", str(run_dir), source, "--json"])
        assert result.exit_code == 0, result.output
        metrics[source] = json.loads(result.output)["metrics"]
    assert metrics["new.feather"]["loss"] == pytest.approx(metrics["new.csv"]["loss"], rel=1e-5)
    assert metrics["new.feather"]["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-5)


def test_a_file_that_is_not_what_its_suffix_says_is_one_clear_error(tmp_path):
    (tmp_path / "data.parquet").write_text("a,b,target\n1,2,0\n")
    for command in ("validate", "train"):
        result = runner.invoke(app, [command, str(write_spec(tmp_path, spec_for("data.parquet")))])
        assert result.exit_code == 1
        message = " ".join(result.output.split())
        assert message.startswith(f"error: cannot read {tmp_path / 'data.parquet'} as a Parquet file")
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path, spec_for("gone.feather")))])
    assert result.exit_code == 1 and "data file not found" in result.output


def test_init_on_a_parquet_file_says_what_to_do(tmp_path):
    write_all(tmp_path, dated_frame(), "data")
    result = runner.invoke(app, ["init", "data.parquet", "--target", "target"])
    assert result.exit_code == 1
    assert "dlrun init reads CSV files" in " ".join(result.output.split())


def test_a_parquet_schema_that_names_a_column_twice_is_refused_as_a_csv_header_is(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0]), pa.array([3.0])], ["a", "b", "a"]), path)
    with pytest.raises(DataError, match=r"the schema names column 'a' twice \(columns 1 and 3\); rename one"):
        read_frame(path)


def test_a_list_or_struct_column_is_told_to_be_left_out_not_declared_with_a_kind():
    from dlrun.data.kinds import UNUSABLE_REASON, Kind, unusable_error

    alone = unusable_error({"tags": Kind(None, UNUSABLE_REASON)}, "data.parquet")
    assert str(alone) == (
        "feature column in data.parquet that cannot be used as it is: 'tags': holds lists, structs or bytes, which "
        "cannot be model inputs. Leave it out with data.drop: [tags], or store its values as columns of numbers or "
        "text"
    )
    mixed = unusable_error({"id": Kind(None, "looks like an id"), "tags": Kind(None, UNUSABLE_REASON)}, "d.parquet")
    assert str(mixed) == (
        "feature columns in d.parquet that cannot be used as they are: 'id': looks like an id; 'tags': holds lists, "
        "structs or bytes, which cannot be model inputs. Leave them out with data.drop: [id, tags], or declare how "
        "to use a column with data.columns.<name>.kind: categorical, numeric or date (not tags: store lists and "
        "structs as columns of numbers or text)"
    )
