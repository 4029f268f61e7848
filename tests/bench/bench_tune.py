"""A 27-point grid sweep against `dlrun tune --trials 27` with median pruning, on lesson 06's binary classification.

The bundled spec (configs/06_binary_classification.yaml) with a dropout layer after its first dense layer
(a variant spec written to a temporary folder, data path absolute), and a 3-parameter space:

- grid:  learning_rate 0.001, 0.01, 0.1 x first layer's units 4, 16, 64 x dropout rate 0, 0.25, 0.5
         (`dlrun sweep`: 27 runs, each to its early stop);
- tune:  loguniform(0.001, 0.1) x int(4, 64, log) x float(0, 0.5), `dlrun tune --trials 27
         --pruner median` (TPE, seeded).

Both run through the command line, with the same --jobs. Prints each side's best val_loss and the
epochs all its runs trained (summed from their summaries, pruned runs' epochs included), and the two
ratios. Targets: tune's best val_loss at most 1.01x the grid's (lower is better), and at most 0.5x the
grid's epochs. Epoch counts are deterministic (seeded runs on CPU); the wall times printed beside them
come from a shared machine and are noisy.

    .venv/bin/python tests/bench/bench_tune.py [--jobs 2] [--prune-warmup N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "configs" / "06_binary_classification.yaml"
GRID = {
    "training.optimizer.learning_rate": "0.001,0.01,0.1",
    "model.layers[0].units": "4,16,64",
    "model.layers[1].rate": "0.0,0.25,0.5",
}
SPACE = {
    "training.optimizer.learning_rate": "loguniform(0.001,0.1)",
    "model.layers[0].units": "int(4,64,log)",
    "model.layers[1].rate": "float(0,0.5)",
}


def variant(folder: Path) -> Path:
    """Write lesson 06's spec with a dropout layer after the first dense layer, its data path absolute."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    spec["name"] = "bench-tune"
    spec["data"]["path"] = str((SPEC.parent / spec["data"]["path"]).resolve())
    layers = spec["model"]["layers"]
    spec["model"]["layers"] = [layers[0], {"type": "dropout", "rate": 0.0}, *layers[1:]]
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def dlrun(*args: str) -> float:
    """Run a dlrun command; return its wall time."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dlrun", *args], capture_output=True, text=True, env=_env())
    if done.returncode != 0:
        sys.exit(
            f"dlrun {' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return time.perf_counter() - began


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "120"}


def totals(folder: Path) -> tuple[float, int, int, int]:
    """Return the best val_loss at a run's best epoch, the epochs all runs trained, the runs, and the pruned ones."""
    best, epochs, count, pruned = float("inf"), 0, 0, 0
    for path in folder.glob("*/*/summary.json"):
        summary = json.loads(path.read_text(encoding="utf-8"))
        count += 1
        epochs += summary["epochs_run"]
        pruned += summary["status"] == "pruned"
        if summary["status"] in ("completed", "early-stopped") and summary["best_value"] is not None:
            best = min(best, summary["best_value"])
    return best, epochs, count, pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs, the same for both sides")
    parser.add_argument("--prune-warmup", type=int, default=None, help="dlrun tune --prune-warmup (default: its own)")
    parser.add_argument("--keep", type=Path, default=None, help="keep both folders here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        spec = variant(folder)
        sets = [arg for path, values in GRID.items() for arg in ("--set", f"{path}={values}")]
        grid_s = dlrun("sweep", str(spec), *sets, "--jobs", str(args.jobs), "--out", str(folder / "grid"))
        sets = [arg for path, dist in SPACE.items() for arg in ("--set", f"{path}={dist}")]
        extra = ["--prune-warmup", str(args.prune_warmup)] if args.prune_warmup is not None else []
        tune_s = dlrun(
            "tune", str(spec), *sets, "--trials", "27", "--pruner", "median", "--jobs", str(args.jobs),
            "--out", str(folder / "tune"), *extra,
        )  # fmt: skip
        grid = totals(next((folder / "grid").glob("*/sweep-*")))
        tune = totals(next((folder / "tune").glob("*/tune-*")))
    print(f"grid (27-point sweep): best val_loss {grid[0]:.5f}, {grid[1]} epochs in {grid[2]} runs, {grid_s:.0f} s")
    print(
        f"tune (27 trials, median pruning): best val_loss {tune[0]:.5f}, {tune[1]} epochs in {tune[2]} runs "
        f"({tune[3]} pruned), {tune_s:.0f} s"
    )
    loss_ratio, epoch_ratio = tune[0] / grid[0], tune[1] / grid[1]
    print(
        f"best val_loss ratio tune/grid: {loss_ratio:.4f} (target <= 1.01): {'ok' if loss_ratio <= 1.01 else 'MISSED'}"
    )
    print(f"epochs ratio tune/grid: {epoch_ratio:.3f} (target <= 0.5): {'ok' if epoch_ratio <= 0.5 else 'MISSED'}")
    print(f"wall time ratio tune/grid: {tune_s / grid_s:.3f} (shared machine: noisy)")


if __name__ == "__main__":
    main()
