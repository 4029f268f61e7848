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


# Lines of the course's code as the learner's notes (the course's record here) write them, per lesson.
COURSE = {
    "01": ["layers.Dense(units=1, input_shape=[3])"],
    "02": ["layers.Dense(units=4, activation='relu', input_shape=[2]),", "layers.Dense(units=3, activation='relu'),"],
    "03": ['optimizer="adam",', 'loss="mae",', "batch_size=256,", "epochs=10,"],
    "04": ["min_delta=0.001,", "patience=20,", "restore_best_weights=True,", "epochs=500,"],
    "05": ["layers.Dense(1024, activation='relu', input_shape=[11]),", "layers.Dropout(0.3),"],
    "06": ["layers.Dense(4, activation='relu', input_shape=[33]),", "metrics=['binary_accuracy'],"],
}


@pytest.mark.parametrize("lesson", sorted(COURSE))
def test_lesson_headers_quote_the_course_then_say_what_changes(lesson):
    (config,) = [p for p in EXAMPLES if p.name.startswith(lesson)]
    header = [line for line in config.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    quoted = [line[4:] for line in header if line.startswith("#   ")]
    for line in COURSE[lesson]:
        assert line in quoted, (config.name, line)
    assert not any("optimizers.Adam(" in line or "learning_rate" in line for line in quoted)  # never in the course
    assert sum(line.startswith("# Changed: ") for line in header) == 1
