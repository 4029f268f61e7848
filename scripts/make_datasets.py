"""Write the example CSVs in `configs/data/` from scikit-learn's bundled datasets.

The course's own datasets cannot be downloaded here, so the examples learn from data that
scikit-learn ships offline: diabetes (regression) stands in for red wine quality, breast cancer
(0/1) for Ionosphere, and wine (three cultivars) serves a multi-class example. A rare-class version
of breast cancer (every benign tumour, a seeded few malignant ones) serves the imbalanced example.

The output is deterministic (fixed float format, no index, `\\n` line endings), so re-running the
script reproduces the committed files byte for byte; `tests/test_datasets.py` checks that.

Usage:
    python scripts/make_datasets.py [OUTPUT_DIR]    # default: configs/data
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "configs" / "data"
FLOAT_FORMAT = "%.6g"


def snake_case(name: str) -> str:
    """Turn a column name like `mean concave points` or `od280/od315_of_diluted_wines` into snake_case.

    Args:
        name: the column name as scikit-learn spells it.

    Returns:
        Lowercase words joined by single underscores, easy to type in YAML.
    """
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def diabetes() -> pd.DataFrame:
    """Return the diabetes data: 10 numeric features and a numeric `target` (disease progression)."""
    return load_diabetes(as_frame=True).frame


def breast_cancer() -> pd.DataFrame:
    """Return the breast cancer data: 30 snake_case features and a 0/1 `target` (1: benign)."""
    frame = load_breast_cancer(as_frame=True).frame
    return frame.rename(columns=snake_case)


def wine() -> pd.DataFrame:
    """Return the wine data: 13 snake_case features and a `cultivar` column of class names."""
    bunch = load_wine(as_frame=True)
    frame = bunch.data.rename(columns=snake_case)
    # Class names rather than 0/1/2, so a multi-class example has to encode a string target.
    frame["cultivar"] = bunch.target_names[bunch.target.to_numpy()]
    return frame


RARE_MALIGNANT = 35
"""Malignant rows kept in breast_cancer_rare.csv: 35 of 392 rows (8.9%), a rare class."""


def breast_cancer_rare() -> pd.DataFrame:
    """Return breast cancer with malignant tumours rare: every benign row, 35 malignant ones drawn with seed 0.

    The target `diagnosis` holds the labels as text (benign, malignant), so class weights name them.
    """
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.rename(columns=snake_case)
    frame["diagnosis"] = bunch.target_names[bunch.target.to_numpy()]
    malignant = frame.index[frame["diagnosis"] == "malignant"].to_numpy()
    kept = np.random.default_rng(0).choice(malignant, RARE_MALIGNANT, replace=False)
    return frame[(frame["diagnosis"] == "benign") | frame.index.isin(kept)].reset_index(drop=True)


DATASETS = {
    "diabetes.csv": diabetes,
    "breast_cancer.csv": breast_cancer,
    "wine.csv": wine,
    "breast_cancer_rare.csv": breast_cancer_rare,
}


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as CSV in the one fixed format the committed files use."""
    frame.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def main(output_dir: str | Path = DEFAULT_OUTPUT) -> list[Path]:
    """Write every example dataset into `output_dir`, creating it if needed.

    Args:
        output_dir: folder to write the CSVs into.

    Returns:
        The paths written, in a fixed order.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, load in DATASETS.items():
        path = output_dir / file_name
        write_csv(load(), path)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in main(*sys.argv[1:2]):
        print(written_path)
