"""A 16-point sweep of configs/06 three ways: the local pool, Ray on one node, Ray on a cluster of two nodes.

Each sweep runs as `python -m dlrun sweep` in a fresh process with two slots: `--jobs 2` locally, a
Ray instance of 2 CPUs, or two nodes of one CPU each (`tests/raycluster.py`, on this machine, so the
nodes share its cores: the point is correctness and overhead, not speed). Printed for each: the wall
time, the training time of the runs (the sum of their summaries' `wall_time_s`), and the overhead per
point, (wall x slots - training) / points: what a slot spends per point on anything but training
(starting workers, importing TensorFlow, scheduling, reading data). The Ray cluster's start is not counted.

    .venv/bin/python tests/bench/bench_ray_cluster.py [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import raycluster  # noqa: E402

SPEC = ROOT / "configs" / "06_binary_classification.yaml"
AXES = ["--set", "training.optimizer.learning_rate=0.01,0.003", "--seeds", "0,1,2,3,4,5,6,7"]  # 2 x 8 = 16
POINTS, SLOTS = 16, 2


def sweep(extra: list[str], epochs: int, env: dict[str, str] | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "dlrun", "sweep", str(SPEC), *AXES, "--set", f"training.epochs={epochs}"]
        started = time.perf_counter()
        done = subprocess.run([*command, *extra, "--out", out], capture_output=True, text=True, env=env, cwd=out)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"the sweep {' '.join(extra)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        (manifest,) = Path(out).glob("*/sweep-*/sweep.json")
        points = json.loads(manifest.read_text())["points"]
        assert len(points) == POINTS and all(p["status"] in ("completed", "early-stopped") for p in points)
        training = sum(
            json.loads((manifest.parent / p["run_dir"] / "summary.json").read_text())["wall_time_s"] for p in points
        )
        nodes = len({(p["node"] or {}).get("ray_node", "local") for p in points})
    return {"wall": wall, "training": training, "overhead": (wall * SLOTS - training) / POINTS, "nodes": nodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    results = {
        "local pool (--jobs 2)": sweep(["--jobs", "2"], args.epochs),
        "Ray, one node (2 CPUs)": sweep(["--executor", "ray", "--jobs", "2"], args.epochs),
    }
    cluster = raycluster.start()
    try:
        extra = ["--executor", "ray", "--address", cluster.address]
        results["Ray, two nodes (1 CPU each)"] = sweep(extra, args.epochs, cluster.env)
    finally:
        raycluster.stop(cluster)
    local = results["local pool (--jobs 2)"]
    print(f"16-point sweep of {SPEC.name}, {args.epochs} epochs, 2 slots each")
    print(f"{'executor':30} {'wall s':>8} {'training s':>11} {'overhead s/point':>17} {'vs local':>9} nodes")
    for name, r in results.items():
        ratio = r["wall"] / local["wall"]
        print(f"{name:30} {r['wall']:8.1f} {r['training']:11.1f} {r['overhead']:17.2f} {ratio:8.2f}x {r['nodes']:5}")


if __name__ == "__main__":
    main()
