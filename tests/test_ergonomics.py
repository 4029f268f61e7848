"""Spec ergonomics: config show, the JSON schema, check, multi-class, and a fast CLI start (`init`: test_init.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dlrun.check import likely_mistakes
from dlrun.cli import app
from dlrun.spec.loader import load_spec
from dlrun.spec.schema import spec_schema

from conftest import CONFIGS, binary_spec, make_binary_csv, make_regression_csv, write_spec

runner = CliRunner()
SCHEMA_FILE = CONFIGS / "dlrun.schema.json"


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_config_show_round_trips(binary_experiment, tmp_path):
    result = invoke("config", "show", binary_experiment, "--set", "training.optimizer.learning_rate=0.01")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["training"]["optimizer"] == {"name": "adam", "learning_rate": 0.01}
    assert shown["training"]["batch_size"] == 32 and shown["name"] == "spec"  # defaults filled in
    elsewhere = tmp_path / "sub" / "shown.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(result.output)
    assert load_spec(elsewhere) == load_spec(binary_experiment, ["training.optimizer.learning_rate=0.01"])


def test_committed_schema_is_current():
    assert json.loads(SCHEMA_FILE.read_text()) == spec_schema(), "run: dlrun schema --out configs/dlrun.schema.json"


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_config_validates_against_the_schema_and_points_at_it(config):
    text = config.read_text()
    assert "# yaml-language-server: $schema=dlrun.schema.json" in text
    jsonschema.validate(yaml.safe_load(text), spec_schema())


def test_schema_rejects_what_dlrun_rejects():
    data = binary_spec()
    data["model"]["layers"][0]["activation"] = "rellu"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, spec_schema())
    data = binary_spec(optimizer="sgd")
    jsonschema.validate(data, spec_schema())  # a bare optimizer name is fine
    data["training"]["optimizer"] = {"name": "sgd", "momentun": 0.9}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, spec_schema())


def test_schema_command_writes_the_file(tmp_path):
    result = invoke("schema", "--out", tmp_path / "s.json")
    assert result.exit_code == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    assert schema["$defs"]["DropoutLayer"]["properties"]["rate"]["description"].startswith("Fraction")


def test_check_builds_the_model_and_counts_rows_and_classes(binary_experiment):
    result = invoke("check", binary_experiment)
    assert result.exit_code == 0, result.output
    assert "Total params: 49" in result.output
    assert "Rows: train 90, validation 30" in result.output
    assert "Training classes:" in result.output and "No likely mistakes" in result.output


def test_check_warnings(tmp_path):
    make_regression_csv(tmp_path / "data.csv")
    data = {
        "data": {"path": "data.csv", "target": "y", "validation_split": 0.25},
        "model": {"layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}]},
        "training": {"loss": "mae", "epochs": 1},
    }
    result = invoke("check", write_spec(tmp_path, data))
    assert result.exit_code == 0 and "warning: the output layer is sigmoid" in result.output

    spec = load_spec(write_spec(tmp_path, binary_spec()))
    assert any("expects targets 0 and 1" in w for w in likely_mistakes(spec, np.array([0.0, 2.0, 5.0]), None))


def test_multiclass_width_mismatch_is_the_same_error_in_check_and_train(tmp_path):
    frame = pd.read_csv(CONFIGS / "data" / "wine.csv")
    frame.to_csv(tmp_path / "wine.csv", index=False)
    data = {
        "data": {"path": "wine.csv", "target": "cultivar", "validation_split": 0.3, "scale": "standard"},
        "model": {"layers": [{"type": "dense", "units": 4, "activation": "softmax"}]},
        "training": {"loss": "sparse_categorical_crossentropy", "epochs": 1},
    }
    path = write_spec(tmp_path, data)
    trained, checked = invoke("train", path, "-q"), invoke("check", path)
    assert trained.exit_code == checked.exit_code == 1
    assert trained.output == checked.output  # one rule (dlrun.model.check_output_width), one message
    message = " ".join(trained.output.split())
    assert message.startswith("error: model.layers: the last dense layer has 4 units but target 'cultivar' has 3")
    assert "set its units to 3 with activation: softmax" in message
    assert not (tmp_path / "runs").exists()


STARTUP = """
import sys
from typer.testing import CliRunner
from dlrun.cli import app
for args in {commands!r}:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'tensorflow', 'keras', 'matplotlib', 'pandas', 'numpy'}}))
"""


def test_light_commands_never_import_tensorflow_keras_or_matplotlib(binary_experiment, tmp_path):
    make_binary_csv(tmp_path / "other.csv")
    commands = [
        ["--help"],
        ["validate", str(binary_experiment)],
        ["config", "show", str(binary_experiment)],
        ["schema"],
        ["init", str(tmp_path / "other.csv"), "--target", "target", "--out", str(tmp_path / "o.yaml")],
    ]
    # init reads its CSV with the standard library: not even pandas
    code = STARTUP.format(commands=commands)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
