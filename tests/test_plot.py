"""Tests of dlrun.plot on small synthetic Keras histories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrun.errors import DataError
from dlrun.runs import plot
from dlrun.runs.history import best_of, read_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_history(path: Path, epochs: int = 8, seed: int = 0, validation: bool = True) -> Path:
    """Write a history.csv as Keras's CSVLogger does: sorted keys, epoch from 0."""
    rng = np.random.default_rng(seed)
    loss = np.exp(-np.arange(epochs) / 3) + rng.uniform(0, 0.05, epochs)
    columns = {
        "epoch": np.arange(epochs),
        "binary_accuracy": 1 - loss / 2,
        "learning_rate": np.full(epochs, 0.001),
        "loss": loss,
        "val_binary_accuracy": 1 - loss / 2 - 0.05 if validation else ["NA"] * epochs,
        "val_loss": loss + rng.uniform(0, 0.2, epochs) if validation else ["NA"] * epochs,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def make_run(root: Path, name: str, stamp: str = "20240101-120000", **kwargs) -> Path:
    run_dir = root / name / stamp
    write_history(run_dir / "history.csv", **kwargs)
    return run_dir


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width = matplotlib.image.imread(path).shape[:2]
    assert height > 0 and width > 0


def test_read_history_numbers_epochs_from_one(tmp_path):
    history = plot.history_frame(make_run(tmp_path, "a"))
    assert list(history["epoch"]) == list(range(1, 9))
    assert history.columns[0] == "epoch"


def test_read_history_without_epoch_column_counts_from_one(tmp_path):
    csv = tmp_path / "h.csv"
    csv.write_text("loss,val_loss\n0.9,1.0\n0.5,0.7\n")
    assert list(plot.history_frame(csv)["epoch"]) == [1, 2]


def test_read_history_keeps_nan_loss_as_a_gap(tmp_path):
    csv = tmp_path / "h.csv"
    csv.write_text("epoch,loss,val_loss\n0,0.9,1.0\n1,nan,inf\n")
    history = plot.history_frame(csv)
    assert history["loss"].isna().tolist() == [False, True]
    assert history["val_loss"].isna().tolist() == [False, True]


def test_read_history_of_crashed_run_with_only_a_header(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,loss,val_loss\n")
    assert plot.history_frame(csv).empty


def test_read_history_missing_file_asks_if_it_is_a_run_directory(tmp_path):
    with pytest.raises(DataError, match=r"no history\.csv in .*is it a run directory\?"):
        plot.history_frame(tmp_path)


def test_read_history_of_run_without_history_yet(tmp_path):
    (tmp_path / "config.yaml").write_text("name: a\n")
    with pytest.raises(DataError, match="has not finished an epoch"):
        plot.history_frame(tmp_path / "history.csv")


def test_read_history_empty_file(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("")
    with pytest.raises(DataError, match="is empty"):
        plot.history_frame(csv)


def test_read_history_rejects_a_csv_that_is_not_a_history(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("height,weight\n1.8,80\n")
    with pytest.raises(DataError, match=r"no numeric 'loss' column \(columns: height, weight\)"):
        plot.history_frame(csv)


def test_read_history_rejects_binary_garbage(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_bytes(np.random.default_rng(0).integers(128, 256, 200, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match="cannot read"):
        plot.history_frame(csv)


def test_quantities_puts_loss_first_and_drops_twins_and_learning_rate():
    columns = [
        "epoch",
        "binary_accuracy",
        "learning_rate",
        "loss",
        "val_auc",
        "val_binary_accuracy",
        "val_learning_rate",
        "val_loss",
    ]
    assert plot.quantities(columns) == ["loss", "binary_accuracy", "auc"]


def test_select_epochs_is_one_based_and_inclusive(tmp_path):
    history = plot.history_frame(make_run(tmp_path, "a", epochs=10))
    assert list(plot.select_epochs(history, 5)["epoch"]) == [5, 6, 7, 8, 9, 10]
    assert len(plot.select_epochs(history, 1)) == 10
    assert plot.select_epochs(history, 11).empty


def test_select_epochs_rejects_epoch_zero(tmp_path):
    history = plot.history_frame(make_run(tmp_path, "a"))
    with pytest.raises(ValueError, match="from_epoch=0"):
        plot.select_epochs(history, 0)


def test_write_run_plots_writes_one_png_per_quantity(tmp_path):
    run_dir = make_run(tmp_path, "a")
    written = plot.write_run_plots(run_dir / "history.csv", run_dir / "plots")
    assert written == [run_dir / "plots" / "loss.png", run_dir / "plots" / "binary_accuracy.png"]
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["binary_accuracy.png", "loss.png"]
    for path in written:
        assert_png(path)


def test_write_run_plots_without_validation(tmp_path):
    run_dir = make_run(tmp_path, "a", validation=False)
    written = plot.write_run_plots(run_dir, run_dir / "plots")
    assert [p.name for p in written] == ["loss.png", "binary_accuracy.png"]


def test_write_run_plots_of_a_run_with_no_epoch_writes_nothing(tmp_path):
    csv = tmp_path / "run" / "history.csv"
    csv.parent.mkdir()
    csv.write_text("epoch,loss\n")
    assert plot.write_run_plots(csv, tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


def test_plot_histories_overlays_runs_from_a_parent_folder(tmp_path):
    make_run(tmp_path / "runs", "a", seed=1)
    make_run(tmp_path / "runs", "b", seed=2, epochs=12)
    out = plot.plot_histories([tmp_path / "runs"], None, 1, tmp_path / "figs" / "all.png")
    assert out == tmp_path / "figs" / "all.png"
    assert_png(out)


def test_plot_histories_accepts_csv_files_and_run_dirs(tmp_path):
    run_dir = make_run(tmp_path, "a")
    loose = write_history(tmp_path / "elsewhere.csv", seed=3)
    out = plot.plot_histories([run_dir, loose], ["loss"], 1, tmp_path / "out.png")
    assert_png(out)


def test_plot_histories_picks_exact_columns_into_one_subplot_per_quantity():
    available = ["binary_accuracy", "learning_rate", "loss", "val_binary_accuracy", "val_loss"]
    assert plot._panels(["loss", "val_loss"], available) == [("loss", ["loss", "val_loss"])]
    assert plot._panels(["val_binary_accuracy", "loss"], available) == [
        ("binary_accuracy", ["val_binary_accuracy"]),
        ("loss", ["loss"]),
    ]
    assert plot._panels(None, available) == [
        ("loss", ["loss", "val_loss"]),
        ("binary_accuracy", ["binary_accuracy", "val_binary_accuracy"]),
    ]


def test_plot_histories_unknown_metric_lists_available_columns(tmp_path):
    run_dir = make_run(tmp_path, "a")
    with pytest.raises(DataError) as caught:
        plot.plot_histories([run_dir], ["loss", "acc"], 1, tmp_path / "out.png")
    message = str(caught.value)
    assert "'acc'" in message
    assert "available columns: binary_accuracy, learning_rate, loss, val_binary_accuracy, val_loss" in message
    assert not (tmp_path / "out.png").exists()


def test_plot_histories_validation_column_logged_as_na_is_unavailable(tmp_path):
    run_dir = make_run(tmp_path, "a", validation=False)
    with pytest.raises(DataError, match="'val_loss'"):
        plot.plot_histories([run_dir], ["val_loss"], 1, tmp_path / "out.png")


def test_plot_histories_from_epoch_past_every_run(tmp_path):
    run_dir = make_run(tmp_path, "a", epochs=8)
    with pytest.raises(DataError, match="the longest run has 8 epochs"):
        plot.plot_histories([run_dir], None, 9, tmp_path / "out.png")
    assert_png(plot.plot_histories([run_dir], None, 8, tmp_path / "out.png"))


def test_plot_histories_skips_a_crashed_run_among_others(tmp_path):
    make_run(tmp_path / "runs", "good")
    crashed = tmp_path / "runs" / "crashed" / "20240101-120000" / "history.csv"
    crashed.parent.mkdir(parents=True)
    crashed.write_text("")
    assert_png(plot.plot_histories([tmp_path / "runs"], None, 1, tmp_path / "out.png"))
    with pytest.raises(DataError, match="nothing to plot"):
        plot.plot_histories([crashed.parent], None, 1, tmp_path / "out2.png")


def test_plot_histories_names_a_source_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty holds no run"):
        plot.plot_histories([tmp_path / "empty"], None, 1, tmp_path / "out.png")
    with pytest.raises(DataError, match=r"nowhere does not exist"):
        plot.plot_histories([tmp_path / "nowhere"], None, 1, tmp_path / "out.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt is not a history CSV"):
        plot.plot_histories([tmp_path / "notes.txt"], None, 1, tmp_path / "out.png")


def test_plot_histories_rejects_an_unknown_image_format(tmp_path):
    run_dir = make_run(tmp_path, "a")
    with pytest.raises(DataError, match="'out.txt'"):
        plot.plot_histories([run_dir], None, 1, tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()
    assert_png(plot.plot_histories([run_dir], None, 1, tmp_path / "no_suffix"))


def test_labels_name_runs_and_fall_back_to_paths(tmp_path):
    run_dir = make_run(tmp_path / "runs", "a")
    loose = write_history(tmp_path / "loose.csv")
    pairs = plot._resolve_sources([tmp_path / "runs", run_dir, loose])
    assert [label for _, label in pairs] == ["a/20240101-120000", str(loose)]


def test_importing_plot_imports_no_heavy_library():
    code = (
        "import sys, dlrun.runs.plot\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def with_summary(run_dir: Path, best_epoch: int, monitor: str = "val_loss", mode: str = "min") -> Path:
    summary = {"status": "completed", "monitor": monitor, "mode": mode, "best_epoch": best_epoch, "min_delta": 0.01}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_run_figures_mark_the_summary_best_epoch_and_say_where_the_lowest_val_loss_is(tmp_path):
    run_dir = tmp_path / "a" / "20240101-120000"
    run_dir.mkdir(parents=True)
    (run_dir / "history.csv").write_text(
        "epoch,binary_accuracy,loss,val_binary_accuracy,val_loss\n"
        "0,0.5,0.9,0.5,0.80\n1,0.6,0.7,0.6,0.60\n2,0.7,0.5,0.7,0.50\n3,0.8,0.4,0.7,0.495\n4,0.9,0.3,0.7,0.494\n"
    )
    with_summary(run_dir, 3)
    history = read_history(run_dir)
    figures = plot.run_figures(history, best_of(history, json.loads((run_dir / "summary.json").read_text())), "a")
    assert list(figures) == ["loss", "binary_accuracy"]
    ax = figures["loss"].axes[0]
    training, validation, best, lowest = ax.lines
    assert list(training.get_xdata()) == [1, 2, 3, 4, 5] and list(training.get_ydata()) == [0.9, 0.7, 0.5, 0.4, 0.3]
    assert validation.get_linestyle() == "--" and list(validation.get_ydata())[-1] == 0.494
    assert best.get_linestyle() == ":" and list(best.get_xdata()) == [3, 3]
    assert list(lowest.get_xdata()) == [5] and list(lowest.get_ydata()) == [0.494]
    assert legend_texts(ax) == [
        "training",
        "validation",
        "best epoch 3 (val_loss 0.5)",
        "lowest val_loss 0.494 (epoch 5)",
    ]
    assert ax.get_title() == "loss: a" and ax.get_xlabel() == "epoch"
    accuracy = figures["binary_accuracy"].axes[0]
    assert legend_texts(accuracy) == ["training", "validation", "best epoch 3 (val_loss 0.5)"]  # no val_loss dot


def test_run_figures_of_a_bare_history_mark_the_lowest_val_loss(tmp_path):
    csv = write_history(tmp_path / "loose.csv")
    history = read_history(csv)
    ax = plot.run_figures(history, best_of(history), "loose")["loss"].axes[0]
    lowest = history.values["val_loss"].index(min(history.values["val_loss"])) + 1
    assert f"best epoch {lowest} " in legend_texts(ax)[2] and len(ax.lines) == 3  # no second dot: they agree


def test_overlay_figure_colours_each_run_and_dots_its_best_epoch(tmp_path):
    a = with_summary(make_run(tmp_path / "runs", "a", seed=1), 2)
    b = with_summary(make_run(tmp_path / "runs", "b", seed=2, epochs=6), 4)
    fig = plot.overlay_figure([tmp_path / "runs"], ["loss", "val_loss"], 1)
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert ax.get_title() == "loss"
    lines = [line for line in ax.lines if line.get_linestyle() != "None"]
    dots = [line for line in ax.lines if line.get_linestyle() == "None"]
    assert len(lines) == 4  # training and validation per run
    assert [list(dot.get_xdata()) for dot in dots] == [[2], [4]]
    for dot, run_dir in zip(dots, (a, b)):
        values = read_history(run_dir).values["val_loss"]
        epoch = int(dot.get_xdata()[0])
        assert list(dot.get_ydata()) == [values[epoch - 1]]
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert labels == ["a/20240101-120000", "b/20240101-120000", "training", "validation", "best epoch"]
    assert lines[0].get_color() == dots[0].get_color() != lines[2].get_color()


def test_a_changing_learning_rate_gets_its_own_figure_and_panel(tmp_path):
    decaying = make_run(tmp_path / "runs", "decay", epochs=6)
    history = pd.read_csv(decaying / "history.csv")
    history["learning_rate"] = 0.01 * 0.5 ** np.arange(6)  # 0.01 down to 0.0003: a factor of 32
    history.to_csv(decaying / "history.csv", index=False)
    constant = make_run(tmp_path / "runs", "constant", epochs=6)

    written = plot.write_run_plots(decaying)
    assert [p.name for p in written] == ["loss.png", "binary_accuracy.png", "learning_rate.png"]
    assert_png(written[-1])
    assert [p.name for p in plot.write_run_plots(constant)] == ["loss.png", "binary_accuracy.png"]

    figure = plot.run_figures(read_history(decaying), best_of(read_history(decaying)), "run")["learning_rate"]
    (line,) = [line for line in figure.axes[0].lines if line.get_linestyle() == "-"]
    assert list(line.get_ydata()) == pytest.approx(list(history["learning_rate"]))
    assert figure.axes[0].get_yscale() == "log"  # spans more than a factor of 10

    overlay = plot.overlay_figure([tmp_path / "runs"], None, 1)
    titles = [ax.get_title() for ax in overlay.axes if ax.get_visible()]
    assert titles == ["loss", "binary_accuracy", "learning_rate"]
    assert [ax.get_title() for ax in plot.overlay_figure([constant], None, 1).axes if ax.get_visible()] == [
        "loss",
        "binary_accuracy",
    ]
    assert plot._panels(["learning_rate"], ["loss", "learning_rate"]) == [("learning_rate", ["learning_rate"])]


def test_the_loss_axis_names_the_loss_the_run_was_trained_with(tmp_path):
    import yaml

    run_dir = make_run(tmp_path / "runs", "cars")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"training": {"loss": "mae"}}))
    plot.write_run_plots(run_dir)
    history = read_history(run_dir)
    figures = plot.run_figures(history, best_of(history), "cars", None, plot.loss_of(run_dir))
    assert figures["loss"].axes[0].get_ylabel() == "loss (mae)"
    assert figures["binary_accuracy"].axes[0].get_ylabel() == "binary_accuracy"
    fig = plot.overlay_figure([tmp_path / "runs"], None, 1)
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_visible()][:2] == ["loss (mae)", "binary_accuracy"]
    bare = read_history(write_history(tmp_path / "loose.csv"))
    assert plot.run_figures(bare, best_of(bare), "loose")["loss"].axes[0].get_ylabel() == "loss"  # no config
