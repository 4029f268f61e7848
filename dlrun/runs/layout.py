"""Run directories: where they go, what files they hold, reading and writing them."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError

CONFIG = "config.yaml"
OVERRIDES = "overrides.txt"
HISTORY = "history.csv"
MODEL = "model.keras"
SUMMARY = "summary.json"
PREPROCESSING = "preprocessing.json"
PLOTS = "plots"


def new_run_dir(out: Path, name: str, prefix: str = "") -> Path:
    """Create `out/name/<prefix><YYYYmmdd-HHMMSS>/`, never reusing a folder that exists (a suffix is added)."""
    parent = Path(out) / name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        run_dir = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            run_dir.mkdir()  # atomic: two runs started in the same second get different folders
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"no free folder under {parent}")


def file_sha256(path: str | Path) -> str:
    """Hash a file in blocks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


RUN_FILES = (CONFIG, HISTORY, SUMMARY)
"""Files any of which marks a folder as a run directory (a half-written run has some of them)."""


def is_run_dir(path: Path) -> bool:
    """Tell whether a folder is a run directory, finished or not."""
    return any((Path(path) / name).is_file() for name in RUN_FILES)


def find_runs(paths: list[Path]) -> list[Path]:
    """Expand run directories and their parents into run directories, in sorted order per argument."""
    found: list[Path] = []
    for path in paths:
        if is_run_dir(path):
            found.append(path)
        elif path.is_dir():
            found += sorted(p.parent for p in path.rglob(HISTORY))
    return found


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically, so a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_config(run_dir: Path) -> dict[str, Any]:
    """Return a run's resolved spec (config.yaml) as plain data.

    Raises:
        DlrunError: the file is missing or not YAML.
    """
    path = Path(run_dir) / CONFIG
    import yaml

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
    """Return a run's summary.json, or an empty dict when the run has none yet."""
    path = Path(run_dir) / SUMMARY
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def run_label(run_dir: Path) -> str:
    """Name a run for legends and tables: `<name>/<timestamp>`."""
    run_dir = Path(run_dir).resolve()
    return f"{run_dir.parent.name}/{run_dir.name}"
