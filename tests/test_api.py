"""dlrun from Python: `import dlrun` stays light, and the API trains, reads and resumes runs as the CLI does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import dlrun
from dlrun.cli import app
from dlrun.data import frames
from dlrun.errors import DataError, DlrunError, SpecError

from conftest import binary_spec, make_binary_csv, write_spec


def test_import_dlrun_imports_neither_tensorflow_nor_pandas():
    code = (
        "import sys, dlrun; dlrun.load_spec, dlrun.train, dlrun.Run, dlrun.runs; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'pandas', 'matplotlib', 'optuna') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout == "[]\n"


def test_a_spec_is_a_path_a_mapping_or_yaml_text(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    data = binary_spec(epochs=2)
    path = write_spec(tmp_path, data)
    from_file = dlrun.load_spec(path, ["training.epochs=4"])
    from_dict = dlrun.load_spec(data, ["training.epochs=4"])
    from_text = dlrun.load_spec(path.read_text(), ["training.epochs=4"])
    assert from_file.training.epochs == from_dict.training.epochs == from_text.training.epochs == 4
    assert from_file.data.path == from_dict.data.path == from_text.data.path == str(tmp_path / "data.csv")
    assert (from_file.name, from_dict.name, from_text.name) == ("spec", "spec", "spec")
    assert dlrun.load_spec(from_dict).model_dump() == from_dict.model_dump()
    with pytest.raises(SpecError) as caught:
        dlrun.load_spec({**data, "training": {**data["training"], "epoch": 3}})
    assert str(caught.value) == (
        "spec:20:3: training.epoch: unknown key 'epoch'; did you mean 'epochs'? Valid keys here: optimizer, loss, "
        "metrics, batch_size, epochs, shuffle, early_stopping, reduce_lr_on_plateau, class_weight, tensorboard, "
        "loop, distribute, devices, mixed_precision\n    |   epoch: 3"
    )  # the problem, then the line of the YAML text it is on


def test_a_dataframe_trains_the_run_its_csv_trains_and_the_run_reads_back(tmp_path):
    # ~15 s (more on a busy machine): two trainings of 2 epochs, compared value for value, then one Run read
    csv = make_binary_csv(tmp_path / "data.csv", rows=160)
    frame = pd.read_csv(csv)
    spec = binary_spec(epochs=2)
    from_csv = dlrun.train(spec, out="runs", quiet=True)
    from_frame = dlrun.train(spec, data=frame, out="runs", quiet=True)
    pd.testing.assert_frame_equal(from_csv.history, from_frame.history)  # value for value
    sha = frames.frame_sha256(frame)
    assert from_frame.spec.data.path == f"dataframe:{sha}"
    assert from_frame.summary.data_sha256 == {f"dataframe:{sha}": sha}
    assert from_frame.summary.raw["dataframes"] == {
        f"dataframe:{sha}": {"rows": 160, "columns": ["f0", "f1", "f2", "f3", "target"], "sha256": sha}
    }
    assert from_csv.summary.raw["dataframes"] is None
    assert from_frame.summary.rows == from_csv.summary.rows == {"train": 120, "validation": 40}
    assert from_frame.summary.status == "completed" and from_frame.summary.epochs_run == 2
    assert from_frame.best.monitor == "val_loss"
    assert from_frame.best.value == from_frame.history["val_loss"][from_frame.best.epoch - 1]
    predicted = from_frame.predict(frame.head(5))
    assert list(predicted.columns) == [*frame.columns, "probability", "prediction"] and len(predicted) == 5
    np.testing.assert_allclose(predicted["probability"], from_csv.predict(csv).head(5)["probability"], atol=1e-6)
    assert set(from_frame.evaluate(frame)) == {"loss", "binary_accuracy"}
    assert from_frame.plot().axes[0].get_ylabel() == "loss (binary_crossentropy)"
    table = dlrun.compare(dlrun.runs("runs"))
    assert list(table["run_dir"]) == [str(from_csv.dir.resolve()), str(from_frame.dir.resolve())]
    assert list(table["data.path"]) == [str(csv), f"dataframe:{sha}"]
    assert "<th style='text-align:left'>status</th><td style='text-align:left'>completed after 2 of 2 epochs" in (
        from_frame._repr_html_()
    )
    loaded = dlrun.load_run(from_frame.dir)
    assert loaded.summary == from_frame.summary and loaded.diagnose().fit == from_frame.diagnose().fit


def test_an_interrupt_stops_at_the_epoch_end_and_resume_needs_the_same_frame(tmp_path, monkeypatch):
    # ~15 s: one training interrupted after its first epoch, then resumed to its third
    import keras

    frame = pd.read_csv(make_binary_csv(tmp_path / "data.csv", rows=120))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 0:
                signal.raise_signal(signal.SIGINT)  # as a notebook's interrupt: dlrun's handler stops at the epoch end

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = dlrun.train(binary_spec(epochs=3), data=frame, quiet=True, checkpoint_every=0, callbacks=[Interrupt()])
    assert run.summary.status == "interrupted" and len(run.history) == 1
    assert [str(w.message) for w in caught if w.category is UserWarning] == [
        f"interrupted after 1 finished epochs, kept in {run.dir}; continue it with: dlrun train --resume {run.dir}"
    ]
    other = frame.assign(f0=frame["f0"] * 2)
    with pytest.raises(DataError) as refused:
        dlrun.resume(run.dir, data=other)
    assert str(refused.value) == (
        f"cannot resume {run.dir}: it started with data dataframe:{frames.frame_sha256(frame)[:20]}..., not the data "
        f"given (dataframe:{frames.frame_sha256(other)[:20]}...; the sha256 of their content differs); pass the "
        "frame it started with"
    )
    monkeypatch.setattr(frames, "_frames", {})  # a new process: the CLI cannot give the frame again
    result = CliRunner().invoke(app, ["train", "--resume", str(run.dir)])
    assert result.exit_code == 1 and result.stderr == (
        f"error: cannot resume {run.dir}: it trained on a DataFrame (dataframe:{frames.frame_sha256(frame)[:20]}...), "
        f"which only Python can give again: dlrun.resume({str(run.dir)!r}, data=frame) with the frame it started "
        "with\n"
    )
    resumed = dlrun.resume(run.dir, data=frame, quiet=True)
    assert resumed.summary.status == "completed" and list(resumed.history["epoch"]) == [1, 2, 3]
    assert json.loads((run.dir / "summary.json").read_text())["epochs_run"] == 3


class InProcess:
    """An executor that trains each point or trial in this process with the work it is given (one TensorFlow)."""

    def __init__(self):
        from dlrun.search.executors import run_point

        self.work = run_point

    def run(self, tasks, on_start):
        queue = iter(tasks) if isinstance(tasks, list) else iter(tasks, None)  # a sweep's list, a tune's function
        for task in queue:
            on_start(task[0])
            yield self.work(*task, 1)


def test_sweep_and_tune_return_their_results_and_the_optuna_study(tmp_path, monkeypatch):
    # ~30 s: two sweep points and two trials of one epoch, trained in this process (no worker's TensorFlow start)
    import optuna

    monkeypatch.setattr("dlrun.search.sweep.make_executor", lambda *args: InProcess())
    make_binary_csv(tmp_path / "data.csv", rows=80)
    spec = write_spec(tmp_path, binary_spec(epochs=1, batch_size=64))
    swept = dlrun.sweep(spec, ["model.layers[0].units=2,4"])
    assert [p["status"] for p in swept.manifest["points"]] == ["completed", "completed"] and swept.ran == 2
    assert [row["model.layers[0].units"] for row in swept.table] == [2, 4]
    tuned = dlrun.tune(spec, ["training.optimizer.learning_rate=loguniform(1e-3,1e-1)"], trials=2, pruner="none")
    assert isinstance(tuned.study, optuna.Study) and len(tuned.study.trials) == 2 and tuned.ran == 2
    assert {t.state for t in tuned.study.trials} == {optuna.trial.TrialState.COMPLETE}
    with pytest.raises(DlrunError) as caught:
        dlrun.tune(spec, ["training.optimizer.learning_rate=loguniform(1e-3,1e-1)"])
    assert str(caught.value) == "how many trials? give trials=N (or timeout=SECONDS)"


def _impolite(tree) -> list[tuple[int, str]]:
    """The calls library code must not make: print(), sys.exit(), and any use of typer (typer.Exit, raise typer.X)."""
    import ast

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append((node.lineno, "print("))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) == ("sys", "exit"):
                found.append((node.lineno, "sys.exit"))
            elif node.value.id == "typer":
                found.append((node.lineno, f"typer.{node.attr}"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if any(m == "typer" or m.startswith("typer.") for m in modules):
                found.append((node.lineno, "import typer"))
    return found


def test_the_scan_for_impolite_calls_finds_each_kind():
    import ast

    source = "import typer\nimport sys\nprint('x')\nsys.exit(1)\nraise typer.Exit(2)\nconsole.print('fine')\n"
    assert _impolite(ast.parse(source)) == [(1, "import typer"), (3, "print("), (4, "sys.exit"), (5, "typer.Exit")]


def test_library_code_neither_prints_nor_exits():
    """Only dlrun/cli/ prints and exits; the library raises DlrunError and warns through dlrun.errors.warn."""
    import ast
    from pathlib import Path

    package = Path(dlrun.__file__).parent
    found = [
        f"{path.relative_to(package.parent)}:{line}: {what}"
        for path in sorted(package.rglob("*.py"))
        if "cli" not in path.relative_to(package).parts[:1]
        for line, what in _impolite(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == []


def test_a_library_warning_is_one_line_on_the_stderr_of_the_moment(capsys):
    from dlrun.errors import warn

    warn("something to know")
    assert capsys.readouterr().err == "warning: something to know\n"
