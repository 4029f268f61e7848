"""The one CSV reader: ragged rows on every line (the first data row included), missing cells, headers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.csvfile import NA_VALUES, first_rows, is_missing, read_chunks, read_csv, read_header, sniff_options
from dlrun.data.preprocess import category_keys, missing_mask
from dlrun.errors import DataError

from conftest import binary_spec, make_binary_csv, write_spec

runner = CliRunner()


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("first_row", "fields", "hint"),
    [("9,1,0,1", 4, ""), ("9,1,0,", 4, "the extra fields are empty"), ("9,1", 2, "")],  # pandas kept 9,1,0
)
def test_a_ragged_first_data_row_stops_training_before_anything_is_written(tmp_path, first_row, fields, hint):
    rows = [first_row] + [f"{i},{i * 2},{i % 2}" for i in range(20)]
    write(tmp_path, "a,b,target\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["train", str(write_spec(tmp_path, binary_spec())), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"line 2 has {fields} fields but the header has 3 (a ragged row" in result.output and hint in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("reader", ["pandas", "stdlib"])
def test_every_reader_refuses_the_ragged_first_row(tmp_path, reader):
    path = write(tmp_path, "a,b,target\n9,1,2,3\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="line 2 has 4 fields but the header has 3"):
        if reader == "pandas":
            list(read_chunks(path, None, 2))
        else:
            first_rows(path, None, 10)


def test_predict_and_evaluate_read_new_rows_with_the_same_check(binary_experiment, tmp_path):
    assert runner.invoke(app, ["train", str(binary_experiment), "-q", "--set", "training.epochs=1"]).exit_code == 0
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    write(tmp_path, "f0,f1,f2,f3,target\n1,2,3,4,5,1\n1,2,3,4,0\n", "new.csv")
    for command in ("predict", "evaluate"):
        result = runner.invoke(app, [command, str(run_dir), str(tmp_path / "new.csv")])
        assert result.exit_code == 1 and "new.csv: line 2 has 6 fields but the header has 5" in result.output


def test_line_numbers_count_blank_lines_and_quoted_line_breaks(tmp_path):
    path = write(tmp_path, 'a,b\n1,"two\nlines"\n\n3,4,5\n')
    with pytest.raises(DataError, match="line 5 has 3 fields"):
        first_rows(path, None, 10)


def test_na_values_are_pandas_defaults_and_both_readers_agree_on_them():
    from pandas._libs.parsers import STR_NA_VALUES

    assert NA_VALUES == STR_NA_VALUES  # one list: a pandas upgrade that changes it fails here, not silently
    cells = ["", "  ", "NA", " NA ", "null", "None", "n/a", "#N/A", "nan", "na", "0", "none", "-"]
    assert [is_missing(c) for c in cells] == [True] * 9 + [False] * 4
    series = pd.Series(cells, dtype=object)
    assert missing_mask(series, NA_VALUES).tolist() == [is_missing(c) for c in cells]
    assert [k is None for k in category_keys(series, NA_VALUES)] == [is_missing(c) for c in cells]


def test_pandas_reads_the_missing_cells_the_standard_library_reads(tmp_path):
    path = write(tmp_path, "x,city\n1,NA\nNULL,Rome\n3, n/a\n4,na\n")
    frame = read_csv(path)
    assert frame["x"].isna().tolist() == [False, True, False, False]
    assert missing_mask(frame["city"], NA_VALUES).tolist() == [True, False, True, False]  # 'na' is a word, not a gap
    assert [[is_missing(c) for c in row] for row in first_rows(path, None, 10)] == [
        [False, True],
        [True, False],
        [False, True],
        [False, False],
    ]


def test_a_column_named_twice_is_an_error(tmp_path):
    path = write(tmp_path, "a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match=r"names column 'a' twice \(columns 1 and 3\); rename one"):
        read_header(path)


def test_header_names_are_stripped_and_a_bom_is_not_part_of_them(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff a , b\n1,2\n".encode())
    assert read_header(path) == ["a", "b"] and list(read_csv(path).columns) == ["a", "b"]


def test_sniff_options_finds_separator_and_encoding(tmp_path):
    (tmp_path / "semi.csv").write_text("a;b\n1,5;2\n")
    (tmp_path / "tab.csv").write_bytes("ville\tx\nOrléans\t1\n".encode("cp1252"))
    make_binary_csv(tmp_path / "plain.csv")
    assert sniff_options(tmp_path / "semi.csv").separator == ";"
    tab = sniff_options(tmp_path / "tab.csv")
    assert (tab.separator, tab.encoding) == ("\t", "cp1252")
    assert sniff_options(tmp_path / "plain.csv").model_dump(exclude_defaults=True) == {}


def test_chunks_continue_the_row_index_so_lines_are_right(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=50)
    chunks = list(read_chunks(tmp_path / "data.csv", None, 20))
    assert [len(c) for c in chunks] == [20, 20, 10] and chunks[2].index[0] == 40
    np.testing.assert_array_equal(pd.concat(chunks).to_numpy(), read_csv(tmp_path / "data.csv").to_numpy())
