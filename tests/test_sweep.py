"""Tests of sweeps: value lists, the grid, local and Ray execution, failures, and resuming."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.errors import DlrunError, SpecError
from dlrun.runs import compare, reading
from dlrun.search import sweep

from conftest import assert_fits, binary_spec, make_binary_csv, write_spec

runner = CliRunner()


@pytest.fixture
def experiment(tmp_path) -> Path:
    make_binary_csv(tmp_path / "data.csv", rows=80)
    return write_spec(tmp_path, binary_spec(epochs=2, batch_size=64))


def sweep_dirs() -> list[Path]:
    return sorted(Path("runs").glob("*/sweep-*"))


@pytest.mark.parametrize(
    "text, values",
    [
        ("0.01,0.001", ["0.01", "0.001"]),
        ("[a,b],[a,c]", ["[a,b]", "[a,c]"]),
        ("{name: sgd, momentum: 0.9},adam", ["{name: sgd, momentum: 0.9}", "adam"]),
        ("'x,y',z", ["'x,y'", "z"]),
        ("[a,b]", ["[a,b]"]),
    ],
)
def test_values_split_only_at_top_level_commas(text, values):
    assert sweep.split_values(text) == values


def test_grid_is_the_product_with_constants_first(tmp_path):
    axes = tmp_path / "axes.yaml"
    axes.write_text("model.layers[0].units: [4, 8]\ndata.features: [[f0, f1], [f2]]\n", encoding="utf-8")
    grid = sweep.make_grid(["training.epochs=2", "training.optimizer.learning_rate=0.1,0.01"], "0,1", axes)
    points = grid.points()
    assert len(points) == 2 * 2 * 2 * 2
    assert points[0] == [
        "training.epochs=2",
        "model.layers[0].units=4",
        'data.features=["f0", "f1"]',
        "training.optimizer.learning_rate=0.1",
        "seed=0",
    ]
    assert len({tuple(p) for p in points}) == len(points)


@pytest.mark.parametrize(
    "sets, seeds, message",
    [
        (["training.epochs"], None, "expected PATH=VALUE"),
        (["seed=1,1"], None, "listed twice"),
        (["seed=1,2"], "0,1", "set twice"),
        ([], "a,b", "whole numbers"),
        ([], None, "nothing to sweep"),
    ],
)
def test_grid_mistakes(sets, seeds, message):
    with pytest.raises(SpecError, match=message):
        sweep.make_grid(sets, seeds)


def test_local_sweep_2x2_makes_four_runs_and_a_sorted_table(experiment, monkeypatch):
    result = runner.invoke(
        app,
        [
            "sweep",
            str(experiment),
            "--set",
            "training.optimizer.learning_rate=0.05,0.001",
            "--set",
            "model.layers[0].units=4,8",
            "--jobs",
            "2",
        ],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    (sweep_dir,) = sweep_dirs()
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert [p["status"] for p in manifest["points"]] == ["completed"] * 4
    seen = set()
    for point in manifest["points"]:
        run_dir = sweep_dir / point["run_dir"]
        assert (run_dir / "overrides.txt").read_text().splitlines() == point["overrides"]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        seen.add((config["training"]["optimizer"]["learning_rate"], config["model"]["layers"][0]["units"]))
        assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 2
    assert seen == {(0.05, 4), (0.05, 8), (0.001, 4), (0.001, 8)}
    assert b"\r" not in (sweep_dir / "compare.csv").read_bytes()  # LF lines, for shell pipelines
    with open(sweep_dir / "compare.csv", newline="") as handle:
        import csv

        table = list(csv.DictReader(handle))
    assert len(table) == 4
    values = [float(row["best:val_loss"]) for row in table]
    assert values == sorted(values)
    assert {"training.optimizer.learning_rate", "model.layers[0].units"} <= set(table[0])
    assert {row["fit"] for row in table} <= {"underfit", "overfit", "unstable", "ok"}  # 2 epochs: a reading each
    assert "best:" in result.stdout and "completed" in result.stdout
    assert "done lr=0.05 units=4" in result.stdout  # points named by what differs, short names
    numbers = [compare.cell_text(float(row["best:val_loss"])) for row in table]
    assert_fits(result.stdout[result.stdout.index("┏") :], 80, numbers)  # the table at 80 columns

    # The same table at 120 columns, as the sweep prints it.
    monkeypatch.setenv("COLUMNS", "120")
    columns, rows, _ = sweep.table(sweep_dir, manifest)
    buffer = io.StringIO()
    compare.show(Console(file=buffer), columns, rows, title=f"sweep {sweep_dir}")
    assert_fits(buffer.getvalue(), 120, numbers)
    assert "lr=0.05" in buffer.getvalue() and "units=4" in buffer.getvalue()  # runs headed by their labels


def test_a_failing_run_is_reported_and_the_others_finish(experiment):
    result = runner.invoke(
        app,
        [
            "sweep",
            str(experiment),
            "--set",
            "training.epochs=1",
            "--set",
            "data.target=target,no_such_column",
            "--jobs",
            "1",  # one worker process: the failure is its own, the next point still runs there
        ],
    )
    assert result.exit_code == 1
    (sweep_dir,) = sweep_dirs()
    points = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["completed", "failed"]
    assert "no_such_column" in points[1]["error"]  # failed in its worker, reading the CSV
    assert points[1]["run_dir"] is None
    assert "did not finish" in result.stderr and "no_such_column" in result.stderr
    assert "failed" in result.stdout and "completed" in result.stdout


def test_a_bad_override_fails_its_point_before_any_worker_starts(experiment):
    manifest_dir = sweep.start(experiment, sweep.make_grid(["model.layers[0].units=0,-1"]), Path("runs"))

    class NoWorkers:
        def run(self, tasks, on_start):
            raise AssertionError(f"no point should reach a worker, got {tasks}")

    result = sweep.execute(manifest_dir, NoWorkers())
    assert [p["status"] for p in result.manifest["points"]] == ["failed", "failed"]
    assert "greater than 0" in result.manifest["points"][0]["error"]
    assert [row["status"] for row in result.table] == ["failed", "failed"]
    assert [row["model.layers[0].units"] for row in result.table] == [0, -1]


class InProcess:
    """Run points with the real worker function, in this process (the process pool: the 2x2 sweep)."""

    def run(self, tasks, on_start):
        from dlrun.search.executors import run_point

        for task in tasks:
            on_start(task[0])
            yield run_point(*task, 2)


def test_resume_runs_only_the_missing_points(experiment, monkeypatch):
    grid = sweep.make_grid(["training.epochs=1"], "0,1,2")
    sweep_dir = sweep.start(experiment, grid, Path("runs"))
    first = sweep.execute(sweep_dir, InProcess())
    assert [p["status"] for p in first.manifest["points"]] == ["completed"] * 3
    points = first.manifest["points"]
    kept = sweep_dir / points[0]["run_dir"]
    kept_summary = (kept / "summary.json").read_text()
    # Simulate an interrupted sweep: point 1's run was lost, point 2 was stopped mid-run (no summary).
    shutil.rmtree(sweep_dir / points[1]["run_dir"])
    (sweep_dir / points[2]["run_dir"] / "summary.json").unlink()
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    manifest["points"][2]["status"] = "interrupted"
    (sweep_dir / "sweep.json").write_text(json.dumps(manifest))

    made = []
    monkeypatch.setattr(sweep, "make_executor", lambda *args: made.append(args) or InProcess())
    result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert made[0][:2] == ("local", 2)  # --jobs reached the executor
    resumed = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [p["status"] for p in resumed] == ["completed"] * 3
    assert resumed[0]["run_dir"] == points[0]["run_dir"] and (kept / "summary.json").read_text() == kept_summary
    run_dirs = [r for r in reading.find_runs([sweep_dir])[0]]
    assert len(run_dirs) == 3  # the half-written run was replaced, not kept beside the new one
    assert all(reading.load_run(r).summary["status"] == "completed" for r in run_dirs)

    again = runner.invoke(app, ["sweep", "--resume", str(sweep_dir)])
    assert again.exit_code == 0 and "0/0" in again.stdout  # nothing left to run


@pytest.mark.parametrize(
    "status, retry, again",
    [("failed", True, True), ("failed", False, False), ("nan", False, False), ("interrupted", False, True)],
)
def test_resume_retries_a_dead_worker_but_not_a_failure_that_would_repeat(tmp_path, status, retry, again):
    point = {"index": 0, "overrides": ["seed=0"], "status": status, "run_dir": None, "error": "x", "retry": retry}
    assert sweep.needs_run(point, tmp_path) is again


def test_resume_mistakes(experiment, tmp_path):
    result = runner.invoke(app, ["sweep", "--resume", str(tmp_path)])
    assert result.exit_code == 1 and "not a sweep folder" in result.stderr
    sweep_dir = sweep.start(experiment, sweep.make_grid(["seed=0,1"]), Path("runs"))
    result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir), "--set", "seed=3,4"])
    assert result.exit_code == 1 and "drop SPEC" in result.stderr
    experiment.write_text(experiment.read_text() + "\n# edited\n")
    with pytest.raises(DlrunError, match="changed since the sweep started"):
        sweep.execute(sweep_dir, sweep.make_executor("local", 1, None, 2))


def test_ray_missing_says_how_to_install(experiment, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = runner.invoke(app, ["sweep", str(experiment), "--seeds", "0,1", "--executor", "ray"])
    assert result.exit_code == 1
    assert 'pip install "dlrun[ray]"' in result.stderr and "Traceback" not in result.output
    assert not sweep_dirs()  # nothing was started


def test_address_needs_the_ray_executor(experiment):
    result = runner.invoke(app, ["sweep", str(experiment), "--seeds", "0,1", "--address", "auto"])
    assert result.exit_code == 1 and "--executor ray" in result.stderr


@pytest.mark.xdist_group("ray")  # one Ray at a time: a local ray.init() may join a cluster `ray start` made
def test_ray_sweep_2x2_on_a_local_instance(experiment):
    # ~40 s on 2 cores: a local Ray instance starts, and its workers start TensorFlow; both are what is tested
    pytest.importorskip("ray")
    result = runner.invoke(
        app,
        [
            "sweep",
            str(experiment),
            "--set",
            "training.optimizer.learning_rate=0.05,0.001",
            "--seeds",
            "0,1",
            "--executor",
            "ray",
            "--jobs",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    (sweep_dir,) = sweep_dirs()
    points = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["completed"] * 4
    runs, skipped = reading.load_runs([sweep_dir])
    assert not skipped and len(runs) == 4
    assert {(r.params["training.optimizer.learning_rate"], r.params["seed"]) for r in runs} == {
        (0.05, 0),
        (0.05, 1),
        (0.001, 0),
        (0.001, 1),
    }
    assert "best:" in result.stdout


@pytest.mark.xdist_group("ray")  # one Ray at a time: a local ray.init() may join a cluster `ray start` made
def test_a_ray_task_whose_worker_died_is_retried_by_resume_and_a_ray_task_error_is_not():
    ray = pytest.importorskip("ray")
    from dlrun.search.executors import _ray_failure

    crashed = _ray_failure(ray, 3, ray.exceptions.WorkerCrashedError())
    assert crashed["index"] == 3 and crashed["retry"] and "worker process" in crashed["error"]
    assert _ray_failure(ray, 1, ray.exceptions.OutOfMemoryError("memory monitor killed it"))["retry"]
    failed = _ray_failure(ray, 2, ray.exceptions.RayTaskError("run_point", "Traceback ...", ValueError("bug")))
    assert failed["status"] == "failed" and not failed["retry"]


def test_a_nan_run_is_kept_and_reported_in_the_table(tmp_path):
    from conftest import make_regression_csv

    make_regression_csv(tmp_path / "data.csv")
    spec = write_spec(
        tmp_path,
        {
            "data": {"path": "data.csv", "target": "y", "validation_split": 0.25},
            "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 1}]},
            "training": {
                "optimizer": {"name": "sgd", "learning_rate": 0.01},
                "loss": "mse",
                "epochs": 30,
                "batch_size": 8,
            },
        },
    )
    sweep_dir = sweep.start(spec, sweep.make_grid(["training.optimizer.learning_rate=0.01,1.0e+12"]), Path("runs"))
    result = sweep.execute(sweep_dir, InProcess())
    points = result.manifest["points"]
    assert [p["status"] for p in points] == ["completed", "nan"], points
    assert "NaN" in points[1]["error"] and points[1]["run_dir"]  # found although train() raised
    assert (sweep_dir / points[1]["run_dir"] / "history.csv").is_file()
    assert [row["status"] for row in result.table] == ["completed", "nan"]
    assert [p["index"] for p in result.failures] == [1]


def test_a_keras_failure_is_failed_in_the_manifest_as_in_the_summary(binary_experiment, monkeypatch):
    """The worker passes on the status train() decided; it used to call every TrainingError "nan"."""
    from dlrun.training import callbacks

    def failing_log(keras):
        class Fails(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                raise RuntimeError("InvalidArgumentError: a Keras error mid-fit")

        return Fails()

    sweep_dir = sweep.start(binary_experiment, sweep.make_grid(["training.epochs=2,3"]), Path("runs"))
    monkeypatch.setattr(callbacks, "_learning_rate_log", failing_log)
    result = sweep.execute(sweep_dir, InProcess())
    points = result.manifest["points"]
    assert [p["status"] for p in points] == ["failed", "failed"], points
    assert "InvalidArgumentError" in points[0]["error"]
    summary = json.loads((sweep_dir / points[0]["run_dir"] / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert json.loads((sweep_dir / "sweep.json").read_text())["points"][0]["status"] == "failed"


# --- a Ray cluster of two nodes (tests/raycluster.py) -----------------------------------------------


def nodes_ip(cluster) -> str:
    """The address Ray gives the nodes (all on this machine, so the same for both)."""
    (address,) = {json.loads(p.read_text())["node"]["ip"] for p in Path("runs").glob("*/sweep-*/*/*/summary.json")}
    return address


def ran_on(run_dir: Path) -> str:
    return json.loads((run_dir / "summary.json").read_text())["node"]["ray_node"]


@pytest.mark.xdist_group("ray")  # one Ray at a time: a local ray.init() may join a cluster `ray start` made
@pytest.mark.ray_cluster
def test_a_sweep_and_a_tune_on_a_two_node_ray_cluster_run_points_on_both_nodes(experiment, ray_cluster):
    # 40-80 s on 2 cores: starting the two nodes and a Ray worker on each is what is tested
    nodes = ray_cluster.node_ids()
    args = ["--set", "training.optimizer.learning_rate=0.05,0.01", "--set", "training.epochs=2"]
    result = ray_cluster.dlrun("sweep", str(experiment), *args, "--executor", "ray", "--address", ray_cluster.address)
    assert result.returncode == 0, result.stdout + result.stderr
    (sweep_dir,) = sweep_dirs()
    points = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["completed"] * 2
    # one CPU a node: the two points ran at once, so on both nodes; the manifest and each run say where
    assert {p["node"]["ray_node"] for p in points} == set(nodes.values())
    assert [ran_on(sweep_dir / p["run_dir"]) for p in points] == [p["node"]["ray_node"] for p in points]
    assert not (sweep_dir / ".dlrun-shared").exists()  # the token every node read back is removed

    if ray_cluster.hidden is not None:  # a node that does not see --out: refused before any point runs
        out = ray_cluster.hidden / "runs"
        refused = ray_cluster.dlrun(
            "sweep", str(experiment), *args, "--executor", "ray", "--address", ray_cluster.address, "--out", str(out)
        )
        assert refused.returncode == 1, refused.stdout + refused.stderr
        (folder,) = out.glob("*/sweep-*")
        error = (
            f"error: --out {out}: the Ray node {nodes_ip(ray_cluster)} ({nodes['node2'][:12]}) does not see {folder} "
            "as this machine does; a cluster needs --out on storage every node mounts at the same path (NFS, a "
            "shared disk)\n"
        )
        assert error in refused.stderr and "Traceback" not in refused.stderr
        assert not list(folder.glob("*/*"))  # no run started

    lr = "training.optimizer.learning_rate=loguniform(1e-3,1e-1)"
    tuned = ray_cluster.dlrun(
        *["tune", str(experiment), "--set", lr, "--set", "training.epochs=2", "--trials", "2", "--jobs", "2"],
        *["--pruner", "none", "--executor", "ray", "--address", ray_cluster.address],
    )
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    trials = [d for d in Path("runs").glob("*/tune-*/*/*") if (d / "summary.json").is_file()]
    assert len(trials) == 2 and {ran_on(d) for d in trials} == set(nodes.values())


@pytest.mark.xdist_group("ray")  # one Ray at a time: a local ray.init() may join a cluster `ray start` made
@pytest.mark.ray_cluster
def test_a_node_lost_mid_sweep_costs_its_point_one_attempt_retried_on_the_head(experiment, ray_cluster):
    import subprocess

    make_binary_csv(Path("data.csv"), rows=80)
    spec = write_spec(Path("."), binary_spec(epochs=4, batch_size=16))
    nodes = ray_cluster.node_ids()
    ray_cluster.holds.plan(epoch=1)  # every run waits after its first epoch until the node is gone
    command = [sys.executable, "-m", "dlrun", "sweep", str(spec), "--set", "training.optimizer.learning_rate=0.05,0.01"]
    command += ["--executor", "ray", "--address", ray_cluster.address]
    with open("out.txt", "w") as out, open("err.txt", "w") as err:
        driver = subprocess.Popen(command, stdout=out, stderr=err, env=ray_cluster.env, start_new_session=True)
    try:

        def held_on_node2() -> bool:
            return any(_started_on(Path(h["run_dir"])) == nodes["node2"] for h in ray_cluster.holds.held())

        ray_cluster.holds.wait(driver, also=held_on_node2)  # the point on the second node has trained an epoch
        on_node2 = [d for d in Path("runs").glob("*/sweep-*/*/*") if _started_on(d) == nodes["node2"]]
        assert ray_cluster.kill_node2()  # its raylet and the worker training the point
        ray_cluster.holds.release()  # the head's run, and the lost point tried again there, go on
        assert driver.wait(timeout=120) == 0, Path("out.txt").read_text() + Path("err.txt").read_text()
    finally:
        if driver.poll() is None:
            import os
            import signal

            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    (sweep_dir,) = sweep_dirs()
    points = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["completed"] * 2  # the sweep ends complete
    (lost,) = [p for p in points if p.get("lost")]
    died = {  # Ray says one or the other, by which it notices first: the node's death or its worker's
        "its worker or node died (Ray: NodeDiedError: Task failed because the node it was running on is dead or "
        "unavailable)",
        "its worker or node died (Ray: WorkerCrashedError: The worker died unexpectedly while executing this task)",
    }
    assert len(lost["lost"]) == 1 and lost["lost"][0] in died
    assert lost["node"]["ray_node"] == nodes["head"] == ran_on(sweep_dir / lost["run_dir"])  # tried again there
    assert not (on_node2[0]).exists()  # the lost attempt's half-written run is gone
    assert len([d for d in sweep_dir.glob("*/*") if d.is_dir()]) == 2
    output = Path("out.txt").read_text()
    assert output.count("lost ") == 1 and output.count(f": {lost['lost'][0]}; trained again") == 1  # reported once


def _started_on(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "start.json").read_text())["node"]["ray_node"]
    except (OSError, ValueError, KeyError):
        return None
