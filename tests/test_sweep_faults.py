"""Fault injection on real sweep processes: a worker killed with -9, a driver killed with -9, Ctrl-C,
and a resume while another process still writes a run.

The sweeps run as `python -m dlrun sweep` subprocesses, the way a user starts them; the tests find a
worker by the pid in the lock file of the run it writes, or the driver's workers by their parent pid.
Runs are held at the end of their first epoch (`holds.Holds`) until a test has acted, so each test sees
the same state whatever the machine's speed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.runs import reading
from dlrun.search import sweep

from conftest import ROOT, binary_spec, make_binary_csv, write_spec
from holds import Holds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find processes")

runner = CliRunner()
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
SEEDS = ["--seeds", "0,1,2,3"]
# Restores the default Ctrl-C handler: a child of a non-interactive shell may inherit SIGINT ignored.
DLRUN = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('dlrun', run_name='__main__')"
)


@pytest.fixture
def small_spec(tmp_path) -> Path:
    """A spec of short runs (4 epochs of 4 batches): a hold keeps one mid-run while a test acts."""
    make_binary_csv(tmp_path / "data.csv", rows=80)
    return write_spec(tmp_path, binary_spec(epochs=4, batch_size=16))


class InProcess:
    """Resume with the real worker function in this process: the pool itself is what the sweeps above test."""

    def run(self, tasks, on_start):
        from dlrun.search.executors import run_point

        for task in tasks:
            on_start(task[0])
            yield run_point(*task, 2)


@pytest.fixture
def start_sweep():
    """Start `dlrun sweep ARGS` in its own session; at the end, kill what is left of it (a failed test's orphans)."""
    started: list[subprocess.Popen] = []

    def start(*args: str, holds: Holds) -> subprocess.Popen:
        with open("out.txt", "w") as out, open("err.txt", "w") as err:
            started.append(
                subprocess.Popen(
                    [sys.executable, "-c", DLRUN, "sweep", *args],
                    stdout=out,
                    stderr=err,
                    env=holds.env(ENV),
                    start_new_session=True,
                )
            )
        return started[-1]

    yield start
    for driver in started:
        for pid in [*children(driver.pid), driver.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # gone, as it should be
        driver.wait()


def the_sweep() -> Path:
    (sweep_dir,) = Path("runs").glob("*/sweep-*")
    return sweep_dir


def run_dirs() -> list[Path]:
    return sorted(d for d in Path("runs").glob("*/sweep-*/*/*") if d.is_dir())


def training() -> list[Path]:
    """Runs that have finished an epoch and are still training."""
    return [
        d
        for d in run_dirs()
        if not (d / "summary.json").is_file()
        and (d / "history.csv").is_file()
        and len((d / "history.csv").read_text().splitlines()) >= 2
    ]


def finished() -> list[Path]:
    """Runs that ended with every file on disk (a run killed writing its plots has a summary that lists them)."""
    return [d for d in ended() if "missing" not in json.loads((d / "summary.json").read_text())]


def ended() -> list[Path]:
    """Runs that trained to their end: finished, or killed while writing their plots (finished by --resume)."""
    return [d for d in run_dirs() if (d / "summary.json").is_file()]


def process_alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed child nobody reaped yet is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rfind(")") + 2 :].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def worker_of(run_dir: Path, driver: int) -> int:
    """The pid writing a run: from its lock file (or, without one, the driver's first spawned worker)."""
    lock = run_dir / "dlrun.lock"
    if lock.is_file():
        return json.loads(lock.read_text())["pid"]
    return next(p for p in children(driver) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes())


def runs_per_point(sweep_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run_dir in sweep_dir.glob("*/*"):
        key = (run_dir / "overrides.txt").read_text().strip()
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_a_dead_worker_fails_only_its_point_and_resume_retrains_just_that_point(
    small_spec, start_sweep, monkeypatch, tmp_path
):
    # ~50 s on 2 cores beside the rest of the suite: a real sweep (a driver, two spawned workers starting TensorFlow),
    # a worker killed and replaced, then a resume; the processes are what is tested
    holds = Holds(tmp_path / "holds", epoch=1)
    driver = start_sweep(str(small_spec), *SEEDS, "--jobs", "2", holds=holds)
    held = holds.wait(driver)[0]
    victim = Path(held["run_dir"])
    assert victim in [d.resolve() for d in training()]  # a finished epoch on disk, still training
    worker = worker_of(victim, driver.pid)
    assert worker == held["pid"]
    os.kill(worker, signal.SIGKILL)
    holds.release()  # the other runs go on
    assert driver.wait(timeout=180) == 1
    err = Path("err.txt").read_text()
    sweep_dir = the_sweep()
    points = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert sorted(p["status"] for p in points) == ["completed"] * 3 + ["failed"], points
    (dead,) = [p for p in points if p["status"] == "failed"]
    assert dead["retry"] is True and "worker process" in dead["error"] and "SIGKILL" in dead["error"]
    assert (victim / "overrides.txt").read_text().splitlines() == dead["overrides"]
    assert json.loads((victim / "dlrun.lock").read_text())["pid"] == worker  # the lock of a run left half-written
    for point in points:
        if point is not dead:  # the run in the other worker and the points not yet started all finished
            assert reading.load_run(sweep_dir / point["run_dir"]).summary["status"] == "completed"
    assert "--resume" in err and "Traceback" not in err
    kept = {p["index"]: (sweep_dir / p["run_dir"] / "summary.json").read_text() for p in points if p is not dead}

    monkeypatch.setattr(sweep, "make_executor", lambda *args: InProcess())
    result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    assert "1 of 4 runs left" in result.stdout
    resumed = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [p["status"] for p in resumed] == ["completed"] * 4
    assert {i: (sweep_dir / resumed[i]["run_dir"] / "summary.json").read_text() for i in kept} == kept
    compared = runner.invoke(app, ["compare", str(sweep_dir), "--json"])
    assert compared.exit_code == 0 and len(json.loads(compared.stdout)) == 4, compared.output
    assert runs_per_point(sweep_dir) == {f"seed={i}": 1 for i in range(4)}  # the half-written run was replaced


def test_killing_the_driver_kills_its_workers_and_resume_trains_only_what_did_not_finish(
    small_spec, start_sweep, monkeypatch, tmp_path
):
    # ~40 s on 2 cores beside the rest of the suite: a real driver and its workers, killed, then a resume
    holds = Holds(tmp_path / "holds", epoch=1, runs=[2, 3, 4])  # the first run to start finishes, no other
    driver = start_sweep(str(small_spec), *SEEDS, "--jobs", "2", holds=holds)
    holds.wait(driver, count=2, also=lambda: bool(finished()))  # both workers busy, one run done
    assert len(training()) == 2
    workers = children(driver.pid)
    assert len(workers) >= 2
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 5
    while any(map(process_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if process_alive(pid)], "orphan workers outlived the driver"

    sweep_dir = the_sweep()
    done = {d: (d / "summary.json").read_text() for d in finished()}
    trained = len(ended())  # with a run killed as it wrote its plots, which --resume finishes, not retrains
    assert 1 <= len(done) <= trained < 4
    # The worst case the driver can leave: it died before writing down any result.
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    for point in manifest["points"]:
        point.update(status="pending", run_dir=None, error=None)
    (sweep_dir / "sweep.json").write_text(json.dumps(manifest))

    monkeypatch.setattr(sweep, "make_executor", lambda *args: InProcess())
    result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    assert f"{4 - trained} of 4 runs left" in result.stdout
    points = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["completed"] * 4
    assert {d: (d / "summary.json").read_text() for d in done} == done  # finished runs were taken, not retrained
    assert runs_per_point(sweep_dir) == {f"seed={i}": 1 for i in range(4)}  # never twice
    assert not list(sweep_dir.rglob("dlrun.lock"))
    compared = runner.invoke(app, ["compare", str(sweep_dir), "--json"])
    assert len(json.loads(compared.stdout)) == 4, compared.output


@pytest.mark.parametrize(
    "stop, code",
    [
        pytest.param(lambda driver: os.killpg(driver.pid, signal.SIGINT), 130, id="ctrl-c-in-a-terminal"),
        pytest.param(lambda driver: driver.send_signal(signal.SIGTERM), 143, id="sigterm-to-the-driver-alone"),
    ],
)
def test_ctrl_c_or_sigterm_stops_the_runs_in_progress_and_starts_nothing(small_spec, start_sweep, stop, code, tmp_path):
    """A terminal's Ctrl-C goes to the driver's process group, SIGTERM (kill, timeout) to the driver alone:
    either way the driver stops its busy worker with one SIGINT (the signal also ends the run's hold)."""
    holds = Holds(tmp_path / "holds", epoch=1)
    driver = start_sweep(str(small_spec), "--seeds", "0,1", "--jobs", "1", holds=holds)
    holds.wait(driver)
    (busy,) = training()
    stop(driver)
    assert driver.wait(timeout=120) == code  # the shell's 128 + the signal
    points = json.loads((the_sweep() / "sweep.json").read_text())["points"]
    assert [p["status"] for p in points] == ["interrupted"] * 2, points
    assert (the_sweep() / points[0]["run_dir"]).resolve() == busy.resolve()
    run = reading.load_run(busy)
    assert run.summary["status"] == "interrupted" and len(run.history) >= 1  # stopped, its epochs kept
    assert points[1]["run_dir"] is None and run_dirs() == [busy]  # the next point never started
    assert not list(the_sweep().rglob("dlrun.lock"))
    assert "sweep --resume" in Path("err.txt").read_text()


HOLDER = """
import sys, time
from pathlib import Path
from dlrun.data.prepare import prepare
from dlrun.spec.loader import load_spec
from dlrun.training.fit import start_run

spec_path, sweep_dir, overrides = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
if overrides:  # start a run of this point, as a worker does, and keep writing it
    spec = load_spec(spec_path, overrides)
    print(start_run(spec, prepare(spec.data, spec.seed, spec.training.loss), sweep_dir, overrides), flush=True)
else:  # hold the sweep folder, as a driver does
    from dlrun.runs import lock

    lock.acquire(sweep_dir)
    print(sweep_dir, flush=True)
time.sleep(600)
"""


def hold(spec: Path, sweep_dir: Path, *overrides: str) -> tuple[subprocess.Popen, Path]:
    """Start a live process that writes a run of the point `overrides` (or runs the sweep, without them)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(spec), str(sweep_dir), *overrides],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    return holder, Path(holder.stdout.readline().strip())


def test_resume_never_deletes_a_run_that_a_live_process_writes(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=80)
    spec = write_spec(tmp_path, binary_spec(epochs=1, batch_size=64))
    sweep_dir = sweep.start(spec, sweep.make_grid(["seed=0,1"]), Path("runs"))
    holder, run_dir = hold(spec, sweep_dir, "seed=1")
    try:
        result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir)])
        assert result.exit_code == 1
        assert "a live process still writes this run" in result.stderr and f"kill {holder.pid}" in result.stderr, (
            result.stderr
        )
        assert (run_dir / "config.yaml").is_file() and (run_dir / "dlrun.lock").is_file()
        assert run_dirs() == [run_dir]  # nothing was trained either
    finally:
        holder.kill()
        holder.wait()
    # Its writer is gone: the half-written run is deleted and the point trained again.
    result = sweep.execute(sweep_dir, InProcess())
    assert [p["status"] for p in result.manifest["points"]] == ["completed", "completed"]
    assert runs_per_point(sweep_dir) == {"seed=0": 1, "seed=1": 1}  # (a new run may reuse the deleted one's name)
    assert reading.read_summary(sweep_dir / result.manifest["points"][1]["run_dir"])["status"] == "completed"


def test_one_driver_at_a_time_runs_a_sweep(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=80)
    spec = write_spec(tmp_path, binary_spec(epochs=1, batch_size=64))
    sweep_dir = sweep.start(spec, sweep.make_grid(["seed=0,1"]), Path("runs"))
    holder, _ = hold(spec, sweep_dir)
    try:
        result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir)])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1 and "being run by another dlrun sweep" in result.stderr, result.output
    assert not run_dirs()


def test_resume_finishes_a_run_killed_while_writing_its_plots_instead_of_training_it_again(tmp_path, monkeypatch):
    make_binary_csv(tmp_path / "data.csv", rows=80)
    spec = write_spec(tmp_path, binary_spec(epochs=1, batch_size=64))
    sweep_dir = sweep.start(spec, sweep.make_grid(["seed=0"]), Path("runs"))
    monkeypatch.setattr(sweep, "make_executor", lambda *args: InProcess())
    assert runner.invoke(app, ["sweep", "--resume", str(sweep_dir)]).exit_code == 0
    (run_dir,) = run_dirs()
    summary = json.loads((run_dir / "summary.json").read_text())  # as a worker killed among its PNGs leaves it
    missing = [f"plots/{p.name}" for p in sorted((run_dir / "plots").iterdir())]
    shutil.rmtree(run_dir / "plots")
    pending = {**summary, "status": "incomplete", "final_status": "completed", "missing": missing}
    (run_dir / "summary.json").write_text(json.dumps(pending))
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    manifest["points"][0].update(status="pending", run_dir=None, error=None)
    (sweep_dir / "sweep.json").write_text(json.dumps(manifest))

    result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    assert "0 of 1 runs left" in result.stdout and run_dirs() == [run_dir]  # finished, not trained again
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert [f"plots/{p.name}" for p in sorted((run_dir / "plots").iterdir())] == missing
