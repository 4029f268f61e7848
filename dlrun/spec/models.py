"""The experiment spec: pydantic models of the YAML file, strict everywhere.

Field names are Keras's own argument names, so what a user knows from Keras carries over.
`load_spec` (in `specfile.py`) turns a YAML file plus `--set` overrides into a validated `Spec`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
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


def _expected_type(key: str, default: object) -> str | None:
    """Say what an optimizer argument takes, from its Keras default (None defaults are numbers but one)."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)) or (default is None and key != "exclude_layers"):
        return "a number" if default is not None else "a number or null"
    return "a list of layer names" if key == "exclude_layers" else None


def _has_type(value: object, expected: str) -> bool:
    if value is None:
        return expected in ("a number or null", "a list of layer names")
    if expected == "true or false":
        return isinstance(value, bool)
    if expected.startswith("a number"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class OptimizerSpec(BaseModel):
    """An optimizer by name, with any of its Keras keyword arguments."""

    model_config = ConfigDict(extra="allow", strict=True, use_attribute_docstrings=True)

    name: str = "adam"
    """Keras optimizer name: adam, sgd, rmsprop, adamw, ..."""
    learning_rate: Annotated[float, Field(gt=0, strict=True)] | None = None
    """Step size; default: the optimizer's own Keras default."""

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if value not in names.OPTIMIZERS:
            raise PydanticCustomError(
                "unknown_name", "{detail}", {"detail": names.unknown_name("optimizer", value, names.OPTIMIZERS)}
            )
        return value

    @model_validator(mode="after")
    def _known_kwargs(self) -> OptimizerSpec:
        allowed = names.OPTIMIZERS[self.name]
        for key, value in (self.model_extra or {}).items():
            if key not in allowed:
                raise PydanticCustomError(
                    "unknown_name",
                    "{detail}",
                    {"detail": names.unknown_name(f"argument of optimizer {self.name!r}:", key, allowed)},
                )
            expected = _expected_type(key, allowed[key])
            if expected and not _has_type(value, expected):
                raise PydanticCustomError(
                    "wrong_type",
                    "{detail}",
                    {
                        "detail": f"optimizer argument {key!r} expects {expected} (Keras default "
                        f"{allowed[key]!r}), received {value!r}"
                    },
                )
        if self.learning_rate is None:
            self.learning_rate = allowed["learning_rate"]
        return self

    def kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for the Keras optimizer's constructor."""
        return {"learning_rate": self.learning_rate, **(self.model_extra or {})}


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

    optimizer: OptimizerSpec = OptimizerSpec()
    """An optimizer name (adam, sgd, ...) or {name: adam, learning_rate: 0.001, ...Keras kwargs}."""
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

    @field_validator("optimizer", mode="before")
    @classmethod
    def _name_to_object(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

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
        """Return the spec as plain data with every default filled in."""
        return self.model_dump(mode="json")
