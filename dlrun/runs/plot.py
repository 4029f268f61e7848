"""History CSVs -> PNG figures: one per quantity for a run, or runs overlaid for `dlrun plot`.

Epochs are numbered from 1 everywhere a user sees them, as `dlrun.runs.history` reads them: the
first epoch plotted (and the one `from_epoch=1` names) is "epoch 1", as Keras's own progress bar
prints it ("Epoch 1/20"). The epoch marked best is the run's own (summary.json, by its monitor, mode
and min_delta), the one whose weights `restore_best_weights` keeps.

Never imports TensorFlow or Keras, and imports pandas and matplotlib only inside the functions that
draw, so `dlrun --help` stays fast. Figures are drawn on `matplotlib.figure.Figure` objects rather
than through pyplot: that needs no display and leaves the pyplot backend of a notebook or script
that calls these functions untouched.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from dlrun.errors import DataError, DlrunError
from dlrun.runs import labels
from dlrun.runs.history import (
    VAL,
    Best,
    History,
    best_of,
    extreme_epoch,
    history_path,
    quantities,
    read_history,
)
from dlrun.runs.layout import CONFIG, HISTORY, atomic_path
from dlrun.runs.reading import find_runs, flatten, is_run_dir, read_config, read_summary, run_label

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Up to this many epochs lines get a dot per epoch, so that a short run shows where its epochs are.
DOTS_UP_TO = 20
LEARNING_RATE = "learning_rate"
"""history.csv's learning-rate column: drawn on its own when it changes (a schedule, ReduceLROnPlateau)."""


class Band(str, Enum):
    """The shaded band around a seed group's mean line."""

    minmax = "minmax"
    std = "std"


# How the legend explains each band.
BANDS = {Band.minmax.value: "min to max over seeds", Band.std.value: "mean +/- std over seeds"}


def history_frame(source: Path | History) -> pd.DataFrame:
    """Return a history (read by `dlrun.runs.history.read_history`) as a data frame, `epoch` first, from 1.

    Infinite values become NaN, which plots as a gap in the line, as do cells that are not numbers.

    Raises:
        DataError: as `read_history`.
    """
    import numpy as np
    import pandas as pd

    history = source if isinstance(source, History) else read_history(source)
    frame = pd.DataFrame({"epoch": pd.Series(history.epochs, dtype="int64"), **history.values})
    return frame.replace([np.inf, -np.inf], np.nan)


def select_epochs(history: pd.DataFrame, from_epoch: int) -> pd.DataFrame:
    """Keep the rows from epoch `from_epoch` on (1-based, inclusive: 5 drops epochs 1 to 4).

    Raises:
        ValueError: `from_epoch` is below 1.
    """
    _check_from_epoch(from_epoch)
    return history[history["epoch"] >= from_epoch]


def run_figures(
    history: History, best: Best, title: str, summary: dict | None = None, loss: str | None = None
) -> dict[str, Figure]:
    """Draw one figure per quantity of a run: `loss` with `val_loss`, each metric with its val_ twin.

    Every figure marks the best epoch with a dotted line (the run's own, from summary.json); where
    the lowest val_loss sits at another epoch (min_delta, or another monitor), the loss figure says
    so with a dot. With the run's summary, a quantity's baseline (the best constant prediction's
    validation score) is a dotted horizontal line, and the loss figure shades the epochs where
    `dlrun.runs.diagnosis` reads overfitting. With the run's `loss` (training.loss), the loss figure's
    y-axis names it: `loss (mae)`.

    Returns:
        Figures by quantity, `loss` first; none for a run that has no epoch yet.
    """
    from matplotlib.figure import Figure

    frame = history_frame(history)
    figures: dict[str, Figure] = {}
    if frame.empty:
        return figures
    for quantity in _figure_quantities(frame):
        if quantity == LEARNING_RATE:
            continue
        fig = Figure(figsize=(6.4, 4.2), layout="constrained")
        ax = fig.subplots()
        for column, style, colour in ((quantity, "-", "C0"), (VAL + quantity, "--", "C1")):
            _draw(
                ax,
                frame,
                column,
                dots=len(frame) <= DOTS_UP_TO,
                color=colour,
                linestyle=style,
                label="validation" if column.startswith(VAL) else "training",
            )
        _mark_best(ax, frame, best, history, with_lowest=quantity == "loss")
        if summary:
            _mark_reading(ax, history, summary, quantity)
        _label_axes(ax, quantity, [loss] if loss else [])
        ax.set_title(f"{quantity}: {title}")
        ax.legend(fontsize="small")
        figures[quantity] = fig
    if LEARNING_RATE in _figure_quantities(frame):
        fig = Figure(figsize=(6.4, 4.2), layout="constrained")
        ax = fig.subplots()
        _draw(ax, frame, LEARNING_RATE, dots=len(frame) <= DOTS_UP_TO, color="C2", label="at the epoch's end")
        _mark_best(ax, frame, best, history, with_lowest=False)
        _label_axes(ax, LEARNING_RATE)
        _rate_scale(ax, [frame[LEARNING_RATE]])
        ax.set_title(f"{LEARNING_RATE}: {title}")
        ax.legend(fontsize="small")
        figures[LEARNING_RATE] = fig
    return figures


def _figure_quantities(frame: pd.DataFrame) -> list[str]:
    """The quantities a run's figures draw, in order: `loss`, the metrics, then the learning rate when it changes."""
    if frame.empty:
        return []
    drawn = list(quantities(_columns_with_values(frame)))
    return drawn + [LEARNING_RATE] if _changes(frame, LEARNING_RATE) else drawn


def plot_names(history: History) -> list[str]:
    """Return the file names `write_run_plots` gives a run's figures (none for a run with no epoch)."""
    return [f"{_file_stem(quantity)}.png" for quantity in _figure_quantities(history_frame(history))]


def write_run_plots(run_dir: Path, plots_dir: Path | None = None, summary: dict | None = None) -> list[Path]:
    """Write one PNG per quantity of a run into its `plots/` folder (see `run_figures`).

    Args:
        run_dir: The run directory (or its history CSV).
        plots_dir: Folder for the PNGs, created when missing; default `<run_dir>/plots`.
        summary: The run's summary; default: its summary.json.

    Returns:
        The files written, `loss.png` first; none for a run that has no epoch yet.

    Raises:
        DataError: The history is missing or cannot be read.
    """
    csv = history_path(Path(run_dir))
    history = read_history(csv)
    summary = read_summary(csv.parent) if summary is None else summary
    best = best_of(history, summary)
    plots_dir = Path(plots_dir) if plots_dir is not None else csv.parent / "plots"
    written = []
    for quantity, fig in run_figures(history, best, _label(csv), summary, loss_of(csv.parent)).items():
        path = plots_dir / f"{_file_stem(quantity)}.png"
        with atomic_path(path, parents=True) as tmp:
            fig.savefig(tmp, dpi=100)
        written.append(path)
    return written


def plot_histories(
    sources: list[Path],
    metrics: list[str] | None,
    from_epoch: int,
    out: Path,
    group_seeds: bool = False,
    band: str = "minmax",
) -> Path:
    """Overlay the histories of several runs in one figure, one subplot per quantity.

    Each run has one colour; on a subplot its training column is solid and its validation twin
    dashed, and each run's best epoch (summary.json's) is dotted on the panel of its monitored quantity.

    Args:
        sources: History CSVs, run directories, or folders holding run directories at any depth.
            Runs that have no epoch yet (crashed or still in their first) are left out.
        metrics: Exact columns to draw, like `["loss", "val_loss"]`; a column and its `val_` twin
            share a subplot. None (or empty) draws every quantity with its twin.
        from_epoch: First epoch drawn, 1-based and inclusive: 1 draws everything, 5 starts at the
            fifth epoch (drops four), so the tall first epochs do not squash the rest of the curve.
            The course's `history_df.loc[5:]` on Keras's 0-based index is `from_epoch=6`.
        out: The image to write, PNG unless its suffix names another format matplotlib writes
            (`.svg`, `.pdf`); parent folders are created.
        group_seeds: Draw runs whose config.yaml differ only by `seed` as one line, their mean
            per epoch, with a shaded band around it.
        band: The band of a seed group: `minmax` (lowest to highest run) or `std` (mean +/- one
            standard deviation).

    Returns:
        `out`.

    Raises:
        DataError: A source is missing or holds no run, a history cannot be read, a requested
            column is in no source, or nothing is left to draw.
        ValueError: `from_epoch` is below 1.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    # Mistakes in the arguments are reported before any file is read.
    _check_from_epoch(from_epoch)
    if band not in BANDS:
        raise ValueError(
            f"Invalid value received for `band`. Expected one of {', '.join(BANDS)}. Received: band={band!r}"
        )
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    if fmt not in FigureCanvasBase.get_supported_filetypes():
        raise DataError(
            f"cannot write an image as {out.name!r}: expected a suffix matplotlib writes, like .png, .svg or .pdf"
        )
    fig = overlay_figure(sources, metrics, from_epoch, group_seeds, band)
    with atomic_path(out, parents=True) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    return out


def overlay_figure(
    sources: list[Path], metrics: list[str] | None, from_epoch: int, group_seeds: bool = False, band: str = "minmax"
) -> Figure:
    """Draw the figure `plot_histories` writes (see there for the arguments)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    runs: list[tuple[str, pd.DataFrame]] = []
    run_dirs: list[Path] = []
    bests: dict[str, Best] = {}
    losses: list[str | None] = []
    empty: list[str] = []
    for csv, label in _resolve_sources([Path(source) for source in sources]):
        history = _read_or_none(csv)  # a run dir with only a config, or a crashed run, has no epoch yet
        if history is None or not len(history):
            empty.append(label)
        else:
            runs.append((label, history_frame(history)))
            run_dirs.append(csv.parent)
            bests[label] = best_of(history, read_summary(csv.parent) if is_run_dir(csv.parent) else None)
            losses.append(loss_of(csv.parent))
    if not runs:
        raise DataError(f"nothing to plot: no epoch has been logged yet in {', '.join(empty)}")
    bands: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    if group_seeds:
        runs, bands = _group_seeds(runs, run_dirs, band)

    available = _union(_columns_with_values(history) for _, history in runs)
    panels = _panels(metrics, available, any(_changes(history, LEARNING_RATE) for _, history in runs))
    drawn = [(label, select_epochs(history, from_epoch)) for label, history in runs]
    drawn = [(label, history) for label, history in drawn if not history.empty]
    if not drawn:
        longest = max(int(history["epoch"].max()) for _, history in runs)
        raise DataError(
            f"nothing to plot from epoch {from_epoch} on: the longest run has {longest} epochs; "
            f"pass a smaller from_epoch"
        )

    fig = Figure(layout="constrained")
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig.set_size_inches(6.4 * ncols, 3.6 * nrows + 0.4 + 0.25 * math.ceil(len(drawn) / 2))
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)  # an odd number of panels leaves one cell of the grid empty

    # tab10 tells ten runs apart; beyond that, evenly spaced colours from a wide colormap.
    palette = (
        colormaps["tab10"].colors
        if len(drawn) <= 10
        else colormaps["turbo"]([i / (len(drawn) - 1) for i in range(len(drawn))])
    )
    dots = max(len(history) for _, history in drawn) <= DOTS_UP_TO  # the same for every run
    styles_used = set()
    marked = False
    for ax, (quantity, columns) in zip(axes, panels):
        for (label, history), colour in zip(drawn, palette):
            for column in columns:
                style = "--" if column.startswith(VAL) else "-"
                if _draw(ax, history, column, dots=dots, color=colour, linestyle=style):
                    styles_used.add(style)
                    if label in bands:
                        _fill_band(ax, bands[label], column, from_epoch, colour)
            best = bests.get(label)
            if best is not None and best.epoch is not None and best.epoch >= from_epoch and best.monitor in columns:
                ax.plot(
                    [best.epoch],
                    [history.loc[history["epoch"] == best.epoch, best.monitor].item()],
                    "o",
                    color=colour,
                    markersize=6,
                    markeredgecolor="black",
                )
                marked = True
        _label_axes(ax, quantity, [loss for loss in dict.fromkeys(losses) if loss])
        if quantity == LEARNING_RATE:
            _rate_scale(ax, [history[LEARNING_RATE] for _, history in drawn if LEARNING_RATE in history.columns])
        ax.set_title(quantity)

    handles = [Line2D([], [], color=colour, label=label) for (label, _), colour in zip(drawn, palette)]
    if "--" in styles_used:  # the run keys are solid: say what a dashed line means
        handles += [
            Line2D([], [], color="black", linestyle=style, label=name)
            for style, name in (("-", "training"), ("--", "validation"))
            if style in styles_used
        ]
    if bands:
        handles.append(Patch(color="grey", alpha=0.25, label="seed band: " + BANDS[band]))
    if marked:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markerfacecolor="white",
                markeredgecolor="black",
                label="best epoch",
            )
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    if from_epoch > 1:
        fig.suptitle(f"from epoch {from_epoch}", fontsize="medium")
    return fig


def _read_or_none(csv: Path) -> History | None:
    """Read a history; None when the file is missing or empty (a run that never finished an epoch)."""
    if not csv.is_file() or csv.stat().st_size == 0:
        return None
    return read_history(csv)


def _check_from_epoch(from_epoch: int) -> None:
    if from_epoch < 1:
        raise ValueError(
            f"Invalid value received for `from_epoch`. Expected an epoch number of 1 or more "
            f"(epochs are numbered from 1). Received: from_epoch={from_epoch!r}"
        )


def _resolve_sources(sources: list[Path]) -> list[tuple[Path, str]]:
    """Turn the paths a user gave into (history CSV, legend label) pairs, each file once."""
    found: list[Path] = []
    for source in sources:
        if source.is_file():
            if source.suffix.lower() != ".csv":
                raise DataError(f"{source} is not a history CSV: expected a .csv file or a folder of runs")
            found.append(source)
        elif source.is_dir():
            run_dirs, _ = find_runs([source])
            if not run_dirs:
                raise DataError(f"{source} holds no run: no {HISTORY} was found in it or below it")
            found += [run_dir / HISTORY for run_dir in run_dirs]
        else:
            raise DataError(f"{source} does not exist: expected a {HISTORY}, a run directory or a folder of runs")
    unique = list(dict.fromkeys(csv.resolve() for csv in found))
    return list(zip(unique, curve_labels(unique)))


def curve_labels(csvs: list[Path]) -> list[str]:
    """Label curves by what differs between their runs (`dlrun.runs.labels`); a bare CSV by its path."""
    params: list[dict | None] = []
    names: list[str] = []
    for csv in csvs:
        in_run = csv.name == HISTORY and is_run_dir(csv.parent)
        try:
            params.append(flatten(read_config(csv.parent)) if (csv.parent / CONFIG).is_file() and in_run else None)
        except DlrunError:
            params.append(None)
        # What names a curve when nothing differs: a run's stamp, a run without config its name/stamp.
        names.append(str(csv) if not in_run else csv.parent.name if params[-1] else run_label(csv.parent))
    if len(set(names)) < len(names):
        names = [str(csv) if name == str(csv) else run_label(csv.parent) for name, csv in zip(names, csvs)]
    return labels.run_labels(params, names)


def _label(csv: Path) -> str:
    """Name a history for a legend: its run, or the file itself when it is not in a run directory."""
    return run_label(csv.parent) if csv.name == HISTORY and is_run_dir(csv.parent) else str(csv)


def _columns_with_values(history: pd.DataFrame) -> list[str]:
    """List the columns that hold at least one number: CSVLogger writes `val_*` as NA without validation."""
    return [column for column in history.columns if column != "epoch" and history[column].notna().any()]


def _union(column_lists) -> list[str]:
    union: list[str] = []
    for columns in column_lists:
        union += [column for column in columns if column not in union]
    return union


def _panels(metrics: list[str] | None, available: list[str], rate_changes: bool = False) -> list[tuple[str, list[str]]]:
    """Group the columns to draw by quantity: `[("loss", ["loss", "val_loss"]), ...]`.

    Without `metrics`, every quantity is drawn, and the learning rate last when it changes in some run.
    """
    if not metrics:
        panels = [(q, [c for c in (q, VAL + q) if c in available]) for q in quantities(available)]
        return panels + ([(LEARNING_RATE, [LEARNING_RATE])] if rate_changes else [])
    requested = [metric.strip() for metric in metrics if metric.strip()]
    missing = [metric for metric in requested if metric not in available]
    if missing:
        raise DataError(
            f"no history has a column {', '.join(map(repr, missing))}; "
            f"available columns: {', '.join(sorted(available))}"
        )
    panels: dict[str, list[str]] = {}
    for column in requested:
        columns = panels.setdefault(column.removeprefix(VAL), [])
        if column not in columns:
            columns.append(column)
    return list(panels.items())


def _draw(ax: Axes, history: pd.DataFrame, column: str, dots: bool, **style) -> bool:
    """Plot one column against epoch; False when the history has no number in it."""
    if column not in history.columns or history[column].isna().all():
        return False
    if dots or len(history) == 1:  # a lone epoch is a line of length zero: invisible without a dot
        style |= {"marker": "o", "markersize": 3}
    ax.plot(history["epoch"], history[column], **style)
    return True


def _mark_best(ax: Axes, frame: pd.DataFrame, best: Best, history: History, with_lowest: bool) -> None:
    """Mark the best epoch with a dotted line; with `with_lowest`, dot the lowest val_loss where it differs."""
    if best.epoch is None:
        return
    value = best.value(history)
    detail = f"{best.monitor} {value:.4g}" if value is not None else best.monitor
    ax.axvline(best.epoch, color="grey", linestyle=":", label=f"best epoch {best.epoch} ({detail})")
    lowest = extreme_epoch(history.values.get(VAL + "loss", []))
    if with_lowest and lowest is not None and lowest != best.epoch:
        low = history.row(lowest)[VAL + "loss"]
        ax.plot(
            [lowest],
            [low],
            "o",
            color="C1",
            markeredgecolor="black",
            markersize=6,
            label=f"lowest val_loss {low:.4g} (epoch {lowest})",
        )


def _mark_reading(ax: Axes, history: History, summary: dict, quantity: str) -> None:
    """Draw a quantity's baseline as a dotted line and, on the loss figure, shade the overfitting epochs."""
    from dlrun.runs.diagnosis import Kind, diagnose

    baseline = (summary.get("baseline") or {}).get(quantity)
    if baseline is not None:
        ax.axhline(baseline, color="C2", linestyle=":", label=f"baseline {baseline:.4g} (best constant prediction)")
    if quantity != "loss":
        return
    overfit = diagnose(history, summary).find(Kind.OVERFIT)
    if overfit is not None:
        numbers = overfit.numbers
        ax.axvspan(
            numbers["from_epoch"],
            numbers["to_epoch"],
            color="C3",
            alpha=0.1,
            label=f"overfitting: val_loss +{numbers['rise']:.0%} from epoch {numbers['from_epoch']}",
        )


def _changes(frame: pd.DataFrame, column: str) -> bool:
    """Tell whether a column holds more than one distinct number."""
    return column in frame.columns and frame[column].dropna().nunique() > 1


def _rate_scale(ax: Axes, series: list) -> None:
    """Draw learning rates on a log scale when they span a factor of 10 or more (decays are exponential)."""
    values = [v for column in series for v in column.dropna()]
    if values and min(values) > 0 and max(values) >= 10 * min(values):
        ax.set_yscale("log")


def loss_of(run_dir: Path) -> str | None:
    """The loss a run was trained with (its config's training.loss), None when unknown (a bare history)."""
    if not (Path(run_dir) / CONFIG).is_file():
        return None
    try:
        loss = (read_config(run_dir).get("training") or {}).get("loss")
    except DlrunError:
        return None
    return loss if isinstance(loss, str) else None


def _label_axes(ax: Axes, quantity: str, losses: list[str] | None = None) -> None:
    """Label the axes; the loss's y-axis names the loss (`loss (mae)`), since loss alone says no scale."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{quantity} ({' or '.join(losses)})" if quantity == "loss" and losses else quantity)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 2.5"
    ax.grid(alpha=0.3)


def _file_stem(quantity: str) -> str:
    """Make a metric name safe as a file name (custom metrics may hold `/` or spaces)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", quantity)


def _group_seeds(runs: list[tuple[str, pd.DataFrame]], run_dirs: list[Path], band: str):
    """Merge runs that differ only by seed into (label, mean history), with each group's band.

    Runs of different lengths (early stopping) are averaged over the runs that reached an epoch.

    Returns:
        The merged runs, and {label: (lower, upper)} histories for the groups of two or more runs.
    """
    import pandas as pd

    from dlrun.runs.compare import group_labels, seed_groups

    groups = seed_groups(run_dirs)
    labels = group_labels(run_dirs, groups)
    merged: list[tuple[str, pd.DataFrame]] = []
    bands: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for group, label in zip(groups, labels):
        if len(group) == 1:
            merged.append((label, runs[group[0]][1]))
            continue
        stacked = pd.concat([runs[i][1] for i in group]).groupby("epoch", sort=True)
        mean = stacked.mean().reset_index()
        if band == "std":
            spread = stacked.std(ddof=0).reset_index()
            lower, upper = mean.copy(), mean.copy()
            columns = [c for c in mean.columns if c != "epoch"]
            lower[columns] = mean[columns] - spread[columns]
            upper[columns] = mean[columns] + spread[columns]
        else:
            lower, upper = stacked.min().reset_index(), stacked.max().reset_index()
        merged.append((label, mean))
        bands[label] = (lower, upper)
    return merged, bands


def _fill_band(ax: Axes, band: tuple[pd.DataFrame, pd.DataFrame], column: str, from_epoch: int, colour) -> None:
    lower, upper = (frame[frame["epoch"] >= from_epoch] for frame in band)
    if column in lower.columns and lower[column].notna().any():
        ax.fill_between(lower["epoch"], lower[column], upper[column], color=colour, alpha=0.2, linewidth=0)
