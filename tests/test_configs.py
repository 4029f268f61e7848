"""Every bundled example validates and trains (for two epochs) exactly as shipped."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dlrun.cli import app

from conftest import CONFIGS

EXAMPLES = sorted(CONFIGS.glob("*.yaml"))


def test_one_example_per_lesson_then_the_options_beyond():
    assert [p.name[:2] for p in EXAMPLES] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("config", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_and_trains(config, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", str(config), "-q", "--out", str(tmp_path), "--set", "training.epochs=2"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / config.stem).iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["status"] == "completed"
    assert (run_dir / "model.keras").is_file() and (run_dir / "plots" / "loss.png").is_file()
