"""Data files -> training, validation and test data, through preprocessing fitted on the training rows only.

The top of the data path, one sequence whether the data is held in memory or streamed: plan the columns
(`fitter.plan_columns`, from the header and the first rows), read the training source as chunks (in
memory: one chunk of every row), split each chunk (`dlrun.data.split`), leave out empty targets and
drop_rows rows, check the cells, fit the statistics on the training rows, then apply the fitted
`Preprocessing`. In memory the parts are applied here and held as arrays; streamed, only a `Stream`
is returned, which applies the preprocessing chunk by chunk on every pass (`dlrun.data.stream`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dlrun.data.cache import Source
from dlrun.data.files import Opened, read_chunks
from dlrun.data.fitter import Columns, Fitter, Prepared, check_target, plan_columns
from dlrun.data.preprocess import Encoded, keep_rows, sample_weights
from dlrun.data.split import CODES, chunk_rows, regroup
from dlrun.data.stream import Stream, splitter_of
from dlrun.errors import DataError
from dlrun.spec.models import DataSpec


def streams(spec: DataSpec) -> bool:
    """Tell whether the training file is read in chunks (`data.streaming`, or auto above its size on disk)."""
    if spec.streaming != "auto":
        return bool(spec.streaming)
    try:
        return Path(spec.path).stat().st_size > spec.streaming_above_mb * 1e6
    except OSError:
        return False


@dataclass
class Pass:
    """What one pass over the training source found: rows per part (and, in memory, the rows themselves)."""

    rows: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    held: dict[str, list] | None = None
    """Each part's kept raw rows, chunk by chunk; None when streaming."""
    numbers: dict[str, list] | None = None
    """Each part's numeric columns as the pass parsed them, chunk by chunk (so they are parsed once)."""
    kept: int = 0
    opened: Opened = field(default_factory=Opened)


def prepare(spec: DataSpec, seed: int, loss: str) -> Prepared:
    """Read the data file(s), split them, fit the preprocessing on the training rows and apply it everywhere.

    Args:
        spec: the spec's data section (paths already absolute).
        seed: seeds the validation/test split (`dlrun.data.split`).
        loss: the training loss; it decides whether the target is a number, a binary or a class label.

    Raises:
        DataError: a missing file or column, an unusable column, empty cells, too few rows, ...
    """
    streamed = streams(spec)
    columns = plan_columns(spec, loss)
    fitter = columns.fitter(spec, keep_values=not streamed)
    found = fit_pass(spec, seed, columns, fitter, streamed)
    _check_parts(spec, found)
    pre = fitter.finish(columns.features, spec.csv.model_dump(), columns.dropped_columns)
    fitter.check_gaps()
    sources = {spec.path: _source(spec.path, found.opened)}
    rows, dropped = dict(found.rows), Counter(found.dropped)
    encoded: dict[str, Encoded] = {}
    if not streamed:
        for part, chunks in found.held.items():
            if chunks:
                parsed = _joined_numbers(found.numbers[part])
                encoded[part] = pre.apply(_joined(chunks), spec.path, weighted=True, numbers=parsed)
    for part, path in (("validation", spec.validation_path), ("test", spec.test_path)):
        if path is None:
            continue
        opened = Opened()
        rows[part] = 0
        every = []
        size = chunk_rows(spec.chunk_rows) if streamed else None
        for chunk in read_chunks(path, spec.csv, size, text_columns=pre.text_columns, opened=opened):
            applied = pre.apply(chunk, path, weighted=True)  # checks columns, labels, weights before training
            rows[part] += len(applied.x)
            dropped.update(applied.dropped)
            if not streamed:
                every.append(applied)
        sources[path] = _source(path, opened)
        if every:
            encoded[part] = every[0] if len(every) == 1 else _stacked(every)
    if rows.get("validation", 0) == 0:
        raise DataError(
            f"{spec.validation_path or spec.path}: no validation rows left (after leaving out empty targets and "
            "drop_rows rows)"
        )
    rows = {part: int(rows.get(part, 0)) for part in CODES if part != "test" or rows.get("test")}
    sha = {path: source.sha256 for path, source in sources.items()}
    common = {
        "rows": rows,
        "dropped": {key: int(dropped[key]) for key in ("missing_target", "missing_values")},
        "class_counts": dict(fitter.labels),
        "warnings": fitter.constant_warnings(),
        "split": splitter_of(spec, seed).record() if spec.validation_split or spec.test_split else None,
    }
    if streamed:
        return Prepared(None, None, None, None, pre, sha, stream=Stream(spec, seed, pre, rows, sources), **common)
    test = encoded.get("test")
    return Prepared(
        encoded["train"].x,
        encoded["train"].y,
        encoded["validation"].x,
        encoded["validation"].y,
        pre,
        sha,
        x_test=test.x if test else None,
        y_test=test.y if test else None,
        unseen={part: e.unseen for part, e in encoded.items() if part != "train" and e.unseen},
        w_train=encoded["train"].w,
        w_valid=encoded["validation"].w,
        w_test=test.w if test else None,
        **common,
    )


def fit_pass(spec: DataSpec, seed: int, columns: Columns, fitter: Fitter, streamed: bool) -> Pass:
    """Read the training source once, chunk by chunk: split, leave rows out, check cells, fit the training rows.

    Raises:
        DataError: a bad cell or label, a target that is empty in every row or text for a regression loss.
    """
    found = Pass(
        held=None if streamed else {part: [] for part in CODES},
        numbers=None if streamed else {part: [] for part in CODES},
    )
    splitter = splitter_of(spec, seed)
    rows = chunk_rows(spec.chunk_rows) if streamed else None
    chunks = read_chunks(spec.path, spec.csv, rows, text_columns=columns.text_columns, opened=found.opened)
    for chunk in regroup(chunks, rows):
        codes = splitter.assign(chunk[spec.target], len(chunk))
        keep, lost = keep_rows(chunk, spec.target, columns.drop_rows, spec.csv, columns.task)
        found.dropped.update(lost)
        if not keep.all():
            chunk, codes = chunk[keep], codes[keep]
        if not len(chunk):
            continue
        if found.kept == 0:
            check_target(chunk, spec, columns.task, spec.path)
        found.kept += len(chunk)
        if streamed and spec.weight_column is not None:  # refused now, not in the middle of training
            sample_weights(chunk[spec.weight_column], spec.weight_column, spec.path, spec.csv)
        numbers = fitter.check_cells(chunk)
        train = codes == CODES["train"]
        fitter.update(chunk[train], {name: values[train] for name, values in numbers.items()})
        for part, code in CODES.items():
            mask = codes == code
            found.rows[part] += int(mask.sum())
            if found.held is not None and mask.any():
                found.held[part].append(chunk[mask] if not mask.all() else chunk)
                found.numbers[part].append({name: values[mask] for name, values in numbers.items()})
    if found.kept == 0:
        raise DataError(
            f"data.target: column {spec.target!r} is empty in every row of {spec.path}; there is nothing "
            "to learn from. Check data.target and data.csv.separator"
        )
    return found


def _check_parts(spec: DataSpec, found: Pass) -> None:
    """Refuse a split that leaves a part of the training file empty."""
    n = found.kept
    for part in ("validation", "test"):
        fraction = getattr(spec, f"{part}_split")
        if fraction and found.rows[part] == 0:
            raise DataError(
                f"data.{part}_split: {fraction} of {n} rows leaves no {part} rows; use a larger fraction or more rows"
            )
    if found.rows["train"] == 0:
        held = ", ".join(f"{p} {found.rows[p]}" for p in ("validation", "test") if getattr(spec, f"{p}_split"))
        raise DataError(
            f"data.validation_split: the split of {n} rows leaves {held} and 0 training rows; both need at least one"
        )


def _source(path: str, opened: Opened) -> Source:
    """Return a file's sha256 with its size and modification time, all taken from the open that read it."""
    return Source(str(Path(path).resolve()), opened.sha256, opened.size, opened.mtime_ns)


def _joined(chunks: list):
    import pandas as pd

    return chunks[0] if len(chunks) == 1 else pd.concat(chunks)


def _joined_numbers(chunks: list[dict]) -> dict:
    import numpy as np

    if len(chunks) == 1:
        return chunks[0]
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def _stacked(parts: list[Encoded]) -> Encoded:
    import numpy as np

    def stack(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    unseen = Counter()
    dropped = Counter()
    for p in parts:
        unseen.update(p.unseen)
        dropped.update(p.dropped)
    return Encoded(stack("x"), stack("y"), stack("kept"), dict(dropped), dict(unseen), stack("w"))
