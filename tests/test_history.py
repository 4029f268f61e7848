"""The one reader of history.csv and the one rule for the best epoch, checked against Keras's EarlyStopping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlrun.errors import DataError
from dlrun.runs.history import best_epoch, best_of, extreme_epoch, quantities, read_history, trim_history

from conftest import keras_best_epoch


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("min_delta", [0.0, 0.001, 0.05])
@pytest.mark.parametrize("start_from_epoch", [0, 3])
def test_best_epoch_is_the_one_keras_early_stopping_keeps(mode, min_delta, start_from_epoch):
    rng = np.random.default_rng([int(min_delta * 1000), start_from_epoch, mode == "max"])
    for _ in range(40):
        # Noisy curves with plateaus, where min_delta decides between close values.
        values = np.cumsum(rng.normal(0, 0.02, rng.integers(1, 60))).round(3).tolist()
        expected = keras_best_epoch(values, mode, min_delta, start_from_epoch)
        assert best_epoch(values, mode, min_delta, start_from_epoch) == expected, values


def test_min_delta_keeps_an_earlier_epoch_than_the_lowest_value():
    values = [1.0, 0.5, 0.4995, 0.4992, 0.6]
    assert best_epoch(values, "min", 0.001) == 2
    assert extreme_epoch(values) == 4
    assert best_epoch(values, "min") == 4


def test_ties_and_gaps():
    assert best_epoch([0.5, 0.5, 0.5]) == 1  # the first of equal values, as Keras keeps it
    assert extreme_epoch([0.5, 0.3, 0.3]) == 2
    assert best_epoch([]) is None and extreme_epoch([math.nan]) is None
    assert best_epoch([0.8, math.nan, 0.7]) == 3  # NaN never improves
    assert best_epoch([0.1, 0.2], start_from_epoch=5) is None


def write(path, text):
    path.write_text(text)
    return path


def test_read_history_counts_epochs_from_one_and_reads_gaps_as_nan(tmp_path):
    history = read_history(write(tmp_path / "h.csv", "epoch,loss,val_loss\n0,0.9,1.0\n1,0.5,NA\n2,nan,inf\n"))
    assert history.epochs == [1, 2, 3]
    assert history.columns == ["loss", "val_loss"]
    assert history.values["loss"][:2] == [0.9, 0.5] and math.isnan(history.values["loss"][2])
    assert math.isnan(history.values["val_loss"][1]) and history.values["val_loss"][2] == math.inf
    assert history.row(2) == {"loss": 0.5, "val_loss": None}


def test_read_history_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        read_history(write(tmp_path / "a.csv", ""))
    with pytest.raises(DataError, match=r"no numeric 'loss' column \(columns: height, weight\)"):
        read_history(write(tmp_path / "b.csv", "height,weight\n1.8,80\n"))
    with pytest.raises(DataError, match="does not exist"):
        read_history(tmp_path / "nowhere.csv")


def test_a_half_written_last_line_is_left_out_with_one_warning(tmp_path, capsys):
    # A run killed (or a disk filled) while CSVLogger wrote a row: "0." would read as val_loss 0.0.
    path = write(tmp_path / "h.csv", "epoch,loss,val_loss\r\n0,0.9,1.0\r\n1,0.5,0.")
    for _ in range(2):
        history = read_history(path)
        assert history.epochs == [1] and history.values == {"loss": [0.9], "val_loss": [1.0]}
    (warning,) = capsys.readouterr().err.splitlines()  # once per file, however often it is read
    assert warning.startswith(f"warning: {path}: its last line is half-written ('1,0.5,0.')")
    assert read_history(write(tmp_path / "header.csv", "epoch,loss,val_loss\n")).epochs == []
    with pytest.raises(DataError, match="is empty"):
        read_history(write(tmp_path / "cut.csv", "epoch,lo"))


def test_trim_history_keeps_the_header_and_the_first_rows(tmp_path):
    path = write(tmp_path / "h.csv", "epoch,loss\r\n0,0.9\r\n1,0.5\r\n2,0.4\r\n3,0.")
    trim_history(path, 2)
    assert path.read_bytes() == b"epoch,loss\r\n0,0.9\r\n1,0.5\r\n"
    trim_history(path, 0)
    assert not path.exists()


def test_quantities_put_loss_first_and_leave_out_bookkeeping():
    assert quantities(["epoch", "auc", "learning_rate", "loss", "val_auc", "val_loss"]) == ["loss", "auc"]


def test_best_of_takes_the_summary_and_falls_back_to_the_lowest_val_loss(tmp_path):
    history = read_history(write(tmp_path / "h.csv", "epoch,loss,val_loss,val_auc\n0,1,0.5,0.7\n1,1,0.49,0.9\n"))
    assert best_of(history).epoch == 2
    summary = {"monitor": "val_auc", "mode": "max", "best_epoch": 2, "min_delta": 0.0}
    best = best_of(history, summary)
    assert (best.epoch, best.monitor, best.value(history)) == (2, "val_auc", 0.9)
    assert best_of(history, {"monitor": "val_loss", "best_epoch": 7}).epoch is None  # not a logged epoch
