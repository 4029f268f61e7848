"""examples/intro_to_deep_learning.ipynb runs in a real Jupyter kernel, and each lesson's cell shows what it should."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import CONFIGS

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "intro_to_deep_learning.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook, executed in a fresh ipykernel from a copy of examples/ beside the bundled configs/."""
    import nbformat
    from nbclient import NotebookClient

    root = tmp_path_factory.mktemp("notebook")
    (root / "examples").mkdir()
    (root / "configs").symlink_to(CONFIGS)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root / "examples")}}
    ).execute()
    return {cell.metadata["tags"][0]: cell.outputs for cell in notebook.cells if cell.metadata.get("tags")}, root


def _data(outputs, kind: str) -> list[str]:
    return [o["data"][kind] for o in outputs if "data" in o and kind in o["data"]]


def _result(outputs) -> str:
    """The cell's value, as IPython shows it (text/plain)."""
    (value,) = [o["data"]["text/plain"] for o in outputs if o["output_type"] == "execute_result"]
    return value


def _stdout(outputs) -> str:
    return "".join(o["text"] for o in outputs if o.get("name") == "stdout")


def test_the_notebook_trains_every_lesson_and_shows_its_results(executed):
    # ~40-60 s: one kernel start, TensorFlow's import, and six small trainings (a few epochs each)
    cells, root = executed
    assert _result(cells["setup"]) == "(442, 11)"
    for lesson in ("lesson1", "lesson2", "lesson3", "lesson4", "lesson5", "lesson6"):
        bars = [html for html in _data(cells[lesson], "text/html") if "<progress" in html]
        assert len(bars) == 1, lesson  # one bar, updated in place
    (run,) = [html for html in _data(cells["lesson1"], "text/html") if "<table>" in html]
    assert "<td style='text-align:left'>completed after 5 of 5 epochs</td>" in run
    assert _result(cells["weights"]) == "[(10, 1), (1,)]"
    (history,) = [html for html in _data(cells["lesson2"], "text/html") if "<progress" not in html]
    assert "val_loss" in history and history.count("<tr>") == 5  # 5 epochs (the head's <tr> has a style)
    assert len(_data(cells["lesson3"], "image/png")) == 1 and len(_data(cells["lesson6"], "image/png")) == 1
    printed = _stdout(cells["lesson4"])
    assert re.match(r"(early-stopped|completed) Best\(epoch=\d+, monitor='val_loss', value=[\d.]+\)\n", printed)
    assert re.search(r"^Minimum validation loss: [\d.]+$", printed, re.M)
    assert _result(cells["lesson5"]) in (
        "'underfit'",
        "'overfit'",
        "'unstable'",
        "'plateau'",
        "'healthy'",
    )
    (predicted,) = _data(cells["predict"], "text/html")
    assert "probability" in predicted and predicted.count("<tr>") == 5
    (table,) = _data(cells["compare"], "text/html")
    assert "best:val_loss" in table and table.count("<tr>") == 5  # five regression runs
    assert len(list((root / "examples" / "runs").glob("*/*/summary.json"))) == 6
