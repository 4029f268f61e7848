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
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    WithJsonSchema,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dlrun.spec import names, space
from dlrun.spec.yamltext import value_text


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
    na_values: list[str | int | float] = []
    """More cell texts that mean "missing" (like pandas' na_values): ['?', '-999']; a number also matches -999.0."""
    keep_default_na: bool = True
    """Also read pandas' usual markers (NA, N/A, NaN, null, None, ...) as missing; false keeps them as values."""
    infinite: Literal["error", "missing"] = "error"
    """A non-finite number (inf, -inf, Infinity, 1e400) in a numeric column: an error naming its line, or missing."""

    @field_validator("na_values")
    @classmethod
    def _na_texts(cls, values: list) -> list[str]:
        return [str(value).strip() for value in values]  # YAML reads -999 as a number; cells are text

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


DATAFRAME = "dataframe:"
"""How `data.path` names a pandas DataFrame given to `dlrun.train(data=frame)`: `dataframe:<sha256 of it>`."""


def is_dataframe(path: str | None) -> bool:
    """Whether a data path names a DataFrame held in memory (`DATAFRAME`), not a file."""
    return isinstance(path, str) and path.startswith(DATAFRAME)


class DataSpec(StrictModel):
    """Where the examples come from, how they are read, split and preprocessed."""

    path: str
    """CSV file with the training rows, relative to the spec file's folder (or a DataFrame given to `dlrun.train`)."""
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
    """How the CSV files are written and read: separator, decimal, encoding, quotechar, missing markers, infinities."""
    streaming: bool | Literal["auto"] = "auto"
    """Read the CSV in chunks instead of loading it (true/false); auto: when larger than streaming_above_mb."""
    streaming_above_mb: Annotated[float, Field(gt=0)] = 1024.0
    """File size (MB) above which `streaming: auto` streams the CSV."""
    chunk_rows: Annotated[int, Field(gt=0)] = 65536
    """Rows read at a time when streaming (memory use grows with it)."""
    weight_column: str | None = None
    """A numeric column of per-row sample weights (not a feature): a row's loss counts this many times, in
    training and validation alike; empty or negative cells are errors. Default: every row weighs 1."""
    streaming_cache: bool = True
    """When streaming, write the preprocessed rows to a binary cache (under ~/.cache/dlrun) on the first epoch
    and read it on later ones instead of parsing the file again; false: parse the file every epoch."""

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
        self._check_weight_column()
        return self

    def _check_weight_column(self) -> None:
        weight = self.weight_column
        if weight is None:
            return
        clash = (
            "is the target"
            if weight == self.target
            else "is listed in data.features"
            if weight in (self.features or [])
            else "is listed in data.drop"
            if weight in self.drop
            else "has settings in data.columns"
            if weight in self.columns
            else None
        )
        if clash:
            raise PydanticCustomError(
                "weight_column",
                "{detail}",
                {
                    "detail": f"data.weight_column {weight!r} {clash}; the weight column is read apart from the "
                    "features and the target: name another column, or remove it from there"
                },
            )


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


def _whole_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value  # 5.0 steps are 5 steps


# --- learning-rate schedules ------------------------------------------------------------------

_STEPS = "optimizer steps (one per batch, counted over all epochs; `dlrun check` prints the steps per epoch)"
# One line per Keras schedule argument (from Keras's docstrings); "schedule.argument" for one schedule's own.
_SCHEDULE_HELP = {
    "initial_learning_rate": "Learning rate at step 0 (greater than 0).",
    "decay_steps": f"Length of the decay, in {_STEPS}.",
    "exponential_decay.decay_steps": f"The learning rate is multiplied by decay_rate every this many {_STEPS}.",
    "inverse_time_decay.decay_steps": f"Steps per unit of decay (rate / (1 + decay_rate * step / decay_steps)), in "
    f"{_STEPS}.",
    "decay_rate": "Factor applied every decay_steps steps: initial_learning_rate * decay_rate ** (step / decay_steps).",
    "inverse_time_decay.decay_rate": "initial_learning_rate / (1 + decay_rate * step / decay_steps).",
    "staircase": "Decay at whole multiples of decay_steps (a staircase) rather than smoothly.",
    "alpha": "Smallest learning rate, as a fraction of the starting one (0 to 1).",
    "warmup_target": "Learning rate reached by a linear warmup from initial_learning_rate over warmup_steps steps, "
    "where the cosine decay starts; null: no warmup.",
    "warmup_steps": f"Length of the linear warmup to warmup_target, in {_STEPS}; 0: no warmup.",
    "first_decay_steps": f"Length of the first cosine cycle, in {_STEPS}.",
    "t_mul": "Each cycle lasts t_mul times as many steps as the one before.",
    "m_mul": "Each cycle starts at m_mul times the learning rate the one before started at.",
    "boundaries": f"Increasing {_STEPS} at which the learning rate moves to the next of values.",
    "values": "Learning rates: values[0] until boundaries[0], values[i] from boundaries[i-1] on; one more than "
    "boundaries.",
    "end_learning_rate": "Learning rate reached after decay_steps steps, and kept.",
    "power": "Power of the polynomial (1: a straight line).",
    "cycle": "Start the decay again after decay_steps (at a decay_steps multiple) instead of staying at "
    "end_learning_rate.",
}


def _schedule_argument_type(key: str, default: object) -> Any:
    """Return a schedule argument's type, told by its Keras default or the names tables, within its range."""
    kind = names.SCHEDULE_ARGUMENT_TYPES.get(key)
    bounds = names.SCHEDULE_RANGES.get(key, {})
    if isinstance(default, bool):
        return bool
    if kind == "int":
        annotation: Any = Annotated[int, Field(**bounds), BeforeValidator(_whole_number)]
    elif kind == "list[int]":
        step = Annotated[int, Field(ge=0), BeforeValidator(_whole_number)]
        annotation = Annotated[list[step], Field(min_length=1)]
    elif kind == "list[float]":
        annotation = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2)]
    else:
        annotation = Annotated[float, Field(**bounds)]
    return annotation | None if default is None else annotation


class KerasSchedule(StrictModel):
    """Base of the schedule models below: `name` picks the Keras schedule, the other fields are its arguments."""

    model_config = ConfigDict(use_attribute_docstrings=False)

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {key: value for key, value in data.items() if key == "name" or key in self.model_fields_set}

    @model_validator(mode="after")
    def _consistent(self) -> KerasSchedule:
        problem = None
        given = self.model_fields_set
        if self.name == "piecewise_constant":
            boundaries, values = self.boundaries, self.values
            if len(values) != len(boundaries) + 1:
                problem = (
                    f"piecewise_constant has {len(boundaries)} boundaries and {len(values)} values; it needs one "
                    f"value more than boundaries (a learning rate before the first boundary and after each)"
                )
            elif any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
                problem = f"piecewise_constant boundaries {boundaries} must increase step by step"
        elif self.name == "cosine_decay" and ("warmup_steps" in given or "warmup_target" in given):
            if self.warmup_target is None:
                problem = (
                    "cosine_decay sets warmup_steps without warmup_target, so Keras would skip the warmup: give "
                    "warmup_target (the learning rate the warmup reaches), or remove warmup_steps"
                )
            elif self.warmup_steps == 0:
                problem = (
                    "cosine_decay sets warmup_target without warmup_steps, so Keras would start at warmup_target "
                    "and never use initial_learning_rate: give warmup_steps (how many steps the warmup takes)"
                )
        if problem:
            raise PydanticCustomError("schedule", "{detail}", {"detail": problem})
        return self

    @property
    def keras_class(self) -> str:
        """The schedule's class in `keras.optimizers.schedules`."""
        return names.SCHEDULE_CLASSES[self.name]

    def kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for the Keras schedule's constructor: what the spec gave."""
        return self.model_dump(exclude={"name"})

    def steps(self) -> dict[str, int | list[int]]:
        """Return the arguments counted in optimizer steps, as given or defaulted (for `dlrun check`)."""
        return {
            key: getattr(self, key)
            for key in names.SCHEDULE_STEP_ARGUMENTS
            if key in type(self).model_fields and getattr(self, key)
        }


def _schedule_model(name: str, arguments: dict[str, object]) -> type[KerasSchedule]:
    """Generate the spec model of one Keras learning-rate schedule from its arguments and their Keras defaults."""
    fields: dict[str, Any] = {"name": (Literal[name], Field(description="Keras learning-rate schedule name."))}
    for key, default in arguments.items():
        description = _SCHEDULE_HELP.get(f"{name}.{key}", _SCHEDULE_HELP[key])
        required = default is names.REQUIRED
        fields[key] = (
            _schedule_argument_type(key, default),
            Field(... if required else default, description=description),
        )
    keras_class = names.SCHEDULE_CLASSES[name]
    return create_model(
        f"{keras_class}Schedule",
        __base__=KerasSchedule,
        __module__=__name__,
        __doc__=f"Learning-rate schedule {name!r}, `keras.optimizers.schedules.{keras_class}`, with its Keras "
        "arguments; steps are optimizer steps (batches).",
        **fields,
    )


SCHEDULE_MODELS = {name: _schedule_model(name, arguments) for name, arguments in names.SCHEDULES.items()}


def _tag_by_name(scalar_tag: str):
    """Return a discriminator: a mapping's (or a model's) `name` picks the union member, anything else `scalar_tag`."""

    def tag(value: Any) -> Any:
        if isinstance(value, dict):
            return value.get("name")
        if isinstance(value, BaseModel):
            return getattr(value, "name", None)
        return scalar_tag

    return tag


PositiveRate = Annotated[float, Field(gt=0)]  # Keras takes any number; a step size of 0 or less never learns
# Union[...] takes the generated models as one tuple; `X | Y` cannot be spelled for a dict's values.
LearningRate = Annotated[
    Union[  # noqa: UP007
        tuple(
            [Annotated[PositiveRate, Tag("Number")]]
            + [Annotated[model, Tag(name)] for name, model in SCHEDULE_MODELS.items()]
        )
    ],
    Discriminator(_tag_by_name("Number")),
]
"""A learning rate: a number, or a Keras schedule by name with its arguments, evaluated at every step."""


# --- training ---------------------------------------------------------------------------------


DEFAULT_OPTIMIZER = "adam"

# One line per Keras optimizer argument (from Keras's docstrings), for `dlrun schema` and editors;
# "optimizer.argument" keys say it for an optimizer that uses the name differently.
_OPTIMIZER_HELP = {
    "learning_rate": "Step size of each update (greater than 0), or a schedule: {name: exponential_decay, "
    "initial_learning_rate: 0.01, decay_steps: 1000, decay_rate: 0.9} (cosine_decay, cosine_decay_restarts, "
    "inverse_time_decay, piecewise_constant, polynomial_decay); steps are optimizer steps (batches).",
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


def _argument_type(name: str, key: str, default: object) -> Any:
    """Return an optimizer argument's type, told by its Keras default or the names tables, within Keras's range."""
    kind = names.OPTIMIZER_ARGUMENT_TYPES.get(key)
    if isinstance(default, bool):
        return bool
    if kind == "list[str]":
        return list[str] | None if default is None else list[str]
    bounds = {**names.OPTIMIZER_RANGES["*"].get(key, {}), **names.OPTIMIZER_RANGES.get(name, {}).get(key, {})}
    if key == "learning_rate":
        return LearningRate
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
        """Return the keyword arguments for the Keras optimizer's constructor: the learning rate and what was given.

        A scheduled learning rate is its spec (a mapping); `schedule` tells the schedule to build.
        """
        return self.model_dump(exclude={"name"})

    @property
    def schedule(self) -> KerasSchedule | None:
        """The learning-rate schedule, or None for a fixed learning rate."""
        rate = getattr(self, "learning_rate", None)
        return rate if isinstance(rate, KerasSchedule) else None


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


# --- metrics ----------------------------------------------------------------------------------

# One line per Keras metric argument (from Keras's docstrings); "metric.argument" for one metric's own.
_METRIC_HELP = {
    "num_thresholds": "Thresholds that approximate the curve (more is more exact and slower); more than 1.",
    "curve": "ROC (true against false positive rate) or PR (precision against recall; suits rare positives).",
    "summation_method": "How the area is summed: interpolation, minoring (lower bound) or majoring (upper bound).",
    "auc.thresholds": "Thresholds to use instead of num_thresholds evenly spaced ones, each in [0, 1]; null: evenly "
    "spaced.",
    "thresholds": "A prediction above this counts as positive, in [0, 1]; null: 0.5.",
    "multi_label": "Score each output as its own label and average their AUCs.",
    "num_labels": "Number of labels, with multi_label; null: from the data.",
    "label_weights": "Weight of each label's AUC, with multi_label; null: equal weights.",
    "from_logits": "The predictions are logits (a linear output layer), not probabilities.",
    "label_smoothing": "Move the 0/1 targets towards 0.5 by this fraction.",
    "axis": "Axis along which the metric is computed.",
    "average": "How F-scores of several outputs are combined: micro, macro or weighted (dlrun's default micro; "
    "with one output all three agree).",
    "threshold": "A prediction above this counts as 1.",
    "f1_score.threshold": "A prediction above this counts as 1, in (0, 1] (dlrun's default 0.5).",
    "f_beta_score.threshold": "A prediction above this counts as 1, in (0, 1] (dlrun's default 0.5).",
    "beta": "Weight of recall against precision (above 1 favours recall).",
    "target_class_ids": "The classes (0, 1 or both) whose IoU is averaged.",
    "top_k": "Only the k largest outputs of each row count as predicted positives; null: all above the threshold.",
    "class_id": "Score only this output (a class id); null: all outputs.",
    "class_aggregation": "How R2 of several outputs is combined: uniform_average or variance_weighted_average.",
    "num_regressors": "Number of inputs, for the adjusted R2; 0: plain R2.",
    "ignore_class": "A class id left out of the metric; null: none.",
    "k": "A row counts as right when its class is among the k highest outputs.",
    "from_sorted_ids": "The predictions are class ids sorted by score, not scores.",
}
_COLUMN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_NOT_COLUMNS = ("loss", "epoch", "learning_rate", "lr")  # history.csv's own columns


def _metric_argument_type(name: str, key: str, default: object) -> Any:
    """Return a metric argument's type, told by its Keras default or the names tables, within Keras's range.

    A list's range holds for each of its values.
    """
    if key in names.METRIC_CHOICES:
        return Literal[names.METRIC_CHOICES[key]]
    if isinstance(default, bool):
        return bool
    kind = names.METRIC_ARGUMENT_TYPES.get(f"{name}.{key}", names.METRIC_ARGUMENT_TYPES.get(key, "float"))
    bounds = names.METRIC_RANGES.get(f"{name}.{key}", names.METRIC_RANGES.get(key, {}))
    base, _, optional = kind.partition(" | ")
    listed = base.startswith("list[")
    number = base.removeprefix("list[").removesuffix("]")
    if number == "int":
        annotation: Any = Annotated[int, Field(**bounds), BeforeValidator(_whole_number)]
    else:
        annotation = Annotated[float, Field(**bounds)]
    if listed:
        annotation = Annotated[list[annotation], Field(min_length=1)]
    return annotation | None if optional else annotation


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "_".join(map(_text, value))
    return f"{value:g}" if isinstance(value, float) else str(value).lower()


def _column_part(key: str, value: Any) -> str:
    """Name one given argument in a metric's column: at_0.3, pr, top_3, class_1, from_logits, k_3, ..."""
    if key in ("threshold", "thresholds"):
        return f"at_{_text(value)}"
    if key in names.METRIC_CHOICES:
        return _text(value)
    if isinstance(value, bool):
        return key if value else f"no_{key}"
    if key == "top_k":
        return f"top_{_text(value)}"
    if key == "class_id":
        return f"class_{_text(value)}"
    return f"{key}_{_text(value)}"


class KerasMetric(StrictModel):
    """Base of the metric models below: `name` picks the Keras metric, `column` names it, the rest are arguments."""

    model_config = ConfigDict(use_attribute_docstrings=False)

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any] | str:
        # A metric given by its name alone stays a name, so specs and runs without arguments read as before.
        if self.model_fields_set <= {"name"}:
            return self.name
        data = handler(self)
        return {key: value for key, value in data.items() if key == "name" or key in self.model_fields_set}

    @model_validator(mode="after")
    def _usable(self) -> KerasMetric:
        column = self.column
        problem = None
        if column is not None and (not _COLUMN.match(column) or column.startswith("val_") or column in _NOT_COLUMNS):
            problem = (
                f"column {column!r} cannot name a metric in history.csv: use letters, digits, '_', '.' and '-', "
                f"starting with a letter, not starting with val_ (the validation twin's prefix) and not "
                f"{', '.join(_NOT_COLUMNS)}"
            )
        elif getattr(self, "num_labels", None) is not None and not self.multi_label:
            problem = "auc sets num_labels, which Keras takes only with multi_label: true; set both, or neither"
        if problem:
            raise PydanticCustomError("metric", "{detail}", {"detail": problem})
        return self

    @property
    def column_name(self) -> str:
        """The metric's column in history.csv: `column`, or the name and the arguments given (auc_pr)."""
        if self.column is not None:
            return self.column
        given = [key for key in names.METRIC_ARGUMENTS[self.name] if key in self.model_fields_set]
        return "_".join([self.name, *(_column_part(key, getattr(self, key)) for key in given)])

    @property
    def direction(self) -> str | None:
        """Whether higher (max) or lower (min) is better, as Keras's metric says; None where it does not."""
        return names.METRICS[self.name]

    def kwargs(self) -> dict[str, Any]:
        """Return the Keras class's keyword arguments: what the spec gave, and dlrun's own defaults."""
        given = self.model_dump(exclude={"name", "column"}) if self.model_fields_set - {"name"} else {}
        return {**names.METRIC_DEFAULTS.get(self.name, {}), **given}

    @property
    def by_name(self) -> bool:
        """Whether Keras builds this metric from its name alone (no arguments, no column, no dlrun defaults)."""
        return self.model_fields_set <= {"name"} and self.name not in names.METRIC_DEFAULTS


def _metric_model(name: str, arguments: dict[str, object]) -> type[KerasMetric]:
    """Generate the spec model of one Keras metric from its class's arguments and their Keras (or dlrun) defaults."""
    fields: dict[str, Any] = {"name": (Literal[name], Field(description="Keras metric name."))}
    for key, default in arguments.items():
        default = names.METRIC_DEFAULTS.get(name, {}).get(key, default)
        description = _METRIC_HELP.get(f"{name}.{key}", _METRIC_HELP.get(key))
        fields[key] = (_metric_argument_type(name, key, default), Field(default, description=description))
    fields["column"] = (
        str | None,
        Field(
            None,
            description="Its column in history.csv (and for early_stopping.monitor, with val_ for validation); "
            "default: the name and the arguments given, like auc_pr or precision_at_0.3.",
        ),
    )
    keras_class = names.METRIC_CLASSES[name]
    return create_model(
        "".join(part.title() for part in name.split("_")) + "Metric",
        __base__=KerasMetric,
        __module__=__name__,
        __doc__=f"Metric {name!r}, `keras.metrics.{keras_class}`, with its Keras arguments.",
        **fields,
    )


METRIC_MODELS = {name: _metric_model(name, arguments) for name, arguments in names.METRIC_ARGUMENTS.items()}
Metric = Annotated[
    Union[  # noqa: UP007
        tuple(
            [Annotated[MetricName, Tag("Bare")]]
            + [Annotated[model, Tag(name)] for name, model in METRIC_MODELS.items()]
        )
    ],
    Discriminator(_tag_by_name("Bare")),
]
"""A Keras metric: its name, or a mapping of its name, its arguments and an optional column name."""


class ReduceLROnPlateauSpec(StrictModel):
    """Lower the learning rate when the monitored quantity stops improving, `keras.callbacks.ReduceLROnPlateau`."""

    monitor: str = "val_loss"
    """Quantity to watch: loss, val_loss, or a metric's column with or without `val_`."""
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """Each reduction multiplies the learning rate by this (between 0 and 1)."""
    patience: Annotated[int, Field(ge=0)] = 10
    """Epochs without improvement before a reduction."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether lower (min) or higher (max) is better; auto: decided from the monitored quantity."""
    min_delta: Annotated[float, Field(ge=0)] = 0.0001
    """Smallest change that counts as an improvement."""
    cooldown: Annotated[int, Field(ge=0)] = 0
    """Epochs to wait after a reduction before counting epochs without improvement again."""
    min_lr: Annotated[float, Field(ge=0)] = 0.0
    """The learning rate is never reduced below this."""


def _switch(value: Any) -> Any:
    """Read `tensorboard: true` as the default options and `false` as none."""
    if value is True:
        return {}
    if value is False or value is None or isinstance(value, (dict, TensorBoardSpec)):
        return None if value is False else value
    raise PydanticCustomError(
        "tensorboard",
        "{detail}",
        {
            "detail": f"expected true, false, or a mapping of the callback's options like {{histogram_freq: 1}}, "
            f"received {value!r}"
        },
    )


def _text_or_number(text_tag: str, number_tag: str):
    return Discriminator(lambda value: text_tag if isinstance(value, str) else number_tag)


class TensorBoardSpec(StrictModel):
    """TensorBoard logs in the run's tensorboard/ folder, by `keras.callbacks.TensorBoard`.

    `tensorboard --logdir runs/` shows every run's.
    """

    histogram_freq: Annotated[int, Field(ge=0)] = 0
    """Every this many epochs, write histograms of each layer's weights; 0: never."""
    write_graph: bool = True
    """Write the model's summary and its training graph (TensorBoard's Graphs tab); the logs grow with it."""
    write_images: bool = False
    """Also write the layers' weights as images."""
    write_steps_per_second: bool = False
    """Also log training steps per second."""
    update_freq: Annotated[
        Union[Annotated[Literal["epoch", "batch"], Tag("Text")], Annotated[int, Field(ge=1), Tag("Count")]],  # noqa: UP007
        _text_or_number("Text", "Count"),
    ] = "epoch"
    """Write the loss and metrics after every epoch, every batch, or every this many batches."""
    profile_batch: Annotated[
        Union[  # noqa: UP007
            Annotated[int, Field(ge=0), Tag("Batch")],
            Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2), Tag("Range")],
        ],
        Discriminator(lambda value: "Range" if isinstance(value, list) else "Batch"),
    ] = 0
    """Profile this batch (counted from 1), or the batches [first, last], for TensorBoard's profiler; 0: none."""

    @field_validator("profile_batch")
    @classmethod
    def _increasing(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, list) and value[1] < value[0]:
            raise PydanticCustomError(
                "profile_batch",
                "{detail}",
                {"detail": f"profile_batch {value} ends before it starts: give [first, last] with first <= last"},
            )
        return value


TensorBoard = Annotated[
    TensorBoardSpec | None, BeforeValidator(_switch, json_schema_input_type=bool | TensorBoardSpec | None)
]


def label_text(label: Any) -> str:
    """Write a class label as text, the same for YAML keys and CSV cells: 1, 1.0 and '1' are '1'; True is 'true'."""
    if isinstance(label, bool):
        return "true" if label else "false"
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label).strip()


def _labels_as_text(value: Any) -> Any:
    return {label_text(key): weight for key, weight in value.items()} if isinstance(value, dict) else value


def _balanced(value: Any) -> Any:
    if value != "balanced":
        raise PydanticCustomError(
            "class_weight",
            "{detail}",
            {
                "detail": f"class_weight {value!r} is not known: expected balanced, or a mapping of class label "
                "to weight like {0: 1, 1: 5}"
            },
        )
    return value


ClassWeight = Annotated[
    Union[  # noqa: UP007
        Annotated[Any, AfterValidator(_balanced), WithJsonSchema({"const": "balanced"}), Tag("Balanced")],
        Annotated[
            dict[str, Annotated[float, Field(ge=0)]],
            Field(min_length=1),
            BeforeValidator(_labels_as_text),
            Tag("ByLabel"),
        ],
    ],
    Discriminator(lambda value: "ByLabel" if isinstance(value, dict) else "Balanced"),
]
"""balanced, or a weight per class label."""


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


_DEVICE = re.compile(r"^(?:/job:localhost/replica:0/task:0)?/?(?:device:)?(CPU|GPU|cpu|gpu):([0-9]+)$")


def device_key(name: str) -> tuple[str, int]:
    """Return a device name's type and number, however TensorFlow lets it be written: '/gpu:0' -> ('GPU', 0)."""
    match = _DEVICE.match(name.strip())
    return (match.group(1).upper(), int(match.group(2))) if match else (name, -1)


def _device_name(value: str) -> str:
    if _DEVICE.match(value.strip()) is None:
        raise PydanticCustomError(
            "device_name",
            "{detail}",
            {"detail": f"{value!r} is not a device name; expected one like '/gpu:0', '/gpu:1' or '/cpu:0'"},
        )
    return value


DeviceName = Annotated[str, AfterValidator(_device_name)]


class TrainingSpec(StrictModel):
    """How the model is compiled and fitted."""

    optimizer: Optimizer = Field(DEFAULT_OPTIMIZER, validate_default=True)
    """An optimizer name (adam, sgd, ...) or {name: adam, learning_rate: 0.001, ...its Keras arguments}."""
    loss: LossName
    """Keras loss name: mae, mse, binary_crossentropy, sparse_categorical_crossentropy, ..."""
    metrics: list[Metric] = []
    """Keras metrics computed every epoch on training and validation rows: names (auc) or mappings with their
    Keras arguments ({name: auc, curve: PR}); each one's column in history.csv is its name and arguments (auc_pr)."""
    batch_size: Annotated[int, Field(gt=0)] = 32
    """Rows per gradient step."""
    epochs: Annotated[int, Field(gt=0)]
    """Most epochs to train (early stopping may end sooner)."""
    shuffle: bool = True
    """Shuffle the training rows every epoch (seeded)."""
    early_stopping: EarlyStoppingSpec | None = None
    """Stop when the monitored quantity stops improving; absent: train all epochs."""
    reduce_lr_on_plateau: ReduceLROnPlateauSpec | None = None
    """Lower the learning rate when the monitored quantity stops improving; absent: never (not with a schedule)."""
    class_weight: ClassWeight | None = None
    """Weigh each training row's loss by its class: balanced (n_rows / (n_classes * rows of the class), from the
    training rows) or {label: weight} by the CSV's labels (others weigh 1); absent: every class weighs 1."""
    tensorboard: TensorBoard = None
    """Write TensorBoard logs into the run's tensorboard/ folder: true, or a mapping of the callback's options."""

    loop: Literal["auto", "fit"] = "auto"
    """auto: dlrun's lean loop (one compiled call per epoch, with model.fit's numbers and callbacks) wherever it
    supports the run, else model.fit (summary.json's loop says which ran, and why); fit: always model.fit."""

    distribute: Literal["mirrored"] | None = None
    """mirrored: train on several devices of this machine (`tf.distribute.MirroredStrategy`), every visible GPU
    or `devices`; batch_size is then the global batch, split between them. Absent: one device."""
    devices: Annotated[list[DeviceName], Field(min_length=1)] | None = None
    """With distribute: mirrored, the devices to train on, like ['/gpu:0', '/gpu:1']; default: every visible GPU."""
    mixed_precision: bool = False
    """Compute in float16 with float32 weights (Keras's mixed_float16 policy), faster on recent GPUs; the last
    layer computes in float32, so the outputs and the loss stay float32."""

    @field_validator("metrics", mode="after")
    @classmethod
    def _one_column_each(cls, metrics: list) -> list[KerasMetric]:
        metrics = [METRIC_MODELS[m](name=m) if isinstance(m, str) else m for m in metrics]
        seen: dict[str, int] = {}
        for index, metric in enumerate(metrics):
            column = metric.column_name
            if column in seen:
                raise PydanticCustomError(
                    "metric_column",
                    "{detail}",
                    {
                        "detail": f"metrics[{seen[column]}] and metrics[{index}] both log as {column!r} in "
                        f"history.csv: remove one, or give one its own column, like {{name: {metric.name}, "
                        f"column: {column}_2, ...}}"
                    },
                )
            seen[column] = index
        return metrics

    @field_validator("devices")
    @classmethod
    def _distinct_devices(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            canonical = [device_key(name) for name in value]
            twice = sorted({name for name, key in zip(value, canonical) if canonical.count(key) > 1})
            if twice:
                raise PydanticCustomError(
                    "devices", "{detail}", {"detail": f"{', '.join(twice)} name the same device: list each once"}
                )
        return value

    @model_validator(mode="after")
    def _devices_need_distribute(self) -> TrainingSpec:
        if self.devices is not None and self.distribute is None:
            raise PydanticCustomError(
                "devices",
                "{detail}",
                {
                    "detail": "devices lists the devices of distribute: mirrored, but distribute is not set: add "
                    "distribute: mirrored, or remove devices"
                },
            )
        return self

    @model_validator(mode="after")
    def _check(self) -> TrainingSpec:
        self._metrics_fit_loss()
        self._resolve_monitor("early_stopping")
        self._resolve_monitor("reduce_lr_on_plateau")
        if self.reduce_lr_on_plateau is not None and self.optimizer.schedule is not None:
            raise PydanticCustomError(
                "plateau_schedule",
                "{detail}",
                {
                    "detail": f"reduce_lr_on_plateau cannot lower a scheduled learning rate (Keras sets the "
                    f"optimizer's learning rate, which the {self.optimizer.schedule.name} schedule computes at every "
                    "step): remove reduce_lr_on_plateau, or give optimizer.learning_rate as a number"
                },
            )
        if self.class_weight is not None and self.loss not in (*names.BINARY_LOSSES, *names.CLASS_LOSSES):
            raise PydanticCustomError(
                "class_weight_loss",
                "{detail}",
                {
                    "detail": f"class_weight weighs the classes of the target, but loss {self.loss!r} predicts "
                    "numbers: remove class_weight (data.weight_column weighs rows), or use a classification loss"
                },
            )
        return self

    def _metrics_fit_loss(self) -> None:
        """Refuse metrics that read targets of another form than the loss's (Keras fails in the first epoch)."""
        class_ids = self.loss in names.CLASS_LOSSES
        for metric in self.metrics:
            if metric.name in names.ANY_OUTPUT_METRICS:
                continue
            if class_ids and metric.name not in names.CLASS_ID_METRICS:
                fits = sorted(names.CLASS_ID_METRICS)
                why = f"loss {self.loss!r} trains one output per class on class ids"
            elif not class_ids and (metric.name in names.CLASS_ID_METRICS or metric.name in names.ONE_HOT_METRICS):
                fits = (
                    ["binary_accuracy", "auc", "precision", "recall"]
                    if self.loss in names.BINARY_LOSSES
                    else [
                        "mae",
                        "mse",
                        "root_mean_squared_error",
                        "r2_score",
                    ]
                )
                why = f"loss {self.loss!r} trains one output on one target column"
            else:
                continue
            reads = (
                "one-hot targets"
                if metric.name in names.ONE_HOT_METRICS
                else "class ids against one output per class"
                if metric.name in names.CLASS_ID_METRICS
                else "a target column as wide as the output"
            )
            raise PydanticCustomError(
                "metric_loss",
                "{detail}",
                {"detail": f"metric {metric.name!r} reads {reads}, but {why}: use {', '.join(fits)}"},
            )

    def directions(self) -> dict[str, str | None]:
        """Return each quantity training logs (loss and the metrics' columns, each also as val_), and
        whether lower (min) or higher (max) is better; None where the metric's name does not tell."""
        base = {"loss": "min", **{metric.column_name: metric.direction for metric in self.metrics}}
        return base | {f"val_{name}": direction for name, direction in base.items()}

    def _resolve_monitor(self, section: str) -> None:
        """Check that a callback's monitor will be logged, and decide its mode where it is auto."""
        watcher = getattr(self, section)
        if watcher is None:
            return
        directions = self.directions()
        if watcher.monitor not in directions:
            choices = list(directions)
            guess = names.closest(watcher.monitor, choices)
            raise PydanticCustomError(
                "unknown_monitor",
                "{detail}",
                {
                    "detail": f"{section}.monitor {watcher.monitor!r} will not exist during training"
                    f"{f'; did you mean {guess!r}?' if guess else '.'} Expected loss, val_loss, or the column of a "
                    f"metric in training.metrics (with or without val_): {', '.join(choices)}"
                },
            )
        if watcher.mode == "auto":
            if directions[watcher.monitor] is None:
                raise PydanticCustomError(
                    "monitor_mode",
                    "{detail}",
                    {
                        "detail": f"cannot tell whether {watcher.monitor!r} should go up or down: "
                        f"set {section}.mode to min or max"
                    },
                )
            watcher.mode = directions[watcher.monitor]


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


# --- search space (dlrun tune) ---------------------------------------------------------------


def _search_error(detail: str) -> PydanticCustomError:
    return PydanticCustomError("search_range", "{detail}", {"detail": detail})


class FloatSearch(StrictModel):
    """Any number from low to high (Optuna's suggest_float): `float(0, 0.5)`, `loguniform(1e-4, 1e-1)`."""

    type: Literal["float"]
    """float: a real number."""
    low: float
    """The smallest value tried."""
    high: float
    """The largest value tried."""
    log: bool = False
    """Sample on a log scale, as learning rates are (low must be above 0)."""
    step: Annotated[float, Field(gt=0)] | None = None
    """Only low, low + step, low + 2 step, ... up to high; absent: any number."""

    @model_validator(mode="after")
    def _valid_range(self) -> FloatSearch:
        _check_range(self.low, self.high, self.log, self.step, "float")
        return self


class IntSearch(StrictModel):
    """A whole number from low to high (Optuna's suggest_int): `int(4, 256, log)`, `int(1, 9, step=2)`."""

    type: Literal["int"]
    """int: a whole number."""
    low: int
    """The smallest value tried."""
    high: int
    """The largest value tried."""
    step: Annotated[int, Field(gt=0)] = 1
    """Only low, low + step, ... up to high."""
    log: bool = False
    """Sample on a log scale, as layer widths often are (low must be 1 or more)."""

    @model_validator(mode="after")
    def _valid_range(self) -> IntSearch:
        _check_range(self.low, self.high, self.log, None if self.step == 1 else self.step, "int")
        return self


class ChoiceSearch(StrictModel):
    """One of a list of values (Optuna's suggest_categorical): `choice(32, 64, 256)`, any YAML values, layer lists."""

    type: Literal["choice"]
    """choice: one of the listed values."""
    choices: Annotated[list[Any], Field(min_length=1)]
    """The values tried: numbers, names, lists (a whole `model.layers`), mappings."""

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[Any]) -> list[Any]:
        texts = [value_text(choice) for choice in choices]
        twice = sorted({text for text in texts if texts.count(text) > 1})
        if twice:
            raise _search_error(f"{', '.join(twice)} listed more than once; list each value once")
        return choices


def _check_range(low: float, high: float, log: bool, step: float | None, kind: str) -> None:
    if not low < high:
        raise _search_error(f"low {low!r} should be below high {high!r}; swap them, or set the path to one value")
    if log and step is not None:
        raise _search_error("log and step cannot both be given (Optuna samples one or the other): drop one")
    if log and low <= 0:
        least = "1" if kind == "int" else "a small positive number like 1e-5"
        raise _search_error(f"a log scale needs low above 0, received {low!r}: start at {least}")
    if step is not None and (high - low) / step < 1 - 1e-9:
        raise _search_error(f"step {step!r} is larger than the range {low!r} to {high!r}: use a smaller step")


def _search_shorthand(value: Any) -> Any:
    """Read grammar text (`loguniform(1e-4, 1e-1)`) and bare lists (a choice) as the mapping form."""
    try:
        return space.expand(value)
    except ValueError as exc:
        raise PydanticCustomError("search_text", "{detail}", {"detail": str(exc)}) from None


SearchDistribution = Annotated[
    Annotated[FloatSearch | IntSearch | ChoiceSearch, Field(discriminator="type")],
    BeforeValidator(_search_shorthand, json_schema_input_type=str | list[Any] | FloatSearch | IntSearch | ChoiceSearch),
]
"""A distribution of `dlrun tune`: text like `loguniform(1e-4, 1e-1)`, a list (a choice), or a mapping with `type`."""
SEARCH_TYPES = ("float", "int", "choice")


# --- the whole spec ---------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


MAX_SEED = 2**32 - 1
"""The largest seed NumPy, Python's random and TensorFlow all take."""


class Spec(StrictModel):
    """One experiment: data, model and training, as dlrun reads it from YAML."""

    name: str | None = None
    """Run name, used as the folder under the output directory; default: the spec file's stem."""
    seed: Annotated[int, Field(json_schema_extra={"minimum": 0, "maximum": MAX_SEED})] = 0
    """Seeds the validation split, weight initialization, dropout and shuffling."""
    data: DataSpec
    """The CSV to learn from and how to split it."""
    model: ModelSpec
    """The layer stack."""
    training: TrainingSpec
    """Optimizer, loss, metrics, epochs and early stopping."""
    tracking: TrackingSection | None = None
    """Also log the run to MLflow (like --track mlflow): `mlflow` or {uri, experiment}; absent: not tracked."""
    search: dict[str, SearchDistribution] | None = None
    """What `dlrun tune` searches: spec paths (as `--set` writes them) mapped to distributions, like
    `training.optimizer.learning_rate: loguniform(1e-4, 1e-1)`; `train` ignores it."""

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

    @field_validator("seed")
    @classmethod
    def _seed_range(cls, value: int) -> int:
        if not 0 <= value <= MAX_SEED:
            raise PydanticCustomError(
                "seed_range",
                "{detail}",
                {"detail": f"seed {value} is out of range: expected a whole number from 0 to {MAX_SEED} (2**32 - 1)"},
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

    def resolved(self, search: bool = False) -> dict[str, Any]:
        """Return the spec as plain data with every default filled in (no `tracking` key when the spec has none).

        Args:
            search: Keep the `search:` section (`dlrun config show`); a run's config.yaml records what
                trained, without it.
        """
        exclude = {"tracking"} if self.tracking is None else set()
        if not search or self.search is None:
            exclude.add("search")
        data = self.model_dump(mode="json", exclude=exclude)
        if "search" in data:
            data["search"] = {path: {k: v for k, v in d.items() if v is not None} for path, d in data["search"].items()}
        return data
