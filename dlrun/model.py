"""Spec.model -> keras.Sequential, one small builder per layer type; and the layer table without Keras."""

from __future__ import annotations

from dataclasses import dataclass

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
            detail = f"{layer.units} units, {layer.activation}"
        elif isinstance(layer, BatchNormalizationLayer):
            params = 4 * width  # gamma, beta (trained) + moving mean and variance
            detail = f"momentum {layer.momentum}"
        elif isinstance(layer, DropoutLayer):
            params, detail = 0, f"rate {layer.rate}"
        else:
            params, detail = 0, layer.activation
        rows.append(LayerRow(index, layer.type, detail, width, params))
    return rows


def build_model(model: ModelSpec, input_width: int):
    """Build the Keras model: `keras.Input` of the data's width, then the spec's layers in order."""
    import keras

    def dense(layer: DenseLayer):
        reg = layer.kernel_regularizer
        return keras.layers.Dense(
            layer.units,
            activation=layer.activation,
            use_bias=layer.use_bias,
            kernel_initializer=layer.kernel_initializer,
            kernel_regularizer=keras.regularizers.L1L2(reg.l1, reg.l2) if reg else None,
        )

    builders = {
        DenseLayer: dense,
        DropoutLayer: lambda layer: keras.layers.Dropout(layer.rate),
        BatchNormalizationLayer: lambda layer: keras.layers.BatchNormalization(
            momentum=layer.momentum, epsilon=layer.epsilon
        ),
        ActivationLayer: lambda layer: keras.layers.Activation(layer.activation),
    }
    return keras.Sequential(
        [keras.Input(shape=(input_width,)), *(builders[type(layer)](layer) for layer in model.layers)]
    )
