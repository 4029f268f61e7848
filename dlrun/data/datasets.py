"""Prepared data -> the `tf.data` datasets Keras fits on (imported only when training).

Keras rebuilds its input pipeline every epoch when given arrays; on small data that costs far more
than the math. Datasets built once, cached and repeated, keep one iterator for the whole fit.
Targets reach the model in `target_shape`; sample weights (data.weight_column), when there are any,
ride along as each element's third part, in training and validation alike.

Each epoch's shuffle order is a pure function of (seed, epoch), never of the pipeline's history, so
a run resumed at epoch k (`dlrun train --resume`) reads its rows in the order epoch k did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.data.prepare import Prepared
from dlrun.data.preprocess import target_shape


@dataclass
class Datasets:
    """What `model.fit` reads: repeated training and validation datasets and their steps per pass."""

    train: Any
    valid: Any
    steps: int
    valid_steps: int
    class_weight: dict[int, float] | None = None
    """The class weights for `model.fit(class_weight=...)`; None when there are none, or when they are
    already folded into the training rows' sample weights (Keras takes one or the other)."""


def fit_datasets(
    data: Prepared,
    batch_size: int,
    shuffle: bool,
    seed: int,
    first_epoch: int = 0,
    class_weight: dict[int, float] | None = None,
) -> Datasets:
    """Build the training and validation datasets, in memory or streamed from the CSV.

    Args:
        first_epoch: The epoch (0-based) the training dataset starts at: a resumed run's next epoch.
        class_weight: each class id's weight; with sample weights, the two multiply.
    """
    import tensorflow as tf

    steps = math.ceil(data.rows["train"] / batch_size)
    valid_steps = math.ceil(data.rows["validation"] / batch_size)
    weighted = data.preprocessing.weight_column is not None
    if data.stream is not None:  # a file larger than memory: re-read in chunks (or from its cache) every epoch
        # The stream seeds each pass's shuffle with (seed, pass number): start where the run left off.
        data.stream._passes["train"] = first_epoch
        train = data.stream.dataset("train", batch_size, shuffle=shuffle)
        # Repeated, as in memory: Keras keeps one validation iterator, and under MirroredStrategy one
        # that has reached the end of a pass stops the next epoch
        valid = data.stream.dataset("validation", batch_size)
        if weighted and class_weight:
            train = train.map(class_weight_map(class_weight, sample_weights=True))
            class_weight = None
        return Datasets(train, valid, steps, valid_steps, class_weight)
    weights = data.w_train
    if weighted and class_weight:
        table = np.array([class_weight[i] for i in range(len(class_weight))], dtype="float32")
        weights, class_weight = weights * table[data.y_train.astype(int)], None
    parts = _parts(data, data.x_train, data.y_train, weights)
    if shuffle:
        train = _shuffled(parts, batch_size, seed, first_epoch)
    else:
        train = tf.data.Dataset.from_tensor_slices(parts).cache().batch(batch_size).repeat()
    train = train.prefetch(1)
    # Repeated too, so Keras keeps one validation iterator for the whole fit; steps_per_execution
    # divides validation_steps, so no evaluation reads into the next pass.
    valid_parts = _parts(data, data.x_valid, data.y_valid, data.w_valid)
    valid = tf.data.Dataset.from_tensor_slices(valid_parts).batch(batch_size).cache().repeat()
    # Keras makes a new validation iterator every epoch. With tf.data's autotuner and graph
    # rewrites on, each one starts a tuning thread and rewrites the pipeline: 17 ms an epoch when
    # another process holds the other core, 0.3 ms without. Cached arrays have nothing to tune.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    return Datasets(train.with_options(options), valid.with_options(options), steps, valid_steps, class_weight)


def _shuffled(parts: tuple, batch_size: int, seed: int, first_epoch: int):
    """Return endless training batches, each epoch in an order drawn from (seed, epoch) alone.

    A stateless shuffle of the row indices per epoch, cut into the epoch's batches, then one gather
    per batch: `tf.data`'s `shuffle(reshuffle_each_iteration=True)` would make epoch k's order
    depend on the k-1 before it. Each epoch's indices are one [steps, batch_size] matrix (the last
    batch padded) with each batch's length beside it, unbatched: no dataset is built per epoch,
    which on one batch an epoch would cost more than the math.
    """
    import tensorflow as tf

    tensors = tuple(tf.constant(part) for part in parts)
    count = len(parts[0])
    steps = math.ceil(count / batch_size)
    rows = tf.range(count, dtype=tf.int64)
    seed = tf.constant(seed % 2**63, tf.int64)
    lengths = tf.constant([min(batch_size, count - step * batch_size) for step in range(steps)], tf.int64)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([seed, epoch]))
        return tf.reshape(tf.pad(order, [[0, steps * batch_size - count]]), [steps, batch_size]), lengths

    def gather(index, length):
        return tuple(tf.gather(t, index[:length]) for t in tensors)

    return tf.data.Dataset.range(first_epoch, 2**62).map(one_epoch).unbatch().map(gather)


def test_dataset(data: Prepared, batch_size: int) -> tuple[Any, int]:
    """Return the held-out test rows as a dataset read once, and its number of steps."""
    import tensorflow as tf

    if data.stream is not None:
        dataset = data.stream.dataset("test", batch_size, repeat=False)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(_parts(data, data.x_test, data.y_test, data.w_test))
        dataset = dataset.batch(batch_size)
    return dataset, math.ceil(data.rows["test"] / batch_size)


def _parts(data: Prepared, x, y, w) -> tuple:
    """Return (inputs, targets[, weights]) in the shapes the model reads."""
    y = y.reshape(-1, *target_shape(data.preprocessing.task))
    return (x, y) if w is None else (x, y, w)


def class_weight_map(class_weight: dict[int, float], sample_weights: bool = False):
    """Return a `Dataset.map` function that weighs each row by its class, as `model.fit(class_weight=...)` does.

    The class is the target rounded to an id (a one-hot target's largest entry); its weight becomes the
    row's sample weight, or multiplies the one it has (`sample_weights`). The lean loop maps its
    training rows with it, where `model.fit` maps them with Keras's own function.
    """
    import tensorflow as tf

    table = tf.constant([float(class_weight.get(i, 1.0)) for i in range(max(class_weight) + 1)], dtype=tf.float32)

    def ids(y):
        if y.shape.rank >= 2 and y.shape[-1] is not None and y.shape[-1] > 1:
            return tf.argmax(y, axis=-1, output_type=tf.int32)
        return tf.reshape(tf.cast(tf.round(y), tf.int32), [-1])

    if sample_weights:
        return lambda x, y, w: (x, y, w * tf.gather(table, ids(y)))
    return lambda x, y: (x, y, tf.gather(table, ids(y)))
