"""Schedules, ReduceLROnPlateau, class and sample weights, metrics with arguments, TensorBoard: the spec side.

Each mistake in the new fields is one problem at its key's file:line:col, with the words that fix it;
what dlrun accepts, the JSON Schema accepts, and the resolved spec reads back as the same spec.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from dlrun.errors import SpecError
from dlrun.spec.loader import load_spec
from dlrun.spec.schema import spec_schema

from conftest import binary_spec, write_spec

SCHEMA = spec_schema()
EXPONENTIAL = {"name": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}


def where(path: Path, *keys: str) -> str:
    """Return `file:line:col` of the last of `keys`, each looked for below the one before.

    A key is found as `key:`; `- text` finds a list item that is the bare value `text`.
    """
    lines = path.read_text().splitlines()
    start = 0
    for key in keys:
        for number in range(start, len(lines)):
            text = lines[number]
            if (key.startswith("- ") and text.strip() == key) or (not key.startswith("- ") and f"{key}:" in text):
                start = number
                break
        else:
            raise AssertionError(f"{key} not in {path}")
    text = lines[start]
    column = text.index(keys[-1][2:] if keys[-1].startswith("- ") else keys[-1]) + 1
    return f"{path}:{start + 1}:{column}"


def problems(path: Path, overrides=None) -> list:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return info.value.problems


def schedule(**arguments) -> dict:
    return {"name": "adam", "learning_rate": arguments}


# (training keys, problem path, keys leading to where it points, words of the message)
CASES = {
    "unknown schedule": (
        {"optimizer": schedule(name="exponental_decay", initial_learning_rate=0.1)},
        "training.optimizer.learning_rate.name",
        ("learning_rate", "name"),
        ["unknown learning-rate schedule 'exponental_decay'", "Did you mean 'exponential_decay'?"],
    ),
    "schedule without name": (
        {"optimizer": schedule(decay_steps=10)},
        "training.optimizer.learning_rate.name",
        ("learning_rate",),
        ["missing required key 'name': one of cosine_decay, cosine_decay_restarts, exponential_decay"],
    ),
    "schedule without a required argument": (
        {"optimizer": schedule(name="exponential_decay", initial_learning_rate=0.1, decay_steps=10)},
        "training.optimizer.learning_rate.decay_rate",
        ("learning_rate",),
        ["missing required key 'decay_rate'"],
    ),
    "argument of another schedule": (
        {"optimizer": schedule(name="cosine_decay", initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)},
        "training.optimizer.learning_rate.decay_rate",
        ("learning_rate", "decay_rate"),
        ["not an argument of learning-rate schedule 'cosine_decay'", "decay_steps"],
    ),
    "zero decay steps": (
        {"optimizer": schedule(**{**EXPONENTIAL, "decay_steps": 0})},
        "training.optimizer.learning_rate.decay_steps",
        ("learning_rate", "decay_steps"),
        ["greater than 0", "received 0"],
    ),
    "fraction of a step": (
        {"optimizer": schedule(**{**EXPONENTIAL, "decay_steps": 2.5})},
        "training.optimizer.learning_rate.decay_steps",
        ("learning_rate", "decay_steps"),
        ["integer", "2.5"],
    ),
    "staircase not a bool": (
        {"optimizer": schedule(**{**EXPONENTIAL, "staircase": 3})},
        "training.optimizer.learning_rate.staircase",
        ("learning_rate", "staircase"),
        ["boolean", "received 3"],
    ),
    "learning rate as text": (
        {"optimizer": {"name": "sgd", "learning_rate": "fast"}},
        "training.optimizer.learning_rate",
        ("optimizer", "learning_rate"),
        ["expected a valid number", "'fast'"],
    ),
    "piecewise lengths": (
        {"optimizer": schedule(name="piecewise_constant", boundaries=[10], values=[0.1, 0.01, 0.001])},
        "training.optimizer.learning_rate",
        ("optimizer", "learning_rate"),
        ["1 boundaries and 3 values", "one value more than boundaries"],
    ),
    "piecewise order": (
        {"optimizer": schedule(name="piecewise_constant", boundaries=[10, 5], values=[0.1, 0.01, 0.001])},
        "training.optimizer.learning_rate",
        ("optimizer", "learning_rate"),
        ["boundaries [10, 5] must increase"],
    ),
    "warmup without target": (
        {"optimizer": schedule(name="cosine_decay", initial_learning_rate=0.1, decay_steps=10, warmup_steps=5)},
        "training.optimizer.learning_rate",
        ("optimizer", "learning_rate"),
        ["warmup_steps without warmup_target", "give warmup_target"],
    ),
    "warmup target without steps": (
        {"optimizer": schedule(name="cosine_decay", initial_learning_rate=0.01, decay_steps=10, warmup_target=0.1)},
        "training.optimizer.learning_rate",
        ("optimizer", "learning_rate"),
        ["warmup_target without warmup_steps", "give warmup_steps"],
    ),
    "plateau with a schedule": (
        {"optimizer": schedule(**EXPONENTIAL), "reduce_lr_on_plateau": {"patience": 2}},
        "training",
        ("training",),
        ["reduce_lr_on_plateau cannot lower a scheduled learning rate", "exponential_decay", "as a number"],
    ),
    "plateau factor": (
        {"reduce_lr_on_plateau": {"factor": 2}},
        "training.reduce_lr_on_plateau.factor",
        ("reduce_lr_on_plateau", "factor"),
        ["less than 1", "received 2"],
    ),
    "plateau monitor": (
        {"reduce_lr_on_plateau": {"monitor": "val_acuracy"}},
        "training",
        ("training",),
        ["reduce_lr_on_plateau.monitor 'val_acuracy' will not exist", "val_binary_accuracy"],
    ),
    "plateau mode": (
        {"metrics": ["true_positives"], "reduce_lr_on_plateau": {"monitor": "val_true_positives"}},
        "training",
        ("training",),
        ["set reduce_lr_on_plateau.mode to min or max"],
    ),
    "plateau unknown key": (
        {"reduce_lr_on_plateau": {"lr": 0.1}},
        "training.reduce_lr_on_plateau.lr",
        ("reduce_lr_on_plateau", "lr"),
        ["unknown key 'lr'", "min_lr"],
    ),
    "class weight word": (
        {"class_weight": "balance"},
        "training.class_weight",
        ("class_weight",),
        ["class_weight 'balance' is not known", "expected balanced, or a mapping of class label to weight"],
    ),
    "negative class weight": (
        {"class_weight": {0: 1, 1: -2}},
        "training.class_weight.1",
        ("class_weight", "1"),
        ["greater than or equal to 0", "-2"],
    ),
    "empty class weights": (
        {"class_weight": {}},
        "training.class_weight",
        ("class_weight",),
        ["at least 1 item"],
    ),
    "class weight for numbers": (
        {"class_weight": "balanced", "loss": "mse", "metrics": []},
        "training",
        ("training",),
        ["loss 'mse' predicts numbers", "data.weight_column weighs rows"],
    ),
    "unknown metric in a mapping": (
        {"metrics": [{"name": "aucc", "curve": "PR"}]},
        "training.metrics[0].name",
        ("metrics", "name"),
        ["unknown metric 'aucc'. Did you mean 'auc'?"],
    ),
    "metric without name": (
        {"metrics": [{"curve": "PR"}]},
        "training.metrics[0].name",
        ("metrics", "curve"),
        ["missing required key 'name': the metric's Keras name"],
    ),
    "argument of another metric": (
        {"metrics": [{"name": "auc", "threshold": 0.3}]},
        "training.metrics[0].threshold",
        ("metrics", "threshold"),
        ["not an argument of metric 'auc'", "did you mean 'thresholds'?"],
    ),
    "metric choice": (
        {"metrics": [{"name": "auc", "curve": "pr"}]},
        "training.metrics[0].curve",
        ("metrics", "curve"),
        ["expected 'ROC' or 'PR'", "'pr'"],
    ),
    "metric range": (
        {"metrics": [{"name": "auc", "num_thresholds": 1}]},
        "training.metrics[0].num_thresholds",
        ("metrics", "num_thresholds"),
        ["greater than 1"],
    ),
    "threshold list": (
        {"metrics": [{"name": "precision", "thresholds": [0.3, 0.5]}]},
        "training.metrics[0].thresholds",
        ("metrics", "thresholds"),
        ["expected a valid number"],
    ),
    "threshold range": (
        {"metrics": [{"name": "precision", "thresholds": 1.5}]},
        "training.metrics[0].thresholds",
        ("metrics", "thresholds"),
        ["less than or equal to 1", "1.5"],
    ),
    "two columns alike": (
        {"metrics": ["auc", {"name": "auc", "column": "auc"}]},
        "training.metrics",
        ("metrics",),
        ["metrics[0] and metrics[1] both log as 'auc'", "column:"],
    ),
    "column with val_": (
        {"metrics": [{"name": "auc", "column": "val_auc"}]},
        "training.metrics[0]",
        ("metrics", "name"),
        ["column 'val_auc' cannot name a metric", "not starting with val_"],
    ),
    "num_labels alone": (
        {"metrics": [{"name": "auc", "num_labels": 2}]},
        "training.metrics[0]",
        ("metrics", "name"),
        ["num_labels", "multi_label: true"],
    ),
    "class-id metric on one output": (
        {"metrics": ["sparse_categorical_accuracy"]},
        "training",
        ("training",),
        ["reads class ids against one output per class", "use binary_accuracy, auc"],
    ),
    "one-hot metric": (
        {"metrics": ["categorical_accuracy"]},
        "training",
        ("training",),
        ["reads one-hot targets"],
    ),
    "early stopping on a renamed metric": (
        {"metrics": [{"name": "auc", "curve": "PR"}], "early_stopping": {"monitor": "val_auc"}},
        "training",
        ("training",),
        ["'val_auc' will not exist", "did you mean 'val_auc_pr'?", "loss, auc_pr, val_loss, val_auc_pr"],
    ),
    "tensorboard word": (
        {"tensorboard": "yes"},
        "training.tensorboard",
        ("tensorboard",),
        ["expected true, false, or a mapping", "'yes'"],
    ),
    "tensorboard update_freq": (
        {"tensorboard": {"update_freq": "epochs"}},
        "training.tensorboard.update_freq",
        ("tensorboard", "update_freq"),
        ["expected 'epoch' or 'batch'", "'epochs'"],
    ),
    "tensorboard profile range": (
        {"tensorboard": {"profile_batch": [5, 2]}},
        "training.tensorboard.profile_batch",
        ("tensorboard", "profile_batch"),
        ["ends before it starts"],
    ),
    "tensorboard log_dir": (
        {"tensorboard": {"log_dir": "logs"}},
        "training.tensorboard.log_dir",
        ("tensorboard", "log_dir"),
        ["unknown key 'log_dir'", "histogram_freq"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_mistake_is_one_problem_at_its_place(tmp_path, case):
    training, path, keys, words = CASES[case]
    spec = write_spec(tmp_path, binary_spec(**training))
    (problem,) = problems(spec)
    assert problem.path == path
    assert problem.where == where(spec, *keys)
    for word in words:
        assert word in problem.message, problem.message
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(binary_spec(**training)) or case in SPEC_ONLY


# Checks that need more than one field at once, or the loss, are dlrun's alone: the schema sees fields.
SPEC_ONLY = {
    "piecewise lengths",
    "piecewise order",
    "warmup without target",
    "warmup target without steps",
    "plateau with a schedule",
    "plateau monitor",
    "plateau mode",
    "class weight for numbers",
    "two columns alike",
    "column with val_",
    "num_labels alone",
    "class-id metric on one output",
    "one-hot metric",
    "early stopping on a renamed metric",
    "tensorboard profile range",
}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"weight_column": "target"}, ["'target' is the target"]),
        ({"weight_column": "f0", "features": ["f0", "f1"]}, ["is listed in data.features"]),
        ({"weight_column": "f0", "drop": ["f0"]}, ["is listed in data.drop"]),
        ({"weight_column": "f0", "columns": {"f0": {"scale": "minmax"}}}, ["has settings in data.columns"]),
    ],
)
def test_weight_column_is_neither_target_nor_feature(tmp_path, data, words):
    spec_data = binary_spec()
    spec_data["data"].update(data)
    spec = write_spec(tmp_path, spec_data)
    (problem,) = problems(spec)
    assert problem.path == "data" and problem.where == where(spec, "data")
    for word in words:
        assert word in problem.message


def test_an_override_error_names_the_override(tmp_path):
    spec = write_spec(tmp_path, binary_spec(optimizer=schedule(**EXPONENTIAL)))
    (problem,) = problems(spec, ["training.optimizer.learning_rate.decay_steps=0"])
    assert problem.where == "--set training.optimizer.learning_rate.decay_steps=0"
    (problem,) = problems(spec, ["training.metrics=[{name: auc, curv: PR}]"])
    assert problem.where == "--set training.metrics=[{name: auc, curv: PR}]" and "did you mean 'curve'" in (
        problem.message
    )


def test_every_option_resolves_and_round_trips(tmp_path):
    training = {
        "optimizer": {"name": "sgd", "learning_rate": {**EXPONENTIAL, "staircase": True}},
        "metrics": [
            "binary_accuracy",
            {"name": "auc", "curve": "PR"},
            {"name": "precision", "thresholds": 0.3},
            {"name": "recall", "top_k": 1},
            "f1_score",
            {"name": "auc", "thresholds": [0.2, 0.8], "column": "auc_coarse"},
        ],
        "early_stopping": {"monitor": "val_auc_pr"},
        "class_weight": {0: 1, "1": 4.5},
        "tensorboard": True,
    }
    data = binary_spec(**training)
    data["data"]["weight_column"] = "f3"
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(data)
    spec = load_spec(write_spec(tmp_path, data))
    columns = [metric.column_name for metric in spec.training.metrics]
    assert columns == ["binary_accuracy", "auc_pr", "precision_at_0.3", "recall_top_1", "f1_score", "auc_coarse"]
    assert spec.training.early_stopping.mode == "max"  # Keras's AUC goes up
    assert spec.training.class_weight == {"0": 1.0, "1": 4.5}  # labels as text, as the CSV's are compared
    assert spec.training.tensorboard.update_freq == "epoch"
    assert spec.training.optimizer.schedule.kwargs() == {
        "initial_learning_rate": 0.1,
        "decay_steps": 10,
        "decay_rate": 0.5,
        "staircase": True,
    }
    resolved = spec.resolved()
    assert resolved["training"]["metrics"][0] == "binary_accuracy"  # a bare name stays a name
    assert resolved["training"]["metrics"][1] == {"name": "auc", "curve": "PR"}
    jsonschema.validate(resolved, SCHEMA)
    again = tmp_path / "again"
    again.mkdir()
    (again / "spec.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    assert load_spec(again / "spec.yaml").training == spec.training


def test_tensorboard_true_false_and_default():
    from dlrun.spec.models import TrainingSpec

    base = {"loss": "mse", "epochs": 1}
    assert TrainingSpec.model_validate(base).tensorboard is None
    assert TrainingSpec.model_validate({**base, "tensorboard": False}).tensorboard is None
    assert TrainingSpec.model_validate({**base, "tensorboard": True}).tensorboard.histogram_freq == 0
    board = TrainingSpec.model_validate({**base, "tensorboard": {"update_freq": 5, "profile_batch": [2, 4]}})
    assert (board.tensorboard.update_freq, board.tensorboard.profile_batch) == (5, [2, 4])
