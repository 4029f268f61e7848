"""Wall time of an 8-run sweep of a bundled example with --jobs 1 and --jobs 2, and their ratio.

Each sweep runs as `python -m dlrun sweep` in a fresh process, the way a user starts one, so the
times include starting the worker processes and importing TensorFlow in them.
Target on a 2-core machine: --jobs 2 at most 0.65x the wall time of --jobs 1.

    .venv/bin/python tests/bench/bench_sweep.py [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "configs" / "06_binary_classification.yaml"
AXES = ["--set", "training.optimizer.learning_rate=0.01,0.003", "--seeds", "0,1,2,3"]  # 2 x 4 = 8 runs


def sweep_seconds(jobs: int, epochs: int | None) -> float:
    """Run the sweep with `jobs` workers in a new process; return its wall time."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "dlrun", "sweep", str(SPEC), *AXES, "--jobs", str(jobs), "--out", out]
        if epochs is not None:
            command += ["--set", f"training.epochs={epochs}"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"the sweep with --jobs {jobs} failed:\n{done.stdout}\n{done.stderr}")
        manifests = list(Path(out).glob("*/sweep-*/sweep.json"))
        assert (
            len(manifests) == 1
            and manifests[0].read_text().count('"completed"') + manifests[0].read_text().count('"early-stopped"') == 8
        ), "expected 8 finished runs"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override training.epochs; default: the example's own (early stopping ends each run)",
    )
    args = parser.parse_args()
    one = sweep_seconds(1, args.epochs)
    two = sweep_seconds(2, args.epochs)
    print(
        f"8-run sweep of {SPEC.name}"
        + (f", training.epochs={args.epochs}" if args.epochs else "")
        + f"; load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"--jobs 1: {one:7.1f} s")
    print(f"--jobs 2: {two:7.1f} s")
    print(f"ratio jobs2/jobs1: {two / one:.2f} (target <= 0.65)")


if __name__ == "__main__":
    main()
