"""One model per optimizer: dlrun, its error locations and the JSON Schema give one answer for every optimizer."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from dlrun.errors import SpecError
from dlrun.spec import names
from dlrun.spec.loader import Source, load_spec, validate
from dlrun.spec.models import OPTIMIZER_MODELS
from dlrun.spec.schema import spec_schema

from conftest import binary_spec, write_spec

SCHEMA = spec_schema()
ALL_ARGUMENTS = sorted({key for arguments in names.OPTIMIZERS.values() for key in arguments})


def schema_accepts(optimizer) -> bool:
    return jsonschema.Draft202012Validator(SCHEMA).is_valid(binary_spec(optimizer=optimizer))


def dlrun_optimizer(optimizer):
    """Validate spec data with this optimizer entry; return the optimizer model, or raise SpecError."""
    return validate(Source(data=binary_spec(optimizer=optimizer))).training.optimizer


def problems_of(path: Path, overrides=None) -> list:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return info.value.problems


def where_is(path: Path, key: str) -> str:
    """Return `file:line:column` of `key` inside the training.optimizer mapping of a written spec."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("optimizer:"))
    for number, line in enumerate(lines[start + 1 :], start + 2):
        if line.lstrip().startswith(f"{key}:"):
            return f"{path}:{number}:{line.index(key) + 1}"
    raise AssertionError(f"{key} not in {path}")


def valid_value(key: str, default: object):
    """A value of the right type that is not the Keras default (ints where a float is taken)."""
    kind = names.OPTIMIZER_ARGUMENT_TYPES.get(key)
    if isinstance(default, bool):
        return not default
    if kind == "int":
        return 4
    if kind == "list[str]":
        return ["dense"]
    return 1 if default is None or default == 0 else default / 2


def wrong_value(key: str, default: object):
    """A value of the wrong type: a number for a bool, text for a number, a fraction for a count."""
    kind = names.OPTIMIZER_ARGUMENT_TYPES.get(key)
    if isinstance(default, bool):
        return 3
    if kind == "int":
        return 2.5
    if kind == "list[str]":
        return "dense"
    return "high"


def foreign_argument(name: str) -> tuple[str, object]:
    """An argument that another optimizer takes but this one does not, with a value valid there."""
    key = next(key for key in ALL_ARGUMENTS if key not in names.OPTIMIZERS[name])
    return key, valid_value(key, next(arguments[key] for arguments in names.OPTIMIZERS.values() if key in arguments))


@pytest.mark.parametrize("name", sorted(names.OPTIMIZERS))
def test_every_argument_the_schema_accepts_dlrun_accepts(name):
    for key, default in names.OPTIMIZERS[name].items():
        entry = {"name": name, key: valid_value(key, default)}
        assert schema_accepts(entry), entry
        optimizer = dlrun_optimizer(entry)
        assert optimizer.kwargs()[key] == entry[key], entry
        assert type(optimizer) is OPTIMIZER_MODELS[name]
    everything = {"name": name, **names.OPTIMIZERS[name]}  # every argument spelled out at its Keras default
    assert schema_accepts(everything)
    assert dlrun_optimizer(everything).kwargs() == names.OPTIMIZERS[name]


@pytest.mark.parametrize("name", sorted(names.OPTIMIZERS))
def test_what_the_schema_rejects_dlrun_rejects_at_the_key(tmp_path, name):
    foreign, foreign_value = foreign_argument(name)
    wrong = {key: wrong_value(key, default) for key, default in names.OPTIMIZERS[name].items()}
    assert not schema_accepts({"name": name, foreign: foreign_value})
    for key, value in wrong.items():
        assert not schema_accepts({"name": name, key: value}), (key, value)
    path = write_spec(tmp_path, binary_spec(optimizer={"name": name, foreign: foreign_value, **wrong}))
    found = {problem.path: problem for problem in problems_of(path)}
    assert set(found) == {f"training.optimizer.{key}" for key in [foreign, *wrong]}  # one problem per key
    assert f"not an argument of optimizer {name!r}" in found[f"training.optimizer.{foreign}"].message
    for key in [foreign, *wrong]:
        assert found[f"training.optimizer.{key}"].where == where_is(path, key)
    for key, value in wrong.items():
        message = found[f"training.optimizer.{key}"].message
        assert message.startswith("expected ") and repr(value) in message, message


def test_adam_has_no_nesterov(tmp_path):
    entry = {"name": "adam", "nesterov": True}
    assert not schema_accepts(entry)
    path = write_spec(tmp_path, binary_spec(optimizer=entry))
    (problem,) = problems_of(path)
    assert problem.path == "training.optimizer.nesterov"
    assert problem.where == where_is(path, "nesterov")
    assert "unknown key 'nesterov': not an argument of optimizer 'adam'" in problem.message
    assert "optimizers that take it: muon, sgd" in problem.message
    assert "Valid keys here: name, learning_rate, beta_1, beta_2, epsilon, amsgrad" in problem.message


def test_lr_suggests_learning_rate(tmp_path):
    path = write_spec(tmp_path, binary_spec(optimizer={"name": "adam", "lr": 0.01}))
    (problem,) = problems_of(path)
    assert (problem.path, problem.where) == ("training.optimizer.lr", where_is(path, "lr"))
    assert "not an argument of optimizer 'adam'; did you mean 'learning_rate'?" in problem.message


def test_bare_name_and_a_mapping_without_name():
    for entry in ("sgd", {"name": "sgd"}):
        assert schema_accepts(entry)
        optimizer = dlrun_optimizer(entry)
        assert (optimizer.name, optimizer.learning_rate, optimizer.kwargs()) == ("sgd", 0.01, {"learning_rate": 0.01})
    assert schema_accepts({"learning_rate": 0.5})
    assert dlrun_optimizer({"learning_rate": 0.5}).name == "adam"  # the default optimizer, as with no entry
    assert not schema_accepts({"learning_rate": 0.5, "nesterov": True})
    with pytest.raises(SpecError, match="not an argument of optimizer 'adam'"):
        dlrun_optimizer({"learning_rate": 0.5, "nesterov": True})


@pytest.mark.parametrize("entry", ["adamm", {"name": "sgdd", "momentum": 0.9}])
def test_unknown_optimizer_name_suggests_the_closest(tmp_path, entry):
    assert not schema_accepts(entry)
    path = write_spec(tmp_path, binary_spec(optimizer=entry))
    (problem,) = problems_of(path)
    assert problem.path == "training.optimizer.name"
    guess = "adam" if entry == "adamm" else "sgd"
    assert f"unknown optimizer {entry if isinstance(entry, str) else entry['name']!r}. Did you mean {guess!r}?" in (
        problem.message
    )
    assert "Expected one of: adadelta, adafactor" in problem.message
    expected_key = "optimizer" if isinstance(entry, str) else "name"
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if f"{expected_key}:" in text)
    assert problem.where.startswith(f"{path}:{line}:")


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(0.01, 0.01), (1, 1.0), (1e-3, 0.001), (True, None), ("0.01", None), (0, None), (-0.1, None)],
)
def test_learning_rate_is_a_positive_number(value, accepted):
    entry = {"name": "sgd", "learning_rate": value}
    assert schema_accepts(entry) == (accepted is not None)
    if accepted is None:
        with pytest.raises(SpecError, match="training.optimizer.learning_rate"):
            dlrun_optimizer(entry)
    else:
        rate = dlrun_optimizer(entry).learning_rate
        assert rate == accepted and type(rate) is float


def test_counts_take_whole_numbers_only():
    entry = {"name": "muon", "ns_steps": 5.0}
    assert schema_accepts(entry) and dlrun_optimizer(entry).kwargs()["ns_steps"] == 5
    for value in (2.5, True, "5"):
        entry = {"name": "muon", "ns_steps": value}
        assert not schema_accepts(entry)
        with pytest.raises(SpecError, match="training.optimizer.ns_steps"):
            dlrun_optimizer(entry)


def test_set_an_argument_of_a_bare_name(tmp_path):
    path = write_spec(tmp_path, binary_spec(optimizer="adam"))
    optimizer = load_spec(path, ["training.optimizer.learning_rate=0.01", "training.optimizer.beta_1=0.8"])
    assert optimizer.training.optimizer.kwargs() == {"learning_rate": 0.01, "beta_1": 0.8}
    assert load_spec(path, ["training.optimizer=sgd"]).training.optimizer.name == "sgd"
    (problem,) = problems_of(path, ["training.optimizer.nesterov=true"])
    assert problem.where == "--set training.optimizer.nesterov=true"
    assert "not an argument of optimizer 'adam'" in problem.message


def test_resolved_spec_round_trips(tmp_path):
    entry = {"name": "sgd", "momentum": 0.9, "nesterov": True}
    spec = load_spec(write_spec(tmp_path, binary_spec(optimizer=entry)))
    resolved = spec.resolved()
    assert resolved["training"]["optimizer"] == {**entry, "learning_rate": 0.01}  # given, plus the learning rate
    jsonschema.validate(resolved, SCHEMA)
    again = tmp_path / "again"
    again.mkdir()
    (again / "spec.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    reloaded = load_spec(again / "spec.yaml")
    assert reloaded == spec
    assert reloaded.training.optimizer.kwargs() == spec.training.optimizer.kwargs()


def test_every_optimizer_argument_is_documented():
    for name, model in OPTIMIZER_MODELS.items():
        properties = SCHEMA["$defs"][model.__name__]["properties"]
        assert list(properties) == ["name", *names.OPTIMIZERS[name]]
        for key, default in names.OPTIMIZERS[name].items():
            assert properties[key]["default"] == default and properties[key]["description"], (name, key)


def ranges(name: str) -> dict[str, dict[str, float]]:
    """The ranges Keras enforces on this optimizer's arguments."""
    return {**names.OPTIMIZER_RANGES["*"], **names.OPTIMIZER_RANGES.get(name, {})}


def outside(bound: str, value: float) -> float:
    return value - 1 if bound == "ge" else value + 1


@pytest.mark.parametrize("name", sorted(names.OPTIMIZER_RANGES.keys() - {"*"} | {"adam"}))
def test_ranges_keras_enforces_are_refused_by_both(tmp_path, name):
    for key, bounds in ranges(name).items():
        for bound, value in bounds.items():
            assert schema_accepts({"name": name, key: value}) and dlrun_optimizer({"name": name, key: value})
            entry = {"name": name, key: outside(bound, value)}
            assert not schema_accepts(entry), entry
            (problem,) = problems_of(write_spec(tmp_path, binary_spec(optimizer=entry)))
            words = {"ge": "greater than or equal to", "le": "less than or equal to"}[bound]
            assert problem.path == f"training.optimizer.{key}" and words in problem.message, problem


def test_one_clipping_argument_at_a_time(tmp_path):
    assert schema_accepts({"name": "sgd", "clipnorm": 1, "clipvalue": None})
    assert dlrun_optimizer({"name": "sgd", "clipnorm": 1, "clipvalue": None}).kwargs()["clipnorm"] == 1.0
    entry = {"name": "sgd", "clipnorm": 1, "global_clipnorm": 2.0}
    assert not schema_accepts(entry)
    path = write_spec(tmp_path, binary_spec(optimizer=entry))
    (problem,) = problems_of(path)
    assert problem.path == "training.optimizer" and problem.where == where_is_optimizer(path)
    assert "sets clipnorm and global_clipnorm, but Keras clips gradients one way" in problem.message


def where_is_optimizer(path: Path) -> str:
    number, line = next((i, line) for i, line in enumerate(path.read_text().splitlines(), 1) if "optimizer:" in line)
    return f"{path}:{number}:{line.index('optimizer') + 1}"
