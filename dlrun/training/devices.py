"""Where a model trains: one device, or several of this machine mirrored; and in which precision.

`training.distribute: mirrored` builds the model under `tf.distribute.MirroredStrategy`: each device
holds a copy of the weights and takes its share of every batch (batch_size is the global batch), and
the gradients are summed across devices before each update, so a step sees the mean gradient of the
whole batch as on one device. `training.mixed_precision` builds the model under Keras's
`mixed_float16` policy, the last layer in float32, and wraps the optimizer in a `LossScaleOptimizer`,
which keeps small float16 gradients from underflowing.
"""

from __future__ import annotations

import contextlib

from dlrun.errors import DlrunError
from dlrun.spec.models import TrainingSpec, device_key

MIXED = "mixed_float16"
OUTPUT_DTYPE = "float32"


def check_devices(training: TrainingSpec) -> None:
    """Refuse listed devices this machine does not have, before a run directory is made.

    Raises:
        DlrunError: a device in training.devices is not visible to TensorFlow; the message lists those that are.
    """
    if not training.devices:
        return
    import tensorflow as tf

    visible = {device_key(device.name): device.name for device in tf.config.list_logical_devices()}
    missing = [name for name in training.devices if device_key(name) not in visible]
    if missing:
        raise DlrunError(
            f"training.devices: {', '.join(map(repr, missing))} {'is' if len(missing) == 1 else 'are'} not a "
            f"device of this machine; TensorFlow sees {', '.join(sorted(visible.values()))}. List some of those, "
            "or remove devices to use every GPU"
        )


def strategy(training: TrainingSpec):
    """Return the `tf.distribute` strategy the spec asks for: mirrored, or TensorFlow's default (one device)."""
    import tensorflow as tf

    if training.distribute != "mirrored":
        return tf.distribute.get_strategy()
    check_devices(training)
    return tf.distribute.MirroredStrategy(training.devices)


@contextlib.contextmanager
def precision(training: TrainingSpec):
    """Make `mixed_float16` Keras's dtype policy while the model is built (when the spec asks); restore it after.

    Yields:
        The last layer's dtype policy (float32 under mixed precision), or None.
    """
    if not training.mixed_precision:
        yield None
        return
    import keras

    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(MIXED)
    try:
        yield OUTPUT_DTYPE
    finally:
        keras.config.set_dtype_policy(saved)


def loss_scaled(optimizer, training: TrainingSpec):
    """Wrap the optimizer in a `LossScaleOptimizer` under mixed precision; return it unchanged otherwise.

    `model.compile` would wrap it too, but only the model's compile arguments are saved: wrapped here,
    model.keras restores the loss scale with the optimizer.
    """
    if not training.mixed_precision:
        return optimizer
    import keras

    return keras.optimizers.LossScaleOptimizer(optimizer)


def replicas(model) -> list[str]:
    """Return the devices a model's weights are mirrored on (one device: a list of one)."""
    return [str(device) for device in model.distribute_strategy.extended.worker_devices]
