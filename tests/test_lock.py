"""Tests of run-directory lock files: who holds one, when it is stale, and that train() takes one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlrun.runs import lock


def write_lock(folder: Path, pid: int, host: str | None = None, started: int | None = None) -> None:
    data = {"pid": pid, "host": host or socket.gethostname(), "started": started}
    (folder / lock.LOCK).write_text(json.dumps(data), encoding="utf-8")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_acquire_writes_pid_and_host_and_release_removes_it(tmp_path):
    with lock.held(tmp_path):
        holder = lock.holder(tmp_path)
        assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname()) and holder.alive()
    assert not (tmp_path / lock.LOCK).exists()
    assert not list(tmp_path.iterdir())  # no temporary file left either


def test_a_live_process_keeps_its_lock(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(tmp_path, sleeper.pid, started=lock._start_time(sleeper.pid))
        with pytest.raises(lock.Locked, match=f"kill {sleeper.pid}"):
            lock.acquire(tmp_path)
        lock.release(tmp_path)  # not ours: left alone
        lock.clear_stale(tmp_path)  # alive: left alone
        assert lock.holder(tmp_path).pid == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize(
    "how",
    ["dead pid", "zombie", "reused pid"],
)
def test_a_stale_lock_is_replaced(tmp_path, how):
    zombie = None
    if how == "dead pid":
        write_lock(tmp_path, dead_pid())
    elif how == "zombie":  # killed, and its parent has not reaped it (a container's pid 1 may never do)
        if not Path("/proc/self/stat").is_file():
            pytest.skip("needs /proc")
        zombie = subprocess.Popen([sys.executable, "-c", "pass"])
        while Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] != "Z":
            time.sleep(0.01)
        write_lock(tmp_path, zombie.pid)
    else:  # the writer died and its pid now names another process: this one, started at another time
        if not Path("/proc/self/stat").is_file():
            pytest.skip("needs /proc")
        write_lock(tmp_path, os.getpid(), started=lock._start_time(os.getpid()) - 1)
    try:
        assert not lock.holder(tmp_path).alive()
        lock.acquire(tmp_path)
        assert lock.holder(tmp_path).pid == os.getpid()
    finally:
        if zombie is not None:
            zombie.wait()


def test_a_lock_from_another_host_counts_as_alive(tmp_path):
    """Its processes cannot be seen from here: never delete what it may still write."""
    write_lock(tmp_path, dead_pid(), host="another-node")
    assert lock.holder(tmp_path).alive()
    with pytest.raises(lock.Locked, match="another-node"):
        lock.acquire(tmp_path)
    # a tune's folder says which command holds it and how to share its study instead
    with pytest.raises(lock.Locked, match=r"run by another dlrun tune \(pid \d+ on another-node\).* resume it\. To"):
        lock.acquire(tmp_path, by="dlrun tune", hint=". To search the same study, ...")


def test_train_holds_the_lock_only_while_it_writes_the_run(binary_experiment, tmp_path, monkeypatch):
    from dlrun.spec.loader import load_spec
    from dlrun.training import fit

    seen = []
    original = fit.fit

    def watching(spec, data, run_dir, *args, **kwargs):
        seen.append(lock.holder(run_dir))
        return original(spec, data, run_dir, *args, **kwargs)

    monkeypatch.setattr(fit, "fit", watching)
    outcome = fit.train(load_spec(binary_experiment), tmp_path / "runs", quiet=True)
    assert seen[0].pid == os.getpid() and seen[0].path.parent == outcome.run_dir
    assert not (outcome.run_dir / lock.LOCK).exists()
