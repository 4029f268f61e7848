"""The columnar cache of streamed data: preprocessed rows written once, read back on later epochs.

The first pass over a streamed part (training or validation rows) writes each chunk's model inputs
and targets as raw float32/int32 blocks; later passes read those blocks instead of parsing and
preprocessing the file again, chunk by chunk, so memory stays as small as when parsing.

Where: `$DLRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/dlrun`, else `~/.cache/dlrun`; under `stream/<key>/`,
never beside the data or the spec, so nothing is committed by accident. The key is a sha256 of the
file's sha256, the fitted preprocessing, the part and how it was drawn (seed, fractions, chunk size),
so runs and sweeps that read the same file the same way share one cache, and a changed file or
preprocessing gets another. Clear it by deleting the folder (`rm -rf ~/.cache/dlrun/stream`).

Safety: a cache is written under a temporary name and renamed into place only after a complete pass
whose row count is the expected one, while the file still has the size and modification time it had
when its sha256 was taken. A run killed mid-pass leaves only a temporary folder, never read, which
the next run that completes a cache deletes. When a file's new cache is complete, the caches of its
older contents (same path, another sha256) are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
"""Version of the cache layout; a new one never reads an older one."""
MANIFEST = "manifest.json"
_PARTIAL = ".partial-"


def cache_root() -> Path:
    """Return dlrun's cache folder: `$DLRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/dlrun`, else `~/.cache/dlrun`."""
    if os.environ.get("DLRUN_CACHE_DIR"):
        return Path(os.environ["DLRUN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlrun"


def stream_folder() -> Path:
    """Return the folder of the streamed-data caches."""
    return cache_root() / "stream"


def cache_key(description: dict[str, Any]) -> str:
    """Return the key of a cache: a sha256 of what decides its content (JSON, keys sorted)."""
    text = json.dumps({"format": FORMAT, **description}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Source:
    """The file a cache is made from, as it was when its sha256 was taken."""

    path: str
    sha256: str
    size: int
    mtime_ns: int

    def unchanged(self) -> bool:
        """Tell whether the file still has the size and modification time it had when hashed."""
        try:
            info = Path(self.path).stat()
        except OSError:
            return False
        return (info.st_size, info.st_mtime_ns) == (self.size, self.mtime_ns)


class Cached:
    """A complete cache: its blocks, read back one at a time, and the unseen-category counts of its pass."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        self.folder, self.manifest = folder, manifest
        self.unseen: dict[str, int] = manifest["unseen"]

    def blocks(self):
        """Yield each block's (inputs, targets), as the pass that wrote the cache encoded them."""
        width, y_type = self.manifest["width"], np.dtype(self.manifest["y_dtype"])
        with (self.folder / "x.bin").open("rb") as xs, (self.folder / "y.bin").open("rb") as ys:
            for rows in self.manifest["blocks"]:
                x = np.fromfile(xs, dtype=np.float32, count=rows * width).reshape(rows, width)
                y = np.fromfile(ys, dtype=y_type, count=rows)
                if len(y) != rows or x.shape[0] != rows:  # cut short on disk since it was written
                    raise OSError(f"{self.folder} is shorter than its manifest says")
                yield x, y


def open_cache(key: str, rows: int, width: int, folder: Path | None = None) -> Cached | None:
    """Return the complete cache of `key` when it holds `rows` rows of `width` inputs; None otherwise."""
    final = (folder or stream_folder()) / key
    try:
        manifest = json.loads((final / MANIFEST).read_text(encoding="utf-8"))
        y_size = np.dtype(manifest["y_dtype"]).itemsize
        complete = (
            manifest.get("format") == FORMAT
            and manifest["key"] == key
            and manifest["rows"] == rows == sum(manifest["blocks"])
            and manifest["width"] == width
            and (final / "x.bin").stat().st_size == rows * width * 4
            and (final / "y.bin").stat().st_size == rows * y_size
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Cached(final, manifest) if complete else None


class CacheWriter:
    """Write one pass's blocks under a temporary name; `commit` puts a complete, verified pass in place."""

    def __init__(self, key: str, source: Source, width: int, y_dtype: str, folder: Path | None = None):
        self.key, self.source, self.width, self.y_dtype = key, source, width, np.dtype(y_dtype)
        self.folder = folder or stream_folder()
        self.final = self.folder / key
        self.temp = self.folder / f"{key}{_PARTIAL}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.blocks: list[int] = []
        self.rows = 0
        self._files = None
        try:
            self.temp.mkdir(parents=True)
            self._files = ((self.temp / "x.bin").open("wb"), (self.temp / "y.bin").open("wb"))
        except OSError:
            self.abandon()

    @property
    def writing(self) -> bool:
        return self._files is not None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append one block; a full disk or any write error abandons the cache, never the training."""
        if self._files is None:
            return
        try:
            _write(np.ascontiguousarray(x, dtype=np.float32), self._files[0])
            _write(np.ascontiguousarray(y, dtype=self.y_dtype), self._files[1])
        except OSError:
            self.abandon()
            return
        self.blocks.append(len(x))
        self.rows += len(x)

    def commit(self, rows: int, unseen: dict[str, int]) -> bool:
        """Put the cache in place when it holds `rows` rows and the file is unchanged; return whether it did."""
        if self._files is None:
            return False
        try:
            for handle in self._files:
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
            self._files = None
            if self.rows != rows or not self.source.unchanged():
                self.abandon()
                return False
            manifest = {
                "format": FORMAT,
                "key": self.key,
                "source": self.source.path,
                "sha256": self.source.sha256,
                "rows": self.rows,
                "width": self.width,
                "y_dtype": self.y_dtype.name,
                "blocks": self.blocks,
                "unseen": dict(unseen),
            }
            (self.temp / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
            os.rename(self.temp, self.final)
        except OSError:  # the disk is full, or another run put the same cache in place first
            self.abandon()
            return self.final.is_dir()
        remove_stale(self.folder, self.source)
        return True

    def abandon(self) -> None:
        """Close and delete the temporary folder; the partial cache is never read."""
        if self._files is not None:
            for handle in self._files:
                handle.close()
            self._files = None
        shutil.rmtree(self.temp, ignore_errors=True)


def _write(array: np.ndarray, handle) -> None:
    array.tofile(handle)


def remove_stale(folder: Path, source: Source) -> None:
    """Delete caches of older contents of `source`'s file, and temporary folders of runs that ended.

    A temporary folder is deleted only when its process, on this machine, is gone.
    """
    host = socket.gethostname()
    for entry in folder.iterdir() if folder.is_dir() else ():
        if _PARTIAL in entry.name:
            owner = entry.name.split(_PARTIAL, 1)[1]  # <host>-<pid>-<random>
            machine, _, pid = owner.rpartition("-")[0].rpartition("-")
            if machine == host and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
            continue
        try:
            manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("source") == source.path and manifest.get("sha256") != source.sha256:
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
