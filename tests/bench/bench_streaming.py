"""Benchmark: streaming a CSV larger than memory, with and without the columnar cache (not collected by pytest).

Generates a base CSV (1x, about 215 MB) and one ten times larger (10x, about 2.15 GB, the 1x rows
repeated) in a temporary folder and trains `--epochs` epochs (default 3) on them, each training in
its own process so its peak RSS is its own (`os.wait4`'s rusage):

- streaming 1x and 10x with the columnar cache (`data.streaming_cache: true`, the default): the first
  epoch parses the CSV and writes the cache, later epochs read it;
- re-parse 10x: streaming without the cache, as dlrun did before it (every epoch parses the CSV);
- in-memory 1x: the 1x file read whole;
- read re-parse and read cached 10x: the training batches read `--epochs` times without a model, the
  data path alone.

Each epoch is timed by a callback added in the child. Prints rows/s per epoch and peak RSS of each, and
the ratios the issue targets: later epochs cached / re-parsed on 10x >= 3 (medians of the epochs after
the first); peak RSS 10x / 1x streaming <= 1.2; in-memory / streaming throughput on 1x <= 2. With
`--rounds N` the cached and re-parsed 10x runs alternate N times (each cached round starts with an
empty cache) and medians are taken over all rounds. The files and caches are deleted after.

    .venv/bin/python tests/bench/bench_streaming.py [--rows 1700000] [--epochs 3] [--rounds 1] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FEATURES = 16


def write_base(path: Path, rows: int, seed: int) -> None:
    """Write a binary-classification CSV: 16 numeric columns, one categorical, a 0/1 target."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=FEATURES)
    first = True
    for start in range(0, rows, 250_000):
        n = min(250_000, rows - start)
        x = rng.normal(size=(n, FEATURES))
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(FEATURES)])
        frame["color"] = rng.choice(["red", "green", "blue", "grey"], n)
        frame["target"] = (x @ weights + (frame["color"] == "red") > 0).astype(int)
        frame.to_csv(path, mode="w" if first else "a", header=first, index=False, float_format="%.4f")
        first = False


def write_repeated(base: Path, path: Path, times: int) -> None:
    """Write the base file's rows `times` times under one header, block by block."""
    with base.open("rb") as source:
        header = source.readline()
    with path.open("wb") as out:
        out.write(header)
        for _ in range(times):
            with base.open("rb") as source:
                source.readline()
                shutil.copyfileobj(source, out, 16 << 20)


def spec_for(csv: Path, valid: Path, streaming: bool, cache: bool, epochs: int) -> dict:
    return {
        "name": "bench",
        "data": {
            "path": str(csv),
            "target": "target",
            "validation_path": str(valid),
            "scale": "standard",
            "streaming": streaming,
            "streaming_cache": cache,
        },
        "model": {
            "layers": [
                {"type": "dense", "units": 32, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"},
            ]
        },
        "training": {
            "loss": "binary_crossentropy",
            "metrics": ["binary_accuracy"],
            "batch_size": 1024,
            "epochs": epochs,
            "shuffle": True,
        },
    }


def child(spec_path: Path, out: Path) -> None:
    """Train one spec in this process, timing each epoch, and print what the parent needs as JSON."""
    sys.path.insert(0, str(ROOT))
    from dlrun.backend import import_keras
    from dlrun.spec.loader import load_spec
    from dlrun.training import fit

    keras = import_keras()  # not part of what is measured
    epoch_s: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_s.append(time.perf_counter() - self.started)

    make_callbacks = fit.make_callbacks

    def timed_callbacks(*args, **kwargs):
        callbacks = make_callbacks(*args, **kwargs)
        callbacks.all.insert(0, EpochTimer())
        return callbacks

    fit.make_callbacks = timed_callbacks
    spec = load_spec(spec_path)
    started = time.perf_counter()
    outcome = fit.train(spec, out, quiet=True)
    total = time.perf_counter() - started
    summary = outcome.summary
    print(
        json.dumps(
            {
                "rows": summary["rows"]["train"],
                "total_s": total,
                "fit_s": summary["wall_time_s"],
                "epoch_s": epoch_s,
                "loss": summary["final"].get("loss"),
                "cache": summary.get("streaming_cache", {}),
            }
        )
    )


def pipeline_child(spec_path: Path) -> None:
    """Read the training rows' batches `epochs` times, as fit would but without a model; print the timings."""
    sys.path.insert(0, str(ROOT))
    from dlrun.data.prepare import prepare
    from dlrun.spec.loader import load_spec

    spec = load_spec(spec_path)
    data = prepare(spec.data, spec.seed, spec.training.loss)
    epoch_s = []
    for _ in range(spec.training.epochs):
        started = time.perf_counter()
        rows = sum(len(x) for x, _ in data.stream.batches("train", spec.training.batch_size, shuffle=True))
        epoch_s.append(time.perf_counter() - started)
    print(json.dumps({"rows": rows, "total_s": sum(epoch_s), "epoch_s": epoch_s, "cache": data.stream.caches}))


def measure(
    label: str, csv: Path, valid: Path, streaming: bool, cache: bool, epochs: int, work: Path, pipeline: bool = False
) -> dict:
    """Train (or with `pipeline`, only read the batches) in a child process; print and return its numbers."""
    spec_path = work / f"{label.replace(' ', '_')}.yaml"
    spec_path.write_text(json.dumps(spec_for(csv, valid, streaming, cache, epochs)))  # JSON is YAML
    shutil.rmtree(work / "cache", ignore_errors=True)  # every cached run starts with an empty cache
    with (work / "stderr.txt").open("w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, __file__, "--pipeline" if pipeline else "--child", str(spec_path), str(work / "runs")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "DLRUN_CACHE_DIR": str(work / "cache")},
        )
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        if status != 0:
            stderr.seek(0)
            raise SystemExit(f"{label} failed:\n{stderr.read()[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(label=label, size_mb=csv.stat().st_size / 1e6, peak_rss_mb=usage.ru_maxrss / 1024)
    rates = [result["rows"] / s for s in result["epoch_s"]]
    result["epoch_rows_per_s"] = rates
    result["later_rows_per_s"] = statistics.median(rates[1:]) if len(rates) > 1 else rates[0]
    shown = " ".join(f"{rate:>9,.0f}" for rate in rates)
    print(
        f"{label:<18} {result['size_mb']:6.0f} MB {result['rows']:>11,} rows  rows/s by epoch {shown}  "
        f"peak RSS {result['peak_rss_mb']:6.0f} MB  ({result['total_s']:.0f} s in all)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_700_000, help="rows of the 1x file (about 215 MB)")
    parser.add_argument("--times", type=int, default=10, help="size of the large file, in base files")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each training (2 or more)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of the cached and re-parsed runs")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary CSVs (default: $TMPDIR)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    if args.pipeline:
        pipeline_child(Path(args.pipeline[0]))
        return
    work = Path(tempfile.mkdtemp(prefix="dlrun-bench-", dir=args.dir))
    try:
        needed = args.rows * 150 * (args.times + 1.2) + args.rows * args.times * 90  # the CSVs, then a cache
        free = shutil.disk_usage(work).free
        if free < needed * 1.2:
            raise SystemExit(
                f"needs about {needed / 1e9:.1f} GB free in {work}, has {free / 1e9:.1f} GB: use --dir or --rows"
            )
        base, large, valid = work / "base.csv", work / "large.csv", work / "valid.csv"
        started = time.perf_counter()
        write_base(base, args.rows, seed=0)
        write_base(valid, 20_000, seed=1)
        write_repeated(base, large, args.times)
        print(
            f"wrote {base.stat().st_size / 1e6:.0f} MB and {large.stat().st_size / 1e6:.0f} MB in "
            f"{time.perf_counter() - started:.0f} s (in {work})",
            flush=True,
        )
        big = f"{args.times}x"
        one = measure("cached 1x", base, valid, True, True, args.epochs, work)
        cached, parsed, read_cached, read_parsed = [], [], [], []
        for _ in range(args.rounds):
            parsed.append(measure(f"re-parse {big}", large, valid, True, False, args.epochs, work))
            cached.append(measure(f"cached {big}", large, valid, True, True, args.epochs, work))
        for _ in range(args.rounds):
            read_parsed.append(measure(f"read re-parse {big}", large, valid, True, False, args.epochs, work, True))
            read_cached.append(measure(f"read cached {big}", large, valid, True, True, args.epochs, work, True))
        memory = measure("in-memory 1x", base, valid, False, False, args.epochs, work)
        later = statistics.median(rate for run in cached for rate in run["epoch_rows_per_s"][1:])
        reparsed = statistics.median(rate for run in parsed for rate in run["epoch_rows_per_s"][1:])
        first = statistics.median(run["epoch_rows_per_s"][0] for run in cached)
        print(f"epochs after the first, cached / re-parsed on {big}: {later / reparsed:.2f} (target >= 3)")
        reading = [
            statistics.median(r for run in runs for r in run["epoch_rows_per_s"][1:])
            for runs in (read_cached, read_parsed)
        ]
        ratio = reading[0] / reading[1]
        print(f"the batches alone (no model), passes after the first, cached / re-parsed on {big}: {ratio:.2f}")
        print(f"first epoch (writes the cache) / a re-parsed epoch on {big}: {first / reparsed:.2f}")
        rss = statistics.median(run["peak_rss_mb"] for run in cached)
        print(f"peak RSS {big} / 1x (streaming, cached): {rss / one['peak_rss_mb']:.2f} (target <= 1.2)")
        print(
            f"peak RSS cached / re-parsed on {big}: {rss / statistics.median(run['peak_rss_mb'] for run in parsed):.2f}"
        )
        print(
            f"epochs after the first, in-memory / streaming (cached) on 1x: "
            f"{memory['later_rows_per_s'] / one['later_rows_per_s']:.2f} (target <= 2)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
