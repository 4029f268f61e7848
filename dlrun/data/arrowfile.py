"""Reading Parquet and Feather (Arrow IPC) files with pyarrow: the schema, the first rows as text, chunks.

A column's Arrow type says what it holds (`stored_kind`): numbers, dates and times, or text; the
column-kind rule (`dlrun.data.kinds`) takes it from there. The schema and the first rows are read
without pandas, so `dlrun validate` stays fast; chunks become pandas frames for preprocessing. Big
files are read a record batch (Parquet: within row groups) at a time, never whole, when streaming.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from dlrun.data.csvfile import SAMPLE_ROWS, Opened, check_unique, not_found, remembered, remembering_now
from dlrun.errors import DataError

FORMATS = {".parquet": "Parquet", ".feather": "Feather", ".arrow": "Arrow"}
"""File suffixes read with pyarrow, and the format's name in messages."""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

NUMBER, INTEGER, TEMPORAL, TEXT, UNUSABLE = "number", "integer", "temporal", "text", "unusable"
"""What a column's Arrow type stores: floats or decimals, integers, dates or timestamps, text (strings,
booleans, dictionaries of strings), or values dlrun cannot use (lists, structs, binary)."""


def format_of(path: str | Path) -> str | None:
    """Return Parquet, Feather or Arrow for a file pyarrow reads, by its suffix; None for any other file."""
    return FORMATS.get(Path(path).suffix.lower())


def _pyarrow():
    try:
        import pyarrow
    except ImportError:  # a core dependency; only a broken install lacks it
        raise DataError(
            "reading Parquet and Feather files needs pyarrow, which is not installed: pip install pyarrow"
        ) from None
    return pyarrow


@contextlib.contextmanager
def _reading(path: Path):
    """Turn a missing file, a folder or a file that is not what its suffix says into one DataError."""
    pa = _pyarrow()
    try:
        yield
    except FileNotFoundError:
        raise not_found(path) from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a {format_of(path)} file") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        if not path.exists():
            raise not_found(path) from None
        if path.is_dir():
            raise DataError(f"{path} is a folder, not a {format_of(path)} file") from None
        expected = "a Parquet file" if format_of(path) == "Parquet" else "an Arrow IPC file (Feather version 2)"
        reason = str(exc).strip().splitlines()[0].rstrip(".")
        raise DataError(
            f"cannot read {path} as {expected}: {reason}; check that the file is what its suffix says "
            "(.csv files are read as CSV, .parquet as Parquet, .feather and .arrow as Arrow)"
        ) from None


def _ipc_reader(path: Path, handle=None):
    """Open an Arrow IPC file (or read it from an open `handle`); batches are read from disk when asked for
    (not memory-mapped: RSS stays small)."""
    pa = _pyarrow()
    import pyarrow.ipc

    return pyarrow.ipc.open_file(handle if handle is not None else pa.OSFile(str(path)))


def _sample(path: Path):
    """Return the schema and a table of the first `SAMPLE_ROWS` rows, from one open, once per command."""

    def read():
        pa = _pyarrow()
        with _reading(path), path.open("rb") as handle:
            schema = _schema(path, handle)
            chunks, taken = [], 0
            for batch in _batches(path, SAMPLE_ROWS, handle=handle):
                chunks.append(batch.slice(0, SAMPLE_ROWS - taken))
                taken += chunks[-1].num_rows
                if taken >= SAMPLE_ROWS:
                    break
            return schema, pa.Table.from_batches(chunks, schema=schema)

    return remembered(("arrow sample",), path, read)


def _schema(path: Path, handle):
    if format_of(path) == "Parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(handle).schema_arrow
    return _ipc_reader(path, handle).schema


def read_schema(path: str | Path):
    """Return the file's Arrow schema, reading its metadata only (inside `remembering`: with the sample)."""
    path = Path(path)
    if remembering_now():
        return _sample(path)[0]
    with _reading(path):
        if format_of(path) == "Parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(path)
        return _ipc_reader(path).schema


def read_header(path: str | Path) -> list[str]:
    """Return the column names from the file's schema.

    Raises:
        DataError: the file is missing, unreadable, has no columns or names a column twice.
    """
    names = list(read_schema(path).names)
    if not names:
        raise DataError(f"{path} has no columns")
    check_unique(names, path, "schema")
    return names


def stored_kind(arrow_type) -> str:
    """Return what an Arrow type stores: NUMBER, INTEGER, TEMPORAL, TEXT or UNUSABLE."""
    import pyarrow.types as t

    if t.is_dictionary(arrow_type):
        return stored_kind(arrow_type.value_type)
    if t.is_integer(arrow_type):
        return INTEGER
    if t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return NUMBER
    if t.is_date(arrow_type) or t.is_timestamp(arrow_type):
        return TEMPORAL
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_boolean(arrow_type) or t.is_null(arrow_type):
        return TEXT
    return UNUSABLE


def stored_kinds(path: str | Path) -> dict[str, str]:
    """Return each column's stored kind, from the schema alone."""
    return {field.name: stored_kind(field.type) for field in read_schema(path)}


def _batches(path: Path, rows: int | None, columns: list[str] | None = None, handle=None) -> Iterator:
    """Yield the file's record batches of at most `rows` rows (None: as stored), reading one at a time
    (from `handle` when the file is open already)."""
    if format_of(path) == "Parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(handle if handle is not None else path)
        yield from parquet.iter_batches(batch_size=rows or 65536, columns=columns)
        return
    reader = _ipc_reader(path, handle)
    for index in range(reader.num_record_batches):
        batch = reader.get_batch(index)
        if columns is not None:
            batch = batch.select(columns)
        step = rows or max(batch.num_rows, 1)
        for start in range(0, batch.num_rows, step):
            yield batch.slice(start, step)


def first_rows(path: str | Path, count: int) -> list[list[str]]:
    """Return the first `count` rows' cells as text ("" where a value is null), as a CSV reader would.

    Columns of a type with no text form (lists, structs) give empty cells; their stored kind refuses them.

    Raises:
        DataError: the file cannot be read, or has no rows.
    """
    path = Path(path)
    pa = _pyarrow()
    columns: list[list[str]] = []
    with _reading(path):
        names = read_header(path)
        if remembering_now() and count <= SAMPLE_ROWS:
            table = _sample(path)[1].slice(0, count)
            if table.num_rows == 0:
                raise DataError(f"{path} has no rows: at least one row of data is needed")
            return [list(row) for row in zip(*(text_cells(table.column(name)) for name in names))]
        chunks = []
        taken = 0
        for batch in _batches(path, count):
            chunks.append(batch.slice(0, count - taken))
            taken += chunks[-1].num_rows
            if taken >= count:
                break
        if taken == 0:
            raise DataError(f"{path} has no rows: at least one row of data is needed")
        table = pa.Table.from_batches(chunks)
        for name in names:
            columns.append(text_cells(table.column(name)))
    return [list(row) for row in zip(*columns)]


def text_cells(column) -> list[str]:
    return ["" if cell is None else cell for cell in _as_text(column)]


def _as_text(column) -> list[str | None]:
    """Return a column's values as text, with pyarrow alone (no pandas, no compute kernels: validate stays fast).

    Timestamps are written in their own time zone, and without a time when every one is at midnight:
    pandas writes such a column to CSV as dates, so a file converted either way is judged alike.
    """
    import pyarrow.types

    if stored_kind(column.type) == UNUSABLE:
        return [None] * len(column)
    if pyarrow.types.is_timestamp(column.type):
        moments = _timestamps(column)
        midnight = all(moment.time() == time() for moment in moments if moment is not None)
        form = "%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S"
        return [None if moment is None else moment.strftime(form) for moment in moments]
    return [_cell(value) for value in column.to_pylist()]


def _cell(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat() if isinstance(value, date) else str(value)  # dates as 2024-03-01


def _timestamps(column) -> list[datetime | None]:
    """Return a timestamp column's values as naive datetimes in the column's time zone (whole seconds)."""
    import pyarrow as pa

    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[column.type.unit]
    zone = _zone(column.type.tz)
    moments: list[datetime | None] = []
    for chunk in column.chunks:
        for number in chunk.view(pa.int64()).to_pylist():  # as stored: since 1970-01-01, in UTC when zoned
            if number is None:
                moments.append(None)
                continue
            moment = _EPOCH + timedelta(seconds=number // per_second)
            moments.append((moment.astimezone(zone) if zone else moment).replace(tzinfo=None))
    return moments


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # a fixed offset such as +01:00
        try:
            return datetime.strptime(name.replace(":", ""), "%z").tzinfo
        except ValueError:
            return timezone.utc


def read_chunks(path: str | Path, chunk_rows: int | None = 65536, opened: Opened | None = None) -> Iterator:
    """Yield the file's rows as data frames of at most `chunk_rows` rows (one frame when None).

    The row index runs on across chunks (0 for the first row), so messages can name a row by it. The
    file is opened once; `opened` then receives its sha256, size and time from that open.

    Raises:
        DataError: the file is missing or unreadable, or has no rows.
    """
    path = Path(path)
    pa = _pyarrow()
    start = 0
    with _reading(path):
        read_header(path)
        with path.open("rb") as handle:
            if opened is not None:
                opened.take(handle)
            if chunk_rows is None:
                if format_of(path) == "Parquet":
                    import pyarrow.parquet as pq

                    tables = [pq.read_table(handle)]
                else:
                    tables = [_ipc_reader(path, handle).read_all()]
            else:
                tables = (pa.Table.from_batches([batch]) for batch in _batches(path, chunk_rows, handle=handle))
            for table in tables:
                if table.num_rows == 0:
                    continue
                frame = table.to_pandas()
                frame.index = range(start, start + len(frame))
                start += len(frame)
                yield frame
    if start == 0:
        raise DataError(f"{path} has no rows: at least one row of data is needed")
