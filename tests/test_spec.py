"""Spec validation: valid specs resolve with defaults; each mistake is reported at its line with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrun.errors import SpecError
from dlrun.spec.loader import load_spec

from conftest import binary_spec, make_binary_csv, write_spec


def problems_of(path: Path, overrides=None) -> list:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return info.value.problems or [info.value]


def test_valid_spec_fills_defaults_and_absolute_paths(tmp_path):
    spec = load_spec(write_spec(tmp_path, binary_spec(), name="my-exp.yaml"))
    assert spec.name == "my-exp"
    assert spec.seed == 0
    assert spec.data.path == str(tmp_path / "data.csv")
    assert spec.training.optimizer.name == "adam"
    assert spec.training.optimizer.learning_rate == 0.001
    assert spec.model.layers[0].activation == "relu"
    assert spec.model.layers[1].kernel_initializer == "glorot_uniform"


def test_optimizer_object_with_keras_kwargs(tmp_path):
    data = binary_spec(optimizer={"name": "sgd", "momentum": 0.9, "nesterov": True})
    spec = load_spec(write_spec(tmp_path, data))
    assert spec.training.optimizer.kwargs() == {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}


def test_early_stopping_mode_resolved_from_metric(tmp_path):
    data = binary_spec(early_stopping={"monitor": "val_binary_accuracy", "patience": 2})
    assert load_spec(write_spec(tmp_path, data)).training.early_stopping.mode == "max"
    data = binary_spec(early_stopping={})
    assert load_spec(write_spec(tmp_path, data)).training.early_stopping.mode == "min"


def test_all_layer_kinds_accepted(tmp_path):
    data = binary_spec()
    data["model"]["layers"] = [
        {"type": "dense", "units": 4, "kernel_regularizer": {"l2": 0.01}, "use_bias": False},
        {"type": "activation", "activation": "elu"},
        {"type": "dropout", "rate": 0.3},
        {"type": "batch_normalization", "momentum": 0.9, "epsilon": 0.01},
        {"type": "dense", "units": 1, "activation": "sigmoid"},
    ]
    kinds = [layer.type for layer in load_spec(write_spec(tmp_path, data)).model.layers]
    assert kinds == ["dense", "activation", "dropout", "batch_normalization", "dense"]


SPEC_WITH_MISTAKES = """\
data:
  path: data.csv
  target: target
  validation_split: 0.3
model:
  layers:
    - {type: dense, units: 4, activaton: relu}
    - {type: dropout, rate: 1.5}
    - {type: dens, units: 2}
    - {type: dense, units: 0, activation: rellu}
training:
  loss: binary_crosentropy
  epochs: "10"
  early_stoping: {patience: 3}
"""


def test_every_mistake_reported_at_once_with_line_path_and_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC_WITH_MISTAKES)
    found = {p.path: p for p in problems_of(path)}
    assert set(found) == {
        "model.layers[0].activaton",
        "model.layers[1].rate",
        "model.layers[2].type",
        "model.layers[3].units",
        "model.layers[3].activation",
        "training.loss",
        "training.epochs",
        "training.early_stoping",
    }
    assert found["model.layers[0].activaton"].where == f"{path}:7:31"
    assert "did you mean 'activation'?" in found["model.layers[0].activaton"].message
    assert "1.5" in found["model.layers[1].rate"].message and "less than 1" in found["model.layers[1].rate"].message
    assert found["model.layers[1].rate"].source_line == "    - {type: dropout, rate: 1.5}"
    assert "Did you mean 'dense'?" in found["model.layers[2].type"].message
    assert "greater than 0" in found["model.layers[3].units"].message
    assert "Did you mean 'relu'?" in found["model.layers[3].activation"].message
    assert "Did you mean 'binary_crossentropy'?" in found["training.loss"].message
    assert found["training.loss"].where.endswith(":12:3")
    assert "integer" in found["training.epochs"].message and "'10'" in found["training.epochs"].message
    assert "did you mean 'early_stopping'?" in found["training.early_stoping"].message


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"validation_split": None}, "data", ["exactly one", "neither"]),
        ({"validation_path": "v.csv"}, "data", ["exactly one", "both"]),
        ({"scale": "zscore"}, "data.scale", ["'none', 'minmax' or 'standard'"]),
    ],
)
def test_data_section_errors(tmp_path, change, path, words):
    data = binary_spec()
    data["data"].update(change)
    data["data"] = {k: v for k, v in data["data"].items() if v is not None}
    (problem,) = problems_of(write_spec(tmp_path, data))
    assert problem.path == path
    for word in words:
        assert word in problem.message


@pytest.mark.parametrize(
    ("training", "path", "words"),
    [
        ({"optimizer": "adamm"}, "training.optimizer.name", ["Did you mean 'adam'?"]),
        (
            {"optimizer": {"name": "adam", "lr": 0.1}},
            "training.optimizer.lr",
            ["not an argument of optimizer 'adam'", "did you mean 'learning_rate'?"],
        ),
        (
            {"optimizer": {"name": "sgd", "momentum": "high"}},
            "training.optimizer.momentum",
            ["expected a valid number", "received 'high'"],
        ),
        (
            {"optimizer": {"name": "adam", "clipnorm": "abc"}},
            "training.optimizer.clipnorm",
            ["a valid number", "'abc'"],
        ),
        (
            {"optimizer": {"name": "adam", "amsgrad": 1}},
            "training.optimizer.amsgrad",
            ["a valid boolean", "received 1"],
        ),
        ({"metrics": ["binary_acuracy"]}, "training.metrics[0]", ["Did you mean 'binary_accuracy'?"]),
        ({"early_stopping": {"monitor": "val_accuracy"}}, "training", ["will not exist", "val_binary_accuracy"]),
        (
            {"metrics": ["true_positives"], "early_stopping": {"monitor": "val_true_positives"}},
            "training",
            ["set early_stopping.mode to min or max"],
        ),
        ({"batch_size": 0}, "training.batch_size", ["greater than 0"]),
    ],
)
def test_training_section_errors(tmp_path, training, path, words):
    (problem,) = problems_of(write_spec(tmp_path, binary_spec(**training)))
    assert problem.path == path
    for word in words:
        assert word in problem.message


def test_missing_required_key_points_at_its_section(tmp_path):
    data = binary_spec()
    del data["data"]["target"]
    (problem,) = problems_of(write_spec(tmp_path, data))
    assert problem.path == "data.target" and "missing required key 'target'" in problem.message
    assert problem.where.endswith(":1:1")  # the `data:` key that lacks it


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  path: a.csv\n  target: [y\nmodel: {}\n")
    (problem,) = problems_of(path)
    assert "YAML syntax error" in problem.message
    assert problem.where.startswith(f"{path}:")


def test_duplicate_key_is_an_error(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\nseed: 2\n")
    (problem,) = problems_of(path)
    assert problem.where == f"{path}:2:1" and "appears twice" in problem.message


def test_python_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo hi']\n")
    (error,) = problems_of(path)
    assert "Python object" in str(error) and "safely" in str(error)


def test_missing_spec_file(tmp_path):
    (error,) = problems_of(tmp_path / "nope.yaml")
    assert "spec file not found" in str(error)


def test_overrides_of_each_shape(binary_experiment):
    spec = load_spec(
        binary_experiment,
        [
            "training.epochs=5",
            "training.optimizer.learning_rate=0.01",  # the YAML gave no optimizer at all
            "model.layers[0].units=16",
            "data.features=[f0, f1]",
            "training.early_stopping={patience: 2}",
        ],
    )
    assert spec.training.epochs == 5
    assert spec.training.optimizer.name == "adam" and spec.training.optimizer.learning_rate == 0.01
    assert spec.model.layers[0].units == 16
    assert spec.data.features == ["f0", "f1"]
    assert spec.training.early_stopping.patience == 2


def test_override_of_bare_optimizer_name(tmp_path):
    path = write_spec(tmp_path, binary_spec(optimizer="sgd"))
    spec = load_spec(path, ["training.optimizer.learning_rate=0.5"])
    assert (spec.training.optimizer.name, spec.training.optimizer.learning_rate) == ("sgd", 0.5)


def test_a_number_between_dots_indexes_a_list_as_hydra_reads_it(tmp_path):
    path = write_spec(tmp_path, binary_spec())
    spec = load_spec(path, ["model.layers.0.units=7", "training.class_weight.1=5"])
    assert spec.model.layers[0].units == 7  # `layers.0` was "model.layers.0 does not exist (the list has 3 items)"
    assert spec.training.class_weight == {"1": 5.0}  # a mapping's key stays a key
    with pytest.raises(SpecError, match=r"model\.layers\[7\] does not exist"):
        load_spec(path, ["model.layers.7.units=3"])
    searched = load_spec(path, search=["model.layers.0.units=int(2,8)"], check_search=True)
    assert list(searched.search) == ["model.layers.0.units"]
    path = write_spec(tmp_path, binary_spec() | {"search": {"model.layers.0.units": "int(2,8)"}})
    fixed = load_spec(path, ["model.layers[0].units=4"])  # one value for a searched path takes it out
    assert not fixed.search and fixed.model.layers[0].units == 4


def test_override_errors_name_the_override(binary_experiment):
    (problem,) = problems_of(binary_experiment, ["model.layers[1].rate=0.5"])
    assert problem.where == "--set model.layers[1].rate=0.5" and "unknown key 'rate'" in problem.message
    (error,) = problems_of(binary_experiment, ["model.layers[7].units=3"])
    assert "model.layers[7] does not exist" in str(error)
    (error,) = problems_of(binary_experiment, ["training.epochs"])
    assert "PATH=VALUE" in str(error)


def test_exponent_numbers_read_as_numbers_in_files_and_overrides(tmp_path):
    path = tmp_path / "spec.yaml"
    write_spec(tmp_path, binary_spec())
    path.write_text(
        path.read_text().replace("training:\n", "training:\n  optimizer: {name: adam, learning_rate: 1e-3}\n")
    )
    assert load_spec(path).training.optimizer.learning_rate == 0.001
    assert load_spec(path, ["training.optimizer.learning_rate=5e-4"]).training.optimizer.learning_rate == 0.0005


@pytest.mark.parametrize(
    ("units", "loss", "words"),
    [
        (3, "binary_crossentropy", ["has 3 units", "set units: 1", "sparse_categorical_crossentropy"]),
        (2, "mae", ["has 2 units", "set units: 1"]),
        (1, "sparse_categorical_crossentropy", ["needs one output per class"]),
    ],
)
def test_output_width_must_fit_the_loss(tmp_path, units, loss, words):
    data = binary_spec(loss=loss, metrics=[])
    data["model"]["layers"][-1]["units"] = units
    (problem,) = problems_of(write_spec(tmp_path, data))
    for word in words:
        assert word in problem.message


def test_unknown_key_suggestions_inside_named_mappings_and_untyped_layers(tmp_path):
    data = binary_spec()
    data["data"]["columns"] = {"f0": {"kindd": "numeric"}}
    data["model"]["layers"].insert(1, {"units": 3})
    found = {p.path: p for p in problems_of(write_spec(tmp_path, data))}
    assert "did you mean 'kind'? Valid keys here: kind, scale" in found["data.columns.f0.kindd"].message
    assert "missing required key 'type': one of dense, dropout" in found["model.layers[1].type"].message


@pytest.mark.parametrize("seed", [2**32, -1])
def test_a_seed_numpy_and_tensorflow_refuse_is_refused_by_validate_in_one_line(tmp_path, seed):
    from typer.testing import CliRunner

    from dlrun.cli import app

    spec = write_spec(tmp_path, {"seed": seed, **binary_spec()})
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1 and result.stderr == (
        f"error: {spec}:1:1: seed: seed {seed} is out of range: expected a whole number from 0 to 4294967295 "
        f"(2**32 - 1)\n    | seed: {seed}\n"
    )


def test_train_and_resume_of_a_folder_an_older_dlrun_left_with_such_a_seed_are_one_line(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from dlrun.cli import app

    run_dir = tmp_path / "runs" / "spec" / "20260101-000000"  # what train left before the seed was checked
    run_dir.mkdir(parents=True)
    data = {"seed": 2**32, **binary_spec()}
    data["data"]["path"] = str(make_binary_csv(tmp_path / "data.csv"))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (run_dir / "start.json").write_text(json.dumps({"spec": data, "data_sha256": {}, "versions": {}}))
    runner = CliRunner()
    for args in (["train", str(run_dir / "config.yaml")], ["train", "--resume", str(run_dir)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and result.stderr.startswith("error: "), result.output
        assert result.stderr == (
            f"error: {run_dir / 'config.yaml'}:14:1: seed: seed 4294967296 is out of range: expected a whole number "
            "from 0 to 4294967295 (2**32 - 1)\n    | seed: 4294967296\n"
        )


def test_a_spec_that_is_not_utf8_names_its_line_and_column_and_how_to_save_it(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes("name: x\ndata:\n  path: café.csv\n".encode("latin-1"))
    (problem,) = problems_of(path)
    assert problem.render() == (
        f"{path}:3:12: byte 0xe9 is not UTF-8 text: save the spec as UTF-8 (an editor's Save with Encoding; or "
        "iconv -f latin1 -t utf-8)\n    |   path: caf\ufffd.csv"
    )
