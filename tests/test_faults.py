"""Fault injection: killed and interrupted runs, full disks, denied folders, damaged run files, bugs.

Each test plays a flaky machine or a hostile user and checks that nothing is lost, nothing is
silently wrong, and every failure is one line on stderr (never a traceback).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data.prepare import prepare
from dlrun.errors import TrainingError
from dlrun.runs import layout
from dlrun.spec.loader import load_spec
from dlrun.training import checkpoint as checkpoints
from dlrun.training.fit import train
from dlrun.training.resume import plan_resume, resume

from conftest import ROOT, binary_spec, make_binary_csv, write_spec
from holds import Holds

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("faults")

runner = CliRunner()


def invoke(*args, **kwargs):
    result = runner.invoke(app, [str(a) for a in args], **kwargs)
    assert "Traceback" not in result.output, result.output
    return result


def one_error_line(result) -> str:
    """Assert a command failed with exactly one line on stderr, `error: ...`, and return that line."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files an atomic write left behind."""
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def resumable_spec(folder: Path, epochs: int = 40) -> Path:
    """A spec with every kind of state a resume must carry: shuffling, dropout, batch norm, Adam, early stopping."""
    make_binary_csv(folder / "data.csv")
    data = binary_spec(
        epochs=epochs,
        batch_size=16,
        early_stopping={"patience": 1000, "restore_best_weights": True, "min_delta": 0.0001},
    )
    data["seed"] = 7
    data["model"]["layers"][1:1] = [{"type": "dropout", "rate": 0.3}, {"type": "batch_normalization"}]
    return write_spec(folder, data)


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def reference(tmp_path_factory) -> dict:
    """An uninterrupted run of `resumable_spec`: what every resumed run must equal, value for value."""
    folder = tmp_path_factory.mktemp("reference")
    spec = resumable_spec(folder)
    outcome = train(load_spec(spec), folder / "runs", quiet=True)
    return {
        "history": (outcome.run_dir / layout.HISTORY).read_text(),
        "summary": outcome.summary,
        "run": outcome.run_dir,
    }


def same_run(run_dir: Path, reference: dict) -> None:
    assert (run_dir / layout.HISTORY).read_text() == reference["history"]
    summary = json.loads((run_dir / layout.SUMMARY).read_text())
    for key in set(summary) | set(reference["summary"]):
        if key == "data_sha256":  # by path, and the paths differ: compare the hashes
            assert list(summary[key].values()) == list(reference["summary"][key].values())
        elif key != "wall_time_s":
            assert summary.get(key) == reference["summary"].get(key), key
    assert not (run_dir / layout.CHECKPOINT).exists()  # a finished run keeps no checkpoint


# --- kill -9 and SIGTERM, then --resume ---------------------------------------------------------


def complete_rows(history: Path) -> int:
    if not history.is_file():
        return 0
    lines = history.read_text().split("\n")  # a last element without its line end is half-written
    return max(len(lines) - 2, 0)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_resumes_to_the_history_of_an_uninterrupted_one(tmp_path, reference, signum):
    spec = resumable_spec(tmp_path)
    at = random.Random(signum).randint(5, 30)  # a random epoch, the same on every test run
    holds = Holds(tmp_path / "holds", epoch=at)  # the run waits there until the signal comes, at any speed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "dlrun", "train", spec, "--out", "runs", "-q", "--checkpoint-every", "0"],
        env=holds.env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holds.wait(process)
    assert complete_rows(next(tmp_path.glob("runs/spec/*/history.csv"))) == at
    process.send_signal(signum)  # SIGTERM also ends the hold: the epoch after it is the last
    _, stderr = process.communicate(timeout=120)
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    if signum == signal.SIGTERM:  # handled like Ctrl-C: the epoch in flight ends, everything is kept
        assert process.returncode == 143 and "interrupted after" in stderr and "Traceback" not in stderr, stderr
        summary = json.loads((run_dir / layout.SUMMARY).read_text())
        assert summary["status"] == "interrupted" and summary["model_epoch"] == summary["best_epoch"]
        assert (run_dir / layout.MODEL).is_file()
    else:
        assert process.returncode == -signal.SIGKILL and not (run_dir / layout.SUMMARY).exists()
    assert (run_dir / layout.CHECKPOINT).is_file() and complete_rows(run_dir / layout.HISTORY) >= at

    result = invoke("train", "--resume", run_dir, "-q")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "from its checkpoint" in result.output
    same_run(run_dir, reference)
    assert not leftovers(tmp_path)


class Killed(BaseException):
    """Ends training the way kill -9 does: no handler of dlrun's runs (none catches a BaseException)."""


def kill_at(monkeypatch, epoch: int) -> None:
    """Make training die at the end of `epoch` (0-based), after that epoch's checkpoint, if one was due."""
    original = checkpoints.Checkpoint.on_epoch_end

    def dying(self, index, logs=None):
        original(self, index, logs)
        if index == epoch:
            raise Killed

    monkeypatch.setattr(checkpoints.Checkpoint, "on_epoch_end", dying)


@pytest.mark.parametrize("every, first_epoch", [(0, 13), (3600, 1)])
def test_a_run_killed_mid_write_resumes_from_its_checkpoint_or_from_the_start(
    tmp_path, reference, monkeypatch, capsys, every, first_epoch
):
    # every 0: checkpointed each epoch, resumes after the twelfth. 3600: killed before its first
    # checkpoint (due after an hour), so it starts over. Both end as the uninterrupted run did.
    spec = resumable_spec(tmp_path)
    kill_at(monkeypatch, 11)
    with pytest.raises(Killed):
        train(load_spec(spec), tmp_path / "runs", quiet=True, checkpoint_every=every)
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    with (run_dir / layout.HISTORY).open("a") as history:
        history.write("12,0.5,0.001,0.")  # the row being written when the process died

    plan = plan_resume(run_dir)
    assert plan.first_epoch == first_epoch and plan.notes == []
    resume(plan, quiet=True)
    same_run(run_dir, reference)
    if first_epoch > 1:  # the rows before the checkpoint were read back; the half one was left out
        assert "half-written" in capsys.readouterr().err


def test_resume_refuses_a_changed_config_or_changed_data_in_one_line(tmp_path, monkeypatch):
    spec = resumable_spec(tmp_path, epochs=10)
    kill_at(monkeypatch, 1)
    with pytest.raises(Killed):
        train(load_spec(spec), tmp_path / "runs", quiet=True)
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()

    config = run_dir / layout.CONFIG
    original = config.read_text()
    config.write_text(original.replace("epochs: 10", "epochs: 20"))
    line = one_error_line(invoke("train", "--resume", run_dir))
    assert "config.yaml changed since the run started (training.epochs: 10 -> 20)" in line
    config.write_text(original + "# a comment changes nothing\n")

    csv = tmp_path / "data.csv"
    data = csv.read_bytes()
    csv.write_bytes(data.replace(b"\n", b"\n", 1) + b"0,0,0,0,1\n")
    line = one_error_line(invoke("train", "--resume", run_dir))
    assert f"{csv} changed since the run started (its sha256 differs)" in line
    csv.write_bytes(data)

    line = one_error_line(invoke("train", spec, "--resume", run_dir))
    assert "drop SPEC, --set and --out" in line
    assert invoke("train", "--resume", run_dir, "-q").exit_code == 0
    line = one_error_line(invoke("train", "--resume", run_dir))
    assert "has finished (completed after 10 of 10 epochs): there is nothing to resume" in line
    line = one_error_line(invoke("train", "--resume", tmp_path))
    assert "not a run directory" in line


# --- Ctrl-C and restore_best_weights -------------------------------------------------------------


def overfitting_spec(folder: Path, restore: bool = True) -> Path:
    """Random labels and a wide layer: val_loss bottoms out early, then rises."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(160, 6)), columns=[f"f{i}" for i in range(6)])
    frame["target"] = rng.integers(0, 2, size=160)
    frame.to_csv(folder / "data.csv", index=False)
    data = binary_spec(
        epochs=200,
        optimizer={"name": "adam", "learning_rate": 0.03},
        early_stopping={"patience": 1000, "restore_best_weights": restore},
    )
    data["model"]["layers"][0]["units"] = 64
    return write_spec(folder, data)


def ctrl_c_at(monkeypatch, epoch: int, times: int) -> None:
    """Press Ctrl-C `times` times as epoch `epoch` (0-based) begins."""
    from dlrun.training.progress import EpochLines  # the display when output is not a terminal

    def press(self, index, logs=None):
        if index == epoch:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(EpochLines, "on_epoch_begin", press, raising=False)


def saved_val_loss(run_dir: Path) -> float:
    from dlrun.backend import import_keras

    spec = load_spec(run_dir / layout.CONFIG)
    data = prepare(spec.data, spec.seed, spec.training.loss)
    model = import_keras().saving.load_model(run_dir / layout.MODEL)
    return model.evaluate(data.x_valid, data.y_valid, batch_size=32, verbose=0, return_dict=True)["loss"]


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_with_restore_best_weights_saves_the_best_weights(tmp_path, monkeypatch, presses):
    # Once: the epoch in flight ends, then Keras restores the best weights. Twice: training stops at
    # once, mid-epoch, and dlrun restores them itself.
    ctrl_c_at(monkeypatch, 30, presses)
    with pytest.raises(TrainingError, match="interrupted after") as info:
        train(load_spec(overfitting_spec(tmp_path)), tmp_path / "runs")
    assert info.value.exit_code == 130
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    summary = json.loads((run_dir / layout.SUMMARY).read_text())
    history = pd.read_csv(run_dir / layout.HISTORY)
    assert summary["status"] == "interrupted" and summary["epochs_run"] == len(history) == 31 - (presses - 1)
    best = summary["best_epoch"]
    assert summary["model_epoch"] == best < len(history)  # the last epoch is not the best one
    assert saved_val_loss(run_dir) == pytest.approx(history["val_loss"][best - 1], abs=1e-5)


def test_ctrl_c_twice_without_restore_best_weights_saves_the_last_checkpoint(tmp_path, monkeypatch):
    ctrl_c_at(monkeypatch, 12, 2)  # mid-epoch 13: the model is saved as the checkpoint of epoch 12 holds it
    with pytest.raises(TrainingError, match="interrupted after 12 finished epochs"):
        train(load_spec(overfitting_spec(tmp_path, restore=False)), tmp_path / "runs", checkpoint_every=0)
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    summary = json.loads((run_dir / layout.SUMMARY).read_text())
    history = pd.read_csv(run_dir / layout.HISTORY)
    assert summary["model_epoch"] == 12
    assert saved_val_loss(run_dir) == pytest.approx(history["val_loss"][11], abs=1e-5)


@pytest.mark.parametrize("killed", ["before", "at"])
def test_a_resumed_run_stops_early_where_the_uninterrupted_one_did(tmp_path, monkeypatch, killed):
    # Killed at the epoch early stopping ended the run: the resume trains nothing, restores the best
    # weights and finishes. Killed before: early stopping's wait and best carry over.
    spec = overfitting_spec(tmp_path)
    spec.write_text(spec.read_text().replace("patience: 1000", "patience: 5"))
    full = train(load_spec(spec), tmp_path / "full", quiet=True)
    assert full.summary["status"] == "early-stopped"
    epochs = full.summary["epochs_run"]
    kill_at(monkeypatch, epochs - 1 if killed == "at" else epochs - 4)
    with pytest.raises(Killed):
        train(load_spec(spec), tmp_path / "runs", quiet=True, checkpoint_every=0)
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    plan = plan_resume(run_dir)
    assert plan.first_epoch == (epochs + 1 if killed == "at" else epochs - 2)
    resume(plan, quiet=True)
    same_run(run_dir, {"history": (full.run_dir / layout.HISTORY).read_text(), "summary": full.summary})
    assert saved_val_loss(run_dir) == pytest.approx(full.summary["best_value"], abs=1e-5)


def test_a_streamed_run_resumes_to_the_same_history(tmp_path, monkeypatch):
    make_binary_csv(tmp_path / "data.csv", rows=200)
    data = binary_spec(epochs=12, batch_size=16)
    data["data"].update(streaming=True, chunk_rows=50)
    spec = write_spec(tmp_path, data)
    full = train(load_spec(spec), tmp_path / "full", quiet=True)
    kill_at(monkeypatch, 5)
    with pytest.raises(Killed):
        train(load_spec(spec), tmp_path / "runs", quiet=True, checkpoint_every=0)
    monkeypatch.undo()
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))  # undo() took conftest's setting too
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    resume(plan_resume(run_dir), quiet=True)
    same_run(run_dir, {"history": (full.run_dir / layout.HISTORY).read_text(), "summary": full.summary})


# --- full disks and denied folders ----------------------------------------------------------------


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def finished(tmp_path_factory) -> Path:
    """A small finished run, for the commands that read one."""
    folder = tmp_path_factory.mktemp("finished")
    make_binary_csv(folder / "data.csv")
    outcome = train(load_spec(write_spec(folder, binary_spec(epochs=3))), folder / "runs", quiet=True)
    return outcome.run_dir


def commands(finished: Path, out: Path) -> dict[str, list]:
    """Every command that writes a file, writing into `out`."""
    data = finished.parents[2] / "data.csv"
    spec = finished.parents[2] / "spec.yaml"
    return {
        "train": ["train", spec, "--out", out, "-q"],
        "sweep": ["sweep", spec, "--set", "training.epochs=1,2", "--jobs", "1", "--out", out],
        "predict": ["predict", finished, data, "--out", out / "predictions.csv"],
        "plot": ["plot", finished, "--out", out / "plot.png"],
        "compare": ["compare", finished, "--csv", out / "runs.csv"],
        "schema": ["schema", "--out", out / "schema.json"],
        "init": ["init", data, "--target", "target", "--out", out / "spec.yaml"],
    }


@pytest.mark.parametrize("command", ["train", "sweep", "predict", "plot", "compare", "schema", "init"])
@pytest.mark.parametrize(
    "where, code, cause",
    [("os.fsync", errno.ENOSPC, "No space left on device"), ("os.replace", errno.EACCES, "Permission denied")],
)
def test_a_failed_write_is_one_line_and_leaves_no_temporary_file(
    tmp_path, finished, monkeypatch, command, where, code, cause
):
    out = tmp_path / "out"

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(where, fail)
    line = one_error_line(invoke(*commands(finished, out)[command]))
    assert "cannot write" in line and str(out) in line and cause in line, line
    assert not leftovers(tmp_path) and not leftovers(finished.parent)


@pytest.mark.parametrize("command", ["train", "sweep", "predict", "plot", "compare", "schema", "init"])
def test_a_denied_output_folder_is_one_line_naming_it(tmp_path, finished, monkeypatch, command):
    out = tmp_path / "denied"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == out or out in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    line = one_error_line(invoke(*commands(finished, out)[command]))
    assert f"cannot create {out}" in line or f"cannot write {out}" in line, line
    assert "Permission denied" in line and not out.exists()


@pytest.mark.parametrize("name", [layout.CHECKPOINT, layout.HISTORY, layout.MODEL])
def test_a_full_disk_during_training_is_one_line_and_keeps_the_epochs(tmp_path, monkeypatch, name):
    make_binary_csv(tmp_path / "data.csv")
    spec = write_spec(tmp_path, binary_spec(epochs=3))
    calls = []
    if name == layout.HISTORY:  # Keras's CSVLogger writes its header, then a row per epoch: the third fails
        import csv

        real_writerow = csv.DictWriter.writerow

        def writerow(writer, row):
            calls.append(row)
            if len(calls) == 4:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_writerow(writer, row)

        monkeypatch.setattr(csv.DictWriter, "writerow", writerow)
    else:  # the checkpoint is written after every epoch: the third one fails; the others once
        real_replace = os.replace

        def replace(source, target):
            if Path(target).name == name:
                calls.append(target)
                if len(calls) == (3 if name == layout.CHECKPOINT else 1):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_replace(source, target)

        monkeypatch.setattr(os, "replace", replace)
    line = one_error_line(invoke("train", spec, "--out", "runs", "-q", "--checkpoint-every", "0"))
    assert f"{name}: No space left on device" in line, line
    assert not leftovers(tmp_path)
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    assert len(pd.read_csv(run_dir / layout.HISTORY)) >= 2


# --- damaged run files ------------------------------------------------------------------------------


def damaged(finished: Path, tmp_path: Path, name: str, content: bytes | None = None) -> Path:
    """A copy of the finished run whose file `name` holds `content` (its first half when None)."""
    run_dir = tmp_path / "runs" / "spec" / "damaged"
    shutil.copytree(finished, run_dir)
    original = (run_dir / name).read_bytes()
    (run_dir / name).write_bytes(original[: len(original) // 2] if content is None else content)
    return run_dir


def lambda_model(path: Path) -> bytes:
    from dlrun.backend import import_keras

    keras = import_keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x[:, :1] * 2)])
    model.save(path)
    return path.read_bytes()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize(
    "name, content, words",
    [
        (layout.MODEL, b"", "model.keras is empty"),
        (layout.MODEL, None, "model.keras is not a complete .keras (zip) file"),
        (layout.MODEL, "lambda", "safe mode refuses to load"),
        (layout.PREPROCESSING, b"\x00garbage{", "preprocessing.json is not valid JSON"),
        (layout.PREPROCESSING, None, "preprocessing.json is not valid JSON"),
        (layout.PREPROCESSING, b'{"columns": 3}', "preprocessing.json does not hold a dlrun preprocessing"),
    ],
)
def test_a_damaged_run_file_is_one_line_from_predict_and_evaluate(tmp_path, finished, command, name, content, words):
    if content == "lambda":
        content = lambda_model(tmp_path / "lambda.keras")
    run_dir = damaged(finished, tmp_path, name, content)
    data = finished.parents[2] / "data.csv"
    line = one_error_line(
        invoke(command, run_dir, data, *(["--out", tmp_path / "p.csv"] if command == "predict" else []))
    )
    assert words in line, line
    assert "File not found" not in line


def test_a_half_written_last_history_line_is_ignored_with_a_warning(tmp_path, finished):
    run_dir = tmp_path / "runs" / "spec" / "half"
    shutil.copytree(finished, run_dir)
    with (run_dir / layout.HISTORY).open("a") as history:
        history.write("3,0.5,0.001,0.")  # val_loss would read as 0.0

    result = invoke("compare", run_dir, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["epochs_run"] == 3 and rows[0]["last:loss"] == pytest.approx(
        pd.read_csv(finished / layout.HISTORY)["loss"].iloc[-1]
    )
    (warning,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith("warning: ") and "half-written" in warning and "history.csv" in warning

    result = invoke("plot", run_dir, "--out", tmp_path / "plot.png")
    assert result.exit_code == 0 and (tmp_path / "plot.png").stat().st_size > 1000, result.output


# --- bugs: a crash report, or --debug ---------------------------------------------------------------


def test_an_unexpected_error_is_one_line_and_a_crash_report(tmp_path, monkeypatch, binary_experiment):
    import dlrun.spec.loader

    def broken(*args, **kwargs):
        raise RuntimeError("something dlrun did not expect\nsecond line")

    monkeypatch.setattr(dlrun.spec.loader, "load_spec", broken)
    monkeypatch.setenv("DLRUN_CRASH_DIR", str(tmp_path / "crashes"))
    line = one_error_line(invoke("validate", binary_experiment))
    assert "unexpected RuntimeError: something dlrun did not expect. This is a bug in dlrun" in line
    (report,) = (tmp_path / "crashes").iterdir()
    assert str(report) in line and "--debug" in line
    text = report.read_text()
    for words in ("Traceback", "RuntimeError: something dlrun did not expect", "command: ", "dlrun: 0.", "python: "):
        assert words in text
    assert "tensorflow: " in text and "keras: " in text and "platform: " in text

    result = runner.invoke(app, ["--debug", "validate", str(binary_experiment)])
    assert result.exit_code == 1 and "Traceback" in result.stderr and "in broken" in result.stderr
    assert len(list((tmp_path / "crashes").iterdir())) == 1  # --debug prints instead of writing a report


def test_an_error_outside_any_command_is_still_one_line(tmp_path, monkeypatch, capsys):
    import dlrun.spec.schema

    monkeypatch.setattr(dlrun.spec.schema, "schema_text", lambda: 1 / 0)
    monkeypatch.setenv("DLRUN_CRASH_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as info:
        app(["schema"], prog_name="dlrun")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ZeroDivisionError") and "Traceback" not in err


# --- JSON never holds NaN ---------------------------------------------------------------------------


def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_evaluate_json_writes_a_nan_metric_as_null(tmp_path, finished):
    from dlrun.backend import import_keras

    keras = import_keras()
    run_dir = tmp_path / "runs" / "spec" / "nan"
    shutil.copytree(finished, run_dir)
    model = keras.saving.load_model(run_dir / layout.MODEL)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    model.save(run_dir / layout.MODEL)
    result = invoke("evaluate", run_dir, finished.parents[2] / "data.csv", "--json")
    assert result.exit_code == 0, result.output
    assert strict_json(result.stdout)["metrics"]["loss"] is None


def test_json_writer_turns_non_finite_numbers_into_null(tmp_path):
    data = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": np.float32("nan"), "d": np.int64(3)}
    assert strict_json(layout.to_json(data)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": 3}
    layout.write_json(tmp_path / "x.json", data)
    assert strict_json((tmp_path / "x.json").read_text())["c"] is None


# --- a run's last files (issue 24) --------------------------------------------------------------


@pytest.mark.parametrize("finisher", ["plot", "resume"])
def test_a_run_whose_plots_could_not_be_written_stays_incomplete_until_plot_or_resume_writes_them(
    tmp_path, monkeypatch, finisher
):
    make_binary_csv(tmp_path / "data.csv")
    spec = write_spec(tmp_path, binary_spec(epochs=2))
    real_replace = os.replace

    def replace(source, target):  # the disk fills up as the PNGs are written
        if Path(target).suffix == ".png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    line = one_error_line(invoke("train", spec, "--out", "runs", "-q", "--checkpoint-every", "0"))
    (run_dir,) = Path("runs", "spec").iterdir()
    assert line == (
        f"error: cannot write {run_dir / 'plots' / 'loss.png'}: No space left on device (free some disk space and "
        f"try again); the run is not complete without its plots: write them with: dlrun plot {run_dir}"
    )
    summary = json.loads((run_dir / layout.SUMMARY).read_text())
    assert (summary["status"], summary["final_status"]) == ("incomplete", "completed")
    assert summary["missing"] == ["plots/loss.png", "plots/binary_accuracy.png"]
    assert (run_dir / layout.CHECKPOINT).is_file() and not leftovers(tmp_path)
    listed = invoke("compare", "runs", "--json")
    assert [row["status"] for row in json.loads(listed.stdout)] == ["incomplete"]  # not listed as completed

    monkeypatch.setattr(os, "replace", real_replace)  # space is freed
    if finisher == "plot":
        result = invoke("plot", run_dir, "--out", "all.png")
        assert result.exit_code == 0, result.output
        assert (
            f"finished {run_dir.resolve()}: wrote plots/loss.png, plots/binary_accuracy.png; it is completed"
            in result.stdout
        )
    else:
        result = invoke("train", "--resume", run_dir, "-q")
        assert result.exit_code == 0, result.output
        assert f"finishing {run_dir}: it ended; writing plots/loss.png, plots/binary_accuracy.png" in result.stdout
    summary = json.loads((run_dir / layout.SUMMARY).read_text())
    assert summary["status"] == "completed" and "missing" not in summary and "final_status" not in summary
    assert {p.name for p in (run_dir / "plots").iterdir()} == {"loss.png", "binary_accuracy.png"}
    assert not (run_dir / layout.CHECKPOINT).exists() and not (run_dir / "dlrun.lock").exists()
    assert len(pd.read_csv(run_dir / layout.HISTORY)) == 2  # nothing was trained again


def test_a_run_killed_while_its_plots_are_written_says_which_are_missing(tmp_path, monkeypatch):
    make_binary_csv(tmp_path / "data.csv")
    spec = write_spec(tmp_path, binary_spec(epochs=2))

    def killed(*args, **kwargs):  # the state a kill -9 leaves: the process ends here, releasing nothing
        raise SystemExit(137)

    monkeypatch.setattr("dlrun.runs.plot.write_run_plots", killed)
    with pytest.raises(SystemExit):
        train(load_spec(spec), tmp_path / "runs", quiet=True)
    (run_dir,) = (tmp_path / "runs" / "spec").iterdir()
    summary = json.loads((run_dir / layout.SUMMARY).read_text())
    assert summary["status"] == "incomplete" and summary["missing"] == ["plots/loss.png", "plots/binary_accuracy.png"]
    plan = plan_resume(run_dir)  # it ended: --resume writes the plots and trains nothing
    assert plan.spec is None and plan.missing == ["plots/loss.png", "plots/binary_accuracy.png"]


def stillborn_run(parent: Path) -> Path:
    """The folder a kill -9 leaves right after a run's folder is made: its lock (a dead writer), a temporary config."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = parent / "20260101-000000"
    folder.mkdir(parents=True)
    (folder / "dlrun.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": None}))
    (folder / f".config.tmp-{dead.pid}.yaml").write_text("seed: ")
    return folder


def test_a_run_killed_as_its_folder_was_made_is_named_by_compare_and_removed_by_the_next_train(tmp_path):
    make_binary_csv(tmp_path / "data.csv")
    spec = write_spec(tmp_path, binary_spec(epochs=1))
    folder = stillborn_run(Path("runs", "spec"))
    reason = (
        f"a run killed as it started: it holds only its lock (its process is gone) and temporary files; the next "
        f"dlrun train into {folder.parent} removes it (or remove it yourself)"
    )
    listed = invoke("compare", "runs")
    assert listed.stderr == (
        f"skipped {folder}: {reason}\nerror: no run to compare: pass run directories (runs/<name>/<timestamp>) "
        "or folders holding them\n"
    )
    listed = invoke("compare", folder)
    assert f"skipped {folder}: " in listed.stderr and "not a run directory" not in listed.stderr, listed.output

    trained = invoke("train", spec, "--out", "runs", "-q")
    assert trained.exit_code == 0, trained.output
    assert (
        f"warning: removed {folder}: a run killed as it started: it holds only its lock (its process is gone) and "
        "temporary files"
    ) in trained.stderr
    assert not folder.exists() and len(list(Path("runs", "spec").iterdir())) == 1


def test_a_full_disk_as_a_history_row_is_flushed_counts_the_rows_on_disk(tmp_path, monkeypatch):
    from dlrun.backend import import_keras

    make_binary_csv(tmp_path / "data.csv")
    spec = write_spec(tmp_path, binary_spec(epochs=3))
    logger = import_keras().callbacks.CSVLogger
    real = logger.on_epoch_end

    class FullOnce:
        """history.csv's file, on a disk that is full as the second epoch's row is flushed (the row stays buffered)."""

        def __init__(self, handle):
            self.handle, self.failed = handle, False

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def flush(self):
            if not self.failed:
                self.failed = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.handle.name))
            return self.handle.flush()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.csv_file = FullOnce(self.csv_file)
        return real(self, epoch, logs)

    monkeypatch.setattr(logger, "on_epoch_end", on_epoch_end)
    line = one_error_line(invoke("train", spec, "--out", "runs", "-q"))
    (run_dir,) = Path("runs", "spec").iterdir()
    assert len(pd.read_csv(run_dir / layout.HISTORY)) == 2  # the buffered row reached the disk when it was closed
    assert line.startswith("error: training stopped after 2 finished epochs: cannot write ") and line.endswith(
        "history.csv: No space left on device (free some disk space and try again); they are kept in " + str(run_dir)
    ), line
