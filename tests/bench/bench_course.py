"""Per-epoch time of the course's way (plain Keras on DataFrames), `model.fit` on cached datasets, and dlrun.

Each lesson trains its bundled config every way with the same seed, split, scaling, model, optimizer,
loss and early stopping, the course's side written as the course's notes write it. In alternating
rounds it times:

- course: `model.fit` on pandas DataFrames, EarlyStopping its only callback;
- model.fit: the same Keras model fitted on dlrun's cached `tf.data` datasets, EarlyStopping its only callback;
- dlrun (fit): dlrun with `training.loop: fit`, i.e. `model.fit` with dlrun's callbacks (the loop before the lean one);
- dlrun: dlrun as it trains by default (the lean loop where it applies; summary.json's `loop` says which).

Two numbers per way: all-in (wall time over epochs, the first epoch's graph tracing included) and
steady (epochs 2 on, timed at each epoch's end). Medians of the rounds; the spread (min-max) beside.

- Lesson 06 (configs/06: 398 training rows, batch 512): one batch an epoch, so batch order cannot
  matter. Targets: dlrun <= 1.0 ms per epoch, <= 0.03x the course's, best val_loss within 1e-3 of it.
- Lesson 04 (configs/04: 512-512-512, batch 256): two batches an epoch, where the order matters:
  seeded Keras reuses one shuffle order every epoch on DataFrames, dlrun reshuffles every epoch, so
  the best val_loss differs by seed noise (`--seeds 10 --repeats 1` compares the means). Target:
  dlrun <= 0.1x the course's time per epoch. Here the math itself (printed as "the math alone": the
  model's steps in a bare `tf.function`, no metrics, logs or callbacks) takes about 0.15x the course's
  steady time on a shared 2-core CPU, and dlrun's lean loop runs within a few percent of it.
- Compute-bound (`--lessons compute`, generated here: 100k rows x 11 features, 3x512 with dropout and
  batch normalization, batch 512): the math dominates. Target: dlrun <= 1.0x model.fit (steady).

With `--against REV` it instead times dlrun as it is in this tree against dlrun at a git revision
(say the commit before a change), each in fresh processes, rounds alternating: the per-epoch time
of epochs 2 on (the first traces the graph), medians, and their ratio. Target for a change that
adds work to every epoch (checkpoints, say): a ratio of at most 1.10.

The machine is shared: run it when `uptime`'s load is low, and read the spread.

    .venv/bin/python tests/bench/bench_course.py [--repeats 3] [--lessons 06,04,compute] [--seeds 1]
    .venv/bin/python tests/bench/bench_course.py --against main [--repeats 5]
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
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dlrun.backend import import_keras
from dlrun.data.datasets import fit_datasets
from dlrun.data.prepare import prepare
from dlrun.spec.loader import load_spec
from dlrun.training import fit as fit_module

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "configs" / "06_binary_classification.yaml"

# Run in a fresh process with PYTHONPATH at one version of dlrun: train the spec once, timing each
# epoch's end with a callback added to whatever callbacks that version builds.
TIMED_RUN = """
import json, sys, time
from pathlib import Path
import dlrun.training.callbacks as callbacks_module
import dlrun.training.fit as fit_module
from dlrun.backend import import_keras
from dlrun.spec.loader import load_spec

keras = import_keras()
ends = []

class Timer(keras.callbacks.Callback):
    replayable = True  # it reads the clock, not the model

    def on_epoch_end(self, epoch, logs=None):
        ends.append(time.perf_counter())

original = callbacks_module.make_callbacks

def timed(*args, **kwargs):
    made = original(*args, **kwargs)
    made.all.append(Timer())
    return made

fit_module.make_callbacks = timed
summary = fit_module.train(load_spec(sys.argv[1]), Path(sys.argv[2]), quiet=True).summary
print(json.dumps({"ms": 1000 * (ends[-1] - ends[0]) / (len(ends) - 1), "epochs": summary["epochs_run"]}))
"""
CONFIGS = ROOT / "configs"


def lesson_06_model(keras, inputs: int):
    """Lesson 6 as the notes write it (`input_shape=[33]` becomes the data's width)."""
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(inputs,)),
            layers.Dense(4, activation="relu"),
            layers.Dense(4, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["binary_accuracy"])
    return model


def lesson_04_model(keras, inputs: int):
    """Lesson 4's network: the notes show none, so the config's three 512-unit ReLU layers; lesson 3's compile."""
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(inputs,)),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mae")
    return model


LESSONS = {
    "06": ("06_binary_classification.yaml", lesson_06_model),
    "04": ("04_early_stopping.yaml", lesson_04_model),
}


def timer(keras, ends: list[float]):
    """A callback noting when each epoch ends (it reads the clock only, so the lean loop may replay it)."""

    class Timer(keras.callbacks.Callback):
        replayable = True

        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    return Timer()


def steady_ms(ends: list[float]) -> float:
    """Milliseconds per epoch from the end of the first epoch (its tracing left out) to the end of the last."""
    return 1000 * (ends[-1] - ends[0]) / max(len(ends) - 1, 1)


def early_stopping(keras, spec):
    stop = spec.training.early_stopping
    if stop is None:
        return []
    return [
        keras.callbacks.EarlyStopping(
            min_delta=stop.min_delta, patience=stop.patience, restore_best_weights=stop.restore_best_weights
        )
    ]


def course_way(spec, make_model, data) -> tuple[float, float, int, float]:
    """Train as the course writes it; return (all-in ms per epoch, steady ms per epoch, epochs, best val_loss)."""
    keras = import_keras()
    names = data.preprocessing.features
    x_train, x_valid = pd.DataFrame(data.x_train, columns=names), pd.DataFrame(data.x_valid, columns=names)
    y_train, y_valid = pd.Series(data.y_train), pd.Series(data.y_valid)

    keras.utils.set_random_seed(spec.seed)
    model = make_model(keras, len(names))
    ends: list[float] = []
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_valid, y_valid),
        batch_size=spec.training.batch_size,
        epochs=spec.training.epochs,
        callbacks=[*early_stopping(keras, spec), timer(keras, ends)],
        verbose=0,
    )
    elapsed = time.perf_counter() - started
    epochs = len(history.history["loss"])
    return 1000 * elapsed / epochs, steady_ms(ends), epochs, min(history.history["val_loss"])


def keras_fit_way(spec, make_model, data) -> tuple[float, float, int, float]:
    """Fit the same Keras model on dlrun's cached datasets with `model.fit`, EarlyStopping its only callback."""
    keras = import_keras()
    keras.utils.set_random_seed(spec.seed)
    training = spec.training
    datasets = fit_datasets(data, training.batch_size, training.shuffle, spec.seed)
    model = make_model(keras, data.preprocessing.width)
    ends: list[float] = []
    started = time.perf_counter()
    history = model.fit(
        datasets.train,
        validation_data=datasets.valid,
        epochs=training.epochs,
        steps_per_epoch=datasets.steps,
        validation_steps=datasets.valid_steps,
        callbacks=[*early_stopping(keras, spec), timer(keras, ends)],
        shuffle=False,  # the dataset shuffles itself
        verbose=0,
    )
    elapsed = time.perf_counter() - started
    epochs = len(history.history["loss"])
    return 1000 * elapsed / epochs, steady_ms(ends), epochs, min(history.history["val_loss"])


def math_floor(spec, data, epochs: int = 30) -> float:
    """Milliseconds per epoch of the math alone: the model's `train_step` and `test_step` on an epoch's batches.

    One bare `tf.function` per epoch, as Keras wraps each step, with no metric reads, callbacks or
    logs: what no loop that computes fit's numbers can go below (short of changing the math).
    """
    import tensorflow as tf

    keras = import_keras()
    keras.utils.set_random_seed(spec.seed)
    training = spec.training
    datasets = fit_datasets(data, training.batch_size, training.shuffle, spec.seed)
    model = fit_module.compile_model(spec, data.preprocessing.width)
    train, valid = iter(datasets.train), iter(datasets.valid)

    def wrapped(step):  # as Keras wraps a step for fit
        @tf.autograph.experimental.do_not_convert
        def one_step_on_data(data):
            return model.distribute_strategy.run(step, args=(data,))

        return tf.function(one_step_on_data, reduce_retracing=True, jit_compile=model.jit_compile)

    train_step, test_step = wrapped(model.train_step), wrapped(model.test_step)

    @tf.function(autograph=False)
    def epoch():
        for _ in range(datasets.steps):
            train_step(train.get_next())
        for _ in range(datasets.valid_steps):
            test_step(valid.get_next())
        return tf.constant(0)

    for _ in range(3):  # tracing and warming up
        epoch().numpy()
    started = time.perf_counter()
    for _ in range(epochs):
        epoch().numpy()
    return 1000 * (time.perf_counter() - started) / epochs


def dlrun_way(spec, out: Path, loop: str) -> tuple[float, float, int, float]:
    """Train through dlrun with `training.loop` set; return as `course_way` does (all-in: summary's wall time)."""
    keras = import_keras()
    ends: list[float] = []
    original = fit_module.make_callbacks

    def timed(*args, **kwargs):
        made = original(*args, **kwargs)
        made.all.append(timer(keras, ends))
        return made

    fit_module.make_callbacks = timed
    try:
        spec = spec.model_copy(update={"training": spec.training.model_copy(update={"loop": loop})})
        outcome = fit_module.train(spec, out, quiet=True)
    finally:
        fit_module.make_callbacks = original
    summary = outcome.summary
    history = pd.read_csv(outcome.run_dir / "history.csv")
    epochs = summary["epochs_run"]
    way = f"{summary['loop']['kind']} loop"
    return 1000 * summary["wall_time_s"] / epochs, steady_ms(ends), epochs, history["val_loss"].min(), way


WAYS = ("course (Keras on DataFrames)", "model.fit on cached tf.data", "dlrun, training.loop: fit", "dlrun")


def alternate(ways: dict, repeats: int, seeds: list[int]) -> dict[str, list]:
    """Run every way once per round and seed, in turn; return each way's results."""
    results: dict[str, list] = {name: [] for name in ways}
    for seed in seeds:
        for _ in range(repeats):
            for name, way in ways.items():
                results[name].append((seed, *way(seed)))
    return results


def report(results: dict[str, list], over: str) -> dict[str, float]:
    """Print each way's medians and spread; return each way's steady ms per epoch."""
    steady = {}
    for name, runs in results.items():
        total = [r[1] for r in runs]
        step = [r[2] for r in runs]
        epochs = statistics.median(r[3] for r in runs)
        best = statistics.mean({r[0]: r[4] for r in runs}.values())
        loop = f"  ({runs[0][5]})" if len(runs[0]) > 5 else ""
        steady[name] = statistics.median(step)
        print(
            f"  {name + ':':31s}all-in {statistics.median(total):7.2f} ms/epoch ({min(total):.2f}-{max(total):.2f})"
            f"  steady {steady[name]:7.2f} ({min(step):.2f}-{max(step):.2f})  epochs {epochs:5.0f}"
            f"  best val_loss {best:.6f}{over}{loop}"
        )
    return steady


def bench(lesson: str, repeats: int, seeds: int) -> dict[str, float]:
    """Run one lesson every way in alternating rounds, print the medians; return dlrun's ratios to the others."""
    config, make_model = LESSONS[lesson]
    base = load_spec(CONFIGS / config)
    with tempfile.TemporaryDirectory() as out:
        prepared = {}

        def data_of(seed):
            if seed not in prepared:
                spec = spec_of(seed)
                prepared[seed] = prepare(spec.data, spec.seed, spec.training.loss)
            return prepared[seed]

        def spec_of(seed):
            return base.model_copy(update={"seed": seed})

        ways = {
            WAYS[0]: lambda seed: course_way(spec_of(seed), make_model, data_of(seed)),
            WAYS[1]: lambda seed: keras_fit_way(spec_of(seed), make_model, data_of(seed)),
            WAYS[2]: lambda seed: dlrun_way(spec_of(seed), Path(out), "fit"),
            WAYS[3]: lambda seed: dlrun_way(spec_of(seed), Path(out), "auto"),
        }
        for way in ways.values():  # warm up TensorFlow's one-time costs for every way
            way(base.seed)
        results = alternate(ways, repeats, list(range(base.seed, base.seed + seeds)))
    print(f"lesson {lesson} ({config}), {repeats} rounds x {seeds} seeds, load average {os.getloadavg()[0]:.1f}:")
    steady = report(results, f", mean of {seeds} seeds" if seeds > 1 else "")
    course_best = statistics.mean({r[0]: r[4] for r in results[WAYS[0]]}.values())
    dlrun_best = statistics.mean({r[0]: r[4] for r in results[WAYS[3]]}.values())
    difference = abs(course_best - dlrun_best)
    if lesson == "06":
        print(f"  best val_loss difference: {difference:.2e} (target <= 1e-3: one batch an epoch, order cannot matter)")
    else:
        print(f"  best val_loss difference: {difference:.3g} (no target: the batch order differs, see the docstring)")
    total = {name: statistics.median(r[1] for r in runs) for name, runs in results.items()}
    floor = statistics.median(math_floor(base, data_of(base.seed)) for _ in range(repeats))
    print(
        f"  the math alone (train_step and test_step in one bare tf.function an epoch): {floor:.2f} ms/epoch, "
        f"{floor / steady[WAYS[0]]:.3f}x the course's steady; dlrun steady is {steady[WAYS[3]] / floor:.2f}x it"
    )
    return {
        "ms": steady[WAYS[3]],
        "ms all-in": total[WAYS[3]],
        "course": total[WAYS[3]] / total[WAYS[0]],
        "course steady": steady[WAYS[3]] / steady[WAYS[0]],
        "model.fit": steady[WAYS[3]] / steady[WAYS[1]],
        "dlrun fit": steady[WAYS[3]] / steady[WAYS[2]],
    }


def compute_bound(repeats: int, epochs: int) -> dict[str, float]:
    """Time dlrun against `model.fit` where the math dominates: 100k x 11, 3x512 with dropout and batch norm."""
    keras = import_keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100_000, 11)).astype("float32")
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(11)])
    frame["y"] = x @ rng.normal(size=11) + np.sin(3 * x[:, 0]) + rng.normal(scale=0.1, size=len(x))
    hidden = [
        layer
        for _ in range(3)
        for layer in (
            {"type": "dense", "units": 512, "activation": "relu"},
            {"type": "dropout", "rate": 0.3},
            {"type": "batch_normalization"},
        )
    ]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        frame.to_csv(folder / "data.csv", index=False)
        spec_data = {
            "name": "compute",
            "data": {"path": "data.csv", "target": "y", "validation_split": 0.2, "scale": "standard"},
            "model": {"layers": [*hidden, {"type": "dense", "units": 1}]},
            "training": {"optimizer": "adam", "loss": "mae", "batch_size": 512, "epochs": epochs},
        }
        (folder / "compute.yaml").write_text(yaml.safe_dump(spec_data, sort_keys=False))
        spec = load_spec(folder / "compute.yaml")
        data = prepare(spec.data, spec.seed, spec.training.loss)

        def keras_fit(seed):
            keras.utils.set_random_seed(spec.seed)
            datasets = fit_datasets(data, spec.training.batch_size, True, spec.seed)
            model = fit_module.compile_model(spec, data.preprocessing.width)
            ends: list[float] = []
            started = time.perf_counter()
            history = model.fit(
                datasets.train,
                validation_data=datasets.valid,
                epochs=epochs,
                steps_per_epoch=datasets.steps,
                validation_steps=datasets.valid_steps,
                callbacks=[timer(keras, ends)],
                shuffle=False,
                verbose=0,
            )
            elapsed = 1000 * (time.perf_counter() - started) / epochs
            return elapsed, steady_ms(ends), epochs, min(history.history["val_loss"])

        ways = {
            WAYS[1]: keras_fit,
            WAYS[2]: lambda seed: dlrun_way(spec, folder / "runs", "fit"),
            WAYS[3]: lambda seed: dlrun_way(spec, folder / "runs", "auto"),
        }
        results = alternate(ways, repeats, [spec.seed])
    print(
        f"compute-bound (100k x 11, 3x512 dropout+BN, batch 512, {epochs} epochs), {repeats} rounds, load average "
        f"{os.getloadavg()[0]:.1f}:"
    )
    steady = report(results, "")
    return {"model.fit": steady[WAYS[3]] / steady[WAYS[1]], "dlrun fit": steady[WAYS[3]] / steady[WAYS[2]]}


def timed_run(tree: Path, out: Path) -> dict:
    """Train the spec with the dlrun found in `tree`, in a fresh process; return its ms per epoch and epochs."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", TIMED_RUN, str(SPEC), str(out)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def against(revision: str, repeats: int) -> None:
    """Time this tree's dlrun against the dlrun of a git revision, alternating rounds in fresh processes."""
    with tempfile.TemporaryDirectory() as scratch:
        old = Path(scratch) / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "dlrun"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        times: dict[str, list[float]] = {revision: [], "this tree": []}
        for round_ in range(repeats):
            for name, tree in ((revision, old), ("this tree", ROOT)):
                result = timed_run(tree, Path(scratch) / f"runs-{round_}")
                times[name].append(result["ms"])
                print(f"round {round_ + 1}: {name:>10}: {result['ms']:6.2f} ms/epoch ({result['epochs']} epochs)")
    before, after = (statistics.median(t) for t in times.values())
    print(f"median {revision}: {before:.2f} ms/epoch, this tree: {after:.2f} ms/epoch")
    print(f"ratio this tree/{revision}: {after / before:.3f} (target <= 1.10; a shared machine is noisy)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--lessons", default="06,04,compute", help="comma-separated: 06, 04, compute")
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds per lesson, from the config's; best val_loss is their mean"
    )
    parser.add_argument("--compute-epochs", type=int, default=3, help="epochs of the compute-bound run")
    parser.add_argument("--against", metavar="REV", help="time this tree's dlrun against a git revision's")
    args = parser.parse_args()
    if args.against:
        against(args.against, args.repeats)
        return
    for lesson in args.lessons.split(","):
        if lesson == "compute":
            ratios = compute_bound(args.repeats, args.compute_epochs)
            print(f"ratio dlrun/model.fit, compute-bound, steady: {ratios['model.fit']:.3f} (target <= 1.0)")
            print(f"ratio dlrun/dlrun with training.loop: fit, compute-bound, steady: {ratios['dlrun fit']:.3f}")
            continue
        ratios = bench(lesson, args.repeats, args.seeds)
        if lesson == "06":
            print(
                f"dlrun, lesson 06: {ratios['ms']:.2f} ms/epoch steady, {ratios['ms all-in']:.2f} all-in "
                "(target <= 1.0)"
            )
        target = {"06": " (target <= 0.03)", "04": " (target <= 0.1)"}.get(lesson, "")
        print(
            f"ratio dlrun/course, lesson {lesson}: {ratios['course']:.3f} all-in{target}, "
            f"{ratios['course steady']:.3f} steady"
        )
        print(f"ratio dlrun/model.fit on cached tf.data, lesson {lesson}, steady: {ratios['model.fit']:.3f}")
        print(f"ratio dlrun/dlrun with training.loop: fit, lesson {lesson}, steady: {ratios['dlrun fit']:.3f}")


if __name__ == "__main__":
    main()
