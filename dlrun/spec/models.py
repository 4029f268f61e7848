"""The experiment spec: pydantic models of the YAML file, strict everywhere.

Field names are Keras's own argument names, so what a user knows from Keras carries over.
`load_spec` (in `specfile.py`) turns a YAML file plus `--set` overrides into a validated `Spec`.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dlrun.spec import names


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


def _known(kind: str, choices):
    def check(value: str) -> str:
        if value not in choices:
            raise PydanticCustomError("unknown_name", "{detail}", {"detail": names.unknown_name(kind, value, choices)})
        return value

    return AfterValidator(check)


def _one_of(choices) -> Field:
    return Field(json_schema_extra={"enum": sorted(choices)})  # editors complete and check the names


ActivationName = Annotated[str, _known("activation", names.ACTIVATIONS), _one_of(names.ACTIVATIONS)]
InitializerName = Annotated[str, _known("initializer", names.INITIALIZERS), _one_of(names.INITIALIZERS)]
LossName = Annotated[str, _known("loss", names.LOSSES), _one_of(names.LOSSES)]
MetricName = Annotated[str, _known("metric", names.METRICS), _one_of(names.METRICS)]


# --- data -------------------------------------------------------------------------------------


MissingStrategy = Literal["mean", "median", "most_frequent", "constant", "drop_rows", "error"]


class CsvOptions(StrictModel):
    """How the CSV files are written: separator, decimal mark, encoding, quoting."""

    separator: Annotated[str, Field(min_length=1, max_length=1)] = ","
    """Character between fields: ',' (default), ';', '\\t' (tab), '|', ..."""
    decimal: Literal[".", ","] = "."
    """Decimal mark of numbers: '.' (1.5) or ',' (1,5; then the separator is usually ';')."""
    encoding: str = "utf-8"
    """Text encoding: utf-8 (with or without a byte-order mark), latin-1, cp1252, utf-16, ..."""
    quotechar: Annotated[str, Field(min_length=1, max_length=1)] = '"'
    """Character that quotes a field holding the separator or a line break."""

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise PydanticCustomError(
                "unknown_name",
                "{detail}",
                {"detail": f"unknown encoding {value!r}; expected a Python codec name like utf-8, latin-1 or cp1252"},
            ) from None
        return value

    @model_validator(mode="after")
    def _distinct_marks(self) -> CsvOptions:
        if self.decimal == self.separator:
            raise PydanticCustomError(
                "csv_options",
                "{detail}",
                {
                    "detail": f"decimal and separator are both {self.separator!r}; with decimal ',' use "
                    "separator ';' (the usual European CSV)"
                },
            )
        return self


DATE_PARTS = ("year", "month", "day", "day_of_week", "day_of_year", "hour", "minute")
"""What a date column can become, each a numeric model input; day_of_week counts from 0 (Monday)."""
DatePart = Literal[DATE_PARTS]


class ColumnSpec(StrictModel):
    """How one column is used, overriding what dlrun infers from the data."""

    kind: Literal["numeric", "categorical", "date", "ignore"] | None = None
    """numeric, categorical (one-hot, e.g. for integer codes), date (numeric parts) or ignore; default: inferred."""
    scale: Literal["none", "minmax", "standard"] | None = None
    """Scaling of a numeric column (or of each part of a date); default: data.scale."""
    missing: MissingStrategy | None = None
    """What to do with empty cells (and, in a date column, cells that are not dates); default: data.missing."""
    fill_value: float | int | str | None = None
    """Value for missing: constant (default 0 for numbers, 'missing' for categories)."""
    date_parts: Annotated[list[DatePart], Field(min_length=1)] | None = None
    """A date column's inputs: year, month, day, day_of_week, day_of_year, hour, minute; default: the first
    five, plus hour and minute when the cells have times."""
    format: str | None = None
    """How a date column's cells are written, as a strptime format like '%d/%m/%Y'; default: ISO (2024-03-01)."""

    @field_validator("date_parts")
    @classmethod
    def _distinct_parts(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            twice = sorted({part for part in value if value.count(part) > 1})
            raise PydanticCustomError(
                "date_parts", "{detail}", {"detail": f"{', '.join(twice)} listed more than once; list each part once"}
            )
        return value

    @field_validator("format")
    @classmethod
    def _strptime_format(cls, value: str | None) -> str | None:
        from datetime import datetime

        if value is None:
            return value
        sample = datetime(2024, 3, 1, 12, 30, 15)
        try:
            usable = "%" in value and datetime.strptime(sample.strftime(value), value) is not None
        except ValueError:
            usable = False
        if not usable:
            raise PydanticCustomError(
                "date_format",
                "{detail}",
                {
                    "detail": f"{value!r} is not a date format; expected a strptime format like '%d/%m/%Y' or "
                    "'%m/%d/%Y %H:%M' (%Y year, %m month, %d day, %H hour, %M minute)"
                },
            )
        return value

    @model_validator(mode="after")
    def _date_options_on_dates(self) -> ColumnSpec:
        given = " and ".join(key for key in ("date_parts", "format") if getattr(self, key) is not None)
        if given and self.kind not in (None, "date"):
            raise PydanticCustomError(
                "date_options",
                "{detail}",
                {
                    "detail": f"{given} only make{'s' if ' ' not in given else ''} sense for a date column, but "
                    f"kind is {self.kind!r}: remove {given}, or set kind: date"
                },
            )
        return self


class DataSpec(StrictModel):
    """Where the examples come from, how they are read, split and preprocessed."""

    path: str
    """CSV file with the training rows, relative to the spec file's folder."""
    target: str
    """The column to predict."""
    features: list[str] | None = None
    """Columns to learn from; default: every column but the target and `drop`."""
    drop: list[str] = []
    """Columns to leave out (ids, names, free text)."""
    validation_split: Annotated[float, Field(gt=0, lt=1)] | None = None
    """Fraction of the rows held out at random (seeded) for validation; or give `validation_path`."""
    validation_path: str | None = None
    """A separate CSV of validation rows, relative to the spec file's folder; or give `validation_split`."""
    test_split: Annotated[float, Field(gt=0, lt=1)] | None = None
    """Optional fraction of the rows held out (seeded) for one evaluation after training; or `test_path`."""
    test_path: str | None = None
    """Optional CSV of test rows evaluated once after training, relative to the spec file's folder."""
    stratify: bool = False
    """Keep each class's share of rows in the validation/test split (classification losses only)."""
    scale: Literal["none", "minmax", "standard"] = "none"
    """Feature scaling, fitted on the training rows only: none, minmax (to [0, 1]) or standard (z-score)."""
    missing: MissingStrategy = "error"
    """Empty feature cells: mean, median (most_frequent for categories), most_frequent, constant, drop_rows, error."""
    fill_value: float | int | str | None = None
    """Value used by missing: constant (default 0 for numbers, 'missing' for categories)."""
    columns: dict[str, ColumnSpec] = {}
    """Per-column settings by column name: kind, scale, missing, fill_value, date_parts, format."""
    max_categories: Annotated[int, Field(gt=1)] = 50
    """A text column with more distinct values than this is free text (an error), not a category."""
    csv: CsvOptions = CsvOptions()
    """How the CSV files are written: separator, decimal, encoding, quotechar."""
    streaming: bool | Literal["auto"] = "auto"
    """Read the CSV in chunks instead of loading it (true/false); auto: when larger than streaming_above_mb."""
    streaming_above_mb: Annotated[float, Field(gt=0)] = 1024.0
    """File size (MB) above which `streaming: auto` streams the CSV."""
    chunk_rows: Annotated[int, Field(gt=0)] = 65536
    """Rows read at a time when streaming (memory use grows with it)."""

    @model_validator(mode="after")
    def _one_validation_source(self) -> DataSpec:
        if (self.validation_split is None) == (self.validation_path is None):
            given = "both" if self.validation_split is not None else "neither"
            raise PydanticCustomError(
                "validation_source",
                "{detail}",
                {
                    "detail": f"give exactly one of validation_split (a fraction like 0.3) or validation_path "
                    f"(a CSV of validation rows); this spec gives {given}"
                },
            )
        if self.test_split is not None and self.test_path is not None:
            raise PydanticCustomError(
                "validation_source",
                "{detail}",
                {
                    "detail": "give at most one of test_split (a fraction like 0.2) or test_path (a CSV of test rows); "
                    "this spec gives both"
                },
            )
        held_out = (self.validation_split or 0) + (self.test_split or 0)
        if held_out >= 1:
            raise PydanticCustomError(
                "validation_source",
                "{detail}",
                {
                    "detail": f"validation_split + test_split = {held_out:g} leaves no training rows; "
                    "their sum must be below 1 (like 0.2 + 0.2)"
                },
            )
        if self.target in self.columns:
            raise PydanticCustomError(
                "validation_source",
                "{detail}",
                {"detail": f"columns.{self.target}: the target is not preprocessed; remove it from data.columns"},
            )
        return self


# --- model ------------------------------------------------------------------------------------


class Regularizer(StrictModel):
    """L1/L2 weight penalties, as `keras.regularizers.L1L2`."""

    l1: Annotated[float, Field(ge=0)] = 0.0
    """L1 penalty factor."""
    l2: Annotated[float, Field(ge=0)] = 0.0
    """L2 penalty factor."""


class DenseLayer(StrictModel):
    """A fully connected layer, `keras.layers.Dense`."""

    type: Literal["dense"]
    units: Annotated[int, Field(gt=0)]
    """Number of outputs (neurons) of the layer."""
    activation: ActivationName = "linear"
    """Activation applied to the outputs: any Keras activation name (relu, elu, selu, sigmoid, ...)."""
    use_bias: bool = True
    """Whether the layer adds a bias to its outputs."""
    kernel_initializer: InitializerName = "glorot_uniform"
    """How the weights start: any Keras initializer name."""
    kernel_regularizer: Regularizer | None = None
    """Optional L1/L2 penalty on the weights, like {l2: 0.001}."""


class DropoutLayer(StrictModel):
    """Randomly zeroes a fraction of its inputs while training, `keras.layers.Dropout`."""

    type: Literal["dropout"]
    rate: Annotated[float, Field(ge=0, lt=1)]
    """Fraction of the inputs to drop, in [0, 1)."""


class BatchNormalizationLayer(StrictModel):
    """Normalizes its inputs by batch statistics, `keras.layers.BatchNormalization`."""

    type: Literal["batch_normalization"]
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.99
    """Momentum of the moving mean and variance."""
    epsilon: Annotated[float, Field(gt=0)] = 0.001
    """Small number added to the variance to avoid dividing by zero."""


class ActivationLayer(StrictModel):
    """An activation as a layer of its own, `keras.layers.Activation`."""

    type: Literal["activation"]
    activation: ActivationName
    """Any Keras activation name."""


Layer = Annotated[
    DenseLayer | DropoutLayer | BatchNormalizationLayer | ActivationLayer,
    Field(discriminator="type"),
]
LAYER_TYPES = ("dense", "dropout", "batch_normalization", "activation")


class ModelSpec(StrictModel):
    """The network: a stack of layers, input width taken from the data."""

    layers: Annotated[list[Layer], Field(min_length=1)]
    """Layers from input to output; the last one's units are the model's outputs."""


# --- training ---------------------------------------------------------------------------------


DEFAULT_OPTIMIZER = "adam"

# One line per Keras optimizer argument (from Keras's docstrings), for `dlrun schema` and editors;
# "optimizer.argument" keys say it for an optimizer that uses the name differently.
_OPTIMIZER_HELP = {
    "learning_rate": "Step size of each update (greater than 0).",
    "weight_decay": "Weight decay: each step shrinks the weights by learning_rate * weight_decay; null: none.",
    "clipnorm": "Clip each weight's gradient to at most this norm; null: no clipping.",
    "clipvalue": "Clip every gradient value to [-clipvalue, clipvalue]; null: no clipping.",
    "global_clipnorm": "Clip all gradients together to at most this global norm; null: no clipping.",
    "use_ema": "Keep an exponential moving average (EMA) of the weights and end training with it.",
    "ema_momentum": "Momentum of the weights' moving average (with use_ema).",
    "ema_overwrite_frequency": "Overwrite the weights with their average every this many steps (with use_ema); "
    "null: at the end.",
    "loss_scale_factor": "Multiply the loss by this before the gradients (and divide them back), against "
    "underflow in mixed precision; null: none.",
    "gradient_accumulation_steps": "Update the weights every this many batches, with their averaged gradients; "
    "null: every batch.",
    "epsilon": "Small constant for numerical stability.",
    "rho": "Decay rate of the moving average of squared gradients.",
    "beta_1": "Decay rate of the first-moment (mean gradient) estimates.",
    "beta_2": "Decay rate of the second-moment (squared gradient) estimates.",
    "amsgrad": "Use the AMSGrad variant (the largest second-moment estimate so far).",
    "beta_2_decay": "Decay rate of beta_2.",
    "epsilon_1": "Small offset that keeps the denominator away from 0.",
    "epsilon_2": "Small offset that keeps the learning rate from becoming too small.",
    "clip_threshold": "Adafactor's own update clipping threshold (apart from clipnorm and clipvalue).",
    "relative_step": "Lower the learning rate to 1/sqrt(step) as training goes on.",
    "initial_accumulator_value": "Starting value of the accumulators (0 or more).",
    "learning_rate_power": "How the learning rate decreases during training (0 or less; 0: fixed).",
    "l1_regularization_strength": "L1 regularization strength (0 or more).",
    "l2_regularization_strength": "L2 regularization strength, a stabilization penalty (0 or more).",
    "l2_shrinkage_regularization_strength": "L2 shrinkage strength, a magnitude penalty on the active weights "
    "(0 or more).",
    "beta": "The beta of the FTRL paper.",
    "adam_beta_1": "Decay rate of the first-moment estimates, in the layers AdamW updates.",
    "adam_beta_2": "Decay rate of the second-moment estimates, in the layers AdamW updates.",
    "adam_weight_decay": "Weight decay in the layers AdamW updates.",
    "exclude_layers": "Keywords of layer names that AdamW updates instead of Muon; null: none.",
    "exclude_embeddings": "Let AdamW update embedding layers instead of Muon.",
    "muon_a": "Coefficient a of Muon's Newton-Schulz iteration (best left at its default).",
    "muon_b": "Coefficient b of Muon's Newton-Schulz iteration (best left at its default).",
    "muon_c": "Coefficient c of Muon's Newton-Schulz iteration (best left at its default).",
    "adam_lr_ratio": "Learning rate of the layers AdamW updates, as a multiple of learning_rate.",
    "momentum": "Momentum of the updates; 0: none.",
    "ns_steps": "Number of Newton-Schulz iterations per update.",
    "nesterov": "Use Nesterov momentum.",
    "rms_rate": "Scale of a matrix's update, times sqrt(max(rows, columns)), to match AdamW's (Moonlight paper).",
    "centered": "Normalize the gradients by their estimated variance (slower, sometimes trains better).",
    "warmup_steps": "Steps over which the learning rate rises linearly from 0; 0: no warmup.",
    "adamax.beta_2": "Decay rate of the exponentially weighted infinity norm.",
    "lion.beta_1": "Weight of the first-moment estimate against the current gradient in each update.",
    "lion.beta_2": "Decay rate of the first-moment estimate.",
    "muon.momentum": "Momentum of Muon's internal SGD.",
    "sgd.momentum": "Momentum in [0, 1] that speeds descent along steady directions; 0: plain gradient descent.",
}


def _whole_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value  # 5.0 steps are 5 steps


def _argument_type(name: str, key: str, default: object) -> Any:
    """Return an optimizer argument's type, told by its Keras default or the names tables, within Keras's range."""
    kind = names.OPTIMIZER_ARGUMENT_TYPES.get(key)
    if isinstance(default, bool):
        return bool
    if kind == "list[str]":
        return list[str] | None if default is None else list[str]
    bounds = {**names.OPTIMIZER_RANGES["*"].get(key, {}), **names.OPTIMIZER_RANGES.get(name, {}).get(key, {})}
    if key == "learning_rate":
        bounds["gt"] = 0  # Keras takes any number; a step size of 0 or less never learns
    if kind == "int":  # the bounds go on the int itself, so the JSON schema shows them
        annotation: Any = Annotated[int, Field(**bounds), BeforeValidator(_whole_number)]
    else:
        annotation = Annotated[float, Field(**bounds)]  # strict, yet an int is fine where a float is expected
    return annotation | None if default is None else annotation


def _one_clipping_schema(schema: dict[str, Any]) -> None:
    """Let the JSON Schema refuse two clipping arguments set at once, as `KerasOptimizer` does."""
    schema["not"] = {
        "anyOf": [
            {"required": list(pair), "properties": {key: {"type": "number"} for key in pair}}
            for pair in itertools.combinations(names.OPTIMIZER_CLIPPING, 2)
        ]
    }


class KerasOptimizer(StrictModel):
    """Base of the optimizer models below: `name` picks the Keras optimizer, the other fields are its arguments."""

    # Generated fields carry their descriptions; looking for attribute docstrings would read the source, slowly.
    model_config = ConfigDict(use_attribute_docstrings=False, json_schema_extra=_one_clipping_schema)

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The resolved spec lists the name, the learning rate and what the spec gave; Keras's own defaults
        # are left out, as kwargs() leaves them to Keras, so runs of different optimizers compare cleanly.
        data = handler(self)
        return {key: value for key, value in data.items() if key in ("name", "learning_rate", *self.model_fields_set)}

    @model_validator(mode="after")
    def _one_clipping(self) -> KerasOptimizer:
        given = [key for key in names.OPTIMIZER_CLIPPING if getattr(self, key) is not None]
        if len(given) > 1:
            raise PydanticCustomError(
                "clipping",
                "{detail}",
                {
                    "detail": f"optimizer {self.name!r} sets {' and '.join(given)}, but Keras clips gradients one "
                    "way: keep one of clipnorm, clipvalue or global_clipnorm"
                },
            )
        return self

    def kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for the Keras optimizer's constructor: the learning rate and what was given."""
        return self.model_dump(exclude={"name"})


def _optimizer_model(name: str, arguments: dict[str, object]) -> type[KerasOptimizer]:
    """Generate the spec model of one Keras optimizer from its arguments and their Keras defaults."""
    fields: dict[str, Any] = {
        "name": (
            Literal[name],
            Field(name if name == DEFAULT_OPTIMIZER else ..., description="Keras optimizer name (default adam)."),
        )
    }
    for key, default in arguments.items():
        description = _OPTIMIZER_HELP.get(f"{name}.{key}", _OPTIMIZER_HELP[key])
        fields[key] = (_argument_type(name, key, default), Field(default, description=description))
    keras_class = names.OPTIMIZER_CLASSES[name]
    return create_model(
        f"{keras_class}Optimizer",
        __base__=KerasOptimizer,
        __module__=__name__,
        __doc__=f"Optimizer {name!r}, `keras.optimizers.{keras_class}`, with its Keras arguments.",
        **fields,
    )


OPTIMIZER_MODELS = {name: _optimizer_model(name, arguments) for name, arguments in names.OPTIMIZERS.items()}
# Union[...] takes the generated models as one tuple; `X | Y` cannot be spelled for a dict's values.
_OptimizerModel = Annotated[Union[tuple(OPTIMIZER_MODELS.values())], Field(discriminator="name")]  # noqa: UP007


def _bare_name(value: Any) -> Any:
    """Read `optimizer: sgd` as {name: sgd}, and a mapping without a name as adam's."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" not in value:
        return {"name": DEFAULT_OPTIMIZER, **value}
    return value


Optimizer = Annotated[
    _OptimizerModel,
    BeforeValidator(_bare_name, json_schema_input_type=Literal[tuple(sorted(names.OPTIMIZERS))] | _OptimizerModel),
]
"""A Keras optimizer: its name, or a mapping of its name and arguments; one model per optimizer."""


class EarlyStoppingSpec(StrictModel):
    """Stop when the monitored quantity stops improving, `keras.callbacks.EarlyStopping`."""

    monitor: str = "val_loss"
    """Quantity to watch: loss, val_loss, or a configured metric with or without `val_`."""
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    """Smallest change that counts as an improvement."""
    patience: Annotated[int, Field(ge=0)] = 0
    """Epochs without improvement before stopping."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether lower (min) or higher (max) is better; auto: decided from the monitored quantity."""
    baseline: float | None = None
    """Stop unless the monitored quantity beats this value within `patience` epochs."""
    restore_best_weights: bool = False
    """Keep the weights of the best epoch, not of the last one."""
    start_from_epoch: Annotated[int, Field(ge=0)] = 0
    """Epochs to wait before watching for improvement at all."""


class TrainingSpec(StrictModel):
    """How the model is compiled and fitted."""

    optimizer: Optimizer = Field(DEFAULT_OPTIMIZER, validate_default=True)
    """An optimizer name (adam, sgd, ...) or {name: adam, learning_rate: 0.001, ...its Keras arguments}."""
    loss: LossName
    """Keras loss name: mae, mse, binary_crossentropy, sparse_categorical_crossentropy, ..."""
    metrics: list[MetricName] = []
    """Keras metric names computed every epoch on training and validation rows."""
    batch_size: Annotated[int, Field(gt=0)] = 32
    """Rows per gradient step."""
    epochs: Annotated[int, Field(gt=0)]
    """Most epochs to train (early stopping may end sooner)."""
    shuffle: bool = True
    """Shuffle the training rows every epoch (seeded)."""
    early_stopping: EarlyStoppingSpec | None = None
    """Stop when the monitored quantity stops improving; absent: train all epochs."""

    @model_validator(mode="after")
    def _resolve_early_stopping(self) -> TrainingSpec:
        stop = self.early_stopping
        if stop is None:
            return self
        quantities = ["loss", *self.metrics]
        base = stop.monitor.removeprefix("val_")
        if base not in quantities:
            choices = quantities + [f"val_{q}" for q in quantities]
            guess = names.closest(stop.monitor, choices)
            raise PydanticCustomError(
                "unknown_monitor",
                "{detail}",
                {
                    "detail": f"early_stopping.monitor {stop.monitor!r} will not exist during training"
                    f"{f'; did you mean {guess!r}?' if guess else ''}. Expected loss, val_loss, or a metric "
                    f"listed in training.metrics (with or without val_): {', '.join(choices)}"
                },
            )
        if stop.mode == "auto":
            direction = "min" if base == "loss" else names.METRICS[base]
            if direction is None:
                raise PydanticCustomError(
                    "monitor_mode",
                    "{detail}",
                    {
                        "detail": f"cannot tell whether {stop.monitor!r} should go up or down: "
                        "set early_stopping.mode to min or max"
                    },
                )
            stop.mode = direction
        return self


# --- tracking ---------------------------------------------------------------------------------


class TrackingSpec(StrictModel):
    """Log the run to MLflow as well as to its run directory (needs `pip install 'dlrun[mlflow]'`)."""

    backend: Literal["mlflow"] = "mlflow"
    """The tracker: mlflow."""
    uri: str | None = None
    """MLflow tracking URI: a server (http://host:5000) or a store (sqlite:///mlflow.db); --track-uri overrides
    it; default: $MLFLOW_TRACKING_URI, else mlflow.db beside the runs folder."""
    experiment: Annotated[str, Field(min_length=1)] | None = None
    """MLflow experiment the run goes to; default: $MLFLOW_EXPERIMENT_NAME, else the spec's name."""


def _bare_backend(value: Any) -> Any:
    """Read `tracking: mlflow` as {backend: mlflow}."""
    return {"backend": value} if isinstance(value, str) else value


TrackingSection = Annotated[
    TrackingSpec, BeforeValidator(_bare_backend, json_schema_input_type=Literal["mlflow"] | TrackingSpec)
]
"""Where the run is logged besides its run directory: `mlflow`, or {backend: mlflow, uri: ..., experiment: ...}."""


# --- the whole spec ---------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Spec(StrictModel):
    """One experiment: data, model and training, as dlrun reads it from YAML."""

    name: str | None = None
    """Run name, used as the folder under the output directory; default: the spec file's stem."""
    seed: Annotated[int, Field(ge=0)] = 0
    """Seeds the validation split, weight initialization, dropout and shuffling."""
    data: DataSpec
    """The CSV to learn from and how to split it."""
    model: ModelSpec
    """The layer stack."""
    training: TrainingSpec
    """Optimizer, loss, metrics, epochs and early stopping."""
    tracking: TrackingSection | None = None
    """Also log the run to MLflow (like --track mlflow): `mlflow` or {uri, experiment}; absent: not tracked."""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise PydanticCustomError(
                "bad_name",
                "{detail}",
                {"detail": f"name {value!r} cannot be a folder name: use letters, digits, '.', '_' and '-'"},
            )
        return value

    @model_validator(mode="after")
    def _output_fits_loss(self) -> Spec:
        dense = [i for i, layer in enumerate(self.model.layers) if layer.type == "dense"]
        if not dense:
            raise PydanticCustomError(
                "output_width",
                "{detail}",
                {
                    "detail": "model.layers has no dense layer: end the stack with one, e.g. "
                    "{type: dense, units: 1} for one number to predict"
                },
            )
        last = dense[-1]
        units = self.model.layers[last].units
        loss = self.training.loss
        if self.data.stratify and loss not in (*names.BINARY_LOSSES, *names.CLASS_LOSSES):
            raise PydanticCustomError(
                "stratify_loss",
                "{detail}",
                {
                    "detail": f"data.stratify keeps each class's share of rows, but loss {loss!r} predicts numbers: "
                    "remove stratify, or use a classification loss"
                },
            )
        if loss in names.CLASS_LOSSES:
            if units < 2:
                raise PydanticCustomError(
                    "output_width",
                    "{detail}",
                    {
                        "detail": f"model.layers[{last}] has 1 unit, but loss {loss!r} needs one output per class: "
                        "set units to the number of classes, with activation: softmax"
                    },
                )
        elif units != 1:
            # The target is one CSV column, so every other loss compares it with a single output.
            raise PydanticCustomError(
                "output_width",
                "{detail}",
                {
                    "detail": f"model.layers[{last}] has {units} units, but loss {loss!r} compares one target "
                    f"column with one output: set units: 1, or for {units} classes use loss: "
                    "sparse_categorical_crossentropy with activation: softmax"
                },
            )
        return self

    @property
    def monitor(self) -> tuple[str, str]:
        """Return the quantity that decides the best epoch, and whether min or max is best."""
        stop = self.training.early_stopping
        return (stop.monitor, stop.mode) if stop else ("val_loss", "min")

    def resolved(self) -> dict[str, Any]:
        """Return the spec as plain data with every default filled in (no `tracking` key when the spec has none)."""
        return self.model_dump(mode="json", exclude={"tracking"} if self.tracking is None else None)
