"""`dlrun tune`: an Optuna study over a spec's search space, each trial an ordinary run directory.

A tune lives in `runs/<name>/tune-<timestamp>/`, as a sweep does: `tune.json` says what is searched
and where the study is stored (by default the journal file `study.log` beside it), and each trial is a
normal run directory below it with its values in `overrides.txt`. The driver asks the study for a
trial whenever a worker is free (the sweep's executors: local processes or Ray), so each trial is
sampled knowing every result before it, and tells the study how it went: its objective (the spec's
monitor at the best epoch, or `--metric` there), pruned, or failed. Workers report each epoch to the
study themselves (`dlrun.search.trial`), so the pruner sees every process's trials.

The study, not this folder, is the record of trials: several `dlrun tune` processes (on several
machines) given the same `--storage` and `--study` share one search, and `--resume` continues it to
its trial count. What the end of a tune writes (the table, importances, best.yaml, PNGs) is in
`dlrun.search.results`.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError, SpecError
from dlrun.runs import labels, lock
from dlrun.runs import layout as runs
from dlrun.runs.reading import Skipped, read_summary
from dlrun.runs.status import FINISHED, Status, status_of
from dlrun.search import study as studies
from dlrun.search.study import Direction, PrunerKind, SamplerKind, Space

MANIFEST = "tune.json"
TRIALS_CSV = "trials.csv"
RETRY_OF = "dlrun.retry_of"
"""User attribute of a trial that tries again the values of the trial it names (interrupted, or its worker died)."""
DEFAULT_STARTUP = 5
"""Trials that finish unpruned before the median pruner stops any (Optuna's default)."""


@dataclass
class Options:
    """How to search: the sampler, the pruner, the objective, the storage and the trial count."""

    trials: int | None = None
    sampler: SamplerKind = SamplerKind.tpe
    seed: int | None = None
    """Sampler seed; default: the spec's seed."""
    pruner: PrunerKind = PrunerKind.median
    prune_startup: int = DEFAULT_STARTUP
    prune_warmup: int | None = None
    """Epochs a trial trains before it may be pruned; default: the spec's early_stopping.patience, else 0."""
    metric: str | None = None
    direction: Direction | None = None
    storage: str | None = None
    study: str | None = None


# --- starting a tune --------------------------------------------------------------------------


def start(spec_path: Path, sets: list[str], options: Options, out: Path) -> Path:
    """Check the spec, its search space and the options; create the tune folder and write its manifest.

    Raises:
        SpecError: the spec, an override or a distribution is invalid, or there is nothing to search.
        DlrunError: an option does not fit the spec (a metric it does not log, a grid of floats).
    """
    from dlrun.spec.loader import load_spec
    from dlrun.spec.space import split_sets

    studies.import_optuna()
    studies.check_sampler(options.sampler)
    constants, distributions = split_sets(sets)
    spec = load_spec(spec_path, constants, distributions, check_search=True)
    if not spec.search:
        raise SpecError(
            f"nothing to search in {spec_path}: add a search: section, or --set PATH=DIST like "
            "--set training.optimizer.learning_rate=loguniform(1e-4,1e-1)"
        )
    space = Space({path: _entry(d.model_dump()) for path, d in spec.search.items()})
    metric, direction = objective_of(spec, options.metric, options.direction)
    trials = _trial_count(options, space)
    manifest = {
        "spec": str(Path(spec_path).resolve()),
        "spec_sha256": runs.file_sha256(spec_path),
        "name": spec.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "constants": constants,
        "search": space.entries,
        "metric": metric,
        "direction": str(direction.value),
        "trials": trials,
        "sampler": options.sampler.value,
        "seed": spec.seed if options.seed is None else options.seed,
        "pruner": {
            "kind": options.pruner.value,
            "startup": options.prune_startup,
            "warmup": _warmup(spec) if options.prune_warmup is None else options.prune_warmup,
            "epochs": spec.training.epochs,
        },
        "study": options.study or spec.name,
    }
    if options.storage:  # a shared study that searches something else stops here, before any folder is made
        manifest["storage"] = studies.storage_url(options.storage, Path.cwd())
        open_study(manifest)
    tune_dir = runs.new_run_dir(out, spec.name, prefix="tune-")
    manifest["storage"] = studies.storage_url(options.storage, tune_dir)
    runs.write_json(tune_dir / MANIFEST, manifest)
    return tune_dir


def open_study(manifest: dict[str, Any]):
    """Open (or create) the study a tune's manifest names, with its sampler and pruner.

    Raises:
        DlrunError: the storage cannot be opened, or a study of that name searches something else.
    """
    space = Space(manifest["search"])
    signature = {key: manifest[key] for key in ("spec_sha256", "constants", "search", "metric", "direction")}
    return studies.open_study(
        manifest["storage"],
        manifest["study"],
        manifest["direction"],
        studies.make_sampler(manifest["sampler"], manifest["seed"], space),
        studies.make_pruner(manifest["pruner"]),
        signature,
    )


def _warmup(spec) -> int:
    """Epochs before a trial may be pruned, by default: as many as early stopping waits for an improvement."""
    stop = spec.training.early_stopping
    return stop.patience if stop is not None else 0


def _entry(dumped: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in dumped.items() if value is not None}


def objective_of(spec, metric: str | None, direction: Direction | None) -> tuple[str, Direction]:
    """Return what a tune optimizes: the spec's monitor (at the best epoch), or `metric` there; and its direction.

    Raises:
        DlrunError: `metric` is not logged by this spec, or its direction cannot be told.
    """
    monitor, mode = spec.monitor
    if metric is None or metric == monitor:
        return monitor, direction or Direction(mode)
    directions = spec.training.directions()
    if metric not in directions:
        raise DlrunError(
            f"--metric {metric!r} is not logged by this spec; choose one of: {', '.join(directions)}"
            + (" (training.metrics adds more)" if len(directions) <= 2 else "")
        )
    if direction is None and directions[metric] is None:
        raise DlrunError(f"cannot tell whether {metric!r} should go up or down: add --direction min or max")
    return metric, direction or Direction(directions[metric])


def _trial_count(options: Options, space: Space) -> int | None:
    if options.sampler == SamplerKind.grid:
        size = space.grid_size()
        return size if options.trials is None else min(options.trials, size)
    if options.trials is None:
        return None
    if options.trials < 1:
        raise DlrunError(f"--trials {options.trials}: expected 1 or more")
    return options.trials


def read_manifest(tune_dir: Path) -> dict[str, Any]:
    """Read a tune folder's manifest.

    Raises:
        DlrunError: the folder is not a tune folder, or its manifest is damaged.
    """
    path = Path(tune_dir) / MANIFEST
    if not path.is_file():
        raise DlrunError(
            f"{tune_dir} is not a tune folder: it has no {MANIFEST} (pass the runs/<name>/tune-<timestamp> folder "
            "a tune printed)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["spec"] and manifest["search"] and manifest["storage"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DlrunError(f"{path} is damaged ({exc}); start a new tune") from None
    return manifest


# --- running ----------------------------------------------------------------------------------


@dataclass
class TuneResult:
    """What a tune did: its folder and study, and what this process ran."""

    tune_dir: Path
    manifest: dict[str, Any]
    study: Any
    ran: int = 0
    interrupted: bool = False
    exit_code: int = 0
    """How a stopped tune exits: 130 after Ctrl-C, 143 after SIGTERM (the shell's 128 + signal)."""
    warnings: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)
    """Trials the study holds as running whose process is gone (a peer killed): counted, but never finished."""


def execute(
    tune_dir: Path,
    executor,
    console=None,
    trials: int | None = None,
    timeout: float | None = None,
    on_plan: Callable[[int, int | None], None] | None = None,
) -> TuneResult:
    """Run trials until the study holds the trial count (or `timeout` seconds pass), then return.

    Trials that another process left running and that nobody runs any more (their process died) are
    marked failed first, and their values wait in the study to be tried again. `on_plan` is told how
    many trials the study holds and its trial count. On Ctrl-C (or SIGTERM) every finished trial is
    kept; the ones in progress are marked failed and tried again by `--resume`.

    Args:
        trials: a new trial count (raises the manifest's); None keeps it.

    Raises:
        DlrunError: the folder is not a tune, another process drives it, its spec changed, or the study
            cannot be opened.
    """
    tune_dir = Path(tune_dir)
    read_manifest(tune_dir)  # a folder that is not a tune gets no lock file
    hint = ". To search the same study from another process, start a new tune with the same --storage and --study"
    lock.acquire(tune_dir, by="dlrun tune", hint=hint)
    try:
        return _Driver(tune_dir, console).run(executor, trials, timeout, on_plan)
    finally:
        lock.release(tune_dir)


def objective(summary: dict[str, Any], metric: str) -> float | None:
    """Return a run's objective: `metric` at its best epoch (the monitor's `best_value`); None without one."""
    import math

    value = summary.get("best_value") if metric == summary.get("monitor") else (summary.get("best") or {}).get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class _Driver:
    """One process's share of a study: asks for trials, hands them to the executor, tells the study how they went."""

    def __init__(self, tune_dir: Path, console):
        self.tune_dir = tune_dir
        self.manifest = read_manifest(tune_dir)
        self.console = console
        self.spec = Path(self.manifest["spec"])
        self.space = Space(self.manifest["search"])
        self.distributions = self.space.optuna()
        self.running: dict[int, Any] = {}  # trial number -> the Optuna trial this process asked for
        self.result = TuneResult(tune_dir, self.manifest, None)

    def run(self, executor, trials: int | None, timeout: float | None, on_plan) -> TuneResult:
        manifest = self.manifest
        self._check_spec()
        if trials is not None:
            manifest["trials"] = trials
            runs.write_json(self.tune_dir / MANIFEST, manifest)
        self.target = manifest["trials"]
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.study = open_study(manifest)
        self.result.study = self.study
        self._reconcile()
        held = studies.counted(self.study.get_trials(deepcopy=False))
        if on_plan is not None:
            on_plan(held, self.target)
        self.display = _Display(self.console, self.target, held, manifest["metric"], self.study)
        with self.display:
            results = executor.run(self._next_task, self.display.started)
            try:
                for result in results:
                    self._record(result)
            except KeyboardInterrupt as exc:
                self.result.interrupted = True
                self.result.exit_code = getattr(exc, "exit_code", 128 + signal.SIGINT)
            finally:
                if hasattr(results, "close"):
                    results.close()  # stops the workers even when the interrupt came between two results
                for trial in self.running.values():  # their results were lost: tried again by --resume
                    self._retry(trial, Status.INTERRUPTED, "interrupted before it reported")
                self.running.clear()
        self.result.orphans = [trial.number for trial in self._orphans()]
        return self.result

    def _orphans(self) -> list:
        """The study's running trials whose process is gone (a peer killed while this process ran)."""
        optuna = studies.import_optuna()
        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return [frozen for frozen in running if studies.owner_gone(frozen)]

    def _check_spec(self) -> None:
        if not self.spec.is_file():
            raise DlrunError(f"the tune's spec {self.spec} is gone; restore it to resume the tune")
        if runs.file_sha256(self.spec) != self.manifest["spec_sha256"]:
            raise DlrunError(
                f"the tune's spec {self.spec} changed since the tune started, so new trials would not match the "
                "finished ones; restore it, or start a new tune"
            )

    def _reconcile(self) -> None:
        """Fail the trials left running by a process that is gone, so their values are tried again."""
        for frozen in self._orphans():
            self._retry(frozen, Status.INTERRUPTED, "its process is gone")
        retried = [t for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get(studies.RETRY)]
        for trial in retried:  # their values are trained again: their half-written runs would be duplicates
            for run_dir in _runs_of(self.tune_dir, trial, since_start=False):
                if _half_written(run_dir):
                    shutil.rmtree(run_dir)

    # --- asking ---

    def _next_task(self):
        """Ask the study for the next trial, or None when the trial count is reached (or the time is up)."""
        while True:
            if self.deadline is not None and time.monotonic() > self.deadline:
                return None
            trials = self.study.get_trials(deepcopy=False)
            waiting = any(t.state.name == "WAITING" for t in trials)
            if not waiting and self.target is not None and studies.counted(trials) >= self.target:
                return None
            trial = self.study.ask(self.distributions)
            if self._surplus(trial):
                return None
            overrides = self.manifest["constants"] + self.space.overrides(trial.params)
            for key, value in {**studies.owner(), studies.OVERRIDES: overrides}.items():
                trial.set_user_attr(key, value)
            try:
                from dlrun.spec.loader import load_spec

                load_spec(self.spec, overrides)
            except SpecError as exc:  # these values together make an invalid spec: a failed trial, go on
                self._tell(trial, Status.FAILED, None, str(exc))
                self.display.finished(trial.number, Status.FAILED, self._label(trial.params), None)
                continue
            self.running[trial.number] = trial
            job = {
                "tracking": None,
                "trial": {
                    "storage": self.manifest["storage"],
                    "study": self.manifest["study"],
                    "trial": trial.number,
                    "metric": self.manifest["metric"],
                    "pruner": self.manifest["pruner"],
                },
            }
            self.display.labels[trial.number] = self._label(trial.params)
            return (trial.number, str(self.spec), overrides, str(self.tune_dir), job)

    def _surplus(self, trial) -> bool:
        """Tell whether another process filled the trial count since it was counted; if so, drop this trial.

        Trial numbers are given in order by the storage, so the first trials by number are the ones that
        count: one asked past the count is failed as surplus, and neither counted nor shown.
        """
        if self.target is None:
            return False
        before = [t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number]
        if studies.counted(before) < self.target:
            return False
        optuna = studies.import_optuna()
        trial.set_user_attr(studies.SURPLUS, True)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return True

    # --- telling ---

    def _record(self, result: dict[str, Any]) -> None:
        number = result["index"]
        trial = self.running.pop(number, None)
        if trial is None:
            return
        self.result.ran += 1
        status = Status(result["status"])
        run_dir = result["run_dir"] or next(reversed(_runs_of(self.tune_dir, trial)), None)
        summary = None
        if run_dir is not None:
            trial.set_user_attr(studies.RUN_DIR, str(Path(run_dir).resolve()))
            summary = _summary(Path(run_dir))
            if summary and status_of(summary) != Status.INCOMPLETE:
                status = status_of(summary)
        if result.get("warning"):
            self.result.warnings.append(f"trial {number}: {result['warning']}")
        value = objective(summary or {}, self.manifest["metric"]) if status in (*FINISHED, Status.PRUNED) else None
        died_again = result.get("retry") and trial.user_attrs.get(RETRY_OF) is not None
        if died_again:  # its values killed a worker twice (out of memory?): a failure, not tried a third time
            self._tell(trial, Status.FAILED, None, f"{result['error']}; the second time for these values")
        elif result.get("retry") or status == Status.INTERRUPTED:
            self._retry(trial, status, result["error"] or "interrupted")
        elif status in FINISHED and value is None:
            status = Status.FAILED
            self._tell(trial, status, None, f"its run logged no {self.manifest['metric']} at its best epoch")
        else:
            self._tell(trial, status, value, result["error"])
        self.display.finished(number, status, self.display.labels.get(number, ""), value, summary)

    def _tell(self, trial, status: Status, value: float | None, error: str | None) -> None:
        """Record a trial's end in the study: its value (finished), pruned, or failed with the reason."""
        optuna = studies.import_optuna()
        trial.set_user_attr(studies.STATUS, str(status))
        if error:
            trial.set_user_attr(studies.ERROR, error)
        if status in FINISHED:
            self.study.tell(trial, value)
        elif status == Status.PRUNED:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _retry(self, trial, status: Status, error: str) -> None:
        """Fail a trial whose end says nothing about its values (a dead worker, an interrupt); queue them again.

        Args:
            trial: the trial this process asked for, or a `FrozenTrial` of the study (another process's).
        """
        optuna = studies.import_optuna()
        attrs = {studies.STATUS: str(status), studies.ERROR: error, studies.RETRY: True}
        studies.set_user_attrs(self.manifest["storage"], self.manifest["study"], trial.number, attrs)
        params = trial.params
        self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if len(params) == len(self.distributions):
            self.study.enqueue_trial(params, user_attrs={RETRY_OF: trial.number})

    def _label(self, params: dict[str, Any]) -> str:
        return trial_label(self.space, params)


def trial_label(space: Space, params: dict[str, Any]) -> str:
    """Name a trial by its values, briefly: `lr=0.0031 units=12 rate=0.21`."""
    names = labels.short_names(list(space.entries))
    parts = []
    for path, value in params.items():
        if isinstance(value, float):
            shown = f"{value:.4g}"
        elif path == "model.layers" and isinstance(value, str):
            from dlrun.spec.yamltext import parse_value

            layers = parse_value(value)
            shown = labels.layer_stack(
                {f"model.layers[{i}].{k}": v for i, layer in enumerate(layers) for k, v in layer.items()}
            )
        else:
            shown = labels.text(value)
        parts.append(f"{names.get(path, path)}={shown}")
    return " ".join(parts)


def _summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return read_summary(run_dir)
    except DlrunError:
        return None


def _half_written(run_dir: Path) -> bool:
    """Whether a run directory is half-written (no summary, or interrupted) and nobody writes it any more."""
    holder = lock.holder(run_dir)
    if not run_dir.is_dir() or (holder is not None and holder.alive()):
        return False
    summary = _summary(run_dir)
    return status_of(summary) in (Status.INCOMPLETE, Status.INTERRUPTED)


def _runs_of(tune_dir: Path, trial, since_start: bool = True) -> list[Path]:
    """Find a trial's run directories below the tune folder (oldest first), by its overrides and start time.

    Its worker may not have said (a NaN loss raises before returning, a worker dies); a retried trial has
    the same overrides, so only runs begun after the trial started count (unless `since_start` is False).
    """
    overrides = "".join(f"{o}\n" for o in trial.user_attrs.get(studies.OVERRIDES, []))
    started = trial.datetime_start.timestamp() - 1 if trial.datetime_start and since_start else 0
    matches = [
        f.parent
        for f in Path(tune_dir).glob(f"*/*/{runs.OVERRIDES}")
        if f.stat().st_mtime >= started and f.read_text(encoding="utf-8") == overrides
    ]
    return sorted(matches, key=lambda p: p.stat().st_mtime)


class _Display:
    """One rich progress display for the tune: trials done, the best so far, pruned and failed, what is running."""

    def __init__(self, console, target: int | None, held: int, metric: str, study):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.metric = metric
        self.study = study
        self.labels: dict[int, str] = {}
        self.running: list[int] = []
        self.counts = {"pruned": 0, "failed": 0}
        self.progress = Progress(
            TextColumn("[bold]tune"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("trials"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[news]}"),
            console=console,
            transient=False,
            disable=console is None,
        )
        self.task = self.progress.add_task("tune", total=target, completed=min(held, target or held), news="")

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def started(self, number: int) -> None:
        self.running.append(number)
        self._refresh()

    def finished(self, number: int, status: Status, label: str, value: float | None, summary=None) -> None:
        if number in self.running:
            self.running.remove(number)
        if status == Status.PRUNED:
            self.counts["pruned"] += 1
        elif status not in FINISHED and status != Status.INTERRUPTED:
            self.counts["failed"] += 1
        if self.console is not None:
            if status in FINISHED:
                mark = f"[green]{self.metric} {value:.6g}[/]"
            elif status == Status.PRUNED:
                mark = f"[yellow]pruned at epoch {(summary or {}).get('epochs_run', '?')}[/]"
            else:
                mark = f"[red]{status}[/]"
            self.progress.console.print(f"trial {number} {mark} {label}", highlight=False)
        if status != Status.INTERRUPTED:
            self.progress.advance(self.task)
        self._refresh()

    def _refresh(self) -> None:
        news = []
        try:
            best = self.study.best_trial
            news.append(f"best {self.metric} {best.value:.6g} (trial {best.number})")
        except ValueError:
            pass  # no trial has finished yet
        news += [f"{n} {what}" for what, n in self.counts.items() if n]
        self.progress.update(self.task, news=" · ".join(news))
