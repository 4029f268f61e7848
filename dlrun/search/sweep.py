"""Sweeps: the grid of `--set` values (and seeds), its manifest, running it, and its compare table.

A sweep lives in `runs/<name>/sweep-<timestamp>/`: `sweep.json` lists every point (its overrides,
status and run directory), and each point is a normal run directory below it. The manifest is
rewritten as each point ends, so an interrupted sweep can be resumed: only points without a
finished run are trained again. Resuming first reconciles the manifest with the run directories on
disk (see `reconcile`), and one driver at a time runs a sweep (the folder's lock, `dlrun.runs.lock`).
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlrun.errors import DlrunError, SpecError
from dlrun.runs import compare, labels, lock
from dlrun.runs import layout as runs
from dlrun.runs.reading import Run, Skipped, load_run, read_summary
from dlrun.runs.status import FINISHED, Status, status_of
from dlrun.spec.yamltext import parse_value, split_values, value_text

MANIFEST = "sweep.json"
COMPARE_CSV = "compare.csv"
KEPT_FAILURES = (Status.FAILED, Status.NAN)
"""Deterministic (seeded, same spec): resuming would fail again. Except a point whose worker died
(`retry` in the manifest): a crash says nothing about the point."""
HALF_WRITTEN = (Status.INCOMPLETE, Status.INTERRUPTED)
"""Runs that `--resume` deletes (once no live process writes them) and trains again."""


# --- axes --------------------------------------------------------------------------------------


def parse_axis(option: str) -> tuple[str, list[str]]:
    """Read one `--set PATH=V1,V2,...` into its path and value texts (one value: a constant).

    Raises:
        SpecError: no `=`, an empty value in the list, or the same value twice.
    """
    path, sep, text = option.partition("=")
    path = path.strip()
    if not sep or not path:
        raise SpecError(
            f"--set {option!r}: expected PATH=VALUE or PATH=V1,V2,..., like training.epochs=5 "
            "or training.optimizer.learning_rate=0.01,0.001"
        )
    values = split_values(text)
    if len(values) > 1 and any(v == "" for v in values):
        raise SpecError(f"--set {option!r}: an empty value in the list; remove the extra comma")
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise SpecError(f"--set {option!r}: {', '.join(duplicates)} listed twice; list each value once")
    return path, values


def read_axes_file(path: Path) -> list[tuple[str, list[str]]]:
    """Read a YAML mapping of `PATH: [values]` (a value that is not a list is a constant).

    Raises:
        SpecError: the file is missing, not YAML, or not such a mapping.
    """
    try:
        data = parse_value(Path(path).read_text(encoding="utf-8"))  # as a spec reads: 1e-3 is a number
    except FileNotFoundError:
        raise SpecError(f"sweep file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict) or not data:
        raise SpecError(
            f"{path}: expected a mapping of spec paths to lists of values, like\n"
            "  training.optimizer.learning_rate: [0.01, 0.001]\n  seed: [0, 1, 2]"
        )
    axes = []
    for key, value in data.items():
        values = value if isinstance(value, list) else [value]
        if not values:
            raise SpecError(f"{path}: {key}: the list of values is empty")
        texts = [value_text(v) for v in values]
        if len(set(texts)) != len(texts):
            raise SpecError(f"{path}: {key}: a value is listed twice; list each value once")
        axes.append((str(key), texts))
    return axes


@dataclass
class Grid:
    """The overrides every point shares, and the axes whose product makes the points."""

    constants: list[str]
    axes: list[tuple[str, list[str]]]

    def points(self) -> list[list[str]]:
        """Return each point's overrides: the constants, then one value of each axis."""
        paths = [path for path, _ in self.axes]
        return [
            self.constants + [f"{p}={v}" for p, v in zip(paths, combo)]
            for combo in itertools.product(*(values for _, values in self.axes))
        ]


def make_grid(sets: list[str], seeds: str | None = None, axes_file: Path | None = None) -> Grid:
    """Combine `--set`, `--seeds` and `--file` into one grid.

    Raises:
        SpecError: a path is given twice, or there is nothing to sweep.
    """
    constants: list[str] = []
    axes: list[tuple[str, list[str]]] = []
    seen: set[str] = set()

    def add(path: str, values: list[str], where: str) -> None:
        if path in seen:
            raise SpecError(f"{where}: {path} is set twice; give each path once")
        seen.add(path)
        if len(values) == 1:
            constants.append(f"{path}={values[0]}")
        else:
            axes.append((path, values))

    if axes_file is not None:
        for path, values in read_axes_file(axes_file):
            add(path, values, str(axes_file))
    for option in sets:
        add(*parse_axis(option), f"--set {option}")
    if seeds is not None:
        values = split_values(seeds)
        if not values or not all(v.isdigit() for v in values):
            raise SpecError(f"--seeds {seeds!r}: expected whole numbers separated by commas, like 0,1,2")
        add("seed", list(dict.fromkeys(values)), "--seeds")
    if not sets and seeds is None and axes_file is None:
        raise SpecError("nothing to sweep: give --set PATH=V1,V2 (repeatable), --seeds 0,1,2 or --file AXES.yaml")
    return Grid(constants, axes)


# --- the sweep folder and its manifest ---------------------------------------------------------


def read_manifest(sweep_dir: Path) -> dict[str, Any]:
    """Read a sweep folder's manifest.

    Raises:
        DlrunError: the folder is not a sweep, or its manifest is damaged.
    """
    path = Path(sweep_dir) / MANIFEST
    if not path.is_file():
        raise DlrunError(
            f"{sweep_dir} is not a sweep folder: it has no {MANIFEST} "
            "(pass the runs/<name>/sweep-<timestamp> folder a sweep printed)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["points"] and manifest["spec"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DlrunError(f"{path} is damaged ({exc}); start a new sweep") from None
    return manifest


def point_label(point: dict[str, Any], axes: list[str]) -> str:
    """Name a point by its axis values only (the constants are the same everywhere): `lr=0.01 units=8`."""
    names = labels.short_names(axes)
    parts = [o.partition("=") for o in point["overrides"]]
    return " ".join(f"{names[path]}={value}" for path, _, value in parts if path in axes) or f"point {point['index']}"


def needs_run(point: dict[str, Any], sweep_dir: Path) -> bool:
    """Tell whether a point still lacks a finished run (and is not a failure that would repeat)."""
    if point["status"] in KEPT_FAILURES and not point.get("retry"):
        return False
    if point["status"] in FINISHED and point.get("run_dir"):
        return not _status(sweep_dir / point["run_dir"]).finished
    return True


def reconcile(sweep_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Bring the manifest in line with the run directories on disk; return the points left to train.

    For each point that needs a run: a finished run of it on disk (its worker finished after the
    driver died) is taken, not trained again; so is a run that ended in NaN or a failure, which would
    repeat. A half-written run that no live process writes (its lock is gone or stale) is deleted and
    the point trained again. Nothing is changed while any run of such a point is still being written.

    Raises:
        DlrunError: a live process still writes a run of a point that needs one.
    """
    points = [p for p in manifest["points"] if needs_run(p, sweep_dir)]
    found, debris = _runs_on_disk(sweep_dir, manifest["points"])
    busy = [(p, r, h) for p in points for r in found[p["index"]] if (h := lock.holder(r)) and h.alive()]
    if busy:
        axes = [axis["path"] for axis in manifest["axes"]]
        lines = "".join(f"\n  {point_label(p, axes)}: {r} (by {h})" for p, r, h in busy)
        pids = " ".join(dict.fromkeys(str(h.pid) for _, _, h in busy))
        raise DlrunError(
            f"cannot resume {sweep_dir} yet: a live process still writes "
            f"{'this run' if len(busy) == 1 else f'these {len(busy)} runs'} (a sweep that is still running?):"
            f"{lines}\nWait for it to end (a run it finishes is then kept, not trained again), or stop it "
            f"(kill {pids}), then resume again"
        )
    for run_dir in debris:  # killed before it wrote which point it is
        shutil.rmtree(run_dir)
    todo = []
    for point in points:
        for run_dir in found[point["index"]]:
            _finish_files(run_dir)
            if _status(run_dir) in HALF_WRITTEN:
                shutil.rmtree(run_dir)  # nobody writes it any more
        kept = sorted(
            (r for r in found[point["index"]] if r.is_dir()),
            key=lambda r: (_status(r).finished, r.stat().st_mtime),  # a finished run first, then the newest
        )
        if kept:
            lock.clear_stale(kept[-1])
            status = _status(kept[-1])
            error = None if status.finished else f"its run ended with status {status} (found on disk by --resume)"
            point.update(status=status, run_dir=str(kept[-1].relative_to(sweep_dir)), error=error, retry=False)
        else:
            point.update(status=Status.PENDING, run_dir=None, error=None, retry=False)
            todo.append(point)
    return todo


def _runs_on_disk(sweep_dir: Path, points: list[dict[str, Any]]) -> tuple[dict[int, list[Path]], list[Path]]:
    """Find each point's run directories (by their overrides.txt), and runs killed before they wrote one.

    The second list holds only runs whose writer is gone: a live one may be about to write its overrides.
    """
    index_of = {"".join(f"{o}\n" for o in p["overrides"]): p["index"] for p in points}
    found: dict[int, list[Path]] = {p["index"]: [] for p in points}
    debris = []
    for run_dir in sorted(d for d in sweep_dir.glob("*/*") if d.is_dir()):
        overrides = run_dir / runs.OVERRIDES
        if overrides.is_file():
            index = index_of.get(overrides.read_text(encoding="utf-8"))
            if index is not None:
                found[index].append(run_dir)
        elif (holder := lock.holder(run_dir)) is not None and not holder.alive() and _status(run_dir) in HALF_WRITTEN:
            debris.append(run_dir)
    return found, debris


def _finish_files(run_dir: Path) -> None:
    """Write the plots of a run that ended but lacks them (its worker was killed writing them): it is not retrained."""
    from dlrun.runs import finishing

    try:
        ended = finishing.FINAL in read_summary(run_dir)
    except DlrunError:
        return
    if ended:
        with lock.held(run_dir):
            finishing.finish(run_dir)


def _status(run_dir: Path) -> Status:
    """A run's status by its summary.json (INCOMPLETE without one, or with a damaged one)."""
    try:
        return status_of(read_summary(run_dir))
    except DlrunError:
        return Status.INCOMPLETE


# --- running -----------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What a sweep did: its folder, points, and the compare table of its runs."""

    sweep_dir: Path
    manifest: dict[str, Any]
    ran: int
    columns: list[str] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    interrupted: bool = False
    exit_code: int = 0
    """How a stopped sweep exits: 130 after Ctrl-C, 143 after SIGTERM (the shell's 128 + signal)."""

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [p for p in self.manifest["points"] if p["status"] not in FINISHED]


def start(spec: Path, grid: Grid, out: Path) -> Path:
    """Validate the grid's shared part, create the sweep folder and write its manifest.

    Raises:
        SpecError: the spec, or an override every point shares, is invalid.
    """
    from dlrun.spec.loader import load_spec

    loaded = load_spec(spec, grid.constants)  # a mistake every point shares stops the sweep here
    sweep_dir = runs.new_run_dir(out, loaded.name, prefix="sweep-")
    points = [
        {"index": i, "overrides": overrides, "status": Status.PENDING, "run_dir": None, "error": None}
        for i, overrides in enumerate(grid.points())
    ]
    manifest = {
        "spec": str(Path(spec).resolve()),
        "spec_sha256": runs.file_sha256(spec),
        "name": loaded.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "constants": grid.constants,
        "axes": [{"path": p, "values": v} for p, v in grid.axes],
        "points": points,
    }
    runs.write_json(sweep_dir / MANIFEST, manifest)
    return sweep_dir


def execute(
    sweep_dir: Path,
    executor,
    console=None,
    on_result: Callable[[dict], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    tracking=None,
) -> SweepResult:
    """Train every point of a sweep folder that lacks a finished run, then compare the sweep's runs.

    The manifest is first reconciled with the run directories on disk (`reconcile`); `on_plan` is
    then told how many points will run. A point whose overrides make an invalid spec is marked
    failed without starting a worker. On Ctrl-C (or SIGTERM) the manifest keeps every finished
    point; the rest are left to `--resume`. With `tracking` (a `dlrun.training.tracking.SweepTracking`),
    each point's run is logged under the sweep's.

    Raises:
        DlrunError: the folder is not a sweep, another process runs it, its spec changed since the
            sweep started, or a live process still writes one of the runs it would train.
    """
    sweep_dir = Path(sweep_dir)
    read_manifest(sweep_dir)  # a folder that is not a sweep gets no lock file
    lock.acquire(sweep_dir, by="dlrun sweep")
    try:
        return _execute(sweep_dir, executor, console, on_result, on_plan, tracking)
    finally:
        lock.release(sweep_dir)


def _execute(sweep_dir: Path, executor, console, on_result, on_plan, tracking) -> SweepResult:
    from dlrun.spec.loader import load_spec

    manifest = read_manifest(sweep_dir)
    spec = Path(manifest["spec"])
    if not spec.is_file():
        raise DlrunError(f"the sweep's spec {spec} is gone; restore it to resume the sweep")
    if runs.file_sha256(spec) != manifest["spec_sha256"]:
        raise DlrunError(
            f"the sweep's spec {spec} changed since the sweep started, so resumed runs would "
            "not match the finished ones; restore it, or start a new sweep"
        )
    points = manifest["points"]
    axes = [axis["path"] for axis in manifest["axes"]]
    todo = reconcile(sweep_dir, manifest)
    tasks = []
    for point in todo:
        try:
            load_spec(spec, point["overrides"])
        except SpecError as exc:
            point.update(status=Status.FAILED, error=str(exc))
            continue
        logged = tracking.point(point, point_label(point, axes)) if tracking is not None else None
        tasks.append((point["index"], str(spec), point["overrides"], str(sweep_dir), logged))
    runs.write_json(sweep_dir / MANIFEST, manifest)
    if on_plan is not None:
        on_plan(len(todo))

    display = _Display(console, len(todo), {p["index"]: point_label(p, axes) for p in points})
    for point in todo:
        if point["status"] == Status.FAILED:
            display.finished(point)
    interrupted, exit_code = False, 0
    with display:  # SIGTERM arrives as an interrupt with its exit_code (dlrun.cli.common.reported)
        results = executor.run(tasks, display.started) if tasks else iter(())
        try:
            for result in results:
                point = points[result["index"]]
                run_dir = result["run_dir"] or _find_run(sweep_dir, point["overrides"])
                point.update(
                    status=result["status"],
                    error=result["error"],
                    run_dir=str(Path(run_dir).resolve().relative_to(sweep_dir.resolve())) if run_dir else None,
                    retry=bool(result.get("retry")),
                    node=result.get("node"),
                )
                if result.get("lost"):  # its first attempt's worker or node died; the executor tried it again
                    point["lost"] = result["lost"]
                    _drop_lost_attempts(sweep_dir, point)
                    display.lost(point)
                runs.write_json(sweep_dir / MANIFEST, manifest)
                display.finished(point)
                if on_result is not None:
                    on_result(point)
        except KeyboardInterrupt as exc:
            interrupted, exit_code = True, getattr(exc, "exit_code", 128 + signal.SIGINT)
            for point in points:
                if point["status"] == Status.PENDING:
                    point["status"] = Status.INTERRUPTED
            runs.write_json(sweep_dir / MANIFEST, manifest)
        finally:
            if hasattr(results, "close"):
                results.close()  # stops the workers even when the interrupt came between two results
    result = SweepResult(sweep_dir, manifest, len(todo), interrupted=interrupted, exit_code=exit_code)
    result.columns, result.table, result.skipped = table(sweep_dir, manifest)
    return result


def _drop_lost_attempts(sweep_dir: Path, point: dict[str, Any]) -> None:
    """Delete the half-written runs a point's lost attempts left, which nobody writes any more."""
    found, _ = _runs_on_disk(sweep_dir, [point])
    for run_dir in found[point["index"]]:
        holder = lock.holder(run_dir)
        if str(run_dir.relative_to(sweep_dir)) == point.get("run_dir") or (holder is not None and holder.alive()):
            continue
        if _status(run_dir) in HALF_WRITTEN:
            shutil.rmtree(run_dir)


def _find_run(sweep_dir: Path, overrides: list[str]) -> Path | None:
    """Find the run a point made when its worker could not say (a NaN loss raises before returning)."""
    wanted = "".join(f"{o}\n" for o in overrides)
    matches = [f.parent for f in sweep_dir.glob(f"*/*/{runs.OVERRIDES}") if f.read_text(encoding="utf-8") == wanted]
    return max(matches, key=lambda p: p.stat().st_mtime) if matches else None


def table(sweep_dir: Path, manifest: dict[str, Any]) -> tuple[list[str], list[dict], list[Skipped]]:
    """Build the sweep's compare table, best monitored value first; points with no run go last."""
    loaded: list[Run] = []
    skipped: list[Skipped] = []
    without_run = []
    for point in manifest["points"]:
        run_dir = sweep_dir / point["run_dir"] if point.get("run_dir") else None
        if run_dir is None:
            without_run.append(point)
            continue
        try:
            loaded.append(load_run(run_dir))
        except DlrunError as exc:
            without_run.append(point)  # a half-written run (its worker died): the point's row says so
            if point["status"] in FINISHED:
                skipped.append(Skipped(run_dir, str(exc)))
    columns, rows = compare.rows(loaded) if loaded else (["run", "status"], [])
    axes = [axis["path"] for axis in manifest["axes"]]
    if loaded:
        monitor = loaded[0].summary.get("monitor")
        if f"best:{monitor}" in columns:
            rows = compare.sort_rows(
                columns, rows, f"best:{monitor}", descending=loaded[0].summary.get("mode") == "max"
            )
    for point in without_run:
        row: dict[str, Any] = {"run": f"point {point['index']}", "status": point["status"]}
        for override in point["overrides"]:
            path, _, value = override.partition("=")
            if path in columns or path in axes:
                row[path] = _parsed(value)
        rows.append(row)
    params_missing = [a for a in axes if a not in columns and any(a in r for r in rows)]
    columns = columns[:1] + params_missing + columns[1:]
    return columns, rows, skipped


def _parsed(text: str) -> Any:
    try:
        return parse_value(text)
    except yaml.YAMLError:
        return text


class _Display:
    """One rich progress display for the whole sweep: runs done, failures, and what is running."""

    def __init__(self, console, total: int, labels: dict[int, str]):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.labels = labels
        self.running: list[int] = []
        self.failed = 0
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[failed]}"),
            TextColumn("{task.fields[running]}"),
            console=console,
            transient=False,
            disable=console is None,
        )
        self.task = self.progress.add_task("sweep", total=total, failed="", running="")

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def started(self, index: int) -> None:
        self.running.append(index)
        self._refresh()

    def finished(self, point: dict[str, Any]) -> None:
        index = point["index"]
        if index in self.running:
            self.running.remove(index)
        ok = point["status"] in FINISHED
        self.failed += point["status"] in KEPT_FAILURES
        if self.console is not None:
            mark = "[green]done[/]" if ok else f"[red]{point['status']}[/]"
            self.progress.console.print(f"{mark} {self.labels[index]}", highlight=False)
        self.progress.advance(self.task)
        self._refresh()

    def lost(self, point: dict[str, Any]) -> None:
        """Say, once, that a point's first attempt was lost (its worker or node died) and it was trained again."""
        if self.console is not None:
            for what in point["lost"]:
                self.progress.console.print(
                    f"[yellow]lost[/] {self.labels[point['index']]}: {what}; trained again",
                    highlight=False,
                    soft_wrap=True,
                )

    def _refresh(self) -> None:
        running = ", ".join(self.labels[i] for i in self.running[:3]) + (" ..." if len(self.running) > 3 else "")
        self.progress.update(
            self.task,
            failed=f"[red]{self.failed} failed[/]" if self.failed else "",
            running=f"running: {running}" if running else "",
        )


def make_executor(kind: str, jobs: int | None, address: str | None, points: int):
    """Pick the executor a user asked for.

    Raises:
        DlrunError: an unknown executor, --address without Ray, or Ray not installed.
    """
    from dlrun.search.executors import RayExecutor, cores, import_ray
    from dlrun.search.pool import LocalExecutor

    if jobs is not None and jobs < 1:
        raise DlrunError(f"--jobs {jobs}: expected 1 or more parallel runs")
    if kind == "local":
        if address:
            raise DlrunError("--address is for the Ray executor: add --executor ray, or drop --address")
        return LocalExecutor(jobs or max(1, min(points, cores())))
    if kind == "ray":
        import_ray()
        return RayExecutor(jobs, address)
    raise DlrunError(f"--executor {kind!r}: expected local or ray")
