"""Files larger than memory: statistics in one pass over chunks, then `tf.data` pipelines over the rows.

Nothing here holds more than a chunk of rows (`data.chunk_rows`, rounded up to whole blocks of the split)
at a time. Rows of the training file are assigned to train/validation/test by `dlrun.data.split`, the
same on every pass and the same as when the file is read whole, so a split needs no index of the file.
The first pass over the training and validation rows writes them, preprocessed, to the columnar cache
(`dlrun.data.cache`, unless `data.streaming_cache: false`); later passes read the cache instead of
parsing the file, and give the very same batches.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import numpy as np

from dlrun.data.cache import CacheWriter, Source, cache_key, open_cache
from dlrun.data.preprocess import Preprocessing, target_shape
from dlrun.data.split import CODES, Splitter, chunk_rows, regroup
from dlrun.spec.models import DataSpec

CACHED_PARTS = ("train", "validation")
"""Parts read on every epoch, so worth a cache; the test rows are read once."""


class Stream:
    """Where each part's rows come from, and how to read them as batches of model inputs."""

    def __init__(self, spec: DataSpec, seed: int, pre: Preprocessing, rows: dict[str, int], sources: dict[str, Source]):
        self.spec, self.seed, self.pre, self.rows, self.sources = spec, seed, pre, rows, sources
        self.unseen: dict[str, dict[str, int]] = {}
        """Unseen-category counts of each part's latest complete pass."""
        self.caches: dict[str, str] = {}
        """The cache folder each part was written to or read from (`dlrun.data.cache`)."""
        self._passes: Counter = Counter()

    def _own_path(self, part: str) -> str | None:
        return {"validation": self.spec.validation_path, "test": self.spec.test_path}.get(part)

    def _frames(self, part: str) -> Iterator:
        """Yield the raw rows of one part, chunk by chunk."""
        spec = self.spec
        own = self._own_path(part)
        if own is not None:
            yield from self.pre.read_chunks(own, spec.chunk_rows, check_ragged=False)
            return
        splitter = splitter_of(spec, self.seed)
        rows = chunk_rows(spec.chunk_rows)
        for chunk in regroup(self.pre.read_chunks(spec.path, rows, check_ragged=False), rows):
            codes = splitter.assign(chunk[spec.target], len(chunk))
            yield chunk[codes == CODES[part]]

    def cache_key(self, part: str) -> str:
        """Return the key of a part's cache: the file's sha256, the preprocessing, how the part is drawn."""
        spec = self.spec
        own = self._own_path(part)
        split = splitter_of(spec, self.seed).record()
        return cache_key(
            {
                "sha256": self.sources[own or spec.path].sha256,
                "preprocessing": self.pre.to_dict(),
                "part": "all rows" if own else part,
                "split": None if own else split,
                "chunk_rows": chunk_rows(spec.chunk_rows),
            }
        )

    @property
    def weighted(self) -> bool:
        """Whether batches carry sample weights (data.weight_column) third."""
        return self.pre.weight_column is not None

    def blocks(self, part: str, unseen: Counter) -> Iterator[tuple[np.ndarray, ...]]:
        """Yield one part's rows as model inputs, targets (and weights), a chunk at a time: from its cache, or
        from the file.

        Reading the file, the training and validation rows are written to a new cache as they go (not
        with sample weights, which the cache does not hold: those files are parsed on every pass).
        """
        source = self._own_path(part) or self.spec.path
        caching = self.spec.streaming_cache and part in CACHED_PARTS and not self.weighted
        key = self.cache_key(part) if caching else None
        cached = open_cache(key, self.rows[part], self.pre.width) if caching else None
        if cached is not None:
            self.caches[part] = str(cached.folder)
            unseen.update(cached.unseen)
            yield from cached.blocks()
            return
        writer = None
        if caching:
            y_dtype = "int32" if self.pre.task == "multiclass" else "float32"
            writer = CacheWriter(key, self.sources[source], self.pre.width, y_dtype)
        try:
            for block in encoded_blocks(self._frames(part), self.pre, source, unseen, self.weighted):
                if writer is not None:
                    writer.add(*block)
                    if writer.rows >= self.rows[part]:  # in place before the last batches: a reader may stop there
                        if writer.commit(self.rows[part], dict(unseen)):
                            self.caches[part] = str(writer.final)
                        writer = None
                yield block
        finally:
            if writer is not None:
                writer.abandon()

    def batches(self, part: str, batch_size: int, shuffle: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
        """Yield (inputs, targets[, weights]) batches of exactly `batch_size` rows (the last one may be smaller).

        Sample weights come third when the data has a weight column. With `shuffle`, rows are shuffled
        within each chunk, differently on every pass (seeded).
        """
        rng = np.random.default_rng([self.seed, self._passes[part]]) if shuffle else None
        self._passes[part] += 1
        unseen: Counter = Counter()
        yield from batched(self.blocks(part, unseen), batch_size, rng)
        self.unseen[part] = dict(unseen)

    def steps(self, part: str, batch_size: int) -> int:
        return math.ceil(self.rows.get(part, 0) / batch_size)

    def dataset(self, part: str, batch_size: int, shuffle: bool = False, repeat: bool = True):
        """Return a `tf.data.Dataset` of one part's batches, read anew (from the cache or the file) on every pass."""
        return batch_dataset(lambda: self.batches(part, batch_size, shuffle), self.pre, repeat, self.weighted)


def encoded_blocks(
    frames: Iterator, pre: Preprocessing, source: str, unseen: Counter | None = None, weighted: bool = False
) -> Iterator[tuple[np.ndarray, ...]]:
    """Apply the preprocessing to raw chunks; yield each chunk's (inputs, targets[, weights]); `unseen` collects
    counts. Weights come third with `weighted` and a weight column."""
    for frame in frames:
        encoded = pre.apply(frame, source, weighted=weighted)
        if unseen is not None:
            unseen.update(encoded.unseen)
        yield tuple(a for a in (encoded.x, encoded.y, encoded.w) if a is not None)


def batched(blocks: Iterator, batch_size: int, rng: np.random.Generator | None = None):
    """Yield batches of exactly `batch_size` rows from blocks (tuples of row-aligned arrays) of any size.

    Rows carry over from one block to the next, so only the very last batch may be smaller. With
    `rng`, rows are shuffled within each block.
    """
    held: list[tuple[np.ndarray, ...]] = []
    count = 0
    for arrays in blocks:
        if rng is not None:
            order = rng.permutation(len(arrays[0]))
            arrays = tuple(a[order] for a in arrays)
        held.append(arrays)
        count += len(arrays[0])
        if count < batch_size:
            continue
        joined = [np.concatenate(parts) for parts in zip(*held)]
        full = count - count % batch_size
        for start in range(0, full, batch_size):
            yield tuple(a[start : start + batch_size] for a in joined)
        held, count = [tuple(a[full:] for a in joined)], count - full
    if count:
        yield tuple(np.concatenate(parts) for parts in zip(*held))


def encoded_batches(
    frames: Iterator,
    pre: Preprocessing,
    source: str,
    batch_size: int,
    rng: np.random.Generator | None = None,
    unseen: Counter | None = None,
    weighted: bool = False,
):
    """Apply the preprocessing to raw chunks and yield batches of exactly `batch_size` rows (see `batched`)."""
    return batched(encoded_blocks(frames, pre, source, unseen, weighted), batch_size, rng)


def batch_dataset(batches, pre: Preprocessing, repeat: bool = False, weighted: bool = False):
    """Wrap a function returning a batch generator as a `tf.data.Dataset` (called anew on every pass).

    Targets reach the model in `target_shape`; with `weighted`, each batch carries sample weights third.
    """
    import tensorflow as tf

    shape = target_shape(pre.task)
    y_type = tf.int32 if pre.task == "multiclass" else tf.float32
    signature = [tf.TensorSpec((None, pre.width), tf.float32), tf.TensorSpec((None, *shape), y_type)]
    if weighted:
        signature.append(tf.TensorSpec((None,), tf.float32))

    def shaped():
        for x, y, *w in batches():
            yield (x, y.reshape(-1, *shape), *w)

    dataset = tf.data.Dataset.from_generator(shaped, output_signature=tuple(signature))
    if repeat:
        dataset = dataset.repeat()
    return dataset.prefetch(tf.data.AUTOTUNE)


def splitter_of(spec: DataSpec, seed: int) -> Splitter:
    """Return the splitter of the training file's rows (`dlrun.data.split`), as the spec asks."""
    return Splitter({"validation": spec.validation_split, "test": spec.test_split}, seed, bool(spec.stratify))
