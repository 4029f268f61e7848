"""Tests of `dlrun tune`: a short study end to end, pruning and failures, a shared storage, Ctrl-C and --resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.runs import reading
from dlrun.search import study as studies
from dlrun.search import tune as tuning

from conftest import ROOT, binary_spec, make_binary_csv, make_regression_csv, write_spec
from holds import Holds

optuna = pytest.importorskip("optuna")
runner = CliRunner()
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
# Restores the default Ctrl-C handler: a child of a non-interactive shell may inherit SIGINT ignored.
DLRUN = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('dlrun', run_name='__main__')"
)
LR = "training.optimizer.learning_rate"
# `dlrun tune` whose trials train in the driver's own process (as the in_process fixture does): one TensorFlow start
TUNE_IN_PROCESS = (
    "import os, runpy\n"
    "import dlrun.cli.search as cli\n"
    "class InProcess:\n"
    "    def run(self, tasks, on_start):\n"
    "        from dlrun.search.trial import run_trial\n"
    "        while (task := tasks()) is not None:\n"
    "            on_start(task[0])\n"
    "            yield run_trial(*task, 1)\n"
    "cli.make_tune_executor = lambda *args: InProcess()\n"
    "if os.environ.get('DLRUN_TEST_NO_FIGURES'):\n"
    "    import dlrun.search.results as results\n"
    "    results.write_figures = lambda *args: []\n"
    "runpy.run_module('dlrun', run_name='__main__')\n"
)


class InProcess:
    """Run trials with the real trial function in this process: no TensorFlow start per test."""

    def run(self, tasks, on_start):
        from dlrun.search.trial import run_trial

        while (task := tasks()) is not None:
            on_start(task[0])
            yield run_trial(*task, 2)


@pytest.fixture
def in_process(monkeypatch):
    monkeypatch.setattr("dlrun.cli.search.make_tune_executor", lambda *args: InProcess())


def the_tune() -> Path:
    (tune_dir,) = Path("runs").glob("*/tune-*")
    return tune_dir


def load_study(url: str, name: str):
    return optuna.load_study(study_name=name, storage=studies.open_storage(url))


def study_of(tune_dir: Path):
    manifest = tuning.read_manifest(tune_dir)
    return load_study(manifest["storage"], manifest["study"])


def test_a_short_study_leaves_a_table_importances_pngs_and_a_best_yaml_that_trains_as_is(tmp_path, in_process):
    # trials in this process: the tune worker process is what the Ctrl-C and two-process tests start
    make_binary_csv(tmp_path / "data.csv", rows=80)
    spec = write_spec(tmp_path, binary_spec(epochs=3, batch_size=64))
    result = runner.invoke(
        app,
        ["tune", str(spec), "--set", f"{LR}=loguniform(1e-3,1e-1)", "--set", "model.layers[0].units=choice(2,8)"]
        + ["--trials", "3", "--pruner", "none"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    tune_dir = the_tune()
    assert "best 3 of 3 trials, by val_loss (min)" in result.output and "importance: " in result.output
    assert {"tune.json", "study.log", "trials.csv", "best.yaml", "optimization_history.png"} <= {
        p.name for p in tune_dir.iterdir()
    }
    for png in ("optimization_history.png", "param_importances.png"):
        import matplotlib.image

        assert matplotlib.image.imread(tune_dir / png).shape[:2] == (500, 800)  # 8 x 5 inches at 100 dpi

    study = study_of(tune_dir)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial in trials:  # each trial is an ordinary run directory, its values as overrides
        run_dir = Path(trial.user_attrs[studies.RUN_DIR])
        assert run_dir.parent.parent == tune_dir.resolve()
        overrides = (run_dir / "overrides.txt").read_text().splitlines()
        assert overrides == [
            f"{LR}={trial.params[LR]!r}",
            f"model.layers[0].units={trial.params['model.layers[0].units']}",
        ]
        run = reading.load_run(run_dir)
        assert trial.value == run.summary["best_value"] and not any(p.startswith("search") for p in run.params)
        assert len(trial.intermediate_values) == run.summary["epochs_run"]  # every epoch reported
    csv_rows = (tune_dir / "trials.csv").read_text().splitlines()
    assert len(csv_rows) == 4 and csv_rows[0].startswith("run,trial,")

    best = study.best_trial
    trained = runner.invoke(app, ["train", str(tune_dir / "best.yaml"), "--out", "again", "--quiet"])
    assert trained.exit_code == 0, trained.output
    (again,) = Path("again").glob("*/*")
    assert reading.load_run(again).summary["best_value"] == pytest.approx(best.value, rel=1e-6)  # the same run

    compared = runner.invoke(app, ["compare", str(tune_dir), "--json"])
    assert compared.exit_code == 0 and len(json.loads(compared.stdout)) == 3
    plotted = runner.invoke(app, ["plot", str(tune_dir), "--out", "tune.png"])
    assert plotted.exit_code == 0 and Path("tune.png").stat().st_size > 0


def test_hopeless_trials_are_pruned_and_a_nan_trial_fails_while_the_search_goes_on(tmp_path, in_process):
    make_regression_csv(tmp_path / "data.csv", rows=120)
    spec = {
        "data": {"path": "data.csv", "target": "y", "validation_split": 0.25, "scale": "standard"},
        "model": {"layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}]},
        "training": {"optimizer": {"name": "sgd"}, "loss": "mse", "epochs": 6, "batch_size": 16},
        "search": {LR: "choice(1e-9, 0.05, 1e9)", "seed": [0, 1]},
    }
    path = write_spec(tmp_path, spec)
    # an SQLite study (relative URL, made absolute): reports, pruning and failures go through SQLAlchemy here
    args = ["--sampler", "grid", "--prune-startup", "1", "--seed", "3", "--storage", "sqlite:///pruning.db"]
    result = runner.invoke(app, ["tune", str(path), *args])
    assert result.exit_code == 0, result.output  # failed trials do not fail a search that found a best
    assert tuning.read_manifest(the_tune())["storage"] == f"sqlite:///{Path('pruning.db').resolve()}"
    study = study_of(the_tune())
    states = {(t.params[LR], t.params["seed"]): t for t in study.get_trials()}
    assert len(states) == 6  # the grid, each point once
    assert {t.state.name for (lr, _), t in states.items() if lr == 1e9} == {"FAIL"}
    assert {t.user_attrs[studies.STATUS] for (lr, _), t in states.items() if lr == 1e9} == {"nan"}
    assert {t.state.name for (lr, _), t in states.items() if lr == 0.05} == {"COMPLETE"}
    pruned = [t for t in study.get_trials() if t.state.name == "PRUNED"]
    assert pruned and all(t.params[LR] == 1e-9 for t in pruned)
    for trial in pruned:  # a pruned trial keeps its run directory, history and plots
        run = reading.load_run(Path(trial.user_attrs[studies.RUN_DIR]))
        assert run.summary["status"] == "pruned" and str(run.status) == "pruned"
        assert 1 <= len(run.history) == run.summary["epochs_run"] < 6
        assert (run.run_dir / "plots").is_dir() and (run.run_dir / "model.keras").is_file()
        assert not (run.run_dir / "checkpoint").exists()
        assert trial.value == pytest.approx(trial.intermediate_values[trial.last_step])
    assert "pruned" in result.output and " nan " in result.output.replace("│", " ")
    assert "trial" in result.stderr and "the loss became NaN" in result.stderr
    resumed = runner.invoke(app, ["train", "--resume", str(pruned[0].user_attrs[studies.RUN_DIR])])
    assert resumed.exit_code == 1 and "was pruned by dlrun tune" in resumed.stderr


def test_two_processes_sharing_a_storage_run_the_trial_count_once(tmp_path):
    # ~35 s on 2 cores: two real tune processes, each with its worker process starting TensorFlow, are what is tested
    make_binary_csv(tmp_path / "data.csv", rows=100)
    spec = write_spec(tmp_path, binary_spec(epochs=4, batch_size=16))
    shared = tmp_path / "shared.log"
    command = [sys.executable, "-m", "dlrun", "tune", str(spec), "--set", f"{LR}=loguniform(1e-3,1e-1)"]
    # each driver asks the study for its first trial as it starts its worker, before TensorFlow loads there
    command += ["--trials", "4", "--storage", str(shared), "--study", "shared", "--pruner", "none"]
    drivers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)
    ]
    outputs = [driver.communicate(timeout=300) for driver in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    study = load_study(str(shared), "shared")
    counted = [t for t in study.get_trials() if not studies.left_out(t)]
    assert len(counted) == 4 and all(t.state.name == "COMPLETE" for t in counted)
    assert len({t.user_attrs[studies.OWNER]["pid"] for t in counted}) == 2  # both processes ran trials
    runs = sorted(str(p.resolve()) for p in Path("runs").glob("*/tune-*/*/*") if (p / "summary.json").is_file())
    assert len(list(Path("runs").glob("*/tune-*"))) == 2  # each process has its own tune folder
    assert sorted(t.user_attrs[studies.RUN_DIR] for t in counted) == runs  # each trial trained once, by one process
    assert len({t.params[LR] for t in counted}) == 4


def test_ctrl_c_keeps_the_finished_trials_and_resume_tries_the_interrupted_one_again(tmp_path, in_process):
    # ~35 s on 2 cores: a real tune process and its worker (TensorFlow starts there), Ctrl-C to both, then a resume
    make_binary_csv(tmp_path / "data.csv", rows=100)
    spec = write_spec(tmp_path, binary_spec(epochs=4, batch_size=16))
    holds = Holds(tmp_path / "holds", epoch=1, runs=[2])  # the first trial finishes, the second waits mid-run
    with open("err.txt", "w") as err:
        driver = subprocess.Popen(
            [sys.executable, "-c", DLRUN, "tune", str(spec), "--set", f"{LR}=loguniform(1e-3,1e-1)", "--trials", "3"]
            + ["--pruner", "none"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=holds.env(ENV),
            start_new_session=True,
        )
    try:
        holds.wait(driver)  # one trial finished, the next one trained an epoch
        states = _states()
        assert states.count("COMPLETE") == 1 and "RUNNING" in states and _training_epochs() >= 1, states
        os.killpg(driver.pid, signal.SIGINT)  # the signal also ends the hold
        assert driver.wait(timeout=120) == 130, Path("err.txt").read_text()
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert "dlrun tune --resume" in Path("err.txt").read_text()
    tune_dir = the_tune()
    first, stopped, waiting = study_of(tune_dir).get_trials()
    assert (first.state.name, stopped.state.name, waiting.state.name) == ("COMPLETE", "FAIL", "WAITING")
    assert stopped.user_attrs[studies.RETRY] and stopped.user_attrs[studies.STATUS] == "interrupted"
    assert waiting.system_attrs["fixed_params"] == stopped.params  # its values wait to be tried again
    (half,) = [d for d in tune_dir.glob("*/*") if reading.read_summary(d).get("status") == "interrupted"]

    result = runner.invoke(app, ["tune", "--resume", str(tune_dir)])
    assert result.exit_code == 0, result.output
    assert f"resuming {tune_dir}: 2 of 3 trials in the study" in result.output
    trials = study_of(tune_dir).get_trials()
    counted = [t for t in trials if not studies.left_out(t)]
    assert [t.state.name for t in counted] == ["COMPLETE"] * 3 and counted[0].number == first.number
    assert counted[1].params == stopped.params and counted[1].user_attrs["dlrun.retry_of"] == stopped.number
    assert not half.exists()  # the half-written run of the retried values is replaced
    assert len([d for d in tune_dir.glob("*/*") if d.is_dir()]) == 3

    result = runner.invoke(app, ["tune", "--resume", str(tune_dir), "--trials", "4", "--timeout", "0"])
    assert result.exit_code == 0 and "3 of 4 trials" in result.output  # a new count; no trial after the time


def _states() -> list[str]:
    tunes = list(Path("runs").glob("*/tune-*"))
    if not tunes or not (tunes[0] / "study.log").is_file():
        return []
    return [t.state.name for t in study_of(tunes[0]).get_trials()]


def _training_epochs() -> int:
    busy = [d for d in Path("runs").glob("*/tune-*/*/*") if not (d / "summary.json").exists()]
    history = [d / "history.csv" for d in busy if (d / "history.csv").is_file()]
    return max((len(h.read_text().splitlines()) - 1 for h in history), default=0)


def test_resume_fails_the_trials_of_a_dead_process_and_queues_their_values(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = write_spec(tmp_path, binary_spec(epochs=2))
    options = tuning.Options(trials=2, pruner=studies.PrunerKind.none)
    tune_dir = tuning.start(spec, [f"{LR}=loguniform(1e-3,1e-1)"], options, Path("runs"))
    manifest = tuning.read_manifest(tune_dir)
    study = tuning.open_study(manifest)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask(studies.Space(manifest["search"]).optuna())
    orphan.set_user_attr(studies.OWNER, {"pid": dead.pid, "host": socket.gethostname(), "started": None})
    alive = study.ask(studies.Space(manifest["search"]).optuna())
    alive.set_user_attr(studies.OWNER, {"pid": os.getpid(), "host": socket.gethostname(), "started": None})

    class Nothing:
        def run(self, tasks, on_start):
            return iter(())

    planned = []
    tuning.execute(tune_dir, Nothing(), on_plan=lambda held, target: planned.append((held, target)))
    first, second, retry = study_of(tune_dir).get_trials()
    assert first.state.name == "FAIL" and first.user_attrs[studies.RETRY]
    assert second.state.name == "RUNNING"  # its process lives: another driver's trial, left alone
    assert retry.state.name == "WAITING" and retry.system_attrs["fixed_params"] == first.params
    assert planned == [(2, 2)]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "how many trials? add --trials N"),
        (["--trials", "2", "--set", "training.epochs=3"], "nothing to search in"),
        (
            ["--trials", "2", "--set", f"{LR}=loguniform(1e-3,1)", "--metric", "val_auc"],
            "--metric 'val_auc' is not logged",
        ),
        (["--set", f"{LR}=loguniform(1e-3,1)", "--sampler", "grid"], "grid needs a finite list of values"),
        (
            ["--trials", "2", "--set", "model.layers[0].units=int(0,4)"],
            "int(0,4): search.model.layers[0].units: its low",
        ),
        (["--resume", "runs", "--set", "seed=1"], "--resume continues a tune as it was started: drop SPEC, --set"),
    ],
)
def test_mistakes_are_one_message_and_leave_no_tune_folder(tmp_path, args, message):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = write_spec(tmp_path, binary_spec(epochs=2))
    result = runner.invoke(app, ["tune", str(spec), *args])
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert "Traceback" not in result.output and not list(Path("runs").glob("*/tune-*"))


def test_a_shared_study_that_searches_something_else_is_refused_before_any_work(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = write_spec(tmp_path, binary_spec(epochs=2))
    shared = str(tmp_path / "shared.log")
    base = ["tune", str(spec), "--trials", "1", "--storage", shared, "--study", "s", "--timeout", "0"]
    assert runner.invoke(app, [*base, "--set", f"{LR}=loguniform(1e-3,1e-1)"]).exit_code == 1  # no trial ran
    result = runner.invoke(app, [*base, "--set", f"{LR}=loguniform(1e-4,1e-1)"])
    assert result.exit_code == 1 and "study 's' in" in result.stderr and "its search differ" in result.stderr
    assert len(list(Path("runs").glob("*/tune-*"))) == 1


def test_missing_packages_say_how_to_install_them(tmp_path, monkeypatch):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = write_spec(tmp_path, binary_spec(epochs=2))
    args = ["tune", str(spec), "--trials", "1", "--set", f"{LR}=loguniform(1e-3,1e-1)"]
    monkeypatch.setitem(sys.modules, "cmaes", None)
    result = runner.invoke(app, [*args, "--sampler", "cmaes"])
    assert result.exit_code == 1 and "--sampler cmaes needs the cmaes package" in result.stderr
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and 'pip install "dlrun[tune]"' in result.stderr


# --- a real PostgreSQL study (tests/pgserver.py) ----------------------------------------------------


@pytest.mark.postgres
def test_four_processes_started_together_on_a_new_postgresql_study_run_the_trial_count_once(tmp_path, postgres_url):
    # ~40 s on 2 cores beside the rest of the suite (4 TensorFlow starts): 4 processes are what is tested
    make_binary_csv(tmp_path / "data.csv", rows=80)
    spec = write_spec(tmp_path, binary_spec(epochs=1, batch_size=32))
    command = [sys.executable, "-c", TUNE_IN_PROCESS, "tune", str(spec), "--set", f"{LR}=loguniform(1e-3,1e-1)"]
    command += ["--trials", "6", "--storage", postgres_url, "--study", "together", "--pruner", "none"]
    env = {**ENV, "DLRUN_TEST_NO_FIGURES": "1"}  # the PNGs cost seconds in each process and are tested above
    drivers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)
    ]
    try:
        outputs = [driver.communicate(timeout=300) for driver in drivers]
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    assert [d.returncode for d in drivers] == [0, 0, 0, 0], outputs
    study = load_study(postgres_url, "together")
    counted = [t for t in study.get_trials() if not studies.left_out(t)]
    assert len(counted) == 6 and all(t.state.name == "COMPLETE" for t in counted)
    assert sorted(t.number for t in counted) == list(range(6))  # the first six by number; the surplus ones left out
    runs = sorted(str(p.resolve()) for p in Path("runs").glob("*/tune-*/*/*") if (p / "summary.json").is_file())
    assert sorted(t.user_attrs[studies.RUN_DIR] for t in counted) == runs  # each trial trained once, by one process
    assert len({t.params[LR] for t in counted}) == 6

    best = study.best_trial
    best_yamls = [p for p in Path("runs").glob("*/tune-*/best.yaml")]
    assert len(best_yamls) == 4  # each process writes the study's best
    trained = runner.invoke(app, ["train", str(best_yamls[0]), "--out", "again", "--quiet"])
    assert trained.exit_code == 0, trained.output
    (again,) = Path("again").glob("*/*")
    assert reading.load_run(again).summary["best_value"] == pytest.approx(best.value, rel=1e-6)


@pytest.mark.postgres
def test_a_postgresql_study_whose_process_was_killed_resumes_with_its_running_trial_retried(
    tmp_path, postgres_url, in_process
):
    make_binary_csv(tmp_path / "data.csv", rows=100)
    spec = write_spec(tmp_path, binary_spec(epochs=4, batch_size=16))
    holds = Holds(tmp_path / "holds", epoch=1, runs=[2])  # the first trial finishes, the second waits mid-run
    command = [sys.executable, "-c", TUNE_IN_PROCESS, "tune", str(spec), "--set", f"{LR}=loguniform(1e-3,1e-1)"]
    command += ["--trials", "2", "--storage", postgres_url, "--study", "killed", "--pruner", "none"]
    with open("err.txt", "w") as err:
        driver = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, env=holds.env(ENV), start_new_session=True
        )
    try:
        holds.wait(driver)  # one trial finished, the next one trained an epoch
        states = [t.state.name for t in load_study(postgres_url, "killed").get_trials()]
        assert states == ["COMPLETE", "RUNNING"] and _training_epochs() >= 1, states
        os.killpg(driver.pid, signal.SIGKILL)  # at once: nothing is told to the study
        driver.wait()
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    finished, killed = load_study(postgres_url, "killed").get_trials()
    assert (finished.state.name, killed.state.name) == ("COMPLETE", "RUNNING")
    (half,) = [d for d in Path("runs").glob("*/tune-*/*/*") if not (d / "summary.json").exists()]

    result = runner.invoke(app, ["tune", "--resume", str(the_tune())])
    assert result.exit_code == 0, result.output
    assert f"resuming {the_tune()}: 2 of 2 trials in the study" in result.output
    trials = load_study(postgres_url, "killed").get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[0].state.name == "COMPLETE" and trials[0].value == finished.value  # nothing else lost
    assert trials[1].state.name == "FAIL" and trials[1].user_attrs[studies.RETRY]  # the killed one, failed
    assert trials[1].user_attrs[studies.ERROR] == "its process is gone"
    assert trials[2].state.name == "COMPLETE" and trials[2].params == killed.params  # and tried again
    assert trials[2].user_attrs["dlrun.retry_of"] == 1
    assert not half.exists()  # the half-written run of the killed trial is replaced
    assert len([d for d in the_tune().glob("*/*") if d.is_dir()]) == 2


def _cut_last_record(journal: Path) -> bytes:
    data = journal.read_bytes()
    last = data[: len(data) - 1].rfind(b"\n") + 1
    cut = data[last : last + (len(data) - last) // 2]
    journal.write_bytes(data[:last] + cut)
    return cut


@pytest.mark.parametrize("join", [False, True], ids=["resume", "join"])
def test_a_cut_last_journal_record_is_set_aside_before_anything_is_appended(tmp_path, in_process, join):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = write_spec(tmp_path, binary_spec(epochs=1))
    search = ["--set", f"{LR}=loguniform(1e-3,1e-1)", "--pruner", "none"]
    journal = tmp_path / "study.log"
    first = ["tune", str(spec), *search, "--trials", "1", "--storage", str(journal), "--study", "s1"]
    assert runner.invoke(app, first).exit_code == 0
    cut = _cut_last_record(journal)  # a crash (or a full disk) while Optuna appended its last record

    if join:
        again = ["tune", str(spec), *search, "--trials", "2", "--storage", str(journal), "--study", "s1"]
    else:
        again = ["tune", "--resume", str(the_tune()), "--trials", "2"]
    result = runner.invoke(app, again)
    assert result.exit_code == 0, result.output
    assert (
        f"warning: the last record of {journal} was cut short (a crash or a full disk while it was written); it is "
        "set aside in study.log.cut-1, and the study goes on from the records before it, as Optuna reads it"
    ) in result.stderr
    assert (tmp_path / "study.log.cut-1").read_bytes() == cut
    assert journal.read_bytes().endswith(b"\n")
    study = optuna.load_study(study_name="s1", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))  # fmt: skip
    assert studies.counted(study.get_trials()) == 2  # Optuna reads every record, the new ones included


def test_a_journal_cut_in_the_middle_is_refused_in_one_line_and_left_as_it_is(tmp_path):
    journal = tmp_path / "study.log"
    journal.write_bytes(b'{"op_code": 0, "worker_id": "a"}\n{"op_code": 1, "wor{"op_code": 2}\n')
    before = journal.read_bytes()
    with pytest.raises(studies.DlrunError) as caught:
        studies.open_storage(str(journal))
    assert str(caught.value) == (
        f"{journal} line 2 is not a whole record (a write was cut short, then records were appended after it): "
        "Optuna cannot read the study past it; keep a copy of the file and delete that line, or start a new tune"
    )
    assert journal.read_bytes() == before and not list(tmp_path.glob("study.log.*"))


def test_a_tune_that_outlives_a_killed_peer_says_its_trial_is_held_by_a_dead_process(tmp_path, monkeypatch):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = write_spec(tmp_path, binary_spec(epochs=1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    class PeerDiesMidway(InProcess):
        """While this tune runs, a peer sharing the study asks a trial and is killed (kill -9) before it ends."""

        def run(self, tasks, on_start):
            manifest = tuning.read_manifest(the_tune())
            peer = tuning.open_study(manifest).ask(studies.Space(manifest["search"]).optuna())
            peer.set_user_attr(studies.OWNER, {"pid": dead.pid, "host": socket.gethostname(), "started": None})
            yield from super().run(tasks, on_start)

    monkeypatch.setattr("dlrun.cli.search.make_tune_executor", lambda *args: PeerDiesMidway())
    args = ["tune", str(spec), "--set", f"{LR}=loguniform(1e-3,1e-1)", "--trials", "2", "--pruner", "none"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    tune_dir = the_tune()
    assert (
        "warning: the study holds 1 trial(s) left running by a process that is gone (trial 0): they count toward "
        f"the trial count but will never finish; try their values again with: dlrun tune --resume {tune_dir}"
    ) in result.stderr

    monkeypatch.setattr("dlrun.cli.search.make_tune_executor", lambda *args: InProcess())
    result = runner.invoke(app, ["tune", "--resume", str(tune_dir)])  # the command it gave retries them
    assert result.exit_code == 0 and "left running" not in result.stderr, result.output
    trials = study_of(tune_dir).get_trials()
    assert [t.state.name for t in trials if not studies.left_out(t)] == ["COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs[studies.RETRY] and trials[-1].params == trials[0].params
