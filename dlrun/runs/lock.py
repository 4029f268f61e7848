"""The lock file of a folder being written (a run directory, a sweep folder): who writes it, and is it alive.

A writer creates `dlrun.lock` (JSON: its pid, host and the process's start time) before it writes
anything and removes it when it is done. A lock whose process is gone (killed with -9, out of memory)
is stale: nobody writes the folder any more. `dlrun sweep --resume` reads locks so that it never
deletes, or trains a second time, a run that a live process still writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError

LOCK = "dlrun.lock"


@dataclass(frozen=True)
class Holder:
    """The process a lock file names."""

    path: Path
    pid: int
    host: str
    started: int | None
    """The process's start time (Linux clock ticks since boot), so a reused pid is not taken for the writer."""

    def alive(self) -> bool:
        """Tell whether the writer may still be running (always yes for another host: its processes can't be seen)."""
        if self.host != socket.gethostname():
            return True
        return _alive(self.pid, self.started)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


class Locked(DlrunError):
    """A live process holds the lock of a folder this process wanted to write."""

    def __init__(self, holder: Holder, by: str | None = None, hint: str = ""):
        if by is None:
            message = (
                f"{holder.path.parent} is being written by {holder} (its lock file {holder.path} names it); "
                f"wait for that process to end, or stop it (kill {holder.pid}), then try again"
            )
        else:
            message = (
                f"{holder.path.parent} is being run by another {by} ({holder}); wait for it to end, "
                f"or stop it (kill {holder.pid}), then resume it{hint}"
            )
        super().__init__(message)
        self.holder = holder


def this_process() -> dict[str, Any]:
    """Name this process as a lock does: its pid, host and start time (`Holder`'s fields)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid())}


def holder(folder: Path) -> Holder | None:
    """Read the lock of `folder`: None when it has none, or when the file is unreadable (a lock is written whole)."""
    path = Path(folder) / LOCK
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(path, int(data["pid"]), str(data["host"]), data.get("started"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def acquire(folder: Path, by: str | None = None, hint: str = "") -> None:
    """Mark `folder` as written by this process, replacing a stale lock.

    Args:
        by: the command that runs such folders (`dlrun sweep`), for the message; `hint` ends it.

    Raises:
        Locked: a live process (or one on another host) holds the folder's lock.
    """
    path = Path(folder) / LOCK
    mine = this_process()
    for _ in range(3):
        if _create(path, mine):
            return
        current = holder(folder)
        if current is not None and current.alive():
            raise Locked(current, by, hint)
        path.unlink(missing_ok=True)  # stale (or unreadable): its writer is gone
    raise Locked(holder(folder) or Holder(path, -1, "?", None), by, hint)


def release(folder: Path) -> None:
    """Remove this process's lock of `folder` (never another process's)."""
    current = holder(folder)
    if current is not None and current.pid == os.getpid() and current.host == socket.gethostname():
        current.path.unlink(missing_ok=True)


def clear_stale(folder: Path) -> None:
    """Remove the lock of `folder` if its writer is gone (a run killed after it finished writing what counts)."""
    current = holder(folder)
    if current is not None and not current.alive():
        current.path.unlink(missing_ok=True)


@contextlib.contextmanager
def held(folder: Path) -> Iterator[None]:
    """Hold the lock of `folder` for the duration of a `with` block."""
    acquire(folder)
    try:
        yield
    finally:
        release(folder)


def _create(path: Path, data: dict) -> bool:
    """Create the lock file whole, or return False when one exists (a hard link never replaces a file)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive creation, then the content
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(json.dumps(data) + "\n")
            return True
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of `layout.atomic_path` (`.NAME.tmp-PID.SUFFIX`) whose writer is gone.

    A kill -9 in the middle of a write leaves one; the process that resumes the folder clears them.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid), None):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def stillborn(folder: Path) -> bool:
    """Tell whether a folder is what a kill -9 right after a run's folder was made leaves.

    That is its lock, naming a process that is gone, and nothing else but temporary files: the run
    never wrote its config, so there is nothing in it to read or resume.
    """
    current = holder(folder)
    if current is None or current.alive():
        return False
    return all(p.name == LOCK or ".tmp" in p.name for p in Path(folder).iterdir())


STILLBORN = "a run killed as it started: it holds only its lock (its process is gone) and temporary files"
"""Why a stillborn folder is not a run, in messages."""


def remove_stillborn(parent: Path) -> list[Path]:
    """Remove the stillborn run folders (`stillborn`) directly below `parent`; return them."""
    import shutil

    removed = []
    for folder in sorted(Path(parent).iterdir()) if Path(parent).is_dir() else []:
        if folder.is_dir() and stillborn(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int, started: int | None) -> bool:
    """Tell whether process `pid` runs and is the one that started at `started` (not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    stat = _stat(pid)
    if stat is None:  # no /proc (not Linux): the pid exists, which is all that can be known
        return not Path("/proc/self/stat").is_file()
    state, start = stat
    return state != "Z" and (started is None or start == started)


def _start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _stat(pid: int) -> tuple[str, int] | None:
    """Read a process's state and start time from /proc/PID/stat (fields 3 and 22)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the name, in parentheses, may hold spaces
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None
