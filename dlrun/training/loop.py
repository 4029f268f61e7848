"""The lean training loop: `model.fit`'s epochs, numbers and callbacks at the cost of the math, for in-memory data.

On small data an epoch of `model.fit` costs far more than its math: an evaluation is set up every
epoch, iterators and logs are handled in Python, and the host waits on the device several times.
Here one compiled call (`tf.function`) runs an epoch's training batches and then its validation
batches, reading the same cached `tf.data` datasets inside the graph, and returns every loss and
metric in one tensor: one call and one host sync per epoch.

The numbers are `model.fit`'s (`tests/test_loop.py` compares the histories of every bundled example):

- the math is the model's own `train_step` and `test_step` (its compiled loss, metrics and optimizer),
  each wrapped as fit wraps it (`strategy.run` in a `tf.function` with the model's `jit_compile`);
- the batches: one iterator over the repeated training dataset for the whole run, `steps` batches an
  epoch, class weights mapped onto them by Keras's own function; the validation pass from its start
  every epoch, as fit's evaluation reads it;
- metrics are reset before the training pass and again before the validation pass, as fit and its
  evaluation reset them, and read after each;
- `TerminateOnNaN` checks fit's loss after every batch: when the loss turns NaN or infinite the
  training pass ends at that batch, the validation pass still runs, and `TerminateOnNaN` itself is
  handed that batch's logs (it stops training, as in fit with one step per execution).

The callbacks are the same objects fit would get, driven through a `keras.callbacks.CallbackList`
with fit's `logs`, params and History, in fit's order: `on_train_begin`, then per epoch
`on_epoch_begin`, `on_test_begin`/`on_test_end` (the validation logs), `on_epoch_end`; `on_train_end`.
A callback that acts after every batch cannot be driven this way, so such a run trains with
`model.fit` (`choose` says why), as do streamed data and several devices. The epoch ends cost no
eager TensorFlow work (`dlrun.training.epoch_ends`): the logs are Python floats already, monitors
compare in numpy, and early stopping's copy of the best weights is the call's own output. The
compiled call captures the iterators rather than taking them as arguments, so calling it matches none.

Several epochs per call: when no callback can stop training early or read the model mid-run (no
early stopping, ReduceLROnPlateau, learning-rate schedule, TensorBoard), calls run as many epochs as
take about `CALL_S` seconds, and each epoch's logs are replayed to the callbacks afterwards; the
checkpoint waits for the last epoch of a call, whose weights the model holds (`Checkpoint.weights_at`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.spec.models import TrainingSpec

CALL_S = 0.25
"""Epochs per call grow until a call takes about this long: progress, checkpoints and Ctrl-C wait no longer."""
MAX_EPOCHS_PER_CALL = 1000
UNROLLED = 8
"""A validation pass of at most this many batches is that many steps in the graph, not a loop."""
SMALL_MODEL = 10_000
"""A model of at most this many weights, trained one batch an epoch, runs its call on one thread (see `_Epochs`)."""
SLICE_S = 1.0
"""An epoch longer than this runs in calls of about this long, so a second Ctrl-C stops training within it."""
_BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)
"""What fit calls around each batch; a callback that overrides one needs fit."""


@dataclass
class Loop:
    """Which loop trains a run, and why (summary.json's `loop`)."""

    kind: str
    """lean (this module) or fit (`model.fit`)."""
    why: str
    replay: bool = False
    """Several epochs may run per call, their logs replayed to the callbacks afterwards."""
    stop_on_nan: bool = False
    """A `TerminateOnNaN` is among the callbacks: a non-finite loss ends the training pass at its batch."""
    epochs_per_call: int = 0
    """The most epochs one call ran (lean only; it depends on the machine's speed, so summary.json leaves it out)."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "why": self.why}


def choose(training: TrainingSpec, streamed: bool, callbacks: list) -> Loop:
    """Decide whether the lean loop computes this run as `model.fit` would; else `model.fit` trains it.

    Args:
        streamed: The data is read from disk in chunks every epoch (`dlrun.data.stream`).
        callbacks: Every callback of the fit, dlrun's own and extra ones (tracking).
    """
    from dlrun.backend import import_keras

    keras = import_keras()
    if training.loop == "fit":
        return Loop("fit", "training.loop: fit asks for model.fit")
    if streamed:
        return Loop("fit", "the data is streamed from disk (data.streaming): model.fit reads it chunk by chunk")
    if training.distribute:
        return Loop("fit", "training.distribute: mirrored trains on several devices, which model.fit drives")
    from dlrun.training import keras_compat

    internal = keras_compat.missing(callbacks)
    if internal is not None:
        return Loop(
            "fit",
            f"this Keras or TensorFlow lacks {internal} as the lean loop relies on it: model.fit trains (the same "
            "history)",
        )
    for callback in callbacks:
        if _acts_per_batch(keras, callback):
            return Loop(
                "fit", f"the {type(callback).__name__} callback acts after every batch, as only model.fit calls it"
            )
    stop_on_nan = any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks)
    blockers = ", ".join(dict.fromkeys(type(c).__name__ for c in callbacks if not _replayable(keras, c)))
    if blockers:
        why = f"in-memory data, every callback at epoch ends; one epoch per call, as {blockers} may act on the model"
        return Loop("lean", why + " after any epoch", False, stop_on_nan)
    why = "in-memory data, every callback at epoch ends reading only the logs; several epochs per call"
    return Loop("lean", why, True, stop_on_nan)


def _acts_per_batch(keras, callback) -> bool:
    """Whether a callback does something after a batch: overrides a batch hook that is not a no-op here.

    `TerminateOnNaN`'s check is the lean loop's own stop; TensorBoard's batch hooks write nothing
    when it logs by epoch and profiles no batch.
    """
    if isinstance(callback, keras.callbacks.TerminateOnNaN):
        return False
    if isinstance(callback, keras.callbacks.TensorBoard):
        from dlrun.training.keras_compat import should_trace

        return callback.update_freq != "epoch" or bool(should_trace(callback))
    from dlrun.training.keras_compat import is_default

    return any(not is_default(getattr(callback, hook)) for hook in _BATCH_HOOKS)


def _replayable(keras, callback) -> bool:
    """Whether a callback may be handed an epoch's logs after later epochs ran: it reads only the logs.

    dlrun's own callbacks say so by a `replayable` attribute (the checkpoint defers its saves to an
    epoch whose weights the model holds); of Keras's, History, CSVLogger and TerminateOnNaN (the
    loop ends a call at a NaN epoch).
    """
    callbacks = keras.callbacks
    return getattr(callback, "replayable", False) or type(callback) in (
        callbacks.History,
        callbacks.CSVLogger,
        callbacks.TerminateOnNaN,
    )


def fit_lean(model, datasets, callbacks: list, first: int, last: int, loop: Loop) -> None:
    """Train epochs `first` to `last` (0-based, `last` excluded) as `model.fit(..., callbacks=callbacks)` would.

    An exception inside (a callback's, a KeyboardInterrupt) leaves as it would leave fit.
    """
    from dlrun.backend import import_keras
    from dlrun.training.epoch_ends import EpochCallbacks, HeldWeights

    keras = import_keras()
    callback_list = EpochCallbacks(
        callbacks, add_history=True, add_progbar=False, verbose=0, epochs=last, steps=datasets.steps, model=model
    )
    model.stop_training = False
    callback_list.on_train_begin()
    held = HeldWeights(model) if _copies_weights(keras, callbacks) else None
    epochs = _epochs_for(model, datasets, loop, held is not None)
    if held is not None:
        held.install()
    try:
        _run_epochs(model, callbacks, callback_list, epochs, first, last, loop, held)
    finally:
        if held is not None:
            held.remove()
        epochs.release()  # calls kept for a sweep's next point hold no data of this one
    if isinstance(model.optimizer, keras.optimizers.Optimizer) and last > 0:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs=epochs.last_logs)


def _epochs_for(model, datasets, loop: Loop, returns_weights: bool) -> _Epochs:
    """Return the compiled calls of a run: those a sweep worker kept for this model when they fit, else new ones.

    New ones are traced here, as fit traces in its first epoch (`dlrun.training.reuse`).
    """
    from dlrun.training import reuse

    for kept in reuse.kept_epochs(model):
        if kept.fits(datasets, loop.stop_on_nan, loop.replay, returns_weights):
            kept.restart(datasets)
            return kept
    epochs = _Epochs(model, datasets, loop.stop_on_nan, loop.replay, returns_weights=returns_weights)
    reuse.keep_epochs(model, epochs)
    return epochs


def _copies_weights(keras, callbacks: list) -> bool:
    """Whether a callback copies the model's weights at epoch ends: early stopping that restores the best ones."""
    return any(isinstance(c, keras.callbacks.EarlyStopping) and c.restore_best_weights for c in callbacks)


def _run_epochs(model, callbacks, callback_list, epochs: _Epochs, first: int, last: int, loop: Loop, held) -> None:
    """Run the calls of epochs `first` to `last` and hand each epoch's end to the callbacks; stop when one asks."""
    from dlrun.training.epoch_ends import fast_monitors

    epoch, per_call, sliced, probe = first, 1, None, False
    while epoch < last:
        count = 1 if sliced or probe else min(per_call, last - epoch)
        if count == 1:  # the callbacks see the epoch begin before it runs, as in fit
            callback_list.on_epoch_begin(epoch)
        started = time.perf_counter()
        results = epochs.run(count) if sliced is None else epochs.run_sliced(sliced)
        loop.epochs_per_call = max(loop.epochs_per_call, len(results))
        _set_weights_at(callbacks, epoch + len(results) - 1 if count > 1 else None)
        for offset, row in enumerate(results):
            if count > 1:
                callback_list.on_epoch_begin(epoch + offset)
            if held is not None and offset == len(results) - 1 and sliced is None:
                held.held = epochs.weights  # the model holds the weights this call returned
            try:
                epochs.last_logs = _end_epoch(callback_list, epochs, epoch + offset, row, loop.stop_on_nan)
            finally:
                if held is not None:
                    held.held = None
            if model.stop_training:
                break
        if epoch == first:
            fast_monitors(callbacks)  # each monitor has chosen its comparison at the first epoch's end
        if model.stop_training:
            break
        traced = epoch == first  # the first call also built the graph
        epoch += len(results)
        per_epoch = (time.perf_counter() - started) / len(results)
        if sliced is None and per_epoch > SLICE_S:
            if traced:  # time one more epoch, without the graph's building, before slicing
                probe = True
            else:
                sliced = max(1, int((epochs.steps + epochs.valid_steps) * SLICE_S / per_epoch))
        else:
            probe = False
            if loop.replay:
                per_call = max(1, min(MAX_EPOCHS_PER_CALL, int(CALL_S / max(per_epoch, 1e-6))))
    _set_weights_at(callbacks, None)


def _end_epoch(callback_list, epochs: _Epochs, epoch: int, row: np.ndarray, stop_on_nan: bool) -> dict[str, Any]:
    """Hand the callbacks one epoch's results as fit does after its training and validation passes."""
    train, valid, batches = epochs.split(row)
    loss = train.get("loss")
    if stop_on_nan and loss is not None and not math.isfinite(float(loss)):
        # fit hands TerminateOnNaN the logs of the batch that turned the loss NaN: the pass ended there
        callback_list.on_train_batch_begin(batches - 1)
        callback_list.on_train_batch_end(batches - 1, train)
    logs = dict(train)
    if epochs.validates:
        callback_list.on_test_begin()
        callback_list.on_test_end(valid)
        logs.update({f"val_{name}": value for name, value in sorted(valid.items())})
    callback_list.on_epoch_end(epoch, logs)
    return logs


def _set_weights_at(callbacks: list, epoch: int | None) -> None:
    """Tell callbacks that read the model which epoch's end its variables are at while earlier ones are replayed."""
    for callback in callbacks:
        if hasattr(callback, "weights_at"):
            callback.weights_at = epoch


class _Epochs:
    """The compiled call: `run(n)` trains and validates n epochs and returns one row of results per epoch.

    The graph is as plain as the run allows: a pass of one batch is one step, a few validation
    batches are steps in a row, and only a run that may replay has a loop over epochs.
    """

    def __init__(self, model, datasets, stop_on_nan: bool, several: bool = False, returns_weights: bool = False):
        import tensorflow as tf

        self.model = model
        self.steps, self.valid_steps = datasets.steps, datasets.valid_steps
        self.validates = datasets.valid is not None and datasets.valid_steps > 0
        self.stop_on_nan = stop_on_nan
        self.layout: dict[str, list] = {}
        """Each part's (name, shape, dtype) of the results, in order; known once the call is traced."""
        self._counts: dict[int, Any] = {}
        self._concrete = None
        self._parts = None
        self.restart(datasets)
        train = self.train_data
        self._train_step = self._step(model.train_step)
        self._test_step = self._step(model.test_step)
        # The variables first (one trace of each step instead of two), then each step traced on its own, so
        # the epoch's graph resets and reads built metrics.
        from dlrun.training.keras_compat import build_state

        build_state(model, train.element_spec)
        self._train_step.get_concrete_function(train.element_spec)
        if self.validates:
            self._test_step.get_concrete_function(datasets.valid.element_spec)
        self.several = several
        # A call of a few microsecond ops (no loop) spends more handing them between threads than running
        # them: TensorFlow's single-threaded executor runs it in order on the calling thread, each op the same
        # kernel as before (a loop or bigger ops run slower that way: measured on configs/04 and replayed calls)
        one_pass = not several and self.steps == 1 and datasets.valid_steps <= UNROLLED
        self.executor = "SINGLE_THREADED_EXECUTOR" if one_pass and model.count_params() <= SMALL_MODEL else ""
        self.returns_weights = returns_weights
        self.shape = self._shape(datasets, stop_on_nan, several, returns_weights)
        """What the compiled calls were traced for: another run of the same model with the same shape reuses them."""
        # The iterators are arguments, called flat (`keras_compat.call_flat`): as cheap as captured ones, and
        # a later run of the same model (`restart`) calls the same graph with its own
        if several:
            self._call = tf.function(lambda iterators, count: self._epochs(*iterators, count), autograph=False)
        else:
            self._call = tf.function(lambda iterators: self._epoch(*iterators), autograph=False)

    def _train_dataset(self, datasets):
        """The training dataset the steps read: with the class weights mapped onto its batches, as fit maps them."""
        import tensorflow as tf

        if not datasets.class_weight:
            return datasets.train
        from dlrun.data.datasets import class_weight_map

        return datasets.train.map(class_weight_map(datasets.class_weight)).prefetch(tf.data.AUTOTUNE)

    def restart(self, datasets) -> None:
        """Start a run on `datasets` (of the shape the calls were traced for): new iterators, nothing logged yet."""
        self.train_data = self._train_dataset(datasets)
        self.train = iter(self.train_data)  # one iterator for the whole run, as fit keeps it
        self.valid = iter(datasets.valid) if self.validates else None  # a pass per epoch: read from its start
        self.iterators = (self.train, self.valid) if self.validates else (self.train, None)
        self._flat = None
        self.last_logs: dict[str, Any] | None = None
        """The logs of the last epoch handed to the callbacks (what `on_train_end` gets, as in fit)."""
        self.weights: list | None = None
        """The model's weights (`model.weights`' values) at the end of the last call, when `returns_weights`."""

    def release(self) -> None:
        """Let go of the run's iterators and weights (a kept call waits for `restart` with the next run's)."""
        self.train = self.valid = self.train_data = self.iterators = None
        self._flat = None
        self.weights = None

    def _shape(self, datasets, stop_on_nan: bool, several: bool, returns_weights: bool) -> tuple:
        valid = datasets.valid.element_spec if datasets.valid is not None else None
        specs = (datasets.train.element_spec, bool(datasets.class_weight), valid)
        return (repr(specs), datasets.steps, datasets.valid_steps, stop_on_nan, several, returns_weights)

    def fits(self, datasets, stop_on_nan: bool, several: bool, returns_weights: bool) -> bool:
        """Whether the calls traced here compute a run on `datasets` with these settings (then `restart` it)."""
        return self._shape(datasets, stop_on_nan, several, returns_weights) == self.shape

    def _step(self, step):
        """Wrap a step as fit does: under the model's strategy, in a `tf.function` with the model's `jit_compile`."""
        import tensorflow as tf

        strategy = self.model.distribute_strategy

        @tf.autograph.experimental.do_not_convert
        def one_step_on_data(data):
            return strategy.run(step, args=(data,))

        return tf.function(one_step_on_data, reduce_retracing=True, jit_compile=self.model.jit_compile)

    def run(self, count: int) -> np.ndarray:
        """Train and validate `count` epochs (fewer when the loss turns NaN); return their rows of results."""
        from dlrun.training.keras_compat import call_flat, flat_inputs

        arguments = (self.iterators, self._count(count)) if self.several else (self.iterators,)
        if self._concrete is None:  # called directly, a traced function skips matching its arguments every call
            self._concrete = self._call.get_concrete_function(*arguments)
        if self._flat is None:
            self._flat = flat_inputs(self._concrete, self.iterators, len(arguments) - 1)
        flat = None if self._flat is None else self._flat + ([arguments[1]] if self.several else [])
        with _executor(self.executor):
            results = call_flat(self._concrete, arguments, flat)
        if not self.returns_weights:
            return results.numpy()  # the one host sync
        rows, self.weights = results
        return rows.numpy()

    def run_sliced(self, batches: int) -> np.ndarray:
        """Train and validate one epoch in calls of at most `batches` batches; return its row of results."""
        import tensorflow as tf

        if self._parts is None:
            self._parts = (
                tf.function(self._train_part, autograph=False).get_concrete_function(self.train, self._count(1)),
                tf.function(self._valid_part, autograph=False).get_concrete_function(self.valid, self._count(1))
                if self.validates
                else None,
            )
        train_part, valid_part = self._parts
        self.model.reset_metrics()  # as fit does before each epoch
        done, finite = 0, True
        while done < self.steps and finite:
            trained = train_part(self.train, self._count(min(batches, self.steps - done))).numpy()
            done, finite = done + int(trained[-2]), bool(trained[-1])
        validated = np.zeros(0)
        if self.validates:
            self.model.reset_metrics()
            for at in range(0, self.valid_steps, batches):
                validated = valid_part(self.valid, self._count(min(batches, self.valid_steps - at))).numpy()
        return np.concatenate([trained[:-2], validated, [done]])[None]

    def _count(self, count: int):
        import tensorflow as tf

        if count not in self._counts:
            self._counts[count] = tf.constant(count, tf.int32)
        return self._counts[count]

    def split(self, row: np.ndarray) -> tuple[dict[str, Any], dict[str, Any], int]:
        """Return an epoch's training logs, validation logs (names without val_) and training batches run."""
        parts, at = {}, 0
        for part in ("train", "valid"):
            logs = {}
            for name, shape, dtype in self.layout.get(part, []):
                size = int(np.prod(shape))
                value = row[at : at + size].astype(dtype)
                logs[name] = value.reshape(shape) if shape else float(value[0])  # a float, as fit's logs hold
                at += size
            parts[part] = logs
        return parts["train"], parts["valid"], int(row[at])

    def _one_epoch(self, train, valid):
        """Train and validate one epoch in the graph; return its row of results and whether its loss stayed finite."""
        import tensorflow as tf

        self.model.reset_metrics()
        done, finite = self._train_batches(train, self.steps)
        values = self._results("train")
        if self.validates:
            self.model.reset_metrics()
            self._valid_batches(valid, self.valid_steps)
            values += self._results("valid")
        values.append(tf.cast(tf.reshape(done, [1]), tf.float64))
        return tf.concat(values, 0), finite

    def _epoch(self, train, valid):
        """One epoch, as a row of rows (the shape `_epochs` returns)."""
        import tensorflow as tf

        return self._with_weights(tf.expand_dims(self._one_epoch(train, valid)[0], 0))

    def _epochs(self, train, valid, count):
        """Run up to `count` epochs in the graph; stack each epoch's training and validation results."""
        import tensorflow as tf

        def epoch(index, rows, going):
            row, finite = self._one_epoch(train, valid)
            return index + 1, rows.write(index, row), finite

        rows = tf.TensorArray(tf.float64, size=0, dynamic_size=True)
        _, rows, _ = tf.while_loop(
            lambda index, rows, going: tf.logical_and(index < count, going),
            epoch,
            (tf.constant(0), rows, tf.constant(True)),
        )
        return self._with_weights(rows.stack())

    def _with_weights(self, rows):
        """Return the rows, and with `returns_weights` the weights they end at (read after every step of the call)."""
        import tensorflow as tf

        if not self.returns_weights:
            return rows
        return rows, [tf.identity(weight.value) for weight in self.model.weights]

    def _train_batches(self, train, limit):
        """Train on up to `limit` batches, fewer when the loss turns NaN or infinite; return (batches, finite)."""
        import tensorflow as tf

        def train_batch(done, finite):
            logs = self._train_step(train.get_next())
            if self.stop_on_nan and "loss" in logs:  # TerminateOnNaN's check, after every batch
                finite = tf.math.is_finite(logs["loss"])
            with tf.control_dependencies(tf.nest.flatten(logs)):
                return done + 1, tf.identity(finite)

        if isinstance(limit, int) and limit == 1:  # nothing after the batch to skip: no loop
            return train_batch(tf.constant(0), tf.constant(True))
        return tf.while_loop(
            lambda done, finite: tf.logical_and(done < limit, finite),
            train_batch,
            (tf.constant(0), tf.constant(True)),
        )

    def _valid_batches(self, valid, limit) -> None:
        import tensorflow as tf

        def valid_batch(done):
            logs = self._test_step(valid.get_next())
            with tf.control_dependencies(tf.nest.flatten(logs)):
                return (done + 1,)

        if isinstance(limit, int) and limit <= UNROLLED:  # steps in a row cost less than a loop's frames
            for _ in range(limit):
                valid_batch(0)
            return
        tf.while_loop(lambda done: done < limit, valid_batch, (tf.constant(0),))

    def _train_part(self, train, limit):
        """A slice of a long epoch's training pass: its results so far, the batches run, whether the loss is finite."""
        import tensorflow as tf

        done, finite = self._train_batches(train, limit)
        return tf.concat([*self._results("train"), tf.cast(tf.stack([done, tf.cast(finite, tf.int32)]), tf.float64)], 0)

    def _valid_part(self, valid, limit):
        """A slice of a long epoch's validation pass: its results so far."""
        import tensorflow as tf

        self._valid_batches(valid, limit)
        return tf.concat(self._results("valid"), 0)

    def _results(self, part: str) -> list:
        """Return the model's metric results as flat float64 tensors; note their names, shapes and dtypes."""
        import tensorflow as tf

        values, layout = [], []
        for name, value in self.model.get_metrics_result().items():
            value = tf.convert_to_tensor(value)
            layout.append((name, tuple(value.shape), value.dtype.as_numpy_dtype))
            values.append(tf.reshape(tf.cast(value, tf.float64), [-1]))
        self.layout[part] = layout
        return values


def _executor(name: str):
    """TensorFlow's function executor `name` for the calls inside ("" is its default)."""
    from dlrun.training.keras_compat import executor

    return executor(name)
