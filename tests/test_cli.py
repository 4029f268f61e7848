"""The command line through typer's CliRunner: exit codes, and the words a user must see."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app

from conftest import binary_spec, make_binary_csv, write_spec

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_train_writes_a_run_and_prints_the_table(binary_experiment, tmp_path):
    result = invoke("train", binary_experiment, "--out", tmp_path / "out", "--set", "training.epochs=2")
    assert result.exit_code == 0, result.output
    assert "epoch 2/2  loss " in result.output  # progress lines: CliRunner's output is not a terminal
    (run_dir,) = (tmp_path / "out" / "spec").iterdir()
    assert str(run_dir) in result.output.replace("\n", "")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == 2
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "Status completed after 2 of 2 epochs" in lines
    best = summary["best_epoch"]
    assert f"Best epoch {best}: val_loss {summary['best_value']:.6g}, the minimum validation loss" in lines
    assert f"binary_accuracy {summary['best']['binary_accuracy']:.6g}" in lines


def test_train_quiet_has_no_progress_bar(binary_experiment, tmp_path):
    result = invoke("train", binary_experiment, "--quiet", "--set", "training.epochs=1")
    assert result.exit_code == 0 and "━" not in result.output


def test_validate_prints_layers_and_parameter_counts(binary_experiment):
    result = invoke("validate", binary_experiment)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert "4 input columns" in result.output
    assert ["│", "0", "│", "dense", "│", "8", "units,", "relu", "│", "8", "│", "40", "│"] in lines  # 4*8+8
    assert ["│", "1", "│", "dense", "│", "1", "unit,", "sigmoid", "│", "1", "│", "9", "│"] in lines  # 8*1+1
    assert "Total params: 49" in result.output


def test_plot_command(binary_experiment, tmp_path):
    assert invoke("train", binary_experiment, "-q", "--set", "training.epochs=2").exit_code == 0
    result = invoke("plot", tmp_path / "runs", "--metrics", "loss,val_loss", "--out", tmp_path / "curves.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").stat().st_size > 1000


def spec_with(tmp_path, rows=None, **changes):
    """Write a binary spec (and its CSV, from `rows` when given), with dotted-key changes applied."""
    if rows is None:
        make_binary_csv(tmp_path / "data.csv")
    else:
        rows.to_csv(tmp_path / "data.csv", index=False)
    data = binary_spec()
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return write_spec(tmp_path, data)


def failing(*args) -> str:
    result = invoke(*args)
    assert result.exit_code != 0
    assert result.output.startswith("error:"), result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("command", ["train", "validate"])
def test_missing_spec_file(command, tmp_path):
    assert "spec file not found" in failing(command, tmp_path / "missing.yaml")


@pytest.mark.parametrize("command", ["train", "validate"])
def test_missing_csv(command, tmp_path):
    path = spec_with(tmp_path, data__path="nowhere.csv")
    assert "data file not found" in failing(command, path) and "nowhere.csv" in failing(command, path)


def test_yaml_syntax_error_names_its_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("data:\n  path: [a\n")
    message = failing("validate", path)
    assert "YAML syntax error" in message and f"{path}:" in message


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"data__targt": "target"}, ["unknown key 'targt'", "did you mean 'target'?", "data.targt"]),
        ({"training__epochs": "ten"}, ["training.epochs", "integer", "'ten'"]),
        ({"training__loss": "binary_crosentropy"}, ["Did you mean 'binary_crossentropy'?"]),
        ({"training__optimizer": "adamm"}, ["unknown optimizer 'adamm'"]),
        ({"training__metrics": ["acuracy"]}, ["unknown metric 'acuracy'"]),
        ({"training__early_stopping": {"monitor": "val_auc"}}, ["'val_auc' will not exist"]),
        ({"data__validation_split": None}, ["exactly one of validation_split", "neither"]),
        ({"data__validation_path": "v.csv"}, ["exactly one of validation_split", "both"]),
    ],
)
def test_spec_mistakes(tmp_path, changes, words):
    message = failing("validate", spec_with(tmp_path, **changes))
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("layer", "words"),
    [
        ({"type": "dense", "units": 0}, ["model.layers[0].units", "greater than 0"]),
        ({"type": "dropout", "rate": 1.0}, ["model.layers[0].rate", "less than 1"]),
        ({"type": "dropout", "rate": -0.1}, ["model.layers[0].rate", "greater than or equal to 0"]),
        ({"type": "dense", "units": 2, "activation": "rellu"}, ["unknown activation 'rellu'", "'relu'"]),
    ],
)
def test_layer_mistakes(tmp_path, layer, words):
    make_binary_csv(tmp_path / "data.csv")
    data = binary_spec()
    data["model"]["layers"][0] = layer
    message = failing("validate", write_spec(tmp_path, data))
    for word in words:
        assert word in message


@pytest.mark.parametrize("command", ["train", "validate"])
def test_column_not_in_csv_lists_the_columns(command, tmp_path):
    message = failing(command, spec_with(tmp_path, data__target="label"))
    assert "'label' is not in" in message and "f0, f1, f2, f3, target" in message
    message = failing(command, spec_with(tmp_path, data__features=["f0", "f9"]))
    assert "data.features: 'f9' not in" in message


def test_non_numeric_feature_is_named_with_the_fix(tmp_path):
    rows = pd.DataFrame({"f0": [1.0, 2.0, 3.0, 4.0], "city": ["a", "b", "c", "d"], "target": [0, 1, 0, 1]})
    message = failing("train", spec_with(tmp_path, rows=rows))
    assert (
        "feature column in" in message
        and "'city': looks like an id or names" in message
        and "data.drop: [city]" in message
    )


def test_nan_values_are_named_with_the_fix(tmp_path):
    rows = pd.DataFrame({"f0": [1.0, None, 3.0, 4.0], "f1": [1, 2, 3, 4], "target": [0, 1, 0, 1]})
    message = failing("train", spec_with(tmp_path, rows=rows))
    assert "missing (NaN) values" in message and "'f0' (1 rows)" in message and "data.drop" in message


def test_empty_csv(tmp_path):
    path = spec_with(tmp_path)
    (tmp_path / "data.csv").write_text("")
    assert "is empty" in failing("train", path)
    (tmp_path / "data.csv").write_text("f0,f1,target\n")
    assert "no rows" in failing("train", path)


def test_nan_loss_exits_non_zero_and_says_so(tmp_path):
    path = spec_with(tmp_path, training__optimizer={"name": "sgd", "learning_rate": 1e15}, training__epochs=30)
    message = failing("train", path, "-q")
    assert "the loss became NaN" in message and "history" in message


def test_cli_does_not_import_tensorflow_for_help_or_validate(binary_experiment):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom dlrun.cli import app\n"
        f"r = CliRunner().invoke(app, ['validate', {str(binary_experiment)!r}])\nassert r.exit_code == 0, r.output\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'matplotlib', 'pandas'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "dlrun", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout


def test_validate_of_a_folder_says_to_give_a_spec(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.yaml").write_text("name: a\n")
    message = failing("validate", tmp_path / "configs")
    assert "is a folder, not a spec file" in message and "a.yaml" in message and "Errno" not in message


def test_train_on_a_csv_points_to_init(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    message = failing("train", tmp_path / "data.csv")
    assert "must be a mapping" in message and f"dlrun init {tmp_path / 'data.csv'} --target COLUMN" in message


def test_validate_counts_one_output_in_the_singular(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    result = invoke("validate", write_spec(tmp_path, binary_spec()))
    assert "4 input columns -> 1 output" in result.output and "1 outputs" not in result.output


def test_end_of_run_table_breaks_between_phrases_at_80_columns(monkeypatch, capsys):
    from pathlib import Path

    from dlrun.cli.train import show_summary

    monkeypatch.setenv("COLUMNS", "80")
    summary = {
        "status": "early-stopped",
        "epochs_run": 8,
        "epochs": 1000,
        "monitor": "val_loss",
        "best_epoch": 3,
        "best_value": 0.0671862,
        "model_epoch": 8,
        "min_val_loss_epoch": 4,
        "min_val_loss": 0.0621546,
        "min_delta": 0.001,
        "best": {"loss": 0.07, "val_loss": 0.0671862, "binary_accuracy": 0.98, "val_binary_accuracy": 0.97},
        "test": {"loss": 0.26, "binary_accuracy": 0.96},
        "rows": {"test": 57},
        "wall_time_s": 3.2,
    }
    show_summary(Path("runs/x/20240101-120000"), summary)
    output = capsys.readouterr().out
    assert max(len(line) for line in output.splitlines()) <= 80
    lines = [" ".join(line.split()) for line in output.splitlines()]
    for phrase in (
        "model.keras holds epoch 8, the last",
        "(restore_best_weights keeps the best)",
        "Lowest val_loss 0.0621546 at epoch 4; it improved on epoch 3",
        "by less than min_delta 0.001: not counted as better",
        "Test (57 rows)",
    ):
        assert phrase in lines, output


def test_validate_says_when_one_hot_columns_widen_the_input(tmp_path):
    rows = pd.DataFrame(
        {"f0": [1.0, 2.0, 3.0, 4.0], "city": ["a", "b", "c", "a"], "code": [1, 2, 1, 2], "target": [0, 1, 0, 1]}
    )
    path = spec_with(tmp_path, rows=rows, data__columns={"code": {"kind": "categorical"}})
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "note: city, code are categorical" in output and "Total params: at least" in output


def constant_experiment(tmp_path):
    """The issue's cars: a Year column dated Jan 1 only, a constant number, and 5 rows with an empty target."""
    make_binary_csv(tmp_path / "data.csv", rows=80)
    frame = pd.read_csv(tmp_path / "data.csv")
    frame["Year"] = [f"{1970 + i % 12}-01-01" for i in range(len(frame))]
    frame["cylinders"] = 4
    frame["target"] = frame["target"].astype(float)
    frame.loc[[1, 2, 3, 40, 41], "target"] = None
    frame.to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, binary_spec(epochs=1))


CONSTANT_WARNINGS = [
    "warning: date column 'Year' has the same parts in every training row (month 1, day 1, day_of_year 1): "
    "those inputs teach the model nothing; keep the others with data.columns.Year.date_parts: [year, day_of_week]",
    "warning: column 'cylinders' is 4 in every training row: it teaches the model nothing; leave it out with "
    "data.drop: [cylinders]",
]


def test_check_says_which_rows_were_left_out_and_warns_of_constant_inputs(tmp_path):
    result = runner.invoke(app, ["check", str(constant_experiment(tmp_path))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Rows: train 55, validation 20; left out: 5 rows with an empty target 'target'" in result.stdout.splitlines()
    assert [line for line in result.stderr.splitlines() if "teach" in line] == CONSTANT_WARNINGS


def test_train_warns_of_constant_inputs_after_its_table(tmp_path):
    result = runner.invoke(app, ["train", str(constant_experiment(tmp_path)), "-q"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == CONSTANT_WARNINGS
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data_warnings"] == [line.removeprefix("warning: ") for line in CONSTANT_WARNINGS]


def test_validate_warns_when_a_classification_loss_meets_a_target_of_many_numbers(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    frame = pd.read_csv(tmp_path / "data.csv")
    frame["target"] = [14.5 + (i % 25) for i in range(len(frame))]  # Miles_per_Gallon-like: 25 distinct numbers
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path, binary_spec()))])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: data.target: column 'target' holds 25 distinct numbers in its first rows (14.5, 15.5, 16.5, 17.5, "
        "18.5, 19.5, 20.5, 21.5, 22.5, 23.5, ...): a number to predict, but loss 'binary_crossentropy' is for "
        "classes; use loss: mae (or mse) with a one-unit linear output layer\n"
    )
    make_binary_csv(tmp_path / "data.csv", rows=40)  # 0/1 labels: nothing to say
    binary = runner.invoke(app, ["validate", str(write_spec(tmp_path, binary_spec(), "ok.yaml"))])
    assert binary.exit_code == 0 and binary.stderr == ""
