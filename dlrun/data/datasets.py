"""Prepared data -> the `tf.data` datasets Keras fits on (imported only when training).

Keras rebuilds its input pipeline every epoch when given arrays; on small data that costs far more
than the math. Datasets built once, cached and repeated, keep one iterator for the whole fit.

Each epoch's shuffle order is a pure function of (seed, epoch), never of the pipeline's history, so
a run resumed at epoch k (`dlrun train --resume`) reads its rows in the order epoch k did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dlrun.data.prepare import Prepared


@dataclass
class Datasets:
    """What `model.fit` reads: repeated training and validation datasets and their steps per pass."""

    train: Any
    valid: Any
    steps: int
    valid_steps: int


def fit_datasets(data: Prepared, batch_size: int, shuffle: bool, seed: int, first_epoch: int = 0) -> Datasets:
    """Build the training and validation datasets, in memory or streamed from the CSV.

    Args:
        first_epoch: The epoch (0-based) the training dataset starts at: a resumed run's next epoch.
    """
    import tensorflow as tf

    steps = math.ceil(data.rows["train"] / batch_size)
    valid_steps = math.ceil(data.rows["validation"] / batch_size)
    if data.stream is not None:  # a CSV larger than memory: re-read in chunks every epoch
        # The stream seeds each pass's shuffle with (seed, pass number): start where the run left off.
        data.stream._passes["train"] = first_epoch
        train = data.stream.dataset("train", batch_size, shuffle=shuffle)
        valid = data.stream.dataset("validation", batch_size, repeat=False)
        return Datasets(train, valid, steps, valid_steps)
    if shuffle:
        train = _shuffled(data.x_train, data.y_train, batch_size, seed, first_epoch)
    else:
        train = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).cache().batch(batch_size).repeat()
    train = train.prefetch(1)
    # Repeated too, so Keras keeps one validation iterator for the whole fit; steps_per_execution
    # divides validation_steps, so no evaluation reads into the next pass.
    valid = tf.data.Dataset.from_tensor_slices((data.x_valid, data.y_valid)).batch(batch_size).cache().repeat()
    # Keras makes a new validation iterator every epoch. With tf.data's autotuner and graph
    # rewrites on, each one starts a tuning thread and rewrites the pipeline: 17 ms an epoch when
    # another process holds the other core, 0.3 ms without. Cached arrays have nothing to tune.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    return Datasets(train.with_options(options), valid.with_options(options), steps, valid_steps)


def _shuffled(x, y, batch_size: int, seed: int, first_epoch: int):
    """Return endless training batches, each epoch in an order drawn from (seed, epoch) alone.

    A stateless shuffle of the row indices per epoch, then one gather per batch: `tf.data`'s
    `shuffle(reshuffle_each_iteration=True)` would make epoch k's order depend on the k-1 before it.
    """
    import tensorflow as tf

    x, y = tf.constant(x), tf.constant(y)
    rows = tf.range(len(x), dtype=tf.int64)
    seed = tf.constant(seed % 2**63, tf.int64)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    epochs = tf.data.Dataset.range(first_epoch, 2**62)
    return epochs.flat_map(one_epoch).map(lambda index: (tf.gather(x, index), tf.gather(y, index)))


def test_dataset(data: Prepared, batch_size: int) -> tuple[Any, int]:
    """Return the held-out test rows as a dataset read once, and its number of steps."""
    import tensorflow as tf

    if data.stream is not None:
        dataset = data.stream.dataset("test", batch_size, repeat=False)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test)).batch(batch_size)
    return dataset, math.ceil(data.rows["test"] / batch_size)
