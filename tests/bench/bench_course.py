"""Per-epoch time of the course's way (plain Keras on pandas DataFrames) against dlrun, in one invocation.

Both train the bundled binary-classification example with the same seed, split, scaling, model and
early stopping. Prints each one's milliseconds per epoch, their ratio, and both best val_loss values.
Target: dlrun at most 0.2x the course's per-epoch time, best val_loss equal within 1e-3.

With `--against REV` it instead times dlrun as it is in this tree against dlrun at a git revision
(say the commit before a change), each in fresh processes, rounds alternating: the per-epoch time
of epochs 2 on (the first traces the graph), medians, and their ratio. Target for a change that
adds work to every epoch (checkpoints, say): a ratio of at most 1.10.

    .venv/bin/python tests/bench/bench_course.py [--repeats 3]
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

import pandas as pd

from dlrun.backend import import_keras
from dlrun.data.prepare import prepare
from dlrun.spec.loader import load_spec
from dlrun.training.fit import train

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


def course_way(spec) -> tuple[float, int, float]:
    """Train as the course writes it; return (ms per epoch, epochs, best val_loss)."""
    keras = import_keras()
    data = prepare(spec.data, spec.seed, spec.training.loss)
    names = data.preprocessing.features
    x_train, x_valid = pd.DataFrame(data.x_train, columns=names), pd.DataFrame(data.x_valid, columns=names)
    y_train, y_valid = pd.Series(data.y_train), pd.Series(data.y_valid)

    keras.utils.set_random_seed(spec.seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(len(names),)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["binary_accuracy"])
    stop = spec.training.early_stopping
    early_stopping = keras.callbacks.EarlyStopping(
        min_delta=stop.min_delta, patience=stop.patience, restore_best_weights=stop.restore_best_weights
    )
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_valid, y_valid),
        batch_size=spec.training.batch_size,
        epochs=spec.training.epochs,
        callbacks=[early_stopping],
        verbose=0,
    )
    elapsed = time.perf_counter() - started
    epochs = len(history.history["loss"])
    return 1000 * elapsed / epochs, epochs, min(history.history["val_loss"])


def dlrun_way(spec, out: Path) -> tuple[float, int, float]:
    """Train through dlrun; return (ms per epoch, epochs, best val_loss)."""
    summary = train(spec, out, quiet=True).summary
    history = pd.read_csv(out / spec.name / sorted(p.name for p in (out / spec.name).iterdir())[-1] / "history.csv")
    return 1000 * summary["wall_time_s"] / summary["epochs_run"], summary["epochs_run"], history["val_loss"].min()


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
    parser.add_argument("--against", metavar="REV", help="time this tree's dlrun against a git revision's")
    args = parser.parse_args()
    if args.against:
        against(args.against, args.repeats)
        return
    spec = load_spec(SPEC)
    course, ours = [], []
    with tempfile.TemporaryDirectory() as out:
        dlrun_way(spec, Path(out))  # warm up TensorFlow's one-time costs for both
        for _ in range(args.repeats):
            course.append(course_way(spec))
            ours.append(dlrun_way(spec, Path(out)))
    course_ms = statistics.median(c[0] for c in course)
    dlrun_ms = statistics.median(o[0] for o in ours)
    print(
        f"course (Keras on DataFrames): {course_ms:7.2f} ms/epoch  epochs {course[0][1]:4d}"
        f"  best val_loss {course[0][2]:.6f}"
    )
    print(
        f"dlrun (cached tf.data):       {dlrun_ms:7.2f} ms/epoch  epochs {ours[0][1]:4d}"
        f"  best val_loss {ours[0][2]:.6f}"
    )
    print(f"ratio dlrun/course: {dlrun_ms / course_ms:.3f} (target <= 0.2)")
    print(f"best val_loss difference: {abs(course[0][2] - ours[0][2]):.2e} (target <= 1e-3)")


if __name__ == "__main__":
    main()
