"""Reading CSV files, the one way every command does: options, header, rows, ragged rows and missing cells.

The header and the first rows are read with the standard library, so `dlrun validate` and `dlrun init`
stay fast and never import pandas; whole files and chunks are read with pandas. Both readers agree on
what a row is (a row whose field count differs from the header's is an error naming its line, the first
data row included) and on which cells are missing (`missing_texts`: pandas' markers and the spec's
`data.csv.na_values`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import math
import os
import re
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from dlrun.errors import DataError
from dlrun.spec.models import CsvOptions

NA_VALUES = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
"""Cell texts that mean "missing" (after stripping spaces) by default: pandas' default list, spelled out so
that the standard-library reader and pandas use the same one."""

_SEPARATORS = {";": "';'", "\t": "'\\t' (tab)", "|": "'|'", ",": "','"}
_PANDAS_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def csv_options(options: CsvOptions | dict | None) -> CsvOptions:
    """Return the spec's CSV options as a model, from a model, a saved dict, or None (the defaults)."""
    if options is None:
        return CsvOptions()
    return options if isinstance(options, CsvOptions) else CsvOptions.model_validate(options)


def missing_texts(options: CsvOptions | dict | None) -> frozenset[str]:
    """Return the cell texts (spaces stripped) that mean "missing" under the spec's CSV options.

    pandas' rule: its default markers (`NA_VALUES`) unless `keep_default_na` is false, plus `na_values`,
    where a number also matches its other spellings (-999 and -999.0). An empty cell is always missing.
    """
    options = csv_options(options)
    return _missing_texts(tuple(options.na_values), options.keep_default_na)


@functools.lru_cache(maxsize=64)
def _missing_texts(na_values: tuple[str, ...], keep_default_na: bool) -> frozenset[str]:
    texts = set(NA_VALUES) if keep_default_na else {""}
    for text in na_values:
        texts.add(text.strip())
        try:
            number = float(text)
        except ValueError:
            continue
        if math.isfinite(number) and number.is_integer():
            texts.update((str(int(number)), f"{int(number)}.0"))  # what pandas adds for a number
        texts.add(str(number))
    return frozenset(texts)


def missing_numbers(options: CsvOptions | dict | None) -> frozenset[float]:
    """Return the numbers that mean "missing" in a column pandas reads as numbers, under the spec's CSV options.

    pandas compares such a cell by value with every missing text that Python's `float` reads (NaN aside),
    so with `na_values: [-999]` the cells `-999`, `-999.00` and `-9.99e2` are all missing.
    """
    numbers = set()
    for text in missing_texts(options):
        try:
            number = float(text)
        except ValueError:
            continue
        if not math.isnan(number):
            numbers.add(number)
    return frozenset(numbers)


def is_missing(cell: str, na: Collection[str] = NA_VALUES) -> bool:
    """Tell whether a cell's text means "missing": in `na` (from `missing_texts`) after stripping spaces."""
    return cell.strip() in na


def line_of(index) -> int:
    """Return the CSV line of a row from pandas' 0-based row number (the header is line 1)."""
    return int(index) + 2


def _encoding(options: CsvOptions) -> str:
    if codecs.lookup(options.encoding).name == "utf-8":
        return "utf-8-sig"  # reads files with or without a byte-order mark
    return options.encoding


def pandas_options(options: CsvOptions | dict | None) -> dict[str, Any]:
    """Return `pandas.read_csv` keyword arguments for the spec's CSV options."""
    options = csv_options(options)
    return {
        "sep": options.separator,
        "decimal": options.decimal,
        "encoding": _encoding(options),
        "quotechar": options.quotechar,
        "index_col": False,
        "na_values": sorted(missing_texts(options)),
        "keep_default_na": False,
    }


# --- what a command reads of a file once: header and first rows; a read's own sha256 ---------------

SAMPLE_ROWS = 10_000
"""Data rows of a file's sample: the rows column kinds are judged on (`kinds.KIND_ROWS`)."""
_remembered: dict | None = None


@contextlib.contextmanager
def remembering():
    """Within, each data file's header and first rows are read once, however many times they are asked for.

    Every command (and every `dlrun` API call) runs inside one. A file is known by its path, size and
    modification time, so a file changed in between is read anew.
    """
    global _remembered
    outer = _remembered
    if outer is None:
        _remembered = {}
    try:
        yield
    finally:
        if outer is None:
            _remembered = None


def remembering_now() -> bool:
    """Whether a `remembering` block is open."""
    return _remembered is not None


def remembered(key: tuple, path: str | Path, compute):
    """Return `compute()`, computed once per `key` and file state inside `remembering` (always outside it)."""
    if _remembered is None:
        return compute()
    try:
        info = Path(path).stat()
        key = (*key, str(Path(path).resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    except OSError:
        return compute()  # a missing file: its error comes from the reader
    if key not in _remembered:
        _remembered[key] = compute()
    return _remembered[key]


@dataclasses.dataclass
class Opened:
    """What a read learned of the file itself, from the very open that read its rows."""

    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0

    def take(self, handle) -> None:
        """Hash the whole file from an open binary handle, note its size and time, and rewind it for the read."""
        info = os.fstat(handle.fileno())
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        self.sha256, self.size, self.mtime_ns = digest.hexdigest(), info.st_size, info.st_mtime_ns
        handle.seek(0)


def file_sha256(path: str | Path) -> str:
    """Hash a file in blocks (never the whole file in memory)."""
    opened = Opened()
    with Path(path).open("rb") as handle:
        opened.take(handle)
    return opened.sha256


# --- the standard-library reader: header and rows ---------------------------------------------------


def not_found(path: str | Path, given: bool = False) -> DataError:
    """The error for a data file that does not exist: a spec's path, or one `given` on the command line."""
    if given:
        return DataError(f"data file not found: {path} (a path on the command line is relative to {Path.cwd()})")
    return DataError(f"data file not found: {path} (paths in a spec are relative to the spec file's folder)")


@contextlib.contextmanager
def _opened(path: Path, options: CsvOptions):
    """Yield a `csv.reader` over the file; turn a missing file or undecodable text into one DataError."""
    try:
        with path.open(newline="", encoding=_encoding(options)) as handle:
            yield csv.reader(handle, delimiter=options.separator, quotechar=options.quotechar)
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError, csv.Error) as exc:
        raise _worded(exc, path, options) from None


def _worded(exc: Exception, path: Path, options: CsvOptions) -> DataError:
    """Return the one-line error for a file that cannot be opened or read as the CSV options say."""
    if isinstance(exc, FileNotFoundError):
        return not_found(path)
    if isinstance(exc, IsADirectoryError):
        return DataError(f"{path} is a folder, not a CSV file")
    if isinstance(exc, UnicodeDecodeError):
        return DataError(
            f"cannot read {path} as {options.encoding} text ({exc.reason} at byte {exc.start}); "
            "set data.csv.encoding (latin-1, cp1252, utf-16, ...)"
        )
    return DataError(f"cannot read {path} as CSV: {exc}; check data.csv (separator, quotechar)")


def _header(reader, path: Path, options: CsvOptions) -> list[str]:
    header = next(reader, None)
    if not header:
        raise DataError(f"{path} is empty: a CSV with a header line and at least one row is needed")
    columns = [name.strip() for name in header]
    _check_separator(columns, options, path)
    check_unique(columns, path, "header")
    return columns


def check_unique(columns: list[str], path: str | Path, source: str) -> None:
    """Refuse a column name given twice, naming both places (`source`: the header, a Parquet file's schema).

    Raises:
        DataError: a name is there twice.
    """
    seen: dict[str, int] = {}
    for number, name in enumerate(columns, start=1):
        if name in seen:
            raise DataError(
                f"{path}: the {source} names column {name!r} twice (columns {seen[name]} and {number}); "
                "rename one so that every column has its own name"
            )
        seen[name] = number


def _other_separator(columns: list[str], options: CsvOptions) -> str | None:
    """Return the separator a file seems to use when its header reads as one column; None otherwise."""
    if len(columns) != 1:
        return None
    return next((sep for sep in _SEPARATORS if sep != options.separator and sep in columns[0]), None)


def _check_separator(columns: list[str], options: CsvOptions, path) -> None:
    sep = _other_separator(columns, options)
    if sep is not None:
        shown = _SEPARATORS[sep]
        raise DataError(
            f"{path}: found a single column {columns[0][:60]!r} with separator {options.separator!r}; the file "
            f"looks separated by {shown}: set data.csv.separator: {shown.split()[0]}"
        )


def sniff_options(path: str | Path) -> CsvOptions:
    """Guess how a CSV is written, for `dlrun init`: UTF-8 or else cp1252 (or latin-1), and the separator.

    The encoding is judged on the first megabyte; the separator is the one that splits the header.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            start = handle.read(1 << 20)
    except OSError:
        return CsvOptions()  # reading it again reports the problem
    encoding = "utf-8"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(start, final=False)
    except UnicodeDecodeError:
        try:
            start.decode("cp1252")
            encoding = "cp1252"
        except UnicodeDecodeError:
            encoding = "latin-1"
    options = CsvOptions(encoding=encoding)
    with _opened(path, options) as reader:
        header = next(reader, None) or []
    separator = _other_separator([name.strip() for name in header], options)
    return options if separator is None else CsvOptions(encoding=encoding, separator=separator)


def read_header(path: str | Path, options: CsvOptions | dict | None = None) -> list[str]:
    """Return a CSV's column names (stripped of spaces) without reading the rest (inside `remembering`: the sample).

    Raises:
        DataError: the file is missing, empty, undecodable, names a column twice, or has the wrong separator.
    """
    path, options = Path(path), csv_options(options)
    if _remembered is not None:
        return _sample(path, options)[0]
    with _opened(path, options) as reader:
        return _header(reader, path, options)


def _sample(path: Path, options: CsvOptions) -> tuple[list[str], list[list[str]], DataError | None]:
    """Return the header, the first `SAMPLE_ROWS` rows and the error that stopped them early, from one open."""

    def read():
        found: list[list[str]] = []
        with _opened(path, options) as reader:
            header = _header(reader, path, options)
            try:
                for _, cells in _rows_of(reader, path, len(header)):
                    found.append(cells)
                    if len(found) == SAMPLE_ROWS:
                        break
            except (DataError, UnicodeDecodeError, csv.Error) as exc:  # an error only for whoever asks for that row
                return header, found, exc if isinstance(exc, DataError) else _worded(exc, path, options)
        return header, found, None

    return remembered(("csv sample", options.model_dump_json()), path, read)


def rows(path: str | Path, options: CsvOptions | dict | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield each data row as (line, cells), checking every row's field count against the header.

    Blank lines are skipped, as pandas skips them (spaces-only lines too). `line` is where the row starts
    (the header is line 1).

    Raises:
        DataError: as `read_header`, or a ragged row (the message names its line).
    """
    path, options = Path(path), csv_options(options)
    with _opened(path, options) as reader:
        yield from _rows_of(reader, path, len(_header(reader, path, options)))


def _rows_of(reader, path: Path, width: int) -> Iterator[tuple[int, list[str]]]:
    line = reader.line_num + 1
    for cells in reader:
        if not _blank(cells):
            if len(cells) != width:
                raise ragged_error(path, line, cells, width)
            yield line, cells
        line = reader.line_num + 1


def _blank(cells: list[str]) -> bool:
    """Tell whether a line is no row: empty, or spaces only (pandas skips both; a quoted " " it keeps)."""
    return not cells or (len(cells) == 1 and cells[0] != "" and not cells[0].strip())


def first_rows(path: str | Path, options: CsvOptions | dict | None, count: int) -> list[list[str]]:
    """Return the cells of the first `count` data rows (fewer when the file is shorter).

    Raises:
        DataError: as `rows`, or the file has a header but no rows.
    """
    path, options = Path(path), csv_options(options)
    if _remembered is not None and count <= SAMPLE_ROWS:
        _, sample, error = _sample(path, options)
        if error is not None and len(sample) < count:
            raise error
        found = sample[:count]
    else:
        found = []
        for _, cells in rows(path, options):
            found.append(cells)
            if len(found) == count:
                break
    if not found:
        raise DataError(f"{path} has a header but no rows: at least one row of data is needed")
    return found


def ragged_error(path, line: int, cells: list[str] | int, width: int) -> DataError:
    """Return the error for a row whose field count differs from the header's."""
    found = cells if isinstance(cells, int) else len(cells)
    trailing = ""
    if not isinstance(cells, int) and found > width and not any(c.strip() for c in cells[width:]):
        trailing = " (the extra fields are empty: a separator at the end of the line?)"
    return DataError(
        f"{path}: line {line} has {found} field{'s' if found != 1 else ''} but the header has {width} "
        f"(a ragged row){trailing}: fix that line, or quote fields that hold the separator, or check "
        "data.csv.separator and quotechar"
    )


def locate(path: str | Path, options: CsvOptions | dict | None, indexes: Iterable[int]) -> dict[int, tuple[int, list]]:
    """Return the line and cells of data rows by pandas' row number, reading the file up to the last one.

    Blank lines are skipped and quoted line breaks counted, as pandas does, so the line is exact where
    `line_of` assumes one line per row. For error messages only: it reads the file again.
    """
    wanted = set(indexes)
    found: dict[int, tuple[int, list]] = {}
    if not wanted:
        return found
    last = max(wanted)
    for number, (line, cells) in enumerate(rows(path, options)):
        if number in wanted:
            found[number] = (line, cells)
        if number >= last:
            break
    return found


def find_ragged_line(path: str | Path, options: CsvOptions | dict | None, width: int) -> tuple[int, int] | None:
    """Return (line, fields) of the first row whose field count differs from `width`; None if all match."""
    path, options = Path(path), csv_options(options)
    with _opened(path, options) as reader:
        return _ragged_line(reader, width)


def _ragged_line(reader, width: int) -> tuple[int, int] | None:
    next(reader, None)
    line = reader.line_num + 1
    for cells in reader:
        if not _blank(cells) and len(cells) != width:
            return line, len(cells)
        line = reader.line_num + 1
    return None


# --- pandas: whole files and chunks -------------------------------------------------------------------


def read_csv(path: str | Path, options: CsvOptions | dict | None = None, text_columns: Collection[str] = ()):
    """Read a whole CSV into a data frame with the spec's options; column names stripped.

    Raises:
        DataError: the file is missing, empty, undecodable, has the wrong separator or a ragged row.
    """
    return next(read_chunks(path, options, None, text_columns=text_columns))


def read_chunks(
    path: str | Path,
    options: CsvOptions | dict | None = None,
    chunk_rows: int | None = 65536,
    check_ragged: bool = True,
    text_columns: Collection[str] = (),
    opened: Opened | None = None,
) -> Iterator:
    """Yield a CSV's rows as data frames of `chunk_rows` rows (one frame when None), checked as `read_csv`.

    The row index runs on across chunks, so `line_of(index)` is a row's line in the file (`locate` gives
    the exact one). The first data row is checked first (pandas would silently drop a field it has too
    many); pandas refuses any later row with too many fields; `check_ragged` also looks for rows with too
    few (a second scan, done only when the last column has empty cells, since that is how pandas shows a
    short row). `text_columns` are read as text, never as numbers or booleans: a category `007`, `true` or
    `1.0` stays what was written, in every chunk alike. The file is opened once for all of it; `opened`
    then receives its sha256, size and modification time, taken from that open before the rows are read.
    """
    path, options = Path(path), csv_options(options)
    columns = read_header(path, options)
    first_rows(path, options, 1)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _worded(exc, path, options) from None
    with handle:
        if opened is not None:
            opened.take(handle)
        yield from _pandas_chunks(handle, path, options, columns, chunk_rows, check_ragged, text_columns)


def _pandas_chunks(
    handle, path: Path, options: CsvOptions, columns, chunk_rows, check_ragged, text_columns
) -> Iterator:
    import pandas as pd

    dtype = {columns.index(name): "str" for name in text_columns if name in columns}
    try:
        reader = pd.read_csv(
            handle,
            chunksize=chunk_rows,
            low_memory=chunk_rows is not None,
            dtype=dtype or None,
            **pandas_options(options),
        )
        chunks = [reader] if chunk_rows is None else reader
        short_possible = read = False
        for frame in chunks:
            frame.columns = columns
            short_possible = short_possible or bool(frame[columns[-1]].isna().any())
            if not frame.empty:
                read = True
                yield frame
        if not read:  # lines pandas skips (spaces only) and the row check counted
            raise DataError(f"{path} has a header but no rows: at least one row of data is needed")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: a CSV with a header line and at least one row is needed") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, str(exc)) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {path} as {options.encoding} text ({exc.reason}); set data.csv.encoding "
            "(latin-1, cp1252, utf-16, ...)"
        ) from None
    if short_possible and check_ragged:  # pandas fills a short row with NaN without a word; only then look for one
        handle.seek(0)
        text = io.TextIOWrapper(handle, encoding=_encoding(options), newline="")
        try:
            reader = csv.reader(text, delimiter=options.separator, quotechar=options.quotechar)
            found = _ragged_line(reader, len(columns))
        finally:
            text.detach()  # the handle stays open for its owner to close
        if found is not None:
            raise ragged_error(path, found[0], found[1], len(columns))


def _parser_error(path, message: str) -> DataError:
    match = _PANDAS_RAGGED.search(message)
    if match:
        return ragged_error(path, int(match.group(2)), int(match.group(3)), int(match.group(1)))
    return DataError(f"cannot read {path} as CSV: {message.strip()}; check data.csv (separator, quotechar)")
