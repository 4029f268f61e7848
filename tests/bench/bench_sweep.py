"""Wall time of an 8-run sweep of a bundled example with --jobs 1 and --jobs 2, and their ratio.

Each sweep runs as `python -m dlrun sweep` in a fresh process, the way a user starts one, so the
times include starting the worker processes and importing TensorFlow in them.
Target on a 2-core machine: --jobs 2 at most 0.65x the wall time of --jobs 1.

Rounds alternate the order of the sweeps and the medians are reported, since the machine is shared.
With `--baseline DIR` (another checkout of dlrun, such as main) every round also runs the same sweeps
with that code, so a change to the worker pool is measured against the code it replaces.

    .venv/bin/python tests/bench/bench_sweep.py [--epochs N] [--rounds N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "configs" / "06_binary_classification.yaml"
AXES = ["--set", "training.optimizer.learning_rate=0.01,0.003", "--seeds", "0,1,2,3"]  # 2 x 4 = 8 runs


def sweep_seconds(code: Path, jobs: int, epochs: int | None) -> tuple[float, float]:
    """Run the sweep with `jobs` workers in a new process, importing dlrun from `code`.

    Returns:
        Its wall time, and the CPU time it and its workers used (less sensitive to a busy machine).
    """
    env = {**os.environ, "PYTHONPATH": str(code)}
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "dlrun", "sweep", str(SPEC), *AXES, "--jobs", str(jobs), "--out", out]
        if epochs is not None:
            command += ["--set", f"training.epochs={epochs}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        # cwd: `python -m` puts the working folder first on sys.path, ahead of PYTHONPATH: a neutral one
        # makes each side import the checkout it names, not the one the benchmark was started from.
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=out)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers count: the driver reaped them
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if done.returncode != 0:
            sys.exit(f"the sweep with --jobs {jobs} ({code}) failed:\n{done.stdout}\n{done.stderr}")
        manifests = list(Path(out).glob("*/sweep-*/sweep.json"))
        assert (
            len(manifests) == 1
            and manifests[0].read_text().count('"completed"') + manifests[0].read_text().count('"early-stopped"') == 8
        ), "expected 8 finished runs"
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override training.epochs; default: the example's own (early stopping ends each run)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every sweep; medians are reported")
    parser.add_argument("--baseline", type=Path, default=None, help="another dlrun checkout to time the same way")
    args = parser.parse_args()
    trees = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs = [(name, jobs) for name in trees for jobs in (1, 2)]
    times: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    cpus: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    load = os.getloadavg()[0]
    for round_ in range(args.rounds):
        for name, jobs in runs if round_ % 2 == 0 else runs[::-1]:
            seconds, cpu = sweep_seconds(trees[name], jobs, args.epochs)
            times[name, jobs].append(seconds)
            cpus[name, jobs].append(cpu)
            print(f"round {round_ + 1}: {name} --jobs {jobs}: {seconds:6.1f} s ({cpu:.1f} s CPU)", flush=True)
    median = {key: statistics.median(values) for key, values in times.items()}
    cpu = {key: statistics.median(values) for key, values in cpus.items()}
    print(
        f"8-run sweep of {SPEC.name}"
        + (f", training.epochs={args.epochs}" if args.epochs else "")
        + f", {args.rounds} round(s), medians; load average before: {load:.1f} on {os.cpu_count()} CPUs"
    )
    for name in trees:
        print(f"{name:>8} --jobs 1: {median[name, 1]:7.1f} s ({cpu[name, 1]:.1f} s CPU)")
        print(f"{name:>8} --jobs 2: {median[name, 2]:7.1f} s ({cpu[name, 2]:.1f} s CPU)")
        print(f"{name:>8} ratio jobs2/jobs1: {median[name, 2] / median[name, 1]:.2f} (target <= 0.65)")
    if args.baseline:
        for jobs in (1, 2):
            print(
                f"--jobs {jobs}: this/baseline {median['this', jobs] / median['baseline', jobs]:.2f} wall, "
                f"{cpu['this', jobs] / cpu['baseline', jobs]:.2f} CPU"
            )


if __name__ == "__main__":
    main()
