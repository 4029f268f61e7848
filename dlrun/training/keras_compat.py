"""Every Keras and TensorFlow internal dlrun touches, behind one fence (imported only when training).

Keras keeps `keras.src` and underscored names private: a release may rename them, or keep the name
and change what it does. The lean loop (`dlrun.training.loop`, `dlrun.training.epoch_ends`) and the
checkpoint (`dlrun.training.checkpoint`) rely on the few listed in `INTERNALS`, each of which is
used only through this module. `missing` checks each against the behaviour relied on, when a run
first chooses its loop; a run whose Keras or TensorFlow fails a check trains with `model.fit` (the
same history) and summary.json's `loop.why` names the internal. Two more only save time, and are
skipped where missing: `Trainer._symbolic_build` (`build_state`) and `ConcreteFunction._call_flat`
(`call_flat`).

dlrun's class weights (`dlrun.data.datasets.class_weight_map`) replace Keras's
`make_class_weight_map_fn`; Optuna is used through its public API only (`dlrun.search.study`).
pyproject.toml bounds keras, tensorflow and optuna to the releases the tests ran against; the
README says how to move the bounds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from dlrun.backend import import_keras

keras = import_keras()

CALLBACK_LIST = ("_async_train", "_async_test", "_flush_futures", "_on_begin", "_on_end")
"""`CallbackList`'s internals the lean loop's hooks repeat: its async flags, waiting for queued callbacks,
and the begin/end of a test pass (`dlrun.training.epoch_ends.EpochCallbacks`)."""
EARLY_COUNTERS = ("wait", "stopped_epoch", "best", "best_epoch")
"""`EarlyStopping`'s counters, reset by its `on_train_begin`; a checkpoint saves and restores them."""
PLATEAU_COUNTERS = ("wait", "cooldown_counter", "best")
"""`ReduceLROnPlateau`'s counters, reset by its `on_train_begin` (the rate is an optimizer variable)."""


# --- the internals, each with the check of what dlrun relies on ------------------------------------


def _callback_list() -> bool:
    """`CallbackList` has its async flags (booleans) and the three methods, as the lean loop's hooks call them."""
    callbacks = keras.callbacks.CallbackList([], model=None)
    flags = all(isinstance(getattr(callbacks, name, None), bool) for name in CALLBACK_LIST[:2])
    return flags and all(callable(getattr(callbacks, name, None)) for name in CALLBACK_LIST[2:])


def monitor_callback():
    """Keras's `MonitorCallback` (the base of EarlyStopping and ReduceLROnPlateau); None when missing."""
    try:
        from keras.src.callbacks.monitor_callback import MonitorCallback
    except ImportError:
        return None
    return MonitorCallback


def _monitor_callback() -> bool:
    """`MonitorCallback` exists and is the base of both monitors dlrun uses, which keep a `monitor_op`."""
    base = monitor_callback()
    monitors = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)
    return base is not None and all(issubclass(monitor, base) for monitor in monitors)


def should_trace(board) -> bool | None:
    """Whether a TensorBoard callback profiles batches (`TensorBoard._should_trace`); None when it has no such flag."""
    value = getattr(board, "_should_trace", None)
    return value if isinstance(value, bool) else None


def _executor_switch() -> Callable | None:
    try:
        from tensorflow.python.eager import context
    except ImportError:
        return None
    switch = getattr(context, "function_executor_type", None)
    return switch if callable(switch) else None


def _executor() -> bool:
    """TensorFlow's `context.function_executor_type` is a context manager that takes an executor's name."""
    switch = _executor_switch()
    if switch is None:
        return False
    try:
        with switch(""):
            return True
    except Exception:
        return False


def is_default(hook) -> bool:
    """Whether a callback's hook is `keras.callbacks.Callback`'s own no-op (Keras marks those `_is_default`)."""
    return bool(getattr(hook, "_is_default", False))


def _default_hooks() -> bool:
    """Keras marks its no-op batch hooks, and a callback that overrides one loses the mark."""

    class Overrides(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    callback = keras.callbacks.Callback()
    return is_default(callback.on_train_batch_end) and not is_default(Overrides().on_train_batch_end)


def _counters(kind, names: tuple[str, ...]) -> bool:
    callback = kind(monitor="val_loss")
    callback.on_train_begin()
    return all(hasattr(callback, name) for name in names)


INTERNALS: dict[str, Callable[[], bool]] = {
    "keras.callbacks.Callback's _is_default marks": _default_hooks,
    "keras.callbacks.CallbackList's " + "/".join(CALLBACK_LIST): _callback_list,
    "keras.src.callbacks.monitor_callback.MonitorCallback": _monitor_callback,
    "tensorflow.python.eager.context.function_executor_type": _executor,
    "keras.callbacks.EarlyStopping's counters " + "/".join(EARLY_COUNTERS): lambda: _counters(
        keras.callbacks.EarlyStopping, EARLY_COUNTERS
    ),
    "keras.callbacks.ReduceLROnPlateau's counters " + "/".join(PLATEAU_COUNTERS): lambda: _counters(
        keras.callbacks.ReduceLROnPlateau, PLATEAU_COUNTERS
    ),
}
"""Each internal, by the name messages give it, and its check."""


TENSORBOARD = "keras.callbacks.TensorBoard._should_trace"
"""Checked on a run's own TensorBoard callback (`should_trace`), which sets it when it is made."""


def missing(callbacks: list) -> str | None:
    """Return the first internal the lean loop would use that this Keras or TensorFlow lacks (or that does not
    behave as relied on) for a fit with `callbacks`; None when all hold."""
    boards = [c for c in callbacks if isinstance(c, keras.callbacks.TensorBoard)]
    if any(should_trace(board) is None for board in boards):
        return TENSORBOARD
    for name, check in INTERNALS.items():
        try:
            if not check():
                return name
        except Exception:  # a changed signature or behaviour is as good as missing
            return name
    return None


# --- the internals, as the lean loop and the checkpoint use them -------------------------------------


def flush_train(callbacks) -> None:
    """Wait for the callbacks Keras queued during training (async callbacks), as `CallbackList.on_epoch_end` does."""
    if callbacks._async_train:
        callbacks._flush_futures()


def begin_test(callbacks) -> None:
    """Start a test pass in a `CallbackList`, as its `on_test_begin` does before calling the callbacks."""
    callbacks._on_begin()


def flush_test(callbacks) -> None:
    """Wait for the callbacks Keras queued during a test pass, as `CallbackList.on_test_end` does before its hooks."""
    if callbacks._async_test:
        callbacks._flush_futures()


def end_test(callbacks) -> None:
    """Close a test pass in a `CallbackList`, as its `on_test_end` does after calling the callbacks."""
    callbacks._on_end()


def build_state(model, element_spec) -> None:
    """Create the model's, its metrics' and its optimizer's variables before the first trace of a step.

    `Trainer._symbolic_build` builds them symbolically, as fit does under a distribution strategy: a
    step traced afterwards creates no variable, so TensorFlow traces it once instead of twice (a first
    trace that creates variables is traced again). Without it (another Keras), the first trace builds them.
    """
    build = getattr(model, "_symbolic_build", None)
    if not callable(build):
        return
    with model.distribute_strategy.scope():
        try:
            build(data_batch=element_spec)
        except TypeError:  # another signature: leave the building to the first trace
            pass


def flat_inputs(concrete, iterators: tuple, after: int) -> list | None:
    """Return the tensors that stand for `iterators` (None skipped): a traced function's inputs but its last `after`.

    None when `ConcreteFunction._call_flat` is missing or the tensors do not match the function's first
    inputs: `call_flat` then calls the function with its structured arguments.
    """
    import tensorflow as tf

    if not callable(getattr(concrete, "_call_flat", None)):
        return None
    try:
        flat = tf.nest.flatten([it for it in iterators if it is not None], expand_composites=True)
        inputs = concrete.inputs[: len(concrete.inputs) - len(concrete.captured_inputs)]
    except Exception:  # noqa: BLE001  (another TensorFlow: the structured call still works)
        return None
    if len(flat) + after != len(inputs) or any(f.dtype != i.dtype for f, i in zip(flat, inputs)):
        return None
    return flat


def call_flat(concrete, arguments: tuple, flat: list | None):
    """Call a traced function with its flat input tensors (`flat_inputs`, and the plain tensors after them).

    `ConcreteFunction._call_flat` skips matching the arguments to the signature, which costs as much as
    an epoch's math on small data; None: the function is called with its structured `arguments`.
    """
    if flat is None:
        return concrete(*arguments)
    return concrete._call_flat(flat, concrete.captured_inputs)


def executor(name: str):
    """TensorFlow's function executor `name` for the calls inside ("" is its default)."""
    switch = _executor_switch()
    return switch(name) if switch is not None and name else contextlib.nullcontext()


def counters(callback, names: tuple[str, ...]) -> dict | None:
    """Return a monitor callback's counters as JSON data (its `best` a plain float), or None without the callback."""
    if callback is None:
        return None
    found = {name: getattr(callback, name) for name in names if hasattr(callback, name)}
    if found.get("best") is not None:
        found["best"] = float(found["best"])
    return found


def set_counters(callback, found: dict | None) -> None:
    """Give a monitor callback back its counters (after its `on_train_begin` reset them)."""
    for name, value in (found or {}).items():
        setattr(callback, name, value)
