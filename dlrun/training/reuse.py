"""What a sweep worker keeps from one point to the next: its last data and baseline, and its traced models.

Consecutive points of a sweep or tune usually read the same files the same way. A worker that keeps
(`keeping`) holds the last `Prepared` it made, with the key it was made for: the data section, the
loss (it decides the target's kind) and the seed where a random split uses it. A point with the same
key gets the same object back only if every file it reads still has the sha256 the data was read
with: each file is hashed again for every point, so a file changed on disk in between is read again,
never served stale. The arrays kept are made read-only, so no point can change what the next one reads.

The baseline (`dlrun.training.baseline`) of kept data is computed once per loss, metrics and output width.

Tracing the lean loop's compiled calls costs a point more than all its epochs on small data. A point
whose model and training differ from a kept one's only in values Keras holds in variables (the
learning rate, the seed: initial weights and dropout's seed state; the class weights, mapped onto the
data; the epochs and early stopping, which act through callbacks) trains the kept model instead
(`trained_model`): the variables of the point's own fresh model, compiled as usual (its layers' and
seed states, its optimizer's iterations and learning rate), are copied into it, and the ones only a
build makes (the optimizer's slots, the metrics') get the values the kept model was built with, so it
starts exactly where the fresh one would; its traced calls run on the point's own datasets
(`loop._Epochs.restart`). Up to
`MAX_MODELS` models are kept, the least recently used dropped first.

Only in-memory data is kept: a streamed file is read chunk by chunk every epoch anyway. Nothing is
kept unless `keeping` is on (sweep and tune workers; `dlrun train` keeps nothing), so a process that
trains once holds no data after its run.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from dlrun.data.fitter import Prepared
from dlrun.data.prepare import prepare, streams
from dlrun.runs.layout import file_sha256
from dlrun.spec.models import DataSpec, Spec


@dataclass
class _Kept:
    key: tuple
    data: Prepared
    baselines: dict[tuple, dict[str, Any]] = field(default_factory=dict)


MAX_MODELS = 4
"""Traced models a worker keeps (a grid's points alternate between a few structures)."""

_keeping = False
_kept: _Kept | None = None
_models: dict[str, Any] = {}
"""Kept models by their graph key (`graph_key`), the least recently used first."""
_initial: dict[int, list] = {}
"""Each kept model's variables (`_state`) as they were before it first trained, by the model's id."""
_epochs: dict[int, list] = {}
"""The lean loop's compiled calls (`loop._Epochs`) made for each kept model, by the model's id, the latest last."""


@contextlib.contextmanager
def keeping(on: bool = True):
    """Keep prepared data between the trainings inside (on), or keep none and forget what was kept (off)."""
    global _keeping
    before = _keeping
    _keeping = on
    if not on:
        forget()
    try:
        yield
    finally:
        _keeping = before


def forget() -> None:
    """Drop the data and the models kept."""
    global _kept
    _kept = None
    _models.clear()
    _epochs.clear()
    _initial.clear()


def prepared(spec: DataSpec, seed: int, loss: str) -> Prepared:
    """Return `dlrun.data.prepare.prepare(spec, seed, loss)`: the kept data when its key and files' sha256 match."""
    global _kept
    if not _keeping or streams(spec):
        return prepare(spec, seed, loss)
    split = spec.validation_split or spec.test_split  # the seed draws the split; without one it changes nothing
    key = (json.dumps(spec.model_dump(mode="json"), sort_keys=True), loss, seed if split else None)
    if _kept is not None and _kept.key == key and _hashes(_kept.data) == _kept.data.sha256:
        return _kept.data
    _kept = None  # before reading: an error leaves nothing kept
    data = prepare(spec, seed, loss)
    if _hashes(data) == data.sha256:  # unchanged while it was read: its hashes describe what it holds
        for name in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test", "w_train", "w_valid", "w_test"):
            array = getattr(data, name)
            if array is not None:
                array.setflags(write=False)
        _kept = _Kept(key, data)
    return data


def _hashes(data: Prepared) -> dict[str, str]:
    """Hash again every file `data` was read from."""
    try:
        return {path: file_sha256(path) for path in data.sha256}
    except OSError:
        return {}  # gone or unreadable: never equal to the hashes it was read with


def baseline(spec: Spec, data: Prepared) -> dict[str, Any]:
    """Return `dlrun.training.baseline.baseline(spec, data)`: once per loss, metrics and output width for kept data."""
    import copy

    from dlrun.training.baseline import baseline as compute
    from dlrun.training.baseline import output_width

    if _kept is None or _kept.data is not data:
        return compute(spec, data)
    training = spec.training
    key = (training.loss, json.dumps([m.model_dump(mode="json") for m in training.metrics]), output_width(spec))
    if key not in _kept.baselines:
        _kept.baselines[key] = compute(spec, data)
    return copy.deepcopy(_kept.baselines[key])


def graph_key(spec: Spec, input_width: int, steps_per_execution: int) -> str:
    """Return what decides a run's model and traced calls, but for the values Keras holds in variables or callbacks.

    Left out: the seed, the epochs, early stopping, the class weights and a constant learning rate (not
    a schedule, which is traced). The datasets' shapes are checked when the calls are reused (`loop._Epochs.fits`).
    """
    training = spec.training.model_dump(mode="json")
    for name in ("epochs", "early_stopping", "class_weight"):
        training.pop(name)
    if spec.training.optimizer.schedule is None:
        training["optimizer"].pop("learning_rate", None)
    model = spec.model.model_dump(mode="json")
    key = {"model": model, "training": training, "width": input_width, "per_execution": steps_per_execution}
    return json.dumps(key, sort_keys=True)


def trained_model(fresh, key: str):
    """Return the model a point trains: a kept one of the same `key`, given `fresh`'s state, else `fresh`.

    Args:
        fresh: The point's own model, compiled, with its initial weights.
    """
    if not _keeping:
        return fresh
    kept = _models.pop(key, None)
    if kept is not None and _give_state(fresh, kept):
        _models[key] = kept
        return kept
    if kept is not None:
        _forget_model(kept)
    _models[key] = fresh
    while len(_models) > MAX_MODELS:
        _forget_model(_models.pop(next(iter(_models))))
    return fresh


def _forget_model(model) -> None:
    _epochs.pop(id(model), None)
    _initial.pop(id(model), None)


def kept_epochs(model) -> list:
    """Return the compiled calls made for a kept model (`loop._Epochs`: one per shape of data and callbacks)."""
    return list(_epochs.get(id(model), [])) if _keeping else []


def keep_epochs(model, epochs) -> None:
    """Keep the compiled calls made for `model`, if the model is kept (up to `MAX_MODELS` of them).

    The first ones are made before the model trains, when all its variables exist: their values then
    are the state a fresh model starts from (`_give_state`).
    """
    if _keeping and any(kept is model for kept in _models.values()):
        _epochs[id(model)] = [*_epochs.get(id(model), []), epochs][-MAX_MODELS:]
        if id(model) not in _initial:
            _initial[id(model)] = [variable.numpy() for variable in _state(model)]


def _state(model) -> list:
    """Every variable of a model: its layers' (seed states included), its optimizer's and its metrics'."""
    found, seen = [], set()
    optimizer = getattr(model, "optimizer", None)
    optimizer_variables = optimizer.variables if optimizer is not None else []
    for variable in [*model.variables, *optimizer_variables, *model.metrics_variables]:
        if id(variable) not in seen:
            seen.add(id(variable))
            found.append(variable)
    return found


def _give_state(fresh, kept) -> bool:
    """Set every variable of `kept` to the value it has in `fresh` (compiled, not yet trained); False: none set.

    The layers' variables and the optimizer's (before it is built: its iterations and learning rate)
    come from `fresh`; the rest (the optimizer's slots, the metrics') take the values they had when
    `kept` was built, which are the ones a build of `fresh` would give them.
    """
    initial = _initial.get(id(kept))
    target = _state(kept)
    if initial is None or len(initial) != len(target):
        return False
    at = {id(variable): index for index, variable in enumerate(target)}
    values = list(initial)
    optimizer = {_name(v): v for v in kept.optimizer.variables}
    if len(optimizer) != len(kept.optimizer.variables):
        return False  # two variables of one name (a wrapped optimizer): which is which is not known
    pairs = list(zip(fresh.variables, kept.variables))
    pairs += [(v, optimizer.get(_name(v))) for v in fresh.optimizer.variables]
    if len(fresh.variables) != len(kept.variables) or not all(_alike(a, b) for a, b in pairs):
        return False
    for source, variable in pairs:
        values[at[id(variable)]] = source.value
    for variable, value in zip(target, values):
        variable.assign(value)
    return True


def _name(variable) -> str:
    return variable.path.rsplit("/", 1)[-1]


def _alike(source, variable) -> bool:
    return (
        variable is not None
        and _name(source) == _name(variable)
        and tuple(source.shape) == tuple(variable.shape)
        and source.dtype == variable.dtype
    )
