"""Model building: the Keras model has the spec's layers, and the no-Keras layer table agrees with it."""

from __future__ import annotations

from dlrun.backend import import_keras
from dlrun.model import build_model, describe
from dlrun.spec.models import ModelSpec

keras = import_keras()


def model_spec(*layers) -> ModelSpec:
    return ModelSpec.model_validate({"layers": list(layers)})


COURSE_3X1024 = model_spec(
    *[
        layer
        for _ in range(3)
        for layer in (
            {"type": "dense", "units": 1024, "activation": "relu"},
            {"type": "dropout", "rate": 0.3},
            {"type": "batch_normalization"},
        )
    ],
    {"type": "dense", "units": 1},
)


def test_layer_kinds_units_and_arguments_reach_keras():
    spec = model_spec(
        {
            "type": "dense",
            "units": 4,
            "activation": "relu",
            "use_bias": False,
            "kernel_initializer": "he_normal",
            "kernel_regularizer": {"l1": 0.01, "l2": 0.02},
        },
        {"type": "activation", "activation": "elu"},
        {"type": "dropout", "rate": 0.25},
        {"type": "batch_normalization", "momentum": 0.9, "epsilon": 0.01},
        {"type": "dense", "units": 1, "activation": "sigmoid"},
    )
    model = build_model(spec, 3)
    dense, act, drop, norm, out = model.layers
    assert model.input_shape == (None, 3)
    assert (type(dense).__name__, dense.units, dense.use_bias) == ("Dense", 4, False)
    assert dense.activation.__name__ == "relu"
    assert type(dense.kernel_initializer).__name__ == "HeNormal"
    assert dense.kernel_regularizer.get_config() == {"l1": 0.01, "l2": 0.02}
    assert act.activation.__name__ == "elu"
    assert drop.rate == 0.25
    assert (norm.momentum, norm.epsilon) == (0.9, 0.01)
    assert out.activation.__name__ == "sigmoid" and out.units == 1


def test_course_network_parameter_count():
    # The course's 3x1024 network on 11 inputs, as Keras counts it.
    model = build_model(COURSE_3X1024, 11)
    rows = describe(COURSE_3X1024, 11)
    assert model.count_params() == sum(r.params for r in rows) == 2_124_801
    assert [r.width for r in rows][-1] == 1


def test_layer_table_matches_keras_per_layer():
    spec = model_spec(
        {"type": "dense", "units": 6, "activation": "gelu"},
        {"type": "batch_normalization"},
        {"type": "dense", "units": 5, "use_bias": False},
        {"type": "activation", "activation": "softmax"},
    )
    model = build_model(spec, 7)
    rows = describe(spec, 7)
    assert [layer.count_params() for layer in model.layers] == [r.params for r in rows]
    assert [layer.output.shape[-1] for layer in model.layers] == [r.width for r in rows]
