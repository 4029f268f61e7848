"""Wall time of the commands that must start fast, next to `python -c "import typer"`.

Target: each light command's median within 0.3 s of the bare typer import.

    .venv/bin/python tests/bench/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "configs" / "06_binary_classification.yaml"


def median_wall(args: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _parquet_copy(folder: Path) -> Path:
    """Write the spec's CSV as a Parquet file, and a copy of the spec that reads it; return the copy."""
    import pandas as pd
    import yaml

    data = yaml.safe_load(SPEC.read_text())
    parquet = folder / "breast_cancer.parquet"
    pd.read_csv(SPEC.parent / data["data"]["path"]).to_parquet(parquet, index=False)
    data["data"]["path"] = str(parquet)
    path = folder / "parquet.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    dlrun = [sys.executable, "-m", "dlrun"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        parquet_spec = _parquet_copy(tmp)
        commands = {
            "--help": dlrun + ["--help"],
            "validate": dlrun + ["validate", str(SPEC)],
            "validate (Parquet)": dlrun + ["validate", str(parquet_spec)],
            "config show": dlrun + ["config", "show", str(SPEC)],
            "schema": dlrun + ["schema"],
            "init": dlrun
            + [
                "init",
                str(ROOT / "configs/data/breast_cancer.csv"),
                "--target",
                "target",
                "--out",
                str(tmp / "s.yaml"),
                "--force",
            ],
        }
        base = median_wall([sys.executable, "-c", "import typer"], args.runs, tmp)
        label = 'python -c "import typer"'
        print(f"{label:28s} {base * 1000:7.0f} ms")
        for name, command in commands.items():
            wall = median_wall(command, args.runs, tmp)
            verdict = "ok" if wall - base <= 0.3 else "OVER"
            print(f"dlrun {name:22s} {wall * 1000:7.0f} ms  (+{(wall - base) * 1000:.0f} ms, target +300) {verdict}")


if __name__ == "__main__":
    main()
