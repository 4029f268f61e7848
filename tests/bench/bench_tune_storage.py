"""What a trial's per-epoch report costs in each study storage: SQLite against Optuna's journal file.

A tune trial reports its monitored value to the study every epoch and asks the pruner whether to
stop (`dlrun.search.trial.Reporter`), from its own worker process. This runs N processes that each
ask for trials of one shared study (median pruner), report 50 epochs each and tell the study, as tune
workers and drivers do, once with an SQLite file and once with a journal file (dlrun's default),
rounds alternating; prints the median and 95th percentile milliseconds of one report plus pruning
check, errors (a locked database), and the ratio SQLite / journal. An epoch of the bundled examples
takes about 10 ms, so the cost per report is what pruning adds to every epoch.

    .venv/bin/python tests/bench/bench_tune_storage.py [--processes 1,4] [--trials 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

EPOCHS = 50


def storage(kind: str, folder: Path):
    from dlrun.search.study import open_storage

    return open_storage(f"sqlite:///{folder / 'study.db'}" if kind == "sqlite" else str(folder / "study.log"))


def worker(kind: str, folder: Path, trials: int, queue) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name="bench", storage=storage(kind, folder), pruner=optuna.pruners.MedianPruner(n_startup_trials=2)
    )
    times, errors = [], 0
    for _ in range(trials):
        try:
            trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
            for epoch in range(1, EPOCHS + 1):
                began = time.perf_counter()
                trial.report(trial.params["x"] + 1 / epoch, epoch)
                pruned = trial.should_prune()
                times.append(time.perf_counter() - began)
                if pruned:
                    break
            study.tell(trial, trial.params["x"])
        except Exception:  # a locked database, as SQLite raises under contention
            errors += 1
    queue.put((times, errors))


def measure(kind: str, processes: int, trials: int) -> tuple[list[float], int, float]:
    import optuna

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        optuna.create_study(study_name="bench", storage=storage(kind, folder))
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers = [context.Process(target=worker, args=(kind, folder, trials, queue)) for _ in range(processes)]
        began = time.perf_counter()
        for process in workers:
            process.start()
        results = [queue.get() for _ in workers]
        for process in workers:
            process.join()
        return [t for times, _ in results for t in times], sum(e for _, e in results), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,4", help="process counts to measure, comma-separated")
    parser.add_argument("--trials", type=int, default=20, help="trials each process runs")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per storage")
    args = parser.parse_args()
    for processes in [int(p) for p in args.processes.split(",")]:
        found: dict[str, dict[str, list]] = {k: {"median": [], "p95": [], "errors": []} for k in ("sqlite", "journal")}
        for _ in range(args.rounds):
            for kind in ("sqlite", "journal"):
                times, errors, _ = measure(kind, processes, args.trials)
                times.sort()
                found[kind]["median"].append(1000 * statistics.median(times))
                found[kind]["p95"].append(1000 * times[int(0.95 * (len(times) - 1))])
                found[kind]["errors"].append(errors)
        for kind, values in found.items():
            print(
                f"{processes} process{'es' if processes > 1 else ''}, {kind:7}: report + pruning check "
                f"{statistics.median(values['median']):.1f} ms median, {statistics.median(values['p95']):.1f} ms p95, "
                f"{sum(values['errors'])} errors"
            )
        ratio = statistics.median(found["sqlite"]["median"]) / statistics.median(found["journal"]["median"])
        print(
            f"{processes} process{'es' if processes > 1 else ''}: sqlite / journal {ratio:.2f}x (shared machine: noisy)"
        )


if __name__ == "__main__":
    main()
