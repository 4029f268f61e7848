"""Shared fixtures: small seeded CSVs and specs under tmp_path, and a quiet TensorFlow."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Table and help widths come from COLUMNS where a test sets it (CliRunner's env), never from the shell running pytest.
os.environ.pop("COLUMNS", None)

# A suite started in the background from a script (`cmd &`) inherits SIGINT ignored, and dlrun rightly leaves an
# ignored SIGINT ignored (dlrun.training.interrupts): the Ctrl-C tests need Python's own handler, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# A property test's examples take as long as the machine is busy: no deadline, on any machine
settings.register_profile("dlrun", deadline=None)
settings.load_profile("dlrun")

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


# Files whose tests take longest (measured with --durations), longest first. pytest-xdist hands a worker its
# next test in collection order (after the xdist_groups, largest first): a long test collected last would
# run alone at the end while the other cores idle, so these files' tests are collected first.
LONGEST_FIRST = (
    "test_tune.py",
    "test_notebook.py",
    "test_sweep_faults.py",
    "test_sweep.py",
    "test_databases.py",
    "test_loop.py",
    "test_reuse.py",
    "test_api.py",
    "test_progress.py",
    "test_fuzz.py",
    "test_training_options.py",
    "test_train.py",
    "test_init.py",
)


def pytest_collection_modifyitems(config, items):
    """Collect the longest files' tests first, keeping each file's own order (see LONGEST_FIRST)."""
    rank = {name: at for at, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run every test in its own folder, so relative paths like runs/ never touch the repo; caches stay there too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for the servers tests start: PostgreSQL, Ray)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_binary_csv(path: Path, rows: int = 120, features: int = 4, seed: int = 0) -> Path:
    """Write a learnable binary problem: target = 1 when a weighted sum of the features is positive."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    frame["target"] = (x @ rng.normal(size=features) > 0).astype(int)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def make_regression_csv(path: Path, rows: int = 120, features: int = 3, seed: int = 0) -> Path:
    """Write a noisy linear regression problem."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
    frame["y"] = x @ np.arange(1, features + 1) + rng.normal(scale=0.1, size=rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def mixed_frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Numbers, a text category, an integer code, NaNs and an id column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(5000, 5000 + rows),
            "age": rng.normal(40, 10, rows).round(1),
            "city": rng.choice(["Paris", "Rome", "Oslo"], rows),
            "code": rng.integers(1, 4, rows),
            "income": rng.normal(50, 5, rows),
        }
    )
    frame.loc[rng.choice(rows, 8, replace=False), "age"] = np.nan
    frame.loc[rng.choice(rows, 5, replace=False), "city"] = np.nan
    frame["target"] = ((frame["age"].fillna(40) > 40) ^ (frame["city"] == "Rome")).astype(int)
    return frame


def binary_spec(**training) -> dict:
    """Return spec data for the binary CSV of `make_binary_csv`, with training keys overridden."""
    return {
        "data": {"path": "data.csv", "target": "target", "validation_split": 0.25, "scale": "standard"},
        "model": {
            "layers": [
                {"type": "dense", "units": 8, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"},
            ]
        },
        "training": {
            "loss": "binary_crossentropy",
            "metrics": ["binary_accuracy"],
            "batch_size": 32,
            "epochs": 3,
            **training,
        },
    }


def write_spec(folder: Path, data: dict, name: str = "spec.yaml") -> Path:
    """Write spec data as a YAML file and return its path."""
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def binary_experiment(tmp_path) -> Path:
    """A spec file and its binary CSV in tmp_path; returns the spec's path."""
    make_binary_csv(tmp_path / "data.csv")
    return write_spec(tmp_path, binary_spec())


def keras_best_epoch(values, mode="min", min_delta=0.0, start_from_epoch=0) -> int | None:
    """Drive a real Keras EarlyStopping callback over monitored values; return its best epoch (1-based)."""
    from types import SimpleNamespace

    from dlrun.backend import import_keras

    keras = import_keras()
    callback = keras.callbacks.EarlyStopping(
        monitor="val_loss", mode=mode, min_delta=min_delta, patience=10**6, start_from_epoch=start_from_epoch
    )
    callback.set_model(SimpleNamespace(stop_training=False))
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": value})
    return None if callback.best is None else callback.best_epoch + 1


def assert_fits(output: str, width: int, numbers) -> None:
    """Assert that no line of a table is wider than `width`, nothing is cut short, and each number is whole."""
    from rich.cells import cell_len

    lines = output.splitlines()
    assert lines and max(cell_len(line) for line in lines) <= width, "\n".join(lines)
    assert "…" not in output, output
    for number in numbers:
        assert any(number in line for line in lines), f"{number!r} is split or missing:\n{output}"


# --- a throwaway PostgreSQL server (tests/pgserver.py), for the tests marked postgres ---------------


@pytest.fixture(scope="session")
def postgres_server():
    """Start a PostgreSQL server on 127.0.0.1 for the session; stopped and removed at the end, also on failure."""
    import pgserver

    if pgserver.binaries() is None:
        pytest.skip("PostgreSQL's server programs are not installed: apt-get install -y postgresql (.ci/run does)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: pip install -e '.[test]'")
    server = pgserver.start()
    try:
        yield server
    finally:
        pgserver.stop(server)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.database()


# --- a Ray cluster of two nodes on 127.0.0.1 (tests/raycluster.py), for the tests marked ray_cluster ------


@pytest.fixture
def ray_cluster():
    """Start a head and a second node (one CPU each); stopped at the end, also on failure. Drive it in a subprocess
    (`cluster.dlrun(...)`, or with `cluster.env`): Ray takes the cluster's token from the environment at import."""
    pytest.importorskip("ray")
    import raycluster

    cluster = raycluster.start()
    try:
        yield cluster
    finally:
        raycluster.stop(cluster)
