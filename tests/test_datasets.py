"""The example CSVs in configs/data/ are exactly what scripts/make_datasets.py writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

# Its runs are trained once (session-scoped fixtures): every test of this file runs in the same pytest-xdist worker
pytestmark = pytest.mark.xdist_group("datasets")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "configs" / "data"
SHAPES = {
    "diabetes.csv": (442, 11),
    "breast_cancer.csv": (569, 31),
    "wine.csv": (178, 14),
    "breast_cancer_rare.csv": (392, 31),
}


def _load_script():
    spec = importlib.util.spec_from_file_location("make_datasets", ROOT / "scripts" / "make_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")  # kept for the whole worker: xdist may run other files between this file's tests
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    written = _load_script().main(out)
    assert sorted(p.name for p in written) == sorted(SHAPES)
    return out


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_committed_csv_is_reproduced_byte_for_byte(regenerated: Path, name: str) -> None:
    assert (regenerated / name).read_bytes() == (DATA / name).read_bytes(), (
        f"configs/data/{name} differs from what scripts/make_datasets.py writes: rerun the script and commit"
    )


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_csv_shape_and_no_missing_values(name: str) -> None:
    raw = (DATA / name).read_bytes()
    assert b"\r" not in raw
    frame = pd.read_csv(DATA / name)
    assert frame.shape == SHAPES[name]
    assert not frame.isna().any().any()


def test_columns_are_easy_to_type_in_yaml() -> None:
    for name in SHAPES:
        columns = pd.read_csv(DATA / name, nrows=0).columns
        assert all(c.isidentifier() and c == c.lower() for c in columns), (name, list(columns))


def test_targets() -> None:
    assert pd.read_csv(DATA / "diabetes.csv")["target"].between(25, 346).all()
    assert set(pd.read_csv(DATA / "breast_cancer.csv")["target"]) == {0, 1}
    wine = pd.read_csv(DATA / "wine.csv")
    assert wine.columns[-1] == "cultivar"
    assert wine["cultivar"].value_counts().to_dict() == {"class_1": 71, "class_0": 59, "class_2": 48}
    assert "od280_od315_of_diluted_wines" in wine.columns
    rare = pd.read_csv(DATA / "breast_cancer_rare.csv")
    assert rare["diagnosis"].value_counts().to_dict() == {"benign": 357, "malignant": 35}  # 8.9%: a rare class
    whole = pd.read_csv(DATA / "breast_cancer.csv")
    assert (whole["target"] == 1).sum() == 357  # every benign row kept (1 is benign in the 0/1 file)
