"""The data package reads top to bottom: each module imports only the data modules listed before it."""

from __future__ import annotations

import ast
from pathlib import Path

import dlrun.data

LAYERS = ["csvfile", "arrowfile", "files", "kinds", "preprocess", "fitter", "cache", "stream", "prepare", "datasets"]


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
