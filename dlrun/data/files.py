"""How a data file is read, decided by its suffix, the same in every command.

`.parquet`, `.feather` and `.arrow` files are read with pyarrow (`dlrun.data.arrowfile`); any other file
is a CSV (`dlrun.data.csvfile`), read with the spec's `data.csv` options. Training, validation and test
files, `validate`, `predict` and `evaluate` all come here, so a file is never read two ways.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TextIO

from dlrun.data import arrowfile, csvfile, frames
from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions, is_dataframe

TEXT = arrowfile.TEXT
Opened = csvfile.Opened
remembering = csvfile.remembering


def file_sha256(path: str | Path) -> str:
    """Return a data file's sha256 (a DataFrame's: of its content)."""
    if is_dataframe(str(path)):
        return str(path).removeprefix(frames.DATAFRAME)
    return csvfile.file_sha256(path)


def is_arrow(path: str | Path) -> bool:
    """Tell whether a file is read with pyarrow (Parquet, Feather, Arrow), by its suffix."""
    return arrowfile.format_of(path) is not None


def read_header(path: str | Path, options: CsvOptions | dict | None = None) -> list[str]:
    """Return a data file's column names (a CSV's header, a Parquet or Feather file's schema).

    Raises:
        DataError: the file is missing or unreadable, or names a column twice.
    """
    if is_dataframe(str(path)):
        return frames.read_header(str(path))
    return arrowfile.read_header(path) if is_arrow(path) else csvfile.read_header(path, options)


def stored_kinds(path: str | Path, options: CsvOptions | dict | None = None) -> dict[str, str]:
    """Return what each column stores (`arrowfile.NUMBER`, `TEXT`, ...): a CSV stores text in every column."""
    if is_dataframe(str(path)):
        return frames.stored_kinds(str(path))
    if is_arrow(path):
        return arrowfile.stored_kinds(path)
    return dict.fromkeys(csvfile.read_header(path, options), TEXT)


def first_rows(path: str | Path, options: CsvOptions | dict | None, count: int) -> list[list[str]]:
    """Return the cells of the first `count` data rows, as text ("" where a Parquet or Feather value is null).

    Raises:
        DataError: the file cannot be read, or has no rows.
    """
    if is_dataframe(str(path)):
        return frames.first_rows(str(path), count)
    return arrowfile.first_rows(path, count) if is_arrow(path) else csvfile.first_rows(path, options, count)


def read_chunks(
    path: str | Path,
    options: CsvOptions | dict | None = None,
    chunk_rows: int | None = 65536,
    check_ragged: bool = True,
    text_columns: Collection[str] = (),
    opened: Opened | None = None,
) -> Iterator:
    """Yield a data file's rows as data frames of at most `chunk_rows` rows (one frame when None).

    The row index runs on across chunks; `position` turns it into the line or row to name in a message.
    `check_ragged` and `text_columns` (read as text, never as numbers) apply to CSVs (`csvfile.read_chunks`);
    Parquet and Feather rows cannot be ragged, and their columns have the types the file stores. The file
    is opened once for all the chunks; `opened` receives its sha256, size and time from that open.

    Raises:
        DataError: the file is missing, unreadable, empty, or (a CSV) has a ragged row.
    """
    if is_dataframe(str(path)):
        return frames.read_chunks(str(path), chunk_rows, opened)
    if is_arrow(path):
        return arrowfile.read_chunks(path, chunk_rows, opened)
    return csvfile.read_chunks(path, options, chunk_rows, check_ragged, text_columns, opened)


def read_frame(path: str | Path, options: CsvOptions | dict | None = None, text_columns: Collection[str] = ()):
    """Read a whole data file into a data frame, checked as `read_chunks`."""
    return next(read_chunks(path, options, None, text_columns=text_columns))


def position(source: str | Path, index) -> str:
    """Return where a row is, for messages: `line 7` of a CSV (the header is line 1), `row 6` of a Parquet file
    (or of a DataFrame)."""
    if is_arrow(source) or is_dataframe(str(source)):
        return f"row {int(index) + 1}"
    return f"line {csvfile.line_of(index)}"


def positions(source: str | Path, indexes) -> str:
    """Return where several rows are: `line 5, 9` or `row 4, 8`."""
    rows = is_arrow(source) or is_dataframe(str(source))
    numbers = [int(i) + 1 if rows else csvfile.line_of(i) for i in indexes]
    return f"{'row' if rows else 'line'} {', '.join(map(str, numbers))}"


class FrameWriter:
    """Write data frames one after another to a file whose suffix says its format (CSV, Parquet, Feather).

    A CSV is written with `csv_options` (separator, decimal). Parquet and Feather files take their column
    types from the first frame; later frames are converted to them.
    """

    def __init__(self, path: str | Path, csv_options: dict | None = None, stream: TextIO | None = None):
        self.path = Path(path)
        self.csv_options = csv_options or {}
        self.stream = stream
        """A text stream to write CSV to instead of `path` (standard output for `--out -`)."""
        self._writer = None
        self._schema = None
        self._sink = None
        self._first = True

    def write(self, frame) -> None:
        if not is_arrow(self.path):
            options = {
                "sep": self.csv_options.get("separator", ","),
                "decimal": self.csv_options.get("decimal", "."),
                "index": False,
            }
            if self.stream is not None:
                frame.to_csv(self.stream, header=self._first, **options)
            else:
                frame.to_csv(self.path, mode="w" if self._first else "a", header=self._first, **options)
            self._first = False
            return
        import pyarrow as pa

        try:
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(
                f"cannot write {self.path}: a column's values change type between rows ({exc}); write a CSV instead"
            ) from None
        if self._writer is None:
            self._schema = table.schema
            self._writer = self._open(table.schema)
        self._writer.write_table(table)

    def _open(self, schema):
        import pyarrow as pa

        if arrowfile.format_of(self.path) == "Parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(self.path, schema)
        import pyarrow.ipc

        self._sink = pa.OSFile(str(self.path), "wb")
        return pyarrow.ipc.new_file(self._sink, schema)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
