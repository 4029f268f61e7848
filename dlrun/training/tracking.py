"""MLflow tracking: a run, or a sweep and its points, logged to an MLflow store besides its run directory.

`resolve` decides whether and where to track: `--track`/`--track-uri` over the spec's `tracking:`,
then MLflow's own `MLFLOW_TRACKING_URI`/`MLFLOW_EXPERIMENT_NAME`, then `mlflow.db` beside the runs
folder. `Tracking.start` opens one MLflow run per training: the flattened spec as params, every
epoch's metrics from a Keras callback (step: the epoch counted from 1, as summary.json counts), and
at the end the summary's best values, the status and the run directory's files. `SweepTracking` is a
sweep's parent run; each point's run (trained in a worker process) is nested under it by id.

Tracking never fails or stalls a run: mlflow is imported only here, only when tracking is on; its
calls run on a background thread with bounded HTTP retries; the first failure turns tracking off
for that run, and one warning line says why.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlrun import __version__, databases, errors
from dlrun.errors import DlrunError
from dlrun.runs import layout
from dlrun.runs.history import NOT_QUANTITIES
from dlrun.runs.lock import LOCK
from dlrun.runs.reading import flatten, read_config, read_summary, run_label
from dlrun.runs.status import FINISHED, Status, status_of

DB_FILE = "mlflow.db"
DATABASES = ("sqlite", "postgresql", "postgres", "mysql", "mssql")
"""URI schemes of a database store, whose tables MLflow creates on first use (`databases.open_once`)."""
"""The default store: a SQLite file beside the runs folder."""
ARTIFACTS = "mlartifacts"
"""Where a SQLite store's runs keep their files, beside the database (as `mlflow server` does)."""
INSTALL = "pip install 'dlrun[mlflow]'"
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
"""MLflow retries an unreachable server for minutes by default; these bound it (the user's own settings win)."""
SECTION = "tracking"
"""The spec section that says where a run is logged, not what is trained: never logged as params."""

# MLflow's limits (mlflow.utils.validation): longer values are cut, batches split.
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
FLUSH_EVERY_S = 5.0
"""Epoch metrics go to MLflow in one batch at most this often, so short epochs are not slowed (see RunTracker)."""
_NOT_A_NAME = re.compile(r"[^\w./\- ]")  # MLflow names: word characters, '.', '/', '-', ' ' (':' not on Windows)
MLFLOW_STATUS = {Status.NAN: "FAILED", Status.FAILED: "FAILED", Status.INTERRUPTED: "KILLED", Status.PRUNED: "KILLED"}
"""MLflow's run status for each dlrun status that did not finish (finished ones are FINISHED)."""


def warn(message: str) -> None:
    """Say one warning line on stderr (never wrapped, never a traceback): `dlrun.errors.warn`."""
    errors.warn(message)


# --- where to track ----------------------------------------------------------------------------


@dataclass
class Tracking:
    """Where to log runs, and what a run is nested in: plain data, handed to sweep workers as a dict."""

    uri: str
    """The MLflow tracking URI: a server (http://host:5000), sqlite:///mlflow.db, a folder, databricks, ..."""
    experiment: str | None = None
    """The MLflow experiment; None: the spec's name."""
    parent_run_id: str | None = None
    """The sweep's run, for a point of a sweep."""
    run_name: str | None = None
    """The run's name; None: `<name>/<timestamp>` as tables label runs."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags added to the run (the sweep it belongs to)."""
    logged: list[tuple[str, str, str]] = field(default_factory=list)
    """(experiment, its id, run id) of each run logged, for `where`."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("logged")
        return data

    def start(self, spec, run_dir: Path, overrides: list[str] | None = None) -> RunTracker | None:
        """Open the MLflow run of a training whose run directory exists; None (and a warning) without mlflow."""
        mlflow = import_mlflow()
        if mlflow is None:
            return None
        tags = {
            "dlrun.name": spec.name,
            "dlrun.seed": str(spec.seed),
            "dlrun.run_dir": str(Path(run_dir).resolve()),
            "dlrun.version": __version__,
            **({"dlrun.overrides": " ".join(overrides)} if overrides else {}),
            **self.tags,
        }
        return RunTracker(
            self, mlflow, self.experiment or spec.name, self.run_name or run_label(run_dir), run_dir, tags
        )

    def where(self) -> str:
        """Say where the logged runs are, with the command that shows them."""
        if not self.logged:
            return ""
        experiment, experiment_id, run_id = self.logged[-1]
        uri = shown_uri(self.uri)
        if uri.startswith(("http://", "https://")):
            return f"MLflow: {uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        if uri.startswith(("sqlite:", "file:", "/", ".", "~")):  # a store on this machine
            return f"MLflow: experiment {experiment!r}; see it with: mlflow ui --backend-store-uri {uri}"
        return f"MLflow: run {run_id} in experiment {experiment!r} at {uri}"


def resolve(
    section, track: str | None, uri: str | None, out: Path, earlier: dict[str, Any] | None = None
) -> Tracking | None:
    """Decide whether and where to track, from the command line, the spec and MLflow's environment.

    `--track none` turns tracking off whatever the spec says; `--track mlflow`, `--track-uri` or a
    `tracking:` section turns it on. The URI is `--track-uri`, else the spec's `tracking.uri`, else
    `MLFLOW_TRACKING_URI`, else `mlflow.db` beside the runs folder; the experiment is the spec's
    `tracking.experiment`, else `MLFLOW_EXPERIMENT_NAME`, else the spec's name. A resumed sweep
    that was tracked goes on where it was tracked, unless `--track-uri` or `--track none` says otherwise.

    Args:
        section: the spec's `tracking:` section, or None.
        track: `--track` (mlflow or none), or None when not given.
        uri: `--track-uri`, or None.
        out: the folder for run directories (`--out`).
        earlier: a resumed sweep's tracking, as its manifest records it (uri, experiment).

    Raises:
        DlrunError: `--track none` with `--track-uri`.
    """
    if track == "none":
        if uri:
            raise DlrunError("--track none turns tracking off, but --track-uri says where to log: drop one of them")
        return None
    if earlier and not uri:
        return Tracking(earlier["uri"], earlier.get("experiment"))
    if track is None and uri is None and section is None:
        return None
    uri = uri or (section.uri if section else None) or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(out)
    experiment = (section.experiment if section else None) or os.environ.get("MLFLOW_EXPERIMENT_NAME") or None
    path = _sqlite_path(uri)
    return Tracking("sqlite:///" + str(path) if path else uri, experiment)  # absolute: sweep workers agree


def default_uri(out: Path) -> str:
    """Return the default store: `mlflow.db` in the folder holding the runs folder (`runs/` -> `./mlflow.db`)."""
    out = Path(out).resolve()
    folder = out if out == Path.cwd() else out.parent
    return "sqlite:///" + str(folder / DB_FILE)


def shown_uri(uri: str) -> str:
    """Write a URI for the screen: a SQLite file relative to the current folder when below it, no password."""
    path = _sqlite_path(uri)
    if path is None:
        return re.sub(r"//[^/@]*@", "//***@", uri)  # http://user:token@host
    try:
        return "sqlite:///" + str(path.relative_to(Path.cwd()))
    except ValueError:
        return uri


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def import_mlflow():
    """Import mlflow with bounded HTTP retries and its log lines silenced; None (and a warning) when it is missing."""
    for key, value in HTTP_LIMITS.items():
        os.environ.setdefault(key, value)
    try:
        import mlflow
    except Exception as exc:  # missing, or an install that cannot import: train anyway
        missing = isinstance(exc, ImportError) and "mlflow" in str(exc)
        why = "mlflow is not installed" if missing else f"mlflow cannot be imported ({_reason(exc)})"
        warn(f"MLflow tracking is off: {why}; install it with {INSTALL}. Training goes on")
        return None
    for name in ("mlflow", "alembic", "urllib3"):  # dlrun says in one line what went wrong
        logging.getLogger(name).setLevel(logging.ERROR)
    return mlflow


# --- names and values as MLflow takes them -----------------------------------------------------


def param_name(path: str) -> str:
    """Write a spec path as an MLflow name: `model.layers[1].rate` -> `model.layers.1.rate` (MLflow refuses `[`)."""
    name = re.sub(r"\[(\d+)\]", r".\1", path)
    return _NOT_A_NAME.sub("_", name)[:MAX_KEY]


def param_value(value: Any) -> str:
    """Write a spec value as `--set` reads it: text as is, anything else as JSON (true, null, [a, b])."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 3] + "..."


def spec_params(config: dict[str, Any]) -> dict[str, str]:
    """Return a resolved spec as MLflow params: every flattened path but the tracking section's."""
    params: dict[str, str] = {}
    for path, value in flatten(config).items():
        if path != SECTION and not path.startswith(SECTION + "."):
            params.setdefault(param_name(path), param_value(value))
    return params


def _tag_value(value: str) -> str:
    return value if len(value) <= MAX_TAG_VALUE else value[: MAX_TAG_VALUE - 3] + "..."


def _reason(exc: BaseException) -> str:
    """Say in a few words why an MLflow call failed: `connection refused`, or the error's first line."""
    text = str(exc).strip() or type(exc).__name__
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip().lower()
    if "timed out" in text.lower():
        return f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT')} s"
    line = text.splitlines()[0]
    return line if len(line) <= 200 else line[:197] + "..."


# --- one run -----------------------------------------------------------------------------------


class _Client:
    """The MLflow calls dlrun makes, with MLflow's limits applied."""

    def __init__(self, mlflow, uri: str):
        from mlflow.entities import Metric, Param, RunTag

        self.mlflow = mlflow
        self.uri = uri
        self.Metric, self.Param, self.RunTag = Metric, Param, RunTag
        if uri.partition(":")[0].partition("+")[0] in DATABASES:  # MLflow creates a new store's tables when it opens it

            def opened():
                client = mlflow.MlflowClient(tracking_uri=uri)
                client.search_experiments(max_results=1)
                return client

            self.client = databases.open_once(uri, opened)
        else:
            self.client = mlflow.MlflowClient(tracking_uri=uri)

    def experiment_id(self, name: str) -> str:
        """Return the experiment's id, creating it (beside a SQLite store, its files) when it does not exist."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            path = _sqlite_path(self.uri)
            location = (path.parent / ARTIFACTS).as_uri() if path is not None else None
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except self.mlflow.exceptions.MlflowException:
                experiment = self.client.get_experiment_by_name(name)  # another process created it meanwhile
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise DlrunError(
                f"experiment {name!r} is deleted in MLflow: restore it (mlflow experiments restore) or set "
                "tracking.experiment to another name"
            )
        return experiment.experiment_id

    def create_run(self, experiment_id: str, name: str, tags: dict[str, str], parent: str | None) -> str:
        tags = {"mlflow.user": _user(), "mlflow.source.name": "dlrun", "mlflow.source.type": "LOCAL", **tags}
        if parent:
            tags["mlflow.parentRunId"] = parent  # how MLflow nests a run under another
        run = self.client.create_run(experiment_id, tags={k: _tag_value(v) for k, v in tags.items()}, run_name=name)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        items = [self.Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])

    def log_metrics(self, run_id: str, metrics: list[tuple[str, float, int, int]]) -> None:
        """Log (name, value, step, timestamp in ms) rows, in batches MLflow accepts."""
        items = [self.Metric(_metric_name(k), v, ts, step) for k, v, step, ts in metrics]
        for start in range(0, len(items), METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=items[start : start + METRICS_PER_BATCH])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[self.RunTag(k, _tag_value(v)) for k, v in tags.items()])

    def log_files(self, run_id: str, paths: list[Path]) -> None:
        """Copy files and folders (with what they hold) into the run's artifacts, under their own names."""
        for path in paths:
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(run_id, str(path))

    def end(self, run_id: str, status: str) -> None:
        """Mark a run FINISHED, FAILED, KILLED, or RUNNING again (a resumed sweep)."""
        if status == "RUNNING":
            self.client.update_run(run_id, status=status)
        else:
            self.client.set_terminated(run_id, status=status)


def _metric_name(name: str) -> str:
    return _NOT_A_NAME.sub("_", name)[:MAX_KEY]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return "unknown"


def _now_ms() -> int:
    return int(time.time() * 1000)


class RunTracker:
    """One MLflow run, fed by a background thread so that MLflow never slows or stops training.

    Jobs run in order on the thread; epoch metrics wait in a list and go in one batch at most every
    `FLUSH_EVERY_S`: a store call per epoch made the course's 6 ms epochs 1.8x slower, one a second
    1.15x, one every 5 s no slower within noise (tests/bench/bench_tracking.py). The first failing
    job turns tracking off for the run; `finish` waits for the thread, then prints the one warning.
    """

    def __init__(self, tracking: Tracking, mlflow, experiment: str, name: str, run_dir: Path, tags: dict[str, str]):
        self.tracking = tracking
        self.run_dir = Path(run_dir)
        self.experiment = experiment
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.failure: str | None = None
        self.client: _Client | None = None
        self._pending: list[tuple[str, float, int, int]] = []
        self._flush_queued = False
        self._flushed = 0.0
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, args=(mlflow,), name="dlrun-mlflow", daemon=True)
        self._thread.start()
        self._jobs.put(lambda: self._open(name, tags))

    def _work(self, mlflow) -> None:
        try:
            self.client = _Client(mlflow, self.tracking.uri)
        except Exception as exc:  # a URI MLflow cannot use
            self.failure = _reason(exc)
        while (job := self._jobs.get()) is not None:
            if self.failure is not None:
                continue
            try:
                job()
            except Exception as exc:  # any MLflow failure: stop tracking this run, keep training
                self.failure = _reason(exc)

    def _open(self, name: str, tags: dict[str, str]) -> None:
        self.experiment_id = self.client.experiment_id(self.experiment)
        self.run_id = self.client.create_run(self.experiment_id, name, tags, self.tracking.parent_run_id)
        self.client.log_params(self.run_id, spec_params(read_config(self.run_dir)))

    def callback(self):
        """Return the Keras callback that queues each epoch's logs (the epoch counted from 1 as the step)."""
        from dlrun.backend import import_keras

        keras = import_keras()
        tracker = self

        class MlflowLog(keras.callbacks.Callback):
            replayable = True  # it reads only the logs (dlrun.training.loop)

            def on_epoch_end(self, epoch, logs=None):
                tracker.log_epoch(epoch + 1, logs or {})

        return MlflowLog()

    def log_epoch(self, step: int, logs: dict[str, Any]) -> None:
        """Queue one epoch's numbers; cheap, whatever the store."""
        if self.failure is not None:
            return
        stamp = _now_ms()
        rows = [(key, float(value), step, stamp) for key, value in logs.items() if _is_number(value)]
        with self._lock:
            self._pending += rows
            queue_one = not self._flush_queued
            self._flush_queued = True
        if queue_one:
            self._jobs.put(self._flush)

    def _flush(self) -> None:
        self._closing.wait(self._flushed + FLUSH_EVERY_S - time.monotonic())  # returns at once when closing
        with self._lock:
            rows, self._pending, self._flush_queued = self._pending, [], False
        self._flushed = time.monotonic()
        if rows:
            self.client.log_metrics(self.run_id, rows)

    def finish(self) -> None:
        """Log the summary and the run directory, close the run, and wait for MLflow; warn once if it failed."""
        self._closing.set()
        self._jobs.put(self._close)
        self._jobs.put(None)
        self._thread.join()
        if self.failure is not None:
            warn(
                f"MLflow tracking is off for this run: cannot log to {shown_uri(self.tracking.uri)} ({self.failure}). "
                f"Training went on; everything is in {self.run_dir}"
            )
        else:
            self.tracking.logged.append((self.experiment, self.experiment_id, self.run_id))

    def _close(self) -> None:
        summary = read_summary(self.run_dir)
        status = status_of(summary)
        self._flush()
        self.client.log_metrics(self.run_id, summary_metrics(summary))
        self.client.set_tags(self.run_id, {"dlrun.status": str(status)})
        kept = [path for path in sorted(self.run_dir.iterdir()) if path.name != LOCK]  # the writer's, not the run's
        self.client.log_files(self.run_id, kept)
        self.client.end(self.run_id, mlflow_status(status))


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def summary_metrics(summary: dict[str, Any]) -> list[tuple[str, float, int, int]]:
    """Return summary.json's numbers as metrics: `best_<column>` at the best epoch, the best epoch, test values."""
    stamp, best = _now_ms(), summary.get("best_epoch")
    values = (summary.get("best") or {}).items()
    rows = [(f"best_{key}", value, best, stamp) for key, value in values if key not in NOT_QUANTITIES]
    rows += [(f"test_{key}", value, 0, stamp) for key, value in (summary.get("test") or {}).items()]
    for key in ("best_epoch", "epochs_run", "wall_time_s"):
        rows.append((key, summary.get(key), 0, stamp))
    return [(key, float(value), step or 0, ts) for key, value, step, ts in rows if _is_number(value)]


def mlflow_status(status: Status) -> str:
    """Return MLflow's word for how a run ended (a run without a summary failed)."""
    if status in FINISHED:
        return "FINISHED"
    return MLFLOW_STATUS.get(status, "FAILED")


# --- a sweep -----------------------------------------------------------------------------------


class SweepTracking:
    """A sweep's parent run: opened (or reopened on --resume) before the points, closed after them."""

    def __init__(
        self, tracking: Tracking, client: _Client, experiment: str, experiment_id: str, run_id: str, sweep_dir
    ):
        self.tracking = tracking
        self.client = client
        self.experiment = experiment
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.sweep_dir = Path(sweep_dir)

    @classmethod
    def start(cls, tracking: Tracking, sweep_dir: Path) -> SweepTracking | None:
        """Open the sweep's parent run, or reopen the one its manifest names; None (and a warning) if MLflow fails.

        The parent run's id is written into the manifest, so `--resume` nests the remaining points
        under the same run.
        """
        from dlrun.search.sweep import MANIFEST, read_manifest

        mlflow = import_mlflow()
        if mlflow is None:
            return None
        manifest = read_manifest(sweep_dir)
        experiment = tracking.experiment or manifest["name"]
        earlier = manifest.get(SECTION) or {}
        try:
            client = _Client(mlflow, tracking.uri)
            experiment_id = client.experiment_id(experiment)
            run_id = earlier.get("parent_run_id")
            if run_id and (earlier.get("uri"), earlier.get("experiment")) == (tracking.uri, experiment):
                client.end(run_id, "RUNNING")
            else:
                run_id = _open_sweep(client, experiment_id, manifest, sweep_dir)
        except Exception as exc:  # unreachable, refused, a deleted experiment: sweep anyway
            warn(
                f"MLflow tracking is off for this sweep: cannot log to {shown_uri(tracking.uri)} ({_reason(exc)}). "
                f"The sweep goes on; everything is in {sweep_dir}"
            )
            return None
        manifest[SECTION] = {"uri": tracking.uri, "experiment": experiment, "parent_run_id": run_id}
        layout.write_json(Path(sweep_dir) / MANIFEST, manifest)
        tracking.logged.append((experiment, experiment_id, run_id))
        return cls(tracking, client, experiment, experiment_id, run_id, sweep_dir)

    def point(self, point: dict[str, Any], label: str) -> dict[str, Any]:
        """Return what a worker needs to log one point's run under the sweep's, as plain data."""
        tags = {"dlrun.sweep": str(self.sweep_dir.resolve()), "dlrun.sweep_point": str(point["index"])}
        return Tracking(self.tracking.uri, self.experiment, self.run_id, label, tags).to_dict()

    def finish(self, result=None) -> None:
        """Close the parent run after the sweep (`SweepResult`; None: it stopped): status, best run, files.

        The best run is the first finished row of the sweep's table, which the sweep sorts by the
        monitored quantity; its value is logged as `best_<monitor>` and its label as a tag.
        """
        try:
            self._finish(result)
        except Exception as exc:
            warn(f"MLflow could not close the sweep's run in {shown_uri(self.tracking.uri)} ({_reason(exc)})")

    def _finish(self, result) -> None:
        from dlrun.search.sweep import COMPARE_CSV, MANIFEST

        if result is None or result.interrupted:
            status, tags = "KILLED", {"dlrun.status": "interrupted"}
        else:
            points = len(result.manifest["points"])
            done = points - len(result.failures)
            status, tags = "FINISHED" if done == points else "FAILED", {"dlrun.status": f"{done} of {points} finished"}
        best = next((row for row in result.table if row.get("status") in FINISHED), None) if result else None
        summary = read_summary(best["run_dir"]) if best and best.get("run_dir") else {}
        if _is_number(summary.get("best_value")):
            tags["dlrun.best_run"] = best["run"]
            metric = (f"best_{summary['monitor']}", float(summary["best_value"]), 0, _now_ms())
            self.client.log_metrics(self.run_id, [metric])
        self.client.set_tags(self.run_id, tags)
        self.client.log_files(self.run_id, [self.sweep_dir / MANIFEST, self.sweep_dir / COMPARE_CSV])
        self.client.end(self.run_id, status)


def _open_sweep(client: _Client, experiment_id: str, manifest: dict[str, Any], sweep_dir: Path) -> str:
    """Create a sweep's parent run: the constants, each axis's values (`0.01,0.001`) and the point count as params."""
    tags = {
        "dlrun.name": manifest["name"],
        "dlrun.sweep": str(Path(sweep_dir).resolve()),
        "dlrun.kind": "sweep",
        "dlrun.version": __version__,
    }
    run_id = client.create_run(experiment_id, run_label(sweep_dir), tags, None)
    params = {param_name(path): value for path, _, value in (o.partition("=") for o in manifest["constants"])}
    params |= {param_name(axis["path"]): ",".join(axis["values"]) for axis in manifest["axes"]}  # as --set lists
    params["points"] = str(len(manifest["points"]))
    client.log_params(run_id, {key: param_value(value) for key, value in params.items()})
    return run_id
