"""Processes started together on a storage that does not exist yet: every one opens it, none is lost.

Before dlrun guarded the creation (dlrun/databases.py), 3 of 10 processes started together on a new
SQLite study failed (`table studies already exists`, `UNIQUE constraint failed: alembic_version`).
Each test runs ROUNDS rounds of 4 processes opening one new storage at the same moment (a barrier:
each waits for a go file, its imports done). With a failure rate of 30% per process, a round passes
with probability 0.7^4 = 0.24, and ROUNDS = 5 rounds with 0.24^5 < 0.001: such a rate cannot pass.
The processes start once for all rounds, so a test costs about one Python start, not twenty.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlrun import databases
from dlrun.search import study as studies

from conftest import ROOT
from together import PROCESSES, start_together

optuna = pytest.importorskip("optuna")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
ROUNDS = 5


def assert_all_opened(reports: list[dict], urls: list[str]) -> None:
    assert [r for r in reports if not r.get("ok")] == []
    assert len(reports) == PROCESSES * len(urls)
    for url in urls:  # one study in each storage, with each process's trial once
        (summary,) = optuna.get_all_study_summaries(studies.open_storage(url))
        assert (summary.study_name, summary.n_trials) == ("s", PROCESSES)
        trials = optuna.load_study(study_name="s", storage=studies.open_storage(url)).get_trials()
        assert sorted(t.number for t in trials) == list(range(PROCESSES))
        assert all(t.state.name == "COMPLETE" for t in trials)


def test_processes_started_together_on_a_new_sqlite_study_all_open_it(tmp_path):
    urls = [f"sqlite:///{tmp_path / f'round{i}.db'}" for i in range(ROUNDS)]
    assert_all_opened(start_together(tmp_path / "sync", urls, ENV), urls)
    assert (tmp_path / "round0.db.lock").is_file()  # the lock beside the file, kept


def test_processes_started_together_on_a_new_journal_file_all_open_it(tmp_path):
    urls = [str(tmp_path / f"round{i}" / "study.log") for i in range(ROUNDS)]
    assert_all_opened(start_together(tmp_path / "sync", urls, ENV), urls)


@pytest.mark.postgres
def test_processes_started_together_on_a_new_postgresql_database_all_open_it(tmp_path, postgres_server):
    urls = [postgres_server.database() for _ in range(ROUNDS)]
    assert_all_opened(start_together(tmp_path / "sync", urls, ENV), urls)


def test_only_the_errors_of_a_concurrent_creation_are_retried():
    import sqlalchemy.exc

    calls = []

    def create():
        calls.append(1)
        if len(calls) < 3:
            raise sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {}, Exception('relation "studies" exists'))
        return "opened"

    assert databases.retried(create) == "opened" and len(calls) == 3

    def refused():
        raise ValueError("a bad URL")

    with pytest.raises(ValueError, match="^a bad URL$"):
        databases.retried(refused)
    assert databases.sqlite_path("sqlite:///rel/x.db?timeout=3") == Path("rel/x.db").resolve()
    assert databases.sqlite_path("sqlite:///:memory:") is None
    assert databases.sqlite_path("postgresql://u@h/db") is None


MLFLOW_ROUNDS = 2
"""MLflow's tables take ~10 s to create on a busy machine: 2 rounds (~30 s), which a 30% failure rate per process
passes with probability 0.24^2 < 0.06 (before the guard, 9 of 12 processes failed in 3 rounds). PostgreSQL
stores take the same path as a study there (the advisory lock), tested above."""


def assert_all_logged(reports: list[dict], urls: list[str]) -> None:
    mlflow = pytest.importorskip("mlflow")
    assert [r for r in reports if not r.get("ok")] == []
    for url in urls:
        client = mlflow.MlflowClient(url)
        runs = client.search_runs([client.get_experiment_by_name("together").experiment_id])
        assert len(runs) == PROCESSES and all(r.info.status == "FINISHED" for r in runs)


def test_sweeps_started_together_on_a_new_mlflow_sqlite_store_all_log_to_it(tmp_path):
    urls = [f"sqlite:///{tmp_path / f'mlflow{i}.db'}" for i in range(MLFLOW_ROUNDS)]
    assert_all_logged(start_together(tmp_path / "sync", urls, ENV, "mlflow"), urls)
