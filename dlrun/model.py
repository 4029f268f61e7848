"""Spec.model -> keras.Sequential, one small builder per layer type; and the layer table without Keras."""

from __future__ import annotations

from dataclasses import dataclass

from dlrun.errors import DataError
from dlrun.spec.models import ActivationLayer, BatchNormalizationLayer, DenseLayer, DropoutLayer, ModelSpec


@dataclass
class LayerRow:
    """One line of the layer table `dlrun validate` prints."""

    index: int
    kind: str
    detail: str
    width: int
    params: int


def describe(model: ModelSpec, input_width: int) -> list[LayerRow]:
    """Return each layer's output width and parameter count, computed without importing Keras."""
    rows, width = [], input_width
    for index, layer in enumerate(model.layers):
        if isinstance(layer, DenseLayer):
            params = width * layer.units + (layer.units if layer.use_bias else 0)
            width = layer.units
            detail = f"{layer.units} unit{'s' if layer.units != 1 else ''}, {layer.activation}"
        elif isinstance(layer, BatchNormalizationLayer):
            params = 4 * width  # gamma, beta (trained) + moving mean and variance
            detail = f"momentum {layer.momentum}"
        elif isinstance(layer, DropoutLayer):
            params, detail = 0, f"rate {layer.rate}"
        else:
            params, detail = 0, layer.activation
        rows.append(LayerRow(index, layer.type, detail, width, params))
    return rows


def build_model(model: ModelSpec, input_width: int, output_dtype: str | None = None):
    """Build the Keras model: `keras.Input` of the data's width, then the spec's layers in order.

    `output_dtype` is the dtype policy of the last layer alone (float32 under mixed precision, so the
    outputs and the loss are computed in float32); None: Keras's global policy, as every other layer.
    """
    import keras

    def dense(layer: DenseLayer, **options):
        reg = layer.kernel_regularizer
        return keras.layers.Dense(
            layer.units,
            activation=layer.activation,
            use_bias=layer.use_bias,
            kernel_initializer=layer.kernel_initializer,
            kernel_regularizer=keras.regularizers.L1L2(reg.l1, reg.l2) if reg else None,
            **options,
        )

    builders = {
        DenseLayer: dense,
        DropoutLayer: lambda layer, **options: keras.layers.Dropout(layer.rate, **options),
        BatchNormalizationLayer: lambda layer, **options: keras.layers.BatchNormalization(
            momentum=layer.momentum, epsilon=layer.epsilon, **options
        ),
        ActivationLayer: lambda layer, **options: keras.layers.Activation(layer.activation, **options),
    }
    last = len(model.layers) - 1
    layers = [
        builders[type(layer)](layer, **({"dtype": output_dtype} if index == last and output_dtype else {}))
        for index, layer in enumerate(model.layers)
    ]
    return keras.Sequential([keras.Input(shape=(input_width,)), *layers])


def check_output_width(model: ModelSpec, target: str, classes: list | None) -> None:
    """Refuse a classifier whose last dense layer does not have one unit per class of the target.

    The spec alone cannot know the classes (validate checks the width against the loss); `train` and
    `check` call this once the training rows are read, so both give this one error.

    Raises:
        DataError: the widths differ, with the units to set.
    """
    units = [layer.units for layer in model.layers if isinstance(layer, DenseLayer)]
    if classes is None or not units or units[-1] == len(classes):
        return
    raise DataError(
        f"model.layers: the last dense layer has {units[-1]} unit{'s' if units[-1] != 1 else ''} but target "
        f"{target!r} has {len(classes)} classes ({', '.join(map(str, classes[:10]))}"
        f"{', ...' if len(classes) > 10 else ''}); set its units to {len(classes)} with activation: softmax"
    )
