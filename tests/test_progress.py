"""Progress where no terminal is: plain flushed lines per epoch, thinned on long runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from rich.console import Console

from conftest import ROOT, binary_spec, make_binary_csv, write_spec
from holds import Holds


def drive(epochs: int, seconds_per_epoch: float, stop_after: int, monkeypatch) -> list[str]:
    """Run EpochLines over fake epochs on a fake clock; return the lines it wrote."""
    from dlrun.training import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    buffer = io.StringIO()
    lines = progress.EpochLines(epochs, Console(file=buffer, width=200))
    lines.on_train_begin()
    for epoch in range(stop_after):
        clock[0] += seconds_per_epoch
        lines.on_epoch_end(epoch, {"loss": 1 / (epoch + 1), "val_loss": 2 / (epoch + 1), "learning_rate": 0.1})
    lines.on_train_end()
    return buffer.getvalue().splitlines()


def test_a_short_run_gets_a_line_per_epoch(monkeypatch):
    lines = drive(epochs=10, seconds_per_epoch=0.01, stop_after=10, monkeypatch=monkeypatch)
    assert len(lines) == 10
    assert lines[0] == "epoch 1/10  loss 1  val_loss 2  elapsed 0.0 s"
    assert lines[-1].startswith("epoch 10/10  loss 0.1  val_loss 0.2  elapsed 0.1")


def test_a_long_run_is_thinned_to_a_line_every_few_seconds_and_says_where_it_stopped(monkeypatch):
    from dlrun.training.progress import EVERY_S

    lines = drive(epochs=1000, seconds_per_epoch=0.5, stop_after=95, monkeypatch=monkeypatch)
    epochs = [int(line.split()[1].split("/")[0]) for line in lines]
    assert epochs[0] == 1 and epochs[-1] == 95  # the first epoch at once; the last one early stopping ran
    gaps = {b - a for a, b in zip(epochs[:-2], epochs[1:-1])}
    assert gaps == {int(EVERY_S / 0.5)}  # one line per EVERY_S seconds in between
    assert len(lines) == 2 + 94 // int(EVERY_S / 0.5)


def test_train_redirected_to_a_file_writes_progress_before_it_ends(tmp_path):
    """A 0-byte log until the end was the bug: lines must be in the file while training still runs.

    The run is held at the end of its first epoch (`holds`), so "still runs" holds at any speed.
    """
    make_binary_csv(tmp_path / "data.csv")
    spec = write_spec(tmp_path, binary_spec(epochs=60))
    log = tmp_path / "train.log"
    holds = Holds(tmp_path / "holds", epoch=1)
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "dlrun", "train", str(spec), "--out", str(tmp_path / "runs")],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=holds.env(
                {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            ),
        )
        try:
            holds.wait(process)
            first = log.read_text()  # written while the run waits after its first epoch
            holds.release()
            assert process.wait(timeout=300) == 0, log.read_text()
        finally:
            process.kill()
    assert "epoch 1/60  loss " in first and " val_loss " in first and " elapsed " in first, first
    assert "Status" not in first  # the end-of-run table came later
    final = log.read_text()
    assert "epoch 60/60" in final and "Status" in final and "━" not in final
