"""dlrun from Python: the public API that notebooks, scripts and the CLI share.

    import dlrun
    run = dlrun.train("configs/06.yaml", data=frame, overrides=["training.epochs=5"])
    run.history, run.best, run.plot(), run.predict(new_rows)
    dlrun.compare(dlrun.runs("runs"))

Every function here calls the module that owns the behaviour (`dlrun.training.fit.train`,
`dlrun.predict`, `dlrun.runs.compare`, ...), the very ones the CLI commands call, so a run trained here
is the run `dlrun train` writes. Library manners: nothing is printed (progress aside, which `quiet`
turns off), nothing exits; a user's mistake is a `DlrunError` subclass with the CLI's one-line message.
TensorFlow is imported only by what trains or loads a model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dlrun import _API
from dlrun.data.files import remembering
from dlrun.errors import DataError, DlrunError, SpecError, TrainingError
from dlrun.spec.models import Spec, is_dataframe

SpecLike = Spec | dict | str | Path
"""A spec: a loaded `Spec`, a mapping, a YAML file's path, or YAML text."""


# --- specs ---------------------------------------------------------------------------------------


def load_spec(spec: SpecLike, overrides: Sequence[str] = ()) -> Spec:
    """Return a validated spec from a path, a mapping, YAML text or a `Spec`, with `--set`-style overrides.

    A mapping or YAML text is read as a file in the current folder would be (data paths relative to it,
    named `run` unless it says `name:`); its problems are reported with lines of that text.

    Raises:
        SpecError: anything wrong with the spec or the overrides, every problem at once.
    """
    from dlrun.spec import loader

    if isinstance(spec, Spec):
        if not overrides:
            return spec.model_copy(deep=True)
        spec = spec.resolved()
    if isinstance(spec, dict):
        import yaml

        return loader.load_spec_text(yaml.safe_dump(spec, sort_keys=False), list(overrides))
    if isinstance(spec, str) and _is_text(spec):
        return loader.load_spec_text(spec, list(overrides))
    if not isinstance(spec, (str, Path)):
        raise SpecError(f"a spec is a path, a mapping, YAML text or a dlrun.Spec, not {type(spec).__name__}")
    return loader.load_spec(Path(spec), list(overrides))


def _is_text(spec: str) -> bool:
    """Tell YAML text from a file's path: text has a line break or a `key: value`, and names no file."""
    return "\n" in spec or ": " in spec or spec.rstrip().endswith(":")


def data_path(data: Any) -> str:
    """Return what `data.path` becomes for `train(data=...)`: a DataFrame's registered name, or a file's path.

    Raises:
        DataError: neither a DataFrame nor a path.
    """
    from dlrun.data import frames

    if isinstance(data, (str, Path)):
        return str(data) if is_dataframe(str(data)) else str(Path(data).resolve())
    return frames.register(data)


# --- training ------------------------------------------------------------------------------------


def train(
    spec: SpecLike,
    data: Any = None,
    out: str | Path = "runs",
    overrides: Sequence[str] = (),
    *,
    quiet: bool = False,
    checkpoint_every: float | None = None,
    track: str | None = None,
    track_uri: str | None = None,
    callbacks: list | None = None,
    console=None,
    interrupted: str = "return",
) -> Run:
    """Train a spec and return its run (a new folder under `out/<name>/`).

    Args:
        spec: a path, a mapping, YAML text or a `Spec`.
        data: a pandas DataFrame, or a data file's path, that replaces `data.path` (the run records a
            frame's rows, columns and sha256, as it records a file's sha256).
        overrides: `PATH=VALUE` texts, as `dlrun train --set` takes them.
        quiet: no progress display.
        checkpoint_every: seconds between checkpoints (None: the CLI's 5; 0: every epoch).
        track: `mlflow` to log the run to MLflow (or `none`), as `--track`.
        callbacks: more Keras callbacks, called after dlrun's own.
        console: the `rich.console.Console` progress is shown on (default: the terminal's, or Jupyter's).
        interrupted: `return` (the interrupted run, with a `UserWarning`) or `raise` (its `TrainingError`,
            as `dlrun train` reports it).

    The returned run's `tracked` says where MLflow logged it (None when it was not).

    Interrupting (Ctrl-C, or a notebook's interrupt) stops training at the end of the epoch in
    flight: the run keeps every finished epoch, and is returned with the status `interrupted` (a
    `UserWarning` says so); a second interrupt stops at once.

    Raises:
        SpecError, DataError: the spec or the data cannot be used (nothing is written).
        TrainingError: training failed (the loss became NaN, ...); the run directory keeps what it did.
    """
    from dlrun.training.fit import train as run_training
    from dlrun.training.tracking import resolve

    _check_interrupted(interrupted)
    overrides = list(overrides or ())
    with remembering():
        loaded = load_spec(spec, overrides)
        if data is not None:
            loaded.data.path = data_path(data)
        out = Path(out)
        tracking = resolve(loaded.tracking, track, track_uri, out, None)
        every = 5.0 if checkpoint_every is None else checkpoint_every
        try:
            outcome = run_training(
                loaded, out, overrides, console or _console(), quiet, every, tracking=tracking, callbacks=callbacks
            )
        except TrainingError as exc:
            return _interrupted(exc, interrupted)
    run = load_run(outcome.run_dir)
    run.tracked = tracking.where() if tracking is not None and tracking.logged else None
    return run


def _check_interrupted(interrupted: str) -> None:
    if interrupted not in ("return", "raise"):
        raise DlrunError(f"interrupted={interrupted!r}: expected 'return' or 'raise'")


def _interrupted(exc: TrainingError, interrupted: str) -> Run:
    """Return the run an interrupt stopped (with a warning), or raise what stopped training."""
    if exc.status != "interrupted" or exc.run_dir is None or interrupted == "raise":
        raise exc
    warnings.warn(str(exc), UserWarning, stacklevel=3)
    return load_run(exc.run_dir)


def resume(
    run_dir: str | Path,
    data: Any = None,
    *,
    quiet: bool = False,
    checkpoint_every: float | None = None,
    console=None,
    interrupted: str = "return",
    announce=None,
) -> Run:
    """Continue a stopped run from its last checkpoint, in its own folder (`dlrun train --resume`); return it.

    Args:
        data: the DataFrame the run trained on, when it trained on one (a file is read from its path).
        console, interrupted: as `train`.
        announce: called with the `dlrun.training.resume.Resumption` before training resumes (default:
            each of its notes becomes a `UserWarning`).

    Raises:
        DlrunError: as `dlrun train --resume`; a frame that is not the one the run started with.
        TrainingError: as `train`.
    """
    from dlrun.runs.reading import read_config
    from dlrun.training.resume import plan_resume
    from dlrun.training.resume import resume as run_resume

    _check_interrupted(interrupted)
    with remembering():
        if data is not None:
            started = str((read_config(Path(run_dir)).get("data") or {}).get("path", ""))
            given = data_path(data)
            if given != started:
                raise DataError(
                    f"cannot resume {run_dir}: it started with data {started[:30]}..., not the data given "
                    f"({given[:30]}...; the sha256 of their content differs); pass the frame it started with"
                )
        plan = plan_resume(run_dir)
        if announce is not None:
            announce(plan)
        for note in plan.notes if announce is None else ():
            warnings.warn(note, UserWarning, stacklevel=2)
        every = 5.0 if checkpoint_every is None else checkpoint_every
        try:
            outcome = run_resume(plan, console or _console(), quiet, every)
        except TrainingError as exc:
            return _interrupted(exc, interrupted)
    return load_run(outcome.run_dir)


def _console():
    """Return the console progress is shown on: Jupyter's output in a notebook, else the terminal's stdout."""
    from rich.console import Console

    return Console()


# --- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Best:
    """A run's best epoch: the epoch, the quantity that decided it, and its value there."""

    epoch: int | None
    monitor: str
    value: float | None


@dataclass(frozen=True)
class Summary:
    """summary.json, typed: how a run ended, its best epoch, its rows and timings (`raw`: every key)."""

    status: str
    epochs_run: int
    epochs: int
    monitor: str | None
    mode: str | None
    best_epoch: int | None
    best_value: float | None
    final: dict[str, float | None]
    best: dict[str, float | None]
    rows: dict[str, int]
    wall_time_s: float | None
    seed: int | None
    streaming: bool
    split: dict[str, Any] | None
    data_sha256: dict[str, str]
    test: dict[str, float] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        return cls(
            status=str(data.get("status", "")),
            epochs_run=int(data.get("epochs_run") or 0),
            epochs=int(data.get("epochs") or 0),
            monitor=data.get("monitor"),
            mode=data.get("mode"),
            best_epoch=data.get("best_epoch"),
            best_value=data.get("best_value"),
            final=dict(data.get("final") or {}),
            best=dict(data.get("best") or {}),
            rows=dict(data.get("rows") or {}),
            wall_time_s=data.get("wall_time_s"),
            seed=data.get("seed"),
            streaming=bool(data.get("streaming")),
            split=data.get("split"),
            data_sha256=dict(data.get("data_sha256") or {}),
            test=data.get("test"),
            raw=data,
        )


class Run:
    """A run directory, read lazily: its spec, summary, history, best epoch, and (on first use) its model.

    `load_run` reads the run at once, and so refuses a half-written one; `Run(dir)` reads each file on
    first use, so `predict`, `evaluate` and `export` need only the model and its preprocessing, and
    refuse a folder without them as `dlrun predict` does.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.tracked: str | None = None
        """Where MLflow logged the run, when `train` just logged it (with the command that shows it)."""

    def __repr__(self) -> str:
        best = self.best
        value = "" if best.value is None else f" {best.monitor}={best.value:.4g} at epoch {best.epoch}"
        return f"Run({str(self.dir)!r}: {self.summary.status}, {self.summary.epochs_run} epochs{value})"

    @cached_property
    def _run(self):
        """The run's config, summary and history (`dlrun.runs.reading.Run`).

        Raises:
            DlrunError: the run is half-written or a file in it cannot be read.
        """
        from dlrun.runs import reading

        return reading.load_run(self.dir)

    @property
    def name(self) -> str:
        return self._run.label

    @cached_property
    def spec(self) -> Spec:
        """The spec the run trained, as its config.yaml records it (every default filled in)."""
        from dlrun.runs.reading import read_config

        return Spec.model_validate(read_config(self.dir))

    @cached_property
    def summary(self) -> Summary:
        return Summary.from_dict(self._run.summary)

    @cached_property
    def history(self):
        """history.csv as a DataFrame, one row per epoch (`epoch` from 1)."""
        from dlrun.runs.plot import history_frame

        return history_frame(self._run.history)

    @property
    def best(self) -> Best:
        """The best epoch by the run's own rule (its early stopping's monitor, mode and min_delta)."""
        from dlrun.runs.history import best_of

        best = best_of(self._run.history, self._run.summary)
        return Best(best.epoch, best.monitor, best.value(self._run.history))

    @cached_property
    def model(self):
        """The trained Keras model (loaded on first use, in Keras's safe mode)."""
        return self._trained.model

    @cached_property
    def _trained(self):
        from dlrun.predict import load_trained

        return load_trained(self.dir)

    def predict(self, data: Any, threshold: float = 0.5, out: str | Path | None = None):
        """Return the rows of a DataFrame or data file with the model's predictions added (as `dlrun predict`).

        Args:
            out: write the rows there instead, chunk by chunk (CSV, Parquet or Feather by its suffix; `-`:
                CSV on standard output), and return what was written (`dlrun.predict.Predicted`).

        Raises:
            DataError: a threshold that is not a probability; a folder without a model; a missing column, ...
        """
        from dlrun.predict import check_threshold, predict, predictions

        check_threshold(threshold)
        with remembering():
            if out is not None:
                return predict(self.dir, _named(data), out, threshold)
            return predictions(self._trained, _named(data), threshold)

    def evaluate(self, data: Any, details: bool = False):
        """Return the loss and every metric on labelled rows (a DataFrame or a data file), as `dlrun evaluate`.

        Args:
            details: return the whole `dlrun.predict.Evaluation` (rows, rows left out, unseen categories).
        """
        from dlrun.predict import evaluate

        with remembering():
            result = evaluate(self.dir, _named(data))
        return result if details else result.metrics

    def plot(self, quantity: str = "loss"):
        """Return the figure of one quantity's curves (`loss`, or a metric), as the run's plots/ draws it."""
        from dlrun.runs.history import best_of
        from dlrun.runs.plot import loss_of, run_figures

        history = self._run.history
        figures = run_figures(
            history, best_of(history, self._run.summary), self.name, self._run.summary, loss_of(self.dir)
        )
        if quantity not in figures:
            raise DlrunError(f"{self.dir} has no curve {quantity!r}; it has {', '.join(figures) or 'none yet'}")
        _inline_figures()
        return figures[quantity]

    def diagnose(self):
        """Return the reading of the run's learning curves (`dlrun.runs.diagnosis.Diagnosis`), as `dlrun diagnose`."""
        return diagnosis_of(self.dir)[2]

    def export(self, path: str | Path, force: bool = False, threshold: float = 0.5):
        """Write the run as a SavedModel that takes raw columns (`dlrun.export.Exported`), as `dlrun export`."""
        from dlrun.export import export

        return export(self.dir, path, force, threshold)

    def _repr_html_(self) -> str:
        import html

        best = self.best
        rows = [
            ("run", str(self.dir)),
            ("status", f"{self.summary.status} after {self.summary.epochs_run} of {self.summary.epochs} epochs"),
            ("best", "none" if best.epoch is None else f"epoch {best.epoch}: {best.monitor} = {best.value:.4g}"),
            ("rows", ", ".join(f"{k} {v}" for k, v in self.summary.rows.items())),
        ]
        rows += [(f"final {k}", f"{v:.4g}") for k, v in self.summary.final.items() if isinstance(v, float)]
        left = "style='text-align:left'"
        cells = "".join(f"<tr><th {left}>{html.escape(k)}</th><td {left}>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<table>{cells}</table>"


def _named(data: Any) -> str | Path:
    """Return a data file's path as given (messages name it so), or a DataFrame's registered name."""
    return data if isinstance(data, (str, Path)) else data_path(data)


def _inline_figures() -> None:
    """In IPython (Jupyter), show a returned matplotlib Figure inline as a PNG, as pyplot's inline backend does."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        from IPython.core.pylabtools import select_figure_formats

        select_figure_formats(shell, {"png"})


def load_run(path: str | Path) -> Run:
    """Return the run in a run directory.

    Raises:
        DlrunError: the run is half-written (still training, or killed) or a file in it cannot be read.
    """
    run = Run(path)
    run._run  # noqa: B018 -- read now: a half-written run is refused here, not on first use
    return run


def runs(*folders: str | Path) -> list[Run]:
    """Return every readable run under the folders (default `runs`), oldest first; half-written ones are left out."""
    from dlrun.runs.reading import find_runs

    found, _ = find_runs([Path(f) for f in (folders or ("runs",))])
    loaded = []
    for run_dir in found:
        try:
            loaded.append(load_run(run_dir))
        except DlrunError:
            continue
    return loaded


def compare(runs: Iterable[Run | str | Path], all_params: bool = False, sort: str | None = None):
    """Return the compare table as a DataFrame, one row per run: what `dlrun compare` shows, every column.

    Args:
        sort: a column to sort by, as `dlrun compare --sort` takes it (`-` first: descending).
    """
    import pandas as pd

    columns, table = compare_rows(runs, all_params, sort)
    return pd.DataFrame([{c: row.get(c) for c in columns} for row in table], columns=columns)


def compare_rows(runs: Iterable, all_params: bool = False, sort: str | None = None) -> tuple[list[str], list[dict]]:
    """Return the compare table's columns and rows (a dict per run): what `compare` frames, `dlrun compare` prints.

    Args:
        runs: `Run`s, run directories, or the `dlrun.runs.reading.Run`s a command has read.

    Raises:
        DlrunError: no run; a `sort` column the table lacks (the columns are listed).
    """
    from dlrun.runs import compare as comparing
    from dlrun.runs import reading

    loaded = [run if isinstance(run, reading.Run) else (run if isinstance(run, Run) else Run(run))._run for run in runs]
    if not loaded:
        raise DlrunError("no run to compare: pass runs (dlrun.runs('runs')) or run directories")
    columns, table = comparing.rows(loaded, all_params)
    if sort:
        table = comparing.sort_rows(columns, table, sort.removeprefix("-"), descending=sort.startswith("-"))
    return columns, table


def diagnosis_of(path: str | Path):
    """Return (history, summary, diagnosis, note) of a run directory or a history CSV, as `dlrun diagnose` reads it.

    A run trained before baselines existed gets its baseline recomputed when its data is unchanged
    (`note` says why not otherwise); nothing in the run directory is written.
    """
    from dlrun.runs.diagnosis import diagnose
    from dlrun.runs.history import read_history
    from dlrun.runs.layout import CONFIG, HISTORY
    from dlrun.runs.reading import is_run_dir, read_config, read_summary

    history = read_history(path)
    run_dir = history.path.parent
    known = is_run_dir(run_dir) and history.path.name == HISTORY
    summary = read_summary(run_dir) if known else {}
    config = read_config(run_dir) if known and (run_dir / CONFIG).is_file() else None
    note = None
    if summary and "baseline" not in summary and config is not None:
        from dlrun.training.baseline import recompute  # TensorFlow: only for runs without a baseline

        entries, note = recompute(run_dir, summary)
        summary = {**summary, **(entries or {})}
    return history, summary, diagnose(history, summary, config), note


# --- searches ------------------------------------------------------------------------------------


def sweep(
    spec: str | Path | None = None,
    sets: Sequence[str] = (),
    seeds: str | None = None,
    out: str | Path = "runs",
    executor: str = "local",
    jobs: int | None = None,
    *,
    axes_file: str | Path | None = None,
    resume: str | Path | None = None,
    address: str | None = None,
    track: str | None = None,
    track_uri: str | None = None,
    console=None,
    on_start: Callable[[Path, int], None] | None = None,
    on_tracked: Callable[[str], None] | None = None,
    on_plan: Callable[[Path, int, int], None] | None = None,
):
    """Train every point of a grid (`sets`: `PATH=V1,V2` as `dlrun sweep --set`); return the `SweepResult`.

    The result holds the sweep folder, its manifest and the compare table of its runs, also written to
    the folder's compare.csv.

    Args:
        axes_file: a YAML mapping of spec paths to value lists, swept like `sets` (`--file`).
        resume: a sweep folder to finish (its points without a finished run), instead of `spec`.
        executor, address: where runs train: `local` processes, or `ray` (at `address`).
        track, track_uri: log the sweep and its runs to MLflow, as `train` does.
        console: where progress is shown. `on_start(sweep_dir, points)` is called once a new sweep's
            folder exists, `on_tracked(where)` once its MLflow run is open, `on_plan(sweep_dir, left,
            points)` before the first run.

    Raises:
        SpecError: the spec, or a value every point shares, is invalid (nothing is written).
        DlrunError: as `dlrun sweep`.
    """
    from dlrun.runs import compare as comparing
    from dlrun.search import sweep as sweeping

    with remembering():
        if resume is not None:
            sweep_dir = Path(resume)
            manifest = sweeping.read_manifest(sweep_dir)
            points = len(manifest["points"])
        elif spec is None:
            raise DlrunError("sweep: give a spec, or resume=SWEEP_DIR to finish a sweep")
        else:
            grid = sweeping.make_grid(list(sets), seeds, None if axes_file is None else Path(axes_file))
            points = len(grid.points())
        runner = sweeping.make_executor(executor, jobs, address, points)
        if resume is None:
            tracking = _sweep_tracking(Path(spec), grid.constants, track, track_uri, Path(out))
            sweep_dir = sweeping.start(Path(spec), grid, Path(out))
            if on_start is not None:
                on_start(sweep_dir, points)
        else:  # the runs folder the sweep was started with holds its default MLflow store
            tracking = _sweep_tracking(
                Path(manifest["spec"]), manifest["constants"], track, track_uri, sweep_dir.parent.parent, manifest
            )
        parent = _open_sweep_run(tracking, sweep_dir, on_tracked)
        plan = None if on_plan is None else (lambda left: on_plan(sweep_dir, left, points))
        result = None
        try:
            result = sweeping.execute(sweep_dir, runner, console=console, on_plan=plan, tracking=parent)
            if result.table:
                comparing.write_csv(sweep_dir / sweeping.COMPARE_CSV, result.columns, result.table)
        finally:
            if parent is not None:  # after compare.csv, which the sweep's MLflow run keeps
                parent.finish(result)
        return result


def _sweep_tracking(spec: Path, constants: list[str], track, track_uri, runs_folder: Path, manifest=None):
    """Resolve where a sweep's runs are logged: track, track_uri, the spec, or where a resumed sweep was logged."""
    from dlrun.spec.loader import load_spec
    from dlrun.training.tracking import resolve

    try:
        section = load_spec(spec, constants).tracking
    except DlrunError:
        section = None  # a resumed sweep whose spec is gone or changed: execute says so
    return resolve(section, track, track_uri, runs_folder, (manifest or {}).get("tracking"))


def _open_sweep_run(tracking, sweep_dir: Path, on_tracked):
    """Open the sweep's MLflow run (None: not tracked, or MLflow failed and said so); tell where it is."""
    if tracking is None:
        return None
    from dlrun.training.tracking import SweepTracking

    parent = SweepTracking.start(tracking, sweep_dir)
    if parent is not None and on_tracked is not None:
        on_tracked(tracking.where())
    return parent


def tune(
    spec: str | Path | None = None,
    sets: Sequence[str] = (),
    trials: int | None = None,
    out: str | Path = "runs",
    jobs: int | None = None,
    timeout: float | None = None,
    *,
    resume: str | Path | None = None,
    executor: str = "local",
    address: str | None = None,
    console=None,
    on_plan: Callable[[Path, int, int | None], None] | None = None,
    make_executor: Callable[[str, int | None, str | None], Any] | None = None,
    **options: Any,
):
    """Search with Optuna (`sets`: `PATH=DIST` as `dlrun tune --set`); return the `TuneResult` (`.study`: Optuna's).

    `options` are `dlrun.search.tune.Options` fields: sampler, seed, pruner, prune_startup, prune_warmup,
    metric, direction, storage, study.

    Args:
        resume: a tune folder to continue (to its trial count, or to `trials`), instead of `spec`.
        executor, address: where trials run: `local` processes, or `ray` (at `address`).
        console: where progress is shown; `on_plan(tune_dir, held, target)` is called before the first trial.
        make_executor: what makes the executor from (executor, jobs, address) (default `tune_executor`).

    Raises:
        DlrunError: neither `trials` nor `timeout` (nor the grid sampler) says when to stop; jobs below 1.
    """
    from dlrun.search import tune as tuning

    with remembering():
        if resume is not None:
            tune_dir = Path(resume)
            tuning.read_manifest(tune_dir)
        elif spec is None:
            raise DlrunError("tune: give a spec, or resume=TUNE_DIR to continue a tune")
        else:
            settings = tuning.Options(trials=trials, **_choices(options))
            if trials is None and timeout is None and str(settings.sampler.value) != "grid":
                raise DlrunError("how many trials? give trials=N (or timeout=SECONDS)")
            tune_dir = tuning.start(Path(spec), list(sets), settings, Path(out))
        if jobs is not None and jobs < 1:
            raise DlrunError(f"--jobs {jobs}: expected 1 or more parallel trials")
        runner = (make_executor or tune_executor)(executor, jobs, address)
        plan = None if on_plan is None else (lambda held, target: on_plan(tune_dir, held, target))
        return tuning.execute(
            tune_dir, runner, console=console, trials=trials if resume else None, timeout=timeout, on_plan=plan
        )


def tune_executor(kind: str, jobs: int | None, address: str | None):
    """Return the sweep's executor of that kind, running tune trials (`jobs` at once, default 1)."""
    from dlrun.search.sweep import make_executor
    from dlrun.search.trial import run_trial

    runner = make_executor(kind, jobs or 1, address, jobs or 1)
    runner.work = run_trial
    runner.retry_lost = False  # a trial whose worker died is failed and its values asked again (dlrun.search.tune)
    return runner


def _choices(options: dict[str, Any]) -> dict[str, Any]:
    """Turn tune's choices given as text (`pruner="none"`) into their enums, as the CLI's options do.

    Raises:
        DlrunError: a value that is not one of the choices (they are listed).
    """
    from dlrun.search.study import Direction, PrunerKind, SamplerKind

    chosen = dict(options)
    for key, kind in (("sampler", SamplerKind), ("pruner", PrunerKind), ("direction", Direction)):
        value = chosen.get(key)
        if isinstance(value, str):
            try:
                chosen[key] = kind(value)
            except ValueError:
                known = ", ".join(member.value for member in kind)
                raise DlrunError(f"tune: {key}={value!r} is not one of {known}") from None
    return chosen


__all__ = list(_API)  # the names `import dlrun` serves lazily: one list, in dlrun/__init__.py
