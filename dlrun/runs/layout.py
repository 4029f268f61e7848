"""The run directory's layout: its file names, a new folder per run, and how files in it are written."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"
OVERRIDES = "overrides.txt"
HISTORY = "history.csv"
MODEL = "model.keras"
SUMMARY = "summary.json"
PREPROCESSING = "preprocessing.json"
PLOTS = "plots"
TENSORBOARD = "tensorboard"


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


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically, so a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
