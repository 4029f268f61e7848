"""The one split rule: which rows of the training file are validation and test rows, chunk by chunk.

Rows are taken in blocks of `BLOCK_ROWS` consecutive rows of the file (by their position: the first
data row is 0). Each block's rows are ordered by a permutation seeded with (seed, block number). In that
order the first rows of a block are validation rows, the next ones test rows, the rest training rows;
how many is decided by cumulative rounding, so after any number of rows N the validation part holds
round(N * validation_split) of them (the test part likewise). With `data.stratify`, each class is
counted on its own, so each class holds its share exactly (to one row), not only in expectation.

A row's part depends only on the seed, its position and the rows before it, never on how the file is
read: a file read whole (one chunk) and the same file streamed in chunks of any multiple of
`BLOCK_ROWS` rows (`regroup`) give the same parts. Rows that are left out later (an empty target, a gap
in a drop_rows column) keep their place, so leaving them out never moves another row to another part.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from dlrun.data.preprocess import label_of

BLOCK_ROWS = 100
"""Rows per block of the split; chunks of a streamed file are whole multiples of it."""
RULE = "blocks of 100 rows, seeded order within a block, held-out counts by cumulative rounding"
"""The split rule in words, recorded in summary.json (`split.rule`)."""
CODES = {"train": 0, "validation": 1, "test": 2}


def chunk_rows(rows: int | None) -> int | None:
    """Return the rows a streamed chunk is read in: `data.chunk_rows` rounded up to a multiple of `BLOCK_ROWS`."""
    return None if rows is None else math.ceil(rows / BLOCK_ROWS) * BLOCK_ROWS


def regroup(frames: Iterator, rows: int | None) -> Iterator:
    """Yield frames of exactly `rows` rows (the last one may be shorter) from frames of any size.

    A Parquet file's batches end at its row groups; the split needs chunks that start on a block.
    """
    if rows is None:
        yield from frames
        return
    import pandas as pd

    held: list = []
    count = 0
    for frame in frames:
        held.append(frame)
        count += len(frame)
        if count < rows:
            continue
        joined = pd.concat(held) if len(held) > 1 else held[0]
        full = count - count % rows
        for start in range(0, full, rows):
            yield joined.iloc[start : start + rows]
        held, count = [joined.iloc[full:]], count - full
    if count:
        yield pd.concat(held) if len(held) > 1 else held[0]


class Splitter:
    """Assign the rows of the training file to train (0), validation (1) and test (2), chunk after chunk.

    Args:
        fractions: `validation` and `test` fractions of the rows (None or 0: no such part from this file).
        seed: the spec's seed.
        stratify: count each class (the target's label) on its own.
    """

    def __init__(self, fractions: dict[str, float | None], seed: int, stratify: bool = False):
        self.fractions = {part: float(fractions.get(part) or 0.0) for part in ("validation", "test")}
        self.seed, self.stratify = seed, stratify
        self.position = 0
        """The position of the next row to assign."""
        self.seen: Counter = Counter()
        """Rows assigned so far, per group (the class with `stratify`, else one group)."""
        self.taken: dict[str, Counter] = {"validation": Counter(), "test": Counter()}

    @property
    def active(self) -> bool:
        """Whether any rows are held out of this file."""
        return any(self.fractions.values())

    def assign(self, labels: Any, count: int) -> np.ndarray:
        """Return the part codes of the next `count` rows (`labels`: their target cells, used with `stratify`).

        Raises:
            ValueError: the rows do not start on a block (a chunk that is not a multiple of `BLOCK_ROWS`).
        """
        if self.position % BLOCK_ROWS:
            raise ValueError(f"a chunk starts at row {self.position}, not on a block of {BLOCK_ROWS} rows")
        codes = np.zeros(count, np.int8)
        if not self.active:
            self.position += count
            return codes
        groups = self._groups(labels, count)
        for start in range(0, count, BLOCK_ROWS):
            size = min(BLOCK_ROWS, count - start)
            block = (self.position + start) // BLOCK_ROWS
            order = np.random.default_rng([self.seed, block]).permutation(BLOCK_ROWS)
            order = order[order < size] + start  # this block's rows, in the block's seeded order
            for group, rows in _by_group(order, groups):
                self._take(group, rows, codes)
        self.position += count
        return codes

    def _groups(self, labels: Any, count: int) -> np.ndarray | None:
        if not self.stratify or labels is None:
            return None
        import pandas as pd

        codes, uniques = pd.factorize(pd.Series(labels).to_numpy(dtype=object))
        names = np.array([str(label_of(value)) for value in uniques] + [""], dtype=object)
        return names[codes]  # -1 (an empty cell) is the last name: its own group, left out later anyway

    def _take(self, group: Any, rows: np.ndarray, codes: np.ndarray) -> None:
        seen = self.seen[group] + len(rows)
        valid = _round(seen * self.fractions["validation"]) - self.taken["validation"][group]
        valid = min(max(valid, 0), len(rows))
        test = _round(seen * self.fractions["test"]) - self.taken["test"][group]
        test = min(max(test, 0), len(rows) - valid)
        codes[rows[:valid]] = CODES["validation"]
        codes[rows[valid : valid + test]] = CODES["test"]
        self.seen[group] = seen
        self.taken["validation"][group] += valid
        self.taken["test"][group] += test

    def record(self) -> dict[str, Any]:
        """Return how the rows were split, for summary.json."""
        return {"rule": RULE, "seed": self.seed, **self.fractions, "stratify": self.stratify}


def _by_group(order: np.ndarray, groups: np.ndarray | None) -> Iterator[tuple[Any, np.ndarray]]:
    if groups is None:
        yield None, order
        return
    names = groups[order]
    for name in dict.fromkeys(names):  # first seen first: the order never depends on the names
        yield name, order[names == name]


def _round(value: float) -> int:
    """Round half up (Python's round() rounds half to even, which would make counts jump)."""
    return math.floor(value + 0.5)


def split_rows(n: int, fractions: dict[str, float | None], seed: int, labels: Any = None) -> dict[str, np.ndarray]:
    """Return the positions of each part's rows among `n` rows read whole (the parts with rows only)."""
    codes = Splitter(fractions, seed, labels is not None).assign(labels, n)
    return {
        part: np.flatnonzero(codes == code) for part, code in CODES.items() if part == "train" or (codes == code).any()
    }
