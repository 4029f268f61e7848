"""The run directory's layout: its file names, a new folder per run, and how files in it are written.

Every file dlrun writes (in a run directory or where `--out` says) goes through `atomic_path`: it
is written under a temporary name beside its destination, flushed to disk and renamed over it, so
a reader sees the old file or the new one, never half of one. A write that fails (a full disk, no
permission, an interrupt) leaves no temporary file behind and becomes one message naming the path.
JSON goes through `to_json`, which writes NaN and infinities as null: the output is always JSON.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlrun.data.files import file_sha256  # noqa: F401  (the one data hash: the data reader takes it as it reads)
from dlrun.errors import DlrunError

CONFIG = "config.yaml"
OVERRIDES = "overrides.txt"
HISTORY = "history.csv"
MODEL = "model.keras"
SUMMARY = "summary.json"
PREPROCESSING = "preprocessing.json"
PLOTS = "plots"
START = "start.json"
"""What a run started from (its resolved spec, the CSVs' sha256, versions), so `--resume` can check nothing changed."""
CHECKPOINT = "checkpoint.npz"
"""The latest checkpoint of a run in training (see `dlrun.training.checkpoint`); removed once the run finishes."""
TENSORBOARD = "tensorboard"
"""Keras's TensorBoard logs, when training.tensorboard asks for them."""


def new_run_dir(out: Path, name: str, prefix: str = "") -> Path:
    """Create `out/name/<prefix><YYYYmmdd-HHMMSS>/`, never reusing a folder that exists (a suffix is added).

    Raises:
        DlrunError: the folder cannot be created (no permission, a file in the way, a full disk).
    """
    parent = Path(out) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, parent, "create") from None
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        run_dir = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            run_dir.mkdir()  # atomic: two runs started in the same second get different folders
        except FileExistsError:
            continue
        except OSError as exc:
            raise os_error(exc, run_dir, "create") from None
        return run_dir
    raise DlrunError(f"no free folder under {parent}: remove some runs")


RUN_FILES = (CONFIG, HISTORY, SUMMARY)
"""Files any of which marks a folder as a run directory (a half-written run has some of them)."""


@contextlib.contextmanager
def atomic_path(path: str | Path, parents: bool = False) -> Iterator[Path]:
    """Yield a temporary name beside `path` to write; then flush that file to disk and rename it to `path`.

    The temporary name keeps the suffix (Keras, matplotlib and numpy choose the format by it). On
    any error, an interrupt included, the temporary file is removed.

    Args:
        path: The file to write.
        parents: Create missing parent folders first.

    Raises:
        DlrunError: an operating-system error (a full disk, no permission, a missing folder), naming `path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    if parents:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, path, "write") from None
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and str(exc.filename) in ("None", str(tmp), str(path)):
            raise os_error(exc, path, "write") from None
        raise  # another file's error (reading an input, say) names its own path
    _fsync_folder(path.parent)


def write_text(path: str | Path, text: str, parents: bool = False) -> None:
    """Write a text file atomically (see `atomic_path`)."""
    with atomic_path(path, parents) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")  # exactly as given: history.csv keeps its \r\n


def write_json(path: str | Path, data: Any, parents: bool = False) -> None:
    """Write JSON atomically; NaN and infinities are written as null (see `to_json`)."""
    write_text(path, to_json(data) + "\n", parents)


def to_json(data: Any, indent: int | None = 2) -> str:
    """Return data as JSON text that any JSON reader accepts: NaN and infinities become null.

    Python's `json` writes them as the bare words NaN and Infinity, which are not JSON.
    """
    return json.dumps(json_safe(data), indent=indent, default=str, allow_nan=False)


def json_safe(data: Any) -> Any:
    """Return data with non-finite floats replaced by None and numpy scalars made plain Python values."""
    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(value) for value in data]
    if hasattr(data, "item") and getattr(data, "shape", None) == ():  # a numpy scalar
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def os_error(exc: OSError, path: str | Path, verb: str = "write") -> DlrunError:
    """Turn an operating-system error into one message naming the path, the cause and what to do."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    hint = {
        errno.ENOSPC: "free some disk space and try again",
        errno.EACCES: "check the permissions of the folder, or choose another",
        errno.EPERM: "check the permissions of the folder, or choose another",
        errno.EROFS: "the file system is read-only: choose another folder",
        errno.ENOENT: "a folder on the way does not exist",
        errno.ENOTDIR: "a file is in the way where a folder is expected",
        errno.EEXIST: "a file is in the way where a folder is expected",
        errno.EISDIR: "a folder is in the way where a file is expected",
    }.get(exc.errno)
    return DlrunError(f"cannot {verb} {path}: {cause}{f' ({hint})' if hint else ''}")


def _fsync(path: Path) -> None:
    """Flush a written file's data to disk, so the rename never publishes a file the disk does not hold."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable; file systems that cannot sync a folder are left as they are."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
