"""A sweep point's fixed cost by phase in a warm worker; a 27-trial tune and a 27-point grid against their epochs.

Part 1 (phases): a child process plays a sweep worker (`dlrun.search.executors.run_point`, the function
every local and Ray worker calls): it trains one point of each spec to warm up (TensorFlow imported,
Keras's first-use costs paid), then trains `--points` points of configs/06 in a row and as many of
configs/04 (as a sweep's worker gets consecutive points of one spec), timing each phase of every point
by wrapping the function that does it:

- prepare: `prepare` (read, split, fit the preprocessing); build+compile: `compile_model`;
- trace: making the lean loop's compiled call and its first call (one epoch, or one call's epochs);
- epochs: every later call of the epochs; save: `model.save`; summary+baseline: `build_summary`;
- plots: `finishing.finish` (the PNGs, then the final summary.json);
- other: the rest of the point (spec, run directory, callbacks, datasets, clearing the session);
- fixed: the point's wall time less its epochs (the trace's first call counted as fixed).

Part 2 (searches): `tests/bench/bench_tune.py`'s 27-point grid and 27-trial tune (median pruning) through
the command line, their wall time against the floor: the epochs all their runs trained, at part 1's
median time of a configs/06 epoch, divided by --jobs.

Rounds alternate the order of the trees and the medians are reported, since the machine is shared.
With `--baseline DIR` (another checkout of dlrun, such as main) every round also runs the same points
and searches with that code, so both are measured in one invocation.

    .venv/bin/python tests/bench/bench_points.py [--rounds N] [--points N] [--baseline DIR] [--no-search]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPECS = {"06": ROOT / "configs" / "06_binary_classification.yaml", "04": ROOT / "configs" / "04_early_stopping.yaml"}
PHASES = ("prepare", "build+compile", "trace", "epochs", "save", "summary+baseline", "plots", "other")


# --- part 1, inside the child process ------------------------------------------------------------


def _instrument(times: dict[str, float]) -> None:
    """Wrap the functions of each phase so that their time adds up in `times` (missing ones are skipped)."""
    from dlrun.backend import import_keras

    keras = import_keras()
    from dlrun.runs import finishing
    from dlrun.training import fit, loop

    def timed(owner, name: str, phase: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times[phase] += time.perf_counter() - began

        setattr(owner, name, wrapper)

    timed(fit, "prepared" if hasattr(fit, "prepared") else "prepare", "prepare")  # the worker's kept data, or not
    timed(fit, "compile_model", "build+compile")
    timed(fit, "build_summary", "summary+baseline")
    timed(finishing, "finish", "plots")
    timed(keras.Model, "save", "save")
    epochs = loop._Epochs
    make, run, sliced = epochs.__init__, epochs.run, epochs.run_sliced

    def init(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return make(self, *args, **kwargs)
        finally:
            self._bench_calls = 0
            times["trace"] += time.perf_counter() - began

    def calls(method):
        def wrapper(self, *args, **kwargs):
            began = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                first = getattr(self, "_bench_calls", 1) == 0
                self._bench_calls = 1
                times["trace" if first else "epochs"] += time.perf_counter() - began

        return wrapper

    epochs.__init__, epochs.run, epochs.run_sliced = init, calls(run), calls(sliced)


def child(points: int, out: Path) -> None:
    """Train a warm-up point of each spec, then `points` of each in a row; print each point's phases as JSON."""
    from dlrun.search.executors import cores, run_point

    times: dict[str, float] = defaultdict(float)
    _instrument(times)
    threads = cores()
    rows = []
    for index, key in enumerate(["06", "04"] + ["06"] * points + ["04"] * points):
        times.clear()
        began = time.perf_counter()
        result = run_point(index, str(SPECS[key]), [], str(out), None, threads)
        total = time.perf_counter() - began
        if result["status"] not in ("completed", "early-stopped"):
            sys.exit(f"configs/{key} point {index}: {result}")
        summary = json.loads((Path(result["run_dir"]) / "summary.json").read_text(encoding="utf-8"))
        row = {phase: times.get(phase, 0.0) for phase in PHASES[:-1]}
        row["other"] = total - sum(row.values())
        rows.append({"spec": key, "warm": index >= 2, "total": total, "epochs_run": summary["epochs_run"], **row})
    print(json.dumps(rows))


def phases(code: Path, points: int) -> list[dict]:
    """Run part 1 in a new process importing dlrun from `code`; return its rows."""
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(points), "--out", out]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=out)
    if done.returncode != 0:
        sys.exit(f"the phases of {code} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- part 2 -------------------------------------------------------------------------------------------


def searches(code: Path, jobs: int) -> dict[str, tuple[float, int, float]]:
    """Run bench_tune's grid and tune with dlrun from `code`; return each one's (wall s, epochs, best val_loss)."""
    sys.path.insert(0, str(ROOT / "tests" / "bench"))
    import bench_tune

    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "120"}

    def dlrun(*args: str) -> float:
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "dlrun", *args], capture_output=True, text=True, env=env, cwd=code)
        if done.returncode != 0:
            sys.exit(f"dlrun {args[0]} ({code}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return time.perf_counter() - began

    found = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        spec = bench_tune.variant(folder)
        sets = [arg for path, values in bench_tune.GRID.items() for arg in ("--set", f"{path}={values}")]
        seconds = dlrun("sweep", str(spec), *sets, "--jobs", str(jobs), "--out", str(folder / "grid"))
        best, epochs, _, _ = bench_tune.totals(next((folder / "grid").glob("*/sweep-*")))
        found["grid"] = (seconds, epochs, best)
        sets = [arg for path, dist in bench_tune.SPACE.items() for arg in ("--set", f"{path}={dist}")]
        seconds = dlrun(
            "tune", str(spec), *sets, "--trials", "27", "--pruner", "median", "--jobs", str(jobs),
            "--out", str(folder / "tune"),
        )  # fmt: skip
        best, epochs, _, _ = bench_tune.totals(next((folder / "tune").glob("*/tune-*")))
        found["tune"] = (seconds, epochs, best)
    return found


# --- the report -----------------------------------------------------------------------------------


def _median(rows: list[dict], key: str, spec: str) -> float:
    return statistics.median(row[key] for row in rows if row["spec"] == spec and row["warm"])


def report(name: str, rows: list[dict]) -> dict[str, float]:
    """Print the median phases of `name`'s warm points; return configs/06's median seconds per epoch."""
    per_epoch = {}
    for spec in SPECS:
        parts = "  ".join(f"{phase} {_median(rows, phase, spec):.3f}" for phase in PHASES)
        fixed = statistics.median(row["total"] - row["epochs"] for row in rows if row["spec"] == spec and row["warm"])
        epochs = _median(rows, "epochs_run", spec)
        per_epoch[spec] = statistics.median(
            row["epochs"] / max(1, row["epochs_run"] - 1) for row in rows if row["spec"] == spec and row["warm"]
        )
        total = _median(rows, "total", spec)
        print(f"{name:>8} configs/{spec}: total {total:.3f} s, fixed {fixed:.3f} s, {epochs:.0f} epochs")
        print(f"{'':>8}   {parts}")
    return per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of part 1 (and part 2); medians are reported")
    parser.add_argument("--points", type=int, default=3, help="warm points of each spec per round of part 1")
    parser.add_argument("--jobs", type=int, default=2, help="--jobs of part 2's sweep and tune")
    parser.add_argument("--baseline", type=Path, default=None, help="another dlrun checkout to time the same way")
    parser.add_argument("--no-search", action="store_true", help="part 1 only")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.out)
        return
    trees = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    names = list(trees)
    rows: dict[str, list[dict]] = {name: [] for name in names}
    found: dict[str, list[dict]] = {name: [] for name in names}
    load = os.getloadavg()
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            rows[name] += phases(trees[name], args.points)
            print(f"round {round_ + 1}: {name} phases done", flush=True)
    if not args.no_search:
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                found[name].append(searches(trees[name], args.jobs))
                print(f"round {round_ + 1}: {name} searches {found[name][-1]}", flush=True)
    print(
        f"warm-worker phases (s, medians of {args.rounds} x {args.points} points each); "
        f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}, on {os.cpu_count()} CPUs"
    )
    per_epoch = {name: report(name, rows[name]) for name in names}
    if args.no_search:
        return
    print(f"searches (--jobs {args.jobs}, medians of {args.rounds}); floor: epochs x configs/06's s/epoch / jobs")
    walls: dict[tuple[str, str], float] = {}
    for name in names:
        for kind in ("grid", "tune"):
            seconds = statistics.median(one[kind][0] for one in found[name])
            epochs = statistics.median(one[kind][1] for one in found[name])
            best = statistics.median(one[kind][2] for one in found[name])
            floor = epochs * per_epoch[name]["06"] / args.jobs
            walls[name, kind] = seconds
            print(f"{name:>8} {kind}: {seconds:6.1f} s wall, {epochs:.0f} epochs, floor {floor:.1f} s, best {best:.5f}")
    if args.baseline:
        for kind in ("grid", "tune"):
            print(f"{kind}: this/baseline wall {walls['this', kind] / walls['baseline', kind]:.2f}")


if __name__ == "__main__":
    main()
