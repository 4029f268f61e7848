"""pandas DataFrames as a data source, read as a file is: header, stored kinds, first rows, chunks, positions.

`dlrun.train(spec, data=frame)` registers the frame under `dataframe:<sha256>` (`register`), and that
name becomes `data.path`: every reader (`dlrun.data.files`) then takes the frame where it would open a
file, so a frame is split, checked and fitted exactly as the same rows in a Parquet file would be. The
sha256 is of the frame's content (column names, dtypes and values), so a run records which frame it
learned from as it records a file's hash, and `compare`, `diff` and a resume tell two frames apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from dlrun.data.arrowfile import stored_kind, text_cells
from dlrun.data.csvfile import Opened, check_unique
from dlrun.errors import DataError
from dlrun.spec.models import DATAFRAME, is_dataframe

_frames: dict[str, Any] = {}
"""The frames registered in this process, by their name (`dataframe:<sha256>`)."""

__all__ = ["is_dataframe", "register", "describe"]


def frame_sha256(frame) -> str:
    """Return a sha256 of a frame's content: column names, dtypes, then every value (the index is left out)."""
    import pandas as pd

    digest = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        digest.update(repr((str(name), str(dtype))).encode("utf-8"))
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def register(frame) -> str:
    """Hold a DataFrame in memory for this process's readers; return its name for `data.path`.

    Raises:
        DataError: not a DataFrame, no columns or rows, or a column name that is not text or given twice.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"data: expected a pandas DataFrame or a file path, got {type(frame).__name__}")
    names = [str(name) for name in frame.columns]
    if not names:
        raise DataError("data: the DataFrame has no columns")
    check_unique(names, "the DataFrame", "columns")
    if len(frame) == 0:
        raise DataError("data: the DataFrame has no rows: at least one row of data is needed")
    frame = frame.set_axis(names, axis=1).reset_index(drop=True)
    name = DATAFRAME + frame_sha256(frame)
    _frames.setdefault(name, frame)
    return name


def registered(name: str) -> bool:
    """Whether a frame of that name is held in this process."""
    return str(name) in _frames


def frame_of(name: str):
    """Return a registered frame.

    Raises:
        DataError: the frame was registered by another process (or not at all).
    """
    try:
        return _frames[str(name)]
    except KeyError:
        raise DataError(
            f"data.path: {name} is a DataFrame that was given to dlrun.train in another Python process; pass it "
            "again with data=frame (or save it as a Parquet file and give its path)"
        ) from None


def describe(name: str) -> dict[str, Any]:
    """Return what a run records of a frame: its rows, columns and sha256."""
    frame = frame_of(name)
    return {"rows": len(frame), "columns": list(frame.columns), "sha256": name.removeprefix(DATAFRAME)}


def read_header(name: str) -> list[str]:
    return list(frame_of(name).columns)


def _schema(frame):
    import pyarrow as pa

    try:
        return pa.Schema.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"data: a column of the DataFrame mixes types ({exc}); give each column one type") from None


def stored_kinds(name: str) -> dict[str, str]:
    """Return what each column stores, as for a Parquet file of the same frame (`arrowfile.stored_kind`)."""
    return {field.name: stored_kind(field.type) for field in _schema(frame_of(name))}


def first_rows(name: str, count: int) -> list[list[str]]:
    """Return the first `count` rows' cells as text, as a Parquet file of the same frame gives them."""
    import pyarrow as pa

    head = frame_of(name).head(count)
    table = pa.Table.from_pandas(head, schema=_schema(head), preserve_index=False)
    return [list(row) for row in zip(*(text_cells(table.column(c)) for c in head.columns))]


def read_chunks(name: str, chunk_rows: int | None = 65536, opened: Opened | None = None) -> Iterator:
    """Yield the frame's rows as frames of at most `chunk_rows` rows (the frame itself when None)."""
    frame = frame_of(name)
    if opened is not None:
        opened.sha256, opened.size, opened.mtime_ns = name.removeprefix(DATAFRAME), len(frame), 0
    step = chunk_rows or max(len(frame), 1)
    for start in range(0, len(frame), step):
        yield frame.iloc[start : start + step]
