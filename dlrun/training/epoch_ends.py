"""Keras's callbacks driven at the lean loop's epoch ends without eager TensorFlow work (imported only when training).

On small data an epoch's math takes about half a millisecond, and Keras's epoch-end bookkeeping as
much again: each comparison of `EarlyStopping` (and every `MonitorCallback`) is an eager op, each
improvement with `restore_best_weights` reads every weight in its own eager op, and every `CallbackList`
hook converts the logs to Python numbers, checking each value for a tensor. Here each of them computes
the same values, bit for bit, without TensorFlow:

- `CallbackList` hands the callbacks the dict `pythonify_logs` would build (sorted keys, Python floats)
  directly when the loop's logs are Python floats already;
- a monitor's `ops.less`/`ops.greater` of two Python floats compares them as float32, as TensorFlow
  converts them (`fast_monitors`);
- `model.get_weights()` returns the weights the epoch's call handed back with its results, while the
  model holds exactly those (`HeldWeights`).
"""

from __future__ import annotations

import numpy as np

from dlrun.backend import import_keras
from dlrun.training import keras_compat

keras = import_keras()
# a Keras without the monitors' shared base trains with model.fit (keras_compat.missing); these two remain
MonitorCallback = keras_compat.monitor_callback() or (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)
_ops = keras.ops
_FLOAT32 = {_ops.less: np.less, _ops.greater: np.greater}
"""Keras's comparisons a monitor callback uses, and numpy's of the same float32 values."""


class EpochCallbacks(keras.callbacks.CallbackList):
    """A `CallbackList` whose epoch and validation hooks skip `pythonify_logs` for logs of Python floats only.

    `pythonify_logs` returns such logs as a new dict in sorted key order; so do these hooks. Other logs,
    or a Keras whose `CallbackList` lacks the internals these hooks repeat, take Keras's own hooks.
    """

    _INTERNALS = keras_compat.CALLBACK_LIST

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fast = all(hasattr(self, name) for name in self._INTERNALS)

    def on_epoch_begin(self, epoch, logs=None):
        plain = _plain(logs) if self._fast else None
        if plain is None:
            return super().on_epoch_begin(epoch, logs)
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, plain)

    def on_epoch_end(self, epoch, logs=None):
        plain = _plain(logs) if self._fast else None
        if plain is None:
            return super().on_epoch_end(epoch, logs)
        keras_compat.flush_train(self)
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, plain)

    def on_test_begin(self, logs=None):
        plain = _plain(logs) if self._fast else None
        if plain is None:
            return super().on_test_begin(logs)
        keras_compat.begin_test(self)
        for callback in self.callbacks:
            callback.on_test_begin(plain)

    def on_test_end(self, logs=None):
        plain = _plain(logs) if self._fast else None
        if plain is None:
            return super().on_test_end(logs)
        keras_compat.flush_test(self)
        for callback in self.callbacks:
            callback.on_test_end(plain)
        keras_compat.end_test(self)


def _plain(logs) -> dict | None:
    """What `pythonify_logs` returns when every value is a Python float (no per-value tensor checks); else None."""
    if not logs:
        return {}
    if all(type(value) is float for value in logs.values()):
        return dict(sorted(logs.items()))
    return None


class _Float32Compare:
    """A monitor's comparison: numpy's of two Python floats as float32 (as TensorFlow converts them), else Keras's."""

    def __init__(self, keras_op):
        self.keras_op = keras_op
        self.numpy_op = _FLOAT32[keras_op]

    def __call__(self, a, b):
        if type(a) is float and type(b) is float and not (_subnormal(a) or _subnormal(b)):
            return bool(self.numpy_op(np.float32(a), np.float32(b)))
        return self.keras_op(a, b)


def _subnormal(value: float) -> bool:
    """Whether a float may be a subnormal float32, which TensorFlow's CPU kernels flush to zero and numpy keeps."""
    return 0.0 < abs(value) < _TINY


_TINY = 2 * float(np.finfo(np.float32).tiny)


def fast_monitors(callbacks: list) -> None:
    """Give each monitor callback that has chosen Keras's `ops.less` or `ops.greater` the float32 numpy comparison.

    Call after epoch ends: a monitor chooses its comparison (and the sign of `min_delta` with it) at
    its first epoch's end; the choice is kept, only computed without an eager op.
    """
    for callback in callbacks:
        op = getattr(callback, "monitor_op", None)
        if isinstance(callback, MonitorCallback) and op in _FLOAT32:
            callback.monitor_op = _Float32Compare(op)


class HeldWeights:
    """Serve `model.get_weights()` from the weights the last call returned, while `held` says the model holds them.

    Installed on the model (an instance attribute over the method) for the lean loop's run and removed
    after it. `set_weights` marks them stale, so a callback that changes the weights reads its own.
    """

    def __init__(self, model):
        self.model = model
        self.held: list | None = None
        """The last call's weight tensors while the callbacks see its last epoch's end; else None (read the model)."""

    def install(self) -> None:
        object.__setattr__(self.model, "get_weights", self.get_weights)
        object.__setattr__(self.model, "set_weights", self.set_weights)

    def remove(self) -> None:
        for name in ("get_weights", "set_weights"):
            if name in vars(self.model):
                object.__delattr__(self.model, name)

    def get_weights(self):
        if self.held is None:
            return type(self.model).get_weights(self.model)
        return [np.array(tensor) for tensor in self.held]  # a copy of each, as `Variable.numpy()` returns

    def set_weights(self, weights):
        self.held = None
        return type(self.model).set_weights(self.model, weights)
