"""Finding runs and reading them: the one rule for what is a run directory, and its config, summary and label.

`compare`, `diff`, `plot`, sweeps and `predict` all find and read runs through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError
from dlrun.runs import lock
from dlrun.runs.history import History, read_history
from dlrun.runs.layout import CONFIG, HISTORY, RUN_FILES, SUMMARY
from dlrun.runs.status import Status, status_of


def is_run_dir(path: Path) -> bool:
    """Tell whether a folder is a run directory, finished or not."""
    return any((Path(path) / name).is_file() for name in RUN_FILES)


@dataclass
class Skipped:
    """A path given to a command that is not a usable run, and why."""

    path: Path
    reason: str


def find_runs(paths: list[Path]) -> tuple[list[Path], list[Skipped]]:
    """Expand the paths a user gave into run directories (a folder gives every run at any depth below it).

    Returns:
        The run directories, each once, in sorted order per path; and the paths that hold no run, with why.
    """
    found: list[Path] = []
    skipped: list[Skipped] = []
    for path in map(Path, paths):
        if is_run_dir(path):
            found.append(path)
        elif path.is_dir():
            below = sorted({p.parent for name in RUN_FILES for p in path.rglob(name)})
            left = sorted(p.parent for p in path.rglob(lock.LOCK) if lock.stillborn(p.parent))
            stillborn = [Skipped(folder, _stillborn(folder)) for folder in left]
            skipped += stillborn
            if below:
                found += below
            elif not stillborn:
                skipped.append(
                    Skipped(path, f"not a run directory and holds none (no {CONFIG} or {HISTORY} in it or below it)")
                )
        else:
            skipped.append(Skipped(path, "does not exist"))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique, skipped


def _stillborn(folder: Path) -> str:
    return f"{lock.STILLBORN}; the next dlrun train into {folder.parent} removes it (or remove it yourself)"


def read_config(run_dir: Path) -> dict[str, Any]:
    """Return a run's resolved spec (config.yaml) as plain data.

    Raises:
        DlrunError: the file is missing or not YAML.
    """
    import yaml

    path = Path(run_dir) / CONFIG
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DlrunError(f"{run_dir} has no {CONFIG}: is it a run directory?") from None
    except yaml.YAMLError as exc:
        raise DlrunError(f"{path} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise DlrunError(f"{path} does not hold a spec mapping")
    return data


def read_summary(run_dir: Path) -> dict[str, Any]:
    """Return a run's summary.json, or an empty dict when the run has none yet.

    Raises:
        DlrunError: the file is not valid JSON.
    """
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DlrunError(f"{path} is not valid JSON ({exc})") from None


def run_label(run_dir: Path) -> str:
    """Name a run for legends and tables: `<name>/<timestamp>`."""
    run_dir = Path(run_dir).resolve()
    return f"{run_dir.parent.name}/{run_dir.name}"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a config into dotted paths as `--set` writes them: `model.layers[1].rate`.

    A list of mappings (the layers) is indexed; a list of plain values (`metrics`, `features`) stays
    one value, since it is set as one (`--set data.features=[a,b]`).
    """
    flat: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and any(isinstance(item, (dict, list)) for item in data):
        for index, item in enumerate(data):
            flat.update(flatten(item, f"{prefix}[{index}]"))
    else:
        flat[prefix] = data
    return flat


@dataclass
class Run:
    """One readable run directory: its flattened config, summary and history."""

    run_dir: Path
    label: str
    params: dict[str, Any]
    summary: dict[str, Any]
    history: History

    @property
    def status(self) -> Status:
        return status_of(self.summary)

    @property
    def best_epoch(self) -> int | None:
        """The epoch summary.json calls best (see `dlrun.runs.history.best_epoch`), if the run has one."""
        epoch = self.summary.get("best_epoch")
        return epoch if isinstance(epoch, int) and epoch in self.history.epochs else None


def load_run(run_dir: Path) -> Run:
    """Read one finished (or stopped) run directory.

    Raises:
        DlrunError: the run is half-written (still training, or killed before it finished) or a
            file in it cannot be read.
    """
    run_dir = Path(run_dir)
    missing = [name for name in (CONFIG, SUMMARY, HISTORY) if not (run_dir / name).is_file()]
    if missing:
        still = "" if SUMMARY not in missing else " (still training, or stopped before it finished)"
        raise DlrunError(f"{run_dir} is half-written{still}: no {', '.join(missing)}")
    summary = read_summary(run_dir)
    history = read_history(run_dir / HISTORY)
    return Run(run_dir, run_label(run_dir), flatten(read_config(run_dir)), summary, history)


def load_runs(paths: list[Path]) -> tuple[list[Run], list[Skipped]]:
    """Read every run under the given paths; anything unreadable is returned as skipped, with why."""
    found, skipped = find_runs(paths)
    loaded: list[Run] = []
    for run_dir in found:
        try:
            loaded.append(load_run(run_dir))
        except DlrunError as exc:
            skipped.append(Skipped(run_dir, str(exc)))
    # Two runs of the same name and second in different trees would share a label: use paths then.
    labels = [run.label for run in loaded]
    for run in loaded:
        if labels.count(run.label) > 1:
            run.label = str(run.run_dir)
    return loaded, skipped
