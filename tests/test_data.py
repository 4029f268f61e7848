"""The data package reads top to bottom: each module imports only the data modules listed before it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dlrun.data
from dlrun.cli import app
from dlrun.errors import DataError

from conftest import binary_spec, mixed_frame, write_spec

LAYERS = [
    "csvfile",
    "arrowfile",
    "frames",
    "files",
    "kinds",
    "preprocess",
    "fitter",
    "split",
    "cache",
    "stream",
    "prepare",
    "datasets",
]


def test_data_modules_import_only_the_layers_below_them():
    folder = Path(dlrun.data.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__") == sorted(LAYERS)
    for position, name in enumerate(LAYERS):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = set()
        for node in ast.walk(tree):  # lazy imports inside functions count too
            if isinstance(node, ast.ImportFrom) and node.module == "dlrun.data":
                imported |= {alias.name for alias in node.names}  # from dlrun.data import csvfile
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlrun.data."):
                imported.add(node.module.rsplit(".", 1)[-1])
        assert imported <= set(LAYERS[:position]), f"{name} imports {sorted(imported - set(LAYERS[:position]))}"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_training_file_is_opened_twice_before_the_first_epoch(tmp_path, monkeypatch, suffix):
    """Once for the header and the rows kinds are judged on, once for the read (which hashes it too)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    import dlrun.training.fit

    frame = mixed_frame(rows=300).drop(columns=["id"])
    data = tmp_path / f"data{suffix}"
    frame.to_csv(data, index=False) if suffix == ".csv" else frame.to_parquet(data, index=False)
    spec = binary_spec(epochs=1)
    spec["data"] = {"path": data.name, "target": "target", "validation_split": 0.25, "missing": "mean"}
    opens: list[str] = []

    def counted(function, name):
        def wrapper(source, *args, **kwargs):
            if isinstance(source, (str, Path)) and Path(source).resolve() == data.resolve():
                opens.append(name)
            return function(source, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(io, "open", counted(io.open, "open"))
    for module, name in ((pq, "ParquetFile"), (pq, "read_schema"), (pq, "read_table"), (pa, "OSFile")):
        monkeypatch.setattr(module, name, counted(getattr(module, name), name))
    before_fit: list[list[str]] = []

    def stop(*args, **kwargs):
        before_fit.append(list(opens))
        raise DataError("stopped before the first epoch")

    monkeypatch.setattr(dlrun.training.fit, "fit", stop)
    result = CliRunner().invoke(app, ["train", str(write_spec(tmp_path, spec)), "--quiet"])
    assert result.stderr == "error: stopped before the first epoch\n"
    assert before_fit == [["open", "open"]]


def test_the_data_package_imports_only_the_spec_and_errors_from_the_rest_of_dlrun():
    folder = Path(dlrun.data.__file__).parent
    allowed = ("dlrun.data", "dlrun.errors", "dlrun.spec")
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if module == "dlrun" or module.startswith("dlrun."):
                    assert module.startswith(allowed), f"{path.name} imports {module}"


def test_each_numeric_cell_is_parsed_once_before_training(tmp_path, monkeypatch):
    from collections import Counter

    from dlrun.data import fitter, preprocess
    from dlrun.data.prepare import prepare
    from dlrun.spec.loader import load_spec

    mixed_frame(rows=300).drop(columns=["id"]).to_csv(tmp_path / "data.csv", index=False)
    spec = binary_spec(epochs=1)
    spec["data"] = {"path": "data.csv", "target": "target", "validation_split": 0.25, "missing": "mean"}
    spec = load_spec(write_spec(tmp_path, spec))
    parsed: Counter = Counter()
    real = preprocess.to_numbers

    def counting(series, name, *args, **kwargs):
        parsed[name] += len(series)
        return real(series, name, *args, **kwargs)

    monkeypatch.setattr(preprocess, "to_numbers", counting)
    monkeypatch.setattr(fitter, "to_numbers", counting)
    data = prepare(spec.data, spec.seed, spec.training.loss)
    numeric = [c.name for c in data.preprocessing.columns if c.kind == "numeric"]
    assert numeric == ["age", "code", "income"] and parsed == dict.fromkeys(numeric, 300)
