"""CSVs larger than memory: statistics in one pass over chunks, then `tf.data` pipelines that re-read the file.

Nothing here holds more than a chunk of rows (`data.chunk_rows`) at a time. Rows of the training CSV
are assigned to train/validation/test by a seeded random draw per row, the same on every pass, so a
split needs no index of the file; each class then keeps its share in expectation (stratified or not).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import numpy as np

from dlrun.data.files import read_chunks
from dlrun.data.fitter import Prepared, check_target, plan_columns
from dlrun.data.preprocess import Preprocessing, keep_rows
from dlrun.errors import DataError
from dlrun.runs.layout import file_sha256
from dlrun.spec.models import DataSpec

CODES = {"train": 0, "validation": 1, "test": 2}


def assign(rng: np.random.Generator, n: int, spec: DataSpec) -> np.ndarray:
    """Draw each row's part: 2 test, 1 validation, 0 train (one uniform draw per row, in file order)."""
    draws = rng.random(n)
    test = spec.test_split or 0.0
    valid = spec.validation_split or 0.0
    return np.where(draws < test, 2, np.where(draws < test + valid, 1, 0))


class Stream:
    """Where each part's rows come from, and how to read them as batches of model inputs."""

    def __init__(self, spec: DataSpec, seed: int, pre: Preprocessing, rows: dict[str, int]):
        self.spec, self.seed, self.pre, self.rows = spec, seed, pre, rows
        self.unseen: dict[str, dict[str, int]] = {}
        """Unseen-category counts of each part's latest complete pass."""
        self._passes: Counter = Counter()

    def _frames(self, part: str) -> Iterator:
        """Yield the raw rows of one part, chunk by chunk."""
        spec = self.spec
        own = {"validation": spec.validation_path, "test": spec.test_path}.get(part)
        if own is not None:
            yield from read_chunks(own, spec.csv, spec.chunk_rows, check_ragged=False)
            return
        rng = np.random.default_rng(self.seed)
        for chunk in read_chunks(spec.path, spec.csv, spec.chunk_rows, check_ragged=False):
            codes = assign(rng, len(chunk), spec)
            yield chunk[codes == CODES[part]]

    def batches(self, part: str, batch_size: int, shuffle: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (inputs, targets) batches of exactly `batch_size` rows (the last one may be smaller).

        With `shuffle`, rows are shuffled within each chunk, differently on every pass (seeded).
        """
        rng = np.random.default_rng([self.seed, self._passes[part]]) if shuffle else None
        self._passes[part] += 1
        unseen: Counter = Counter()
        source = {"validation": self.spec.validation_path, "test": self.spec.test_path}.get(part) or self.spec.path
        yield from encoded_batches(self._frames(part), self.pre, source, batch_size, rng, unseen)
        self.unseen[part] = dict(unseen)

    def steps(self, part: str, batch_size: int) -> int:
        return math.ceil(self.rows.get(part, 0) / batch_size)

    def dataset(self, part: str, batch_size: int, shuffle: bool = False, repeat: bool = True):
        """Return a `tf.data.Dataset` of one part's batches, re-reading the CSV on every pass."""
        return batch_dataset(lambda: self.batches(part, batch_size, shuffle), self.pre, repeat)


def encoded_batches(
    frames: Iterator,
    pre: Preprocessing,
    source: str,
    batch_size: int,
    rng: np.random.Generator | None = None,
    unseen: Counter | None = None,
):
    """Apply the preprocessing to raw chunks and yield (inputs, targets) batches of exactly `batch_size` rows.

    Rows carry over from one chunk to the next, so only the very last batch may be smaller. With
    `rng`, rows are shuffled within each chunk; `unseen` collects unseen-category counts.
    """
    held_x: list[np.ndarray] = []
    held_y: list[np.ndarray] = []
    held = 0
    for frame in frames:
        encoded = pre.apply(frame, source)
        if unseen is not None:
            unseen.update(encoded.unseen)
        x, y = encoded.x, encoded.y
        if rng is not None:
            order = rng.permutation(len(x))
            x, y = x[order], y[order]
        held_x.append(x)
        held_y.append(y)
        held += len(x)
        if held < batch_size:
            continue
        x, y = np.concatenate(held_x), np.concatenate(held_y)
        full = len(x) - len(x) % batch_size
        for start in range(0, full, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        held_x, held_y, held = [x[full:]], [y[full:]], len(x) - full
    if held:
        yield np.concatenate(held_x), np.concatenate(held_y)


def batch_dataset(batches, pre: Preprocessing, repeat: bool = False):
    """Wrap a function returning a batch generator as a `tf.data.Dataset` (called anew on every pass)."""
    import tensorflow as tf

    y_type = tf.int32 if pre.task == "multiclass" else tf.float32
    signature = (tf.TensorSpec((None, pre.width), tf.float32), tf.TensorSpec((None,), y_type))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    if repeat:
        dataset = dataset.repeat()
    return dataset.prefetch(tf.data.AUTOTUNE)


def prepare_streaming(spec: DataSpec, seed: int, loss: str) -> Prepared:
    """Fit the preprocessing in one pass over the training CSV's chunks; return a `Prepared` with a `Stream`.

    Column kinds are judged on the first rows of the file, as for data in memory (`dlrun.data.kinds`).

    Raises:
        DataError: as `dlrun.data.prepare`, plus median/most_frequent of a number (needs every value).
    """
    columns = plan_columns(spec, loss)
    fitter = columns.fitter(spec, keep_values=False)
    rng = np.random.default_rng(seed)
    rows = Counter()
    dropped = Counter()
    target_seen = False
    for chunk in read_chunks(spec.path, spec.csv, spec.chunk_rows):
        codes = assign(rng, len(chunk), spec)
        keep, lost = keep_rows(chunk, spec.target, columns.drop_rows)
        dropped.update(lost)
        if not keep.all():
            chunk, codes = chunk[keep], codes[keep]
        if len(chunk):
            target_seen = True
        for part, code in CODES.items():
            rows[part] += int((codes == code).sum())
        train = chunk[codes == 0]
        if not len(train):
            continue
        if fitter.rows == 0:
            check_target(train, spec, columns.task, spec.path)
        fitter.update(train)
    if not target_seen:
        raise DataError(
            f"data.target: column {spec.target!r} is empty in every row of {spec.path}; there is nothing "
            "to learn from. Check data.target and data.csv.separator"
        )
    if fitter.rows == 0:
        raise DataError(f"{spec.path}: no training rows left after the split; use smaller validation/test fractions")
    pre = fitter.finish(columns.features, spec.csv.model_dump(), columns.dropped_columns)
    sha = {spec.path: file_sha256(spec.path)}
    for part, path in (("validation", spec.validation_path), ("test", spec.test_path)):
        if path is None:
            continue
        sha[path] = file_sha256(path)
        rows[part] = 0
        for chunk in read_chunks(path, spec.csv, spec.chunk_rows):
            encoded = pre.apply(chunk, path)  # also checks the columns and labels before training starts
            rows[part] += len(encoded.x)
            dropped.update(encoded.dropped)
    if rows["validation"] == 0:
        raise DataError(
            f"{spec.validation_path or spec.path}: no validation rows (after the split and leaving out "
            "empty targets); use a larger data.validation_split"
        )
    if spec.test_split and rows["test"] == 0:
        raise DataError(f"{spec.path}: data.test_split {spec.test_split} leaves no test rows; use a larger fraction")
    part_rows = {part: int(rows[part]) for part in CODES if part != "test" or rows["test"]}
    return Prepared(
        None,
        None,
        None,
        None,
        pre,
        sha,
        rows=part_rows,
        dropped={"missing_target": int(dropped["missing_target"]), "missing_values": int(dropped["missing_values"])},
        stream=Stream(spec, seed, pre, part_rows),
    )
