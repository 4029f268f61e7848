"""Prepared data -> the `tf.data` datasets Keras fits on (imported only when training).

Keras rebuilds its input pipeline every epoch when given arrays; on small data that costs far more
than the math. Datasets built once, cached and repeated, keep one iterator for the whole fit.
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


def fit_datasets(data: Prepared, batch_size: int, shuffle: bool, seed: int) -> Datasets:
    """Build the training and validation datasets, in memory or streamed from the CSV."""
    import tensorflow as tf

    steps = math.ceil(data.rows["train"] / batch_size)
    valid_steps = math.ceil(data.rows["validation"] / batch_size)
    if data.stream is not None:  # a file larger than memory: re-read in chunks (or from its cache) every epoch
        train = data.stream.dataset("train", batch_size, shuffle=shuffle)
        # Repeated, as in memory: Keras keeps one validation iterator, and under MirroredStrategy one
        # that has reached the end of a pass stops the next epoch
        valid = data.stream.dataset("validation", batch_size)
        return Datasets(train, valid, steps, valid_steps)
    train = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).cache()
    if shuffle:
        train = train.shuffle(len(data.x_train), seed=seed, reshuffle_each_iteration=True)
    train = train.batch(batch_size).repeat().prefetch(1)
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


def test_dataset(data: Prepared, batch_size: int) -> tuple[Any, int]:
    """Return the held-out test rows as a dataset read once, and its number of steps."""
    import tensorflow as tf

    if data.stream is not None:
        dataset = data.stream.dataset("test", batch_size, repeat=False)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test)).batch(batch_size)
    return dataset, math.ceil(data.rows["test"] / batch_size)
