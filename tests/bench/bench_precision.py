"""Mixed precision against float32, as `training.mixed_precision: true` sets it, with Keras's own `fit`.

dlrun's mixed precision is Keras's `mixed_float16` dtype policy, the last layer in float32 and the
optimizer wrapped in a `LossScaleOptimizer` (dlrun/training/devices.py). This benchmark builds the
same models both ways and times `model.fit` per epoch, alternating the two in rounds and taking
medians, on three workloads:

- lesson 06 (configs/06: 4-4-1 on the breast-cancer CSV, 398 training rows, batch 512);
- lesson 04 (configs/04: 512-512-512-1 on the diabetes CSV, batch 256);
- compute-bound (generated here: 100k rows x 11 features, 3x512 with dropout and batch normalization,
  batch 512), the workload where a GPU and float16 can pay off.

It imports only Keras and NumPy, so it runs on any Keras 3 backend: on this project's CPU machines with
TensorFlow, and on a GPU machine without TensorFlow (`KERAS_BACKEND=jax`). The numbers measure Keras's
policy on that device; on CPU float16 is emulated and slower, which is why dlrun leaves it off by default.

    .venv/bin/python tests/bench/bench_precision.py [--rounds 3] [--epochs 5] [--compute-epochs 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "configs" / "data"
POLICIES = ("float32", "mixed_float16")


def read_csv(name: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and target of a bundled CSV, standardized on the first 70% (the configs' validation_split 0.3)."""
    with open(DATA / name, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], np.array(rows[1:], dtype="float64")
    column = header.index(target)
    x = np.delete(body, column, axis=1)
    y = body[:, column]
    train = int(len(x) * 0.7)
    mean, std = x[:train].mean(axis=0), x[:train].std(axis=0)
    return ((x - mean) / np.where(std == 0, 1, std)).astype("float32"), y.astype("float32")


def compute_data() -> tuple[np.ndarray, np.ndarray]:
    """The compute-bound data of bench_course.py: 100k x 11 normal features, a linear plus sine target."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100_000, 11)).astype("float32")
    y = x @ rng.normal(size=11) + np.sin(3 * x[:, 0]) + rng.normal(scale=0.1, size=len(x))
    return x, y.astype("float32")


def hidden(keras, name: str) -> list:
    """The hidden layers of each workload, as the configs (or bench_course.py) list them."""
    layers = keras.layers
    if name == "06":
        return [layers.Dense(4, activation="relu"), layers.Dense(4, activation="relu")]
    if name == "04":
        return [layers.Dense(512, activation="relu") for _ in range(3)]
    return [
        layer
        for _ in range(3)
        for layer in (layers.Dense(512, activation="relu"), layers.Dropout(0.3), layers.BatchNormalization())
    ]


WORKLOADS = {
    # name: (data, last activation, loss, batch size)
    "06": (lambda: read_csv("breast_cancer.csv", "target"), "sigmoid", "binary_crossentropy", 512),
    "04": (lambda: read_csv("diabetes.csv", "target"), None, "mae", 256),
    "compute": (compute_data, None, "mae", 512),
}


def build(keras, name: str, inputs: int, policy: str):
    """The workload's model under `policy`, built as dlrun builds it: the last layer float32, loss-scaled Adam."""
    _, activation, loss, _ = WORKLOADS[name]
    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        mixed = policy != "float32"
        last = keras.layers.Dense(1, activation=activation, dtype="float32" if mixed else None)
        model = keras.Sequential([keras.Input(shape=(inputs,)), *hidden(keras, name), last])
    finally:
        keras.config.set_dtype_policy(saved)
    optimizer = keras.optimizers.Adam()
    if mixed:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=loss)
    return model


def split_at(name: str, rows: int) -> int:
    """Where validation starts: the configs' validation_split 0.3, bench_course.py's 0.2 for the compute-bound data."""
    return int(rows * (0.8 if name == "compute" else 0.7))


def ms_per_epoch(keras, name: str, x: np.ndarray, y: np.ndarray, policy: str, epochs: int) -> tuple[float, float]:
    """Milliseconds per epoch of `fit` after one warm-up epoch (which compiles), and the last val_loss."""
    batch = WORKLOADS[name][3]
    split = split_at(name, len(x))
    model = build(keras, name, x.shape[1], policy)
    train, valid = (x[:split], y[:split]), (x[split:], y[split:])
    model.fit(*train, validation_data=valid, batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    history = model.fit(*train, validation_data=valid, batch_size=batch, epochs=epochs, verbose=0)
    return (time.perf_counter() - start) * 1000 / epochs, history.history["val_loss"][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of float32 and mixed_float16")
    parser.add_argument("--epochs", type=int, default=20, help="timed epochs of lessons 06 and 04")
    parser.add_argument("--compute-epochs", type=int, default=3, help="timed epochs of the compute-bound run")
    parser.add_argument("--workloads", default="06,04,compute", help="comma-separated: 06, 04, compute")
    args = parser.parse_args()
    import keras

    devices = keras.distribution.list_devices() if hasattr(keras, "distribution") else ["?"]
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, devices {devices}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name in args.workloads.split(","):
        x, y = WORKLOADS[name][0]()
        epochs = args.compute_epochs if name == "compute" else args.epochs
        times: dict[str, list[float]] = {policy: [] for policy in POLICIES}
        losses: dict[str, float] = {}
        for round_ in range(args.rounds):
            order = POLICIES if round_ % 2 == 0 else POLICIES[::-1]
            for policy in order:
                elapsed, loss = ms_per_epoch(keras, name, x, y, policy, epochs)
                times[policy].append(elapsed)
                losses[policy] = loss
        medians = {policy: statistics.median(values) for policy, values in times.items()}
        print(
            f"{name}: {split_at(name, len(x))} training rows, batch {WORKLOADS[name][3]}, "
            f"{epochs} timed epochs, {args.rounds} rounds"
        )
        for policy in POLICIES:
            spread = f"{min(times[policy]):.2f}-{max(times[policy]):.2f}"
            print(
                f"  {policy:14} {medians[policy]:9.2f} ms/epoch (spread {spread}), last val_loss {losses[policy]:.4f}"
            )
        print(f"  ratio mixed_float16/float32: {medians['mixed_float16'] / medians['float32']:.3f}")


if __name__ == "__main__":
    main()
