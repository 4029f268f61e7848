"""The suite's xdist groups hold: tests marked with one `xdist_group` run in one worker process.

The Ray tests must not run at once (a local Ray may join a cluster another test started), and a file's
shared session-scoped runs are trained once only if its tests share a worker. pytest 9.2 silently broke
this (pytest-xdist#1386): nothing failed, the groups were just spread over the workers.
"""

from __future__ import annotations

import subprocess
import sys

TESTS = """
import os
import pytest


def where(name):
    with open("workers.txt", "a") as out:
        out.write(f"{name} {os.environ['PYTEST_XDIST_WORKER']}\\n")


@pytest.mark.parametrize("i", range(4))
@pytest.mark.xdist_group("together")
def test_grouped(i):
    where(f"grouped-{i}")


@pytest.mark.parametrize("i", range(4))
def test_free(i):
    where(f"free-{i}")
"""


def test_tests_of_one_xdist_group_run_in_one_worker(tmp_path):
    (tmp_path / "test_groups.py").write_text(TESTS)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"]
    done = subprocess.run([*command, "test_groups.py"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = dict(line.split() for line in (tmp_path / "workers.txt").read_text().splitlines())
    assert len(workers) == 8
    assert len({workers[f"grouped-{i}"] for i in range(4)}) == 1, workers
