"""MLflow tracking against a real local store, read back with MlflowClient: runs, sweeps, and MLflow failing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.errors import DlrunError
from dlrun.runs.history import read_history
from dlrun.runs.reading import flatten, read_config, read_summary, run_label
from dlrun.training import tracking

from conftest import binary_spec, make_binary_csv, write_spec

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("tracking")

mlflow = pytest.importorskip("mlflow")
runner = CliRunner()


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made, once: making them takes MLflow seconds."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(empty_store, tmp_path) -> Path:
    """A fresh copy of the empty store at ./mlflow.db, where `--out runs` puts it by default."""
    return Path(shutil.copy(empty_store, tmp_path / "mlflow.db"))


@pytest.fixture
def experiment(tmp_path) -> Path:
    make_binary_csv(tmp_path / "data.csv", rows=80)
    return write_spec(tmp_path, binary_spec(epochs=3, batch_size=16))


def client_of(path: Path):
    return mlflow.MlflowClient(f"sqlite:///{path}")


def runs_of(client, name: str):
    found = client.get_experiment_by_name(name)
    assert found is not None, f"no experiment {name!r}"
    return client.search_runs([found.experiment_id])


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_tracked_run_holds_the_spec_every_epoch_the_best_values_the_files_and_tags(experiment, store):
    result = invoke("train", experiment, "-q", "--track", "mlflow")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.count("mlflow ui --backend-store-uri sqlite:///mlflow.db") == 1  # the default store
    run_dir = next(Path("runs/spec").iterdir())
    client = client_of(store)
    (run,) = runs_of(client, "spec")  # the experiment is the spec's name
    config = read_config(run_dir)

    assert run.data.params == {tracking.param_name(k): tracking.param_value(v) for k, v in flatten(config).items()}
    assert (
        run.data.params["model.layers.0.units"] == "8" and run.data.params["training.metrics"] == '["binary_accuracy"]'
    )

    history = read_history(run_dir)
    assert set(history.columns) == {"loss", "val_loss", "binary_accuracy", "val_binary_accuracy", "learning_rate"}
    for column in history.columns:
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, column))
        assert logged == list(zip(history.epochs, history.values[column])), column  # steps count from 1

    summary = read_summary(run_dir)
    metrics = run.data.metrics
    assert metrics["best_epoch"] == summary["best_epoch"] and metrics["epochs_run"] == 3
    assert metrics["best_val_loss"] == summary["best_value"] == summary["best"]["val_loss"]
    assert metrics["best_binary_accuracy"] == summary["best"]["binary_accuracy"]
    assert "best_learning_rate" not in metrics
    best_steps = [m.step for m in client.get_metric_history(run.info.run_id, "best_val_loss")]
    assert best_steps == [summary["best_epoch"]]

    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    every = {"config.yaml", "start.json", "history.csv", "summary.json", "preprocessing.json", "model.keras", "plots"}
    assert files == every
    plots = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/loss.png", "plots/binary_accuracy.png"} <= plots
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(store.parent / "mlartifacts")

    tags = run.data.tags
    assert run.info.run_name == run_label(run_dir) and run.info.status == "FINISHED"
    assert tags["dlrun.name"] == "spec" and tags["dlrun.seed"] == "0" and tags["dlrun.status"] == "completed"
    assert tags["dlrun.run_dir"] == str(run_dir.resolve()) and "mlflow.parentRunId" not in tags


def test_the_spec_section_names_store_and_experiment_and_track_none_turns_it_off(experiment, empty_store, tmp_path):
    other = Path(shutil.copy(empty_store, tmp_path / "elsewhere.db"))
    data = binary_spec(epochs=1)
    data["tracking"] = {"uri": f"sqlite:///{other}", "experiment": "lessons"}
    spec = write_spec(tmp_path, data, "tracked.yaml")

    result = invoke("train", spec, "-q", "--set", "seed=3")
    assert result.exit_code == 0, result.output
    (run,) = runs_of(client_of(other), "lessons")
    assert run.data.tags["dlrun.seed"] == "3" and run.data.tags["dlrun.overrides"] == "seed=3"
    assert not any(key.startswith("tracking") for key in run.data.params)  # where it is logged, not what trained
    assert read_config(next(Path("runs/tracked").iterdir()))["tracking"]["experiment"] == "lessons"

    result = invoke("train", spec, "-q", "--track", "none")
    assert result.exit_code == 0 and "MLflow" not in result.output
    assert len(runs_of(client_of(other), "lessons")) == 1
    assert not Path("mlflow.db").exists()


def test_where_to_track_command_line_over_spec_over_environment(monkeypatch, tmp_path):
    from dlrun.spec.models import TrackingSpec

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    section = TrackingSpec(uri="sqlite:///spec.db", experiment="from-spec")
    assert tracking.resolve(None, None, None, Path("runs")) is None
    assert tracking.resolve(section, "none", None, Path("runs")) is None
    with pytest.raises(DlrunError, match="drop one"):
        tracking.resolve(None, "none", "http://host:5000", Path("runs"))
    assert tracking.resolve(None, "mlflow", None, Path("runs")).uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.resolve(None, "mlflow", None, Path(".")).uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.resolve(None, "mlflow", None, Path("/x/y/runs")).uri == "sqlite:////x/y/mlflow.db"
    assert tracking.resolve(None, None, "http://host:5000", Path("runs")).uri == "http://host:5000"
    assert tracking.resolve(section, None, "http://cli:5000", Path("runs")).uri == "http://cli:5000"
    assert tracking.resolve(section, None, None, Path("runs")).experiment == "from-spec"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    assert tracking.resolve(section, None, None, Path("runs")).uri == f"sqlite:///{tmp_path / 'spec.db'}"
    assert tracking.resolve(None, "mlflow", None, Path("runs")) == tracking.Tracking("http://env:5000", "from-env")
    earlier = {"uri": "sqlite:///sweep.db", "experiment": "e", "parent_run_id": "r"}  # a resumed sweep's
    assert tracking.resolve(None, None, None, Path("runs"), earlier) == tracking.Tracking("sqlite:///sweep.db", "e")
    assert tracking.resolve(None, None, "http://cli:5000", Path("runs"), earlier).uri == "http://cli:5000"
    assert tracking.resolve(None, "none", None, Path("runs"), earlier) is None
    assert tracking.shown_uri(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}") == "sqlite:///a/mlflow.db"
    assert tracking.shown_uri("sqlite:////elsewhere/mlflow.db") == "sqlite:////elsewhere/mlflow.db"


def test_an_unreachable_server_costs_one_warning_line_and_the_run_completes(experiment, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    result = invoke("train", experiment, "-q", "--track-uri", "http://127.0.0.1:1")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warning: MLflow tracking is off for this run: cannot log to http://127.0.0.1:1")
    assert "connection refused" in lines[0] and "Traceback" not in result.output
    run_dir = next(Path("runs/spec").iterdir())
    assert read_summary(run_dir)["status"] == "completed" and (run_dir / "model.keras").is_file()
    assert "MLflow:" not in result.stdout


def test_without_mlflow_installed_training_goes_on_and_says_how_to_install(experiment, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    result = invoke("train", experiment, "-q", "--track", "mlflow")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: MLflow tracking is off: mlflow is not installed; install it with pip install 'dlrun[mlflow]'. "
        "Training goes on"
    ]
    assert read_summary(next(Path("runs/spec").iterdir()))["status"] == "completed"


def test_a_run_that_fails_is_logged_as_failed(tmp_path, store):
    make_binary_csv(tmp_path / "data.csv", rows=80)
    spec = write_spec(tmp_path, binary_spec(epochs=30, optimizer={"name": "sgd", "learning_rate": 1e15}))
    result = invoke("train", spec, "-q", "--track", "mlflow")
    assert result.exit_code == 1 and "the loss became NaN" in result.stderr
    (run,) = runs_of(client_of(store), "spec")
    assert run.info.status == "FAILED" and run.data.tags["dlrun.status"] == "nan"
    assert "history.csv" in {f.path for f in client_of(store).list_artifacts(run.info.run_id)}


def test_a_sweep_is_a_parent_run_with_one_nested_run_per_point_in_worker_processes(experiment, store):
    args = ["sweep", experiment, "--set", "training.optimizer.learning_rate=0.05,0.01", "--jobs", "1"]
    result = invoke(*args, "--track", "mlflow")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("mlflow ui --backend-store-uri sqlite:///mlflow.db") == 1
    sweep_dir = next(Path("runs/spec").glob("sweep-*"))
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    client = client_of(store)
    runs = runs_of(client, "spec")
    (parent,) = [r for r in runs if r.data.tags.get("dlrun.kind") == "sweep"]
    children = [r for r in runs if r is not parent]
    assert manifest["tracking"]["parent_run_id"] == parent.info.run_id

    assert parent.info.run_name == run_label(sweep_dir) and parent.info.status == "FINISHED"
    assert parent.data.params == {"training.optimizer.learning_rate": "0.05,0.01", "points": "2"}
    assert {f.path for f in client.list_artifacts(parent.info.run_id)} == {"sweep.json", "compare.csv"}
    best = min(children, key=lambda r: r.data.metrics["best_val_loss"])
    assert parent.data.metrics["best_val_loss"] == best.data.metrics["best_val_loss"]
    assert parent.data.tags["dlrun.best_run"] == best.info.run_name

    assert sorted(r.info.run_name for r in children) == ["lr=0.01", "lr=0.05"]
    for child in children:
        tags = child.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id and child.info.status == "FINISHED"
        assert tags["dlrun.sweep"] == str(sweep_dir.resolve()) and tags["dlrun.status"] == "completed"
        point = manifest["points"][int(tags["dlrun.sweep_point"])]
        assert tags["dlrun.run_dir"] == str((sweep_dir / point["run_dir"]).resolve())
        assert child.data.params["training.optimizer.learning_rate"] == point["overrides"][0].partition("=")[2]

    # --resume goes on in the same parent run, without --track (nothing is left to train here)
    client.set_terminated(parent.info.run_id, status="KILLED")  # as a Ctrl-C leaves it
    resumed = invoke("sweep", "--resume", sweep_dir)
    assert resumed.exit_code == 0 and "mlflow ui --backend-store-uri sqlite:///mlflow.db" in resumed.stdout
    assert len(runs_of(client, "spec")) == 3
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    assert json.loads((sweep_dir / "sweep.json").read_text())["tracking"] == manifest["tracking"]


def test_params_keep_to_mlflow_limits(store):
    config = {"model": {"layers": [{"type": "dense", "units": 4}, {"type": "dropout", "rate": 0.5}]}}
    config["data"] = {"columns": {f"c{i} (€/m²)": {"scale": "none"} for i in range(240)}, "features": ["x" * 7000]}
    params = tracking.spec_params(config | {"tracking": {"uri": "http://user:secret@host"}})
    assert params["model.layers.1.rate"] == "0.5" and params["data.columns.c7 __/m²_.scale"] == "none"
    assert len(params["data.features"]) == tracking.MAX_PARAM_VALUE and params["data.features"].endswith("...")
    assert not any("secret" in value for value in params.values())

    client = tracking._Client(mlflow, f"sqlite:///{store}")
    run_id = client.create_run(client.experiment_id("limits"), "limits", {}, None)
    client.log_params(run_id, params)  # 243 params: three batches of at most 100
    assert client_of(store).get_run(run_id).data.params == params


def test_a_bad_tracking_section_is_a_spec_error(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    data = binary_spec() | {"tracking": "wandb"}
    result = invoke("validate", write_spec(tmp_path, data))
    assert result.exit_code == 1 and "tracking.backend: expected 'mlflow', received 'wandb'" in result.stderr
    data = binary_spec() | {"tracking": {"experiment": "x", "url": "http://host"}}
    result = invoke("validate", write_spec(tmp_path, data))
    assert result.exit_code == 1 and "did you mean 'uri'" in result.stderr


def test_commands_that_do_not_train_never_import_mlflow(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = write_spec(tmp_path, binary_spec() | {"tracking": "mlflow"})
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom dlrun.cli import app\n"
        f"r = CliRunner().invoke(app, ['validate', {str(spec)!r}])\nassert r.exit_code == 0, r.output\n"
        "for args in (['--help'], ['train', '--help'], ['sweep', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow' or m == 'dlrun.training.tracking'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.postgres
def test_a_run_tracked_to_a_postgresql_store_holds_every_epoch(experiment, postgres_url):
    result = invoke("train", experiment, "-q", "--track-uri", postgres_url)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    run_dir = next(Path("runs/spec").iterdir())
    client = mlflow.MlflowClient(postgres_url)
    (run,) = runs_of(client, "spec")
    assert run.info.status == "FINISHED" and run.data.tags["dlrun.run_dir"] == str(run_dir.resolve())
    history = read_history(run_dir)
    logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_loss"))
    assert logged == list(zip(history.epochs, history.values["val_loss"]))
    assert run.data.metrics["best_val_loss"] == read_summary(run_dir)["best_value"]
    where = f"MLflow: run {run.info.run_id} in experiment 'spec' at {tracking.shown_uri(postgres_url)}"
    assert where in result.stdout and "dlrun:dlrun@" not in result.stdout  # the password is not shown
