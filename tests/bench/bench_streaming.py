"""Benchmark: streaming a CSV larger than memory vs reading it whole (not collected by pytest).

Generates a base CSV (1x, about 215 MB) and one ten times larger (10x, about 2.15 GB, the 1x rows
repeated) in a temporary folder, trains one epoch on each with `data.streaming: true`, and one epoch
on the 1x file in memory. Each training runs in its own process, so its peak RSS is its own
(`os.wait4`'s rusage). Prints rows/s and peak RSS of each, and the ratios the issue targets:
peak RSS 10x / 1x <= 1.2, in-memory / streaming throughput on 1x <= 2. The files are deleted after.

    .venv/bin/python tests/bench/bench_streaming.py [--rows 1700000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def spec_for(csv: Path, valid: Path, streaming: bool) -> dict:
    return {
        "name": "bench",
        "data": {
            "path": str(csv),
            "target": "target",
            "validation_path": str(valid),
            "scale": "standard",
            "streaming": streaming,
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
            "epochs": 1,
            "shuffle": True,
        },
    }


def child(spec_path: Path, out: Path) -> None:
    """Train one spec in this process and print what the parent needs as JSON."""
    sys.path.insert(0, str(ROOT))
    from dlrun.backend import import_keras
    from dlrun.spec.loader import load_spec
    from dlrun.training.fit import train

    import_keras()  # not part of what is measured
    spec = load_spec(spec_path)
    started = time.perf_counter()
    outcome = train(spec, out, quiet=True)
    total = time.perf_counter() - started
    summary = outcome.summary
    print(
        json.dumps(
            {
                "rows": summary["rows"]["train"],
                "total_s": total,
                "fit_s": summary["wall_time_s"],
                "loss": summary["final"].get("loss"),
            }
        )
    )


def measure(label: str, csv: Path, valid: Path, streaming: bool, work: Path) -> dict:
    spec_path = work / f"{label}.yaml"
    spec_path.write_text(json.dumps(spec_for(csv, valid, streaming)))  # JSON is YAML
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(spec_path), str(work / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{label} failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(label=label, size_mb=csv.stat().st_size / 1e6, peak_rss_mb=usage.ru_maxrss / 1024)
    result["rows_per_s"] = result["rows"] / result["total_s"]
    result["fit_rows_per_s"] = result["rows"] / result["fit_s"]
    print(
        f"{label:<16} {result['size_mb']:8.0f} MB {result['rows']:>11,} rows  "
        f"{result['rows_per_s']:>10,.0f} rows/s end to end  {result['fit_rows_per_s']:>10,.0f} rows/s epoch  "
        f"peak RSS {result['peak_rss_mb']:7.0f} MB  ({result['total_s']:.1f} s)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_700_000, help="rows of the 1x file (about 215 MB)")
    parser.add_argument("--times", type=int, default=10, help="size of the large file, in base files")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary CSVs (default: $TMPDIR)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    work = Path(tempfile.mkdtemp(prefix="dlrun-bench-", dir=args.dir))
    try:
        needed = args.rows * 150 * (args.times + 1.2)
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
        one = measure("streaming 1x", base, valid, True, work)
        ten = measure(f"streaming {args.times}x", large, valid, True, work)
        memory = measure("in-memory 1x", base, valid, False, work)
        print(f"peak RSS {args.times}x / 1x (streaming): {ten['peak_rss_mb'] / one['peak_rss_mb']:.2f} (target <= 1.2)")
        print(
            f"throughput in-memory / streaming on 1x, end to end: {memory['rows_per_s'] / one['rows_per_s']:.2f}; "
            f"epoch only: {memory['fit_rows_per_s'] / one['fit_rows_per_s']:.2f} (target <= 2)"
        )
        print(f"streaming {args.times}x / 1x rows/s: {ten['rows_per_s'] / one['rows_per_s']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
