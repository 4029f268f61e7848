"""Opening a database that several processes may create at the same moment (an Optuna study, an MLflow store).

Optuna and MLflow create their tables when they first open a database, without a guard: processes
started together on a database that does not exist yet fail with `table studies already exists`,
`UNIQUE constraint failed: alembic_version.version_num` and the like. Here the creation happens once:
under a file lock beside a SQLite file, under an advisory lock on PostgreSQL, and elsewhere (MySQL and
other servers) by opening again after the errors a concurrent CREATE raises. Opening a database that
exists passes through the same lock, briefly.
"""

from __future__ import annotations

import contextlib
import random
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

LOCK_SUFFIX = ".lock"
"""The lock file beside a SQLite database (`study.db.lock`): kept, as removing it would race with its next user."""
ATTEMPTS = 5
"""How many times a server database is opened before a concurrent creation's error is the answer."""
RACES = ("IntegrityError", "OperationalError", "ProgrammingError")
"""SQLAlchemy's errors of a CREATE TABLE or a first INSERT that another process made first."""


def sqlite_path(url: str) -> Path | None:
    """Return a SQLite URL's file (None for `:memory:`, another database, or a path that is not a URL)."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url.removeprefix("sqlite:///").partition("?")[0]
    return Path(rest).resolve() if rest and rest != ":memory:" else None


def open_once(url: str, create: Callable[[], T]) -> T:
    """Call `create` (which opens the database at `url`, creating its tables if missing) safely alongside others.

    Raises:
        Whatever `create` raises, once no other process's creation explains it.
    """
    path = sqlite_path(url)
    if path is not None:
        with file_lock(path.with_name(path.name + LOCK_SUFFIX)):
            return create()
    if url.startswith(("postgresql:", "postgresql+", "postgres:")):
        with advisory_lock(url):
            return create()
    return retried(create)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) while the block runs; released if the process dies."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


ADVISORY_KEY = zlib.crc32(b"dlrun: creating tables")
"""The PostgreSQL advisory lock that every dlrun process takes while it opens a database there."""


@contextlib.contextmanager
def advisory_lock(url: str) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock `ADVISORY_KEY` while the block runs (released if the process dies)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                connection.commit()
    finally:
        engine.dispose()


def retried(create: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Call `create` again (after a short random pause) while it fails as a concurrent creation of its tables does."""
    for attempt in range(1, attempts + 1):
        try:
            return create()
        except Exception as exc:
            if attempt == attempts or not is_race(exc):
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")


def is_race(exc: BaseException) -> bool:
    """Tell whether an error (or one it wraps) is SQLAlchemy's error of a CREATE or INSERT that lost a race."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ in RACES and type(exc).__module__.startswith("sqlalchemy"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
