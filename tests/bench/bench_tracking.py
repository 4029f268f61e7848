"""What MLflow tracking costs a training: the course's binary example, tracked to a local SQLite store or not.

Both run in this process, alternating, so TensorFlow and mlflow are imported once and each round
sees the same machine; medians of the rounds are compared. Two ratios: the fit alone (summary.json's
wall_time_s: does logging each epoch slow the epochs?) and the whole `train()` call (the fit plus
opening the MLflow run and, at the end, the summary, the run directory's files and closing it).
The store is made before the first round (MLflow's first use creates its tables, once per store).

    .venv/bin/python tests/bench/bench_tracking.py [--rounds N] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "configs" / "06_binary_classification.yaml"


def one_run(out: Path, overrides: list[str], tracking) -> tuple[float, float, int]:
    """Train once; return the train() wall time, the fit's wall time and the epochs run."""
    from dlrun.spec.loader import load_spec
    from dlrun.training.fit import train

    spec = load_spec(SPEC, overrides)
    started = time.perf_counter()
    summary = train(spec, out, overrides, quiet=True, tracking=tracking).summary
    return time.perf_counter() - started, summary["wall_time_s"], summary["epochs_run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="override training.epochs (default: the example's)")
    args = parser.parse_args()
    started = time.perf_counter()
    import mlflow

    import_s = time.perf_counter() - started

    from dlrun.training.tracking import Tracking

    overrides = [f"training.epochs={args.epochs}"] if args.epochs else []
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        mlflow.MlflowClient(uri).search_experiments()  # the tables, made before timing
        one_run(Path(folder) / "warmup", overrides, None)  # TensorFlow's first graph, outside the rounds
        plain, tracked = [], []
        for _ in range(args.rounds):
            plain.append(one_run(Path(folder) / "plain", overrides, None))
            tracked.append(one_run(Path(folder) / "tracked", overrides, Tracking(uri)))
    epochs = tracked[0][2]
    total = [statistics.median(r[0] for r in runs) for runs in (plain, tracked)]
    fit = [statistics.median(r[1] for r in runs) for runs in (plain, tracked)]
    print(
        f"{SPEC.name}: {epochs} epochs, {args.rounds} rounds; "
        f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared machine: noisy)"
    )
    print(f"fit:     untracked {fit[0]:6.2f} s   tracked {fit[1]:6.2f} s   ratio {fit[1] / fit[0]:.2f}")
    print(f"train(): untracked {total[0]:6.2f} s   tracked {total[1]:6.2f} s   ratio {total[1] / total[0]:.2f}")
    print(f"import mlflow (once per process, before training): {import_s:.2f} s")
    print(f"tracking adds {total[1] - total[0]:+.2f} s per run ({1000 * (fit[1] - fit[0]) / epochs:+.2f} ms per epoch)")


if __name__ == "__main__":
    sys.exit(main())
