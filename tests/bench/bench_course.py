"""Per-epoch time of the course's way (plain Keras on pandas DataFrames) against dlrun, for lessons 06 and 04.

Each lesson trains its bundled config both ways with the same seed, split, scaling, model, optimizer,
loss and early stopping, the course's side written as the course's notes write it. Prints, per lesson,
each one's milliseconds per epoch (medians of alternating rounds), their ratio, and both best val_loss.

- Lesson 06: one batch holds every training row, so an epoch is one step and batch order cannot
  matter: dlrun must match the course's best val_loss within 1e-3, at most 0.2x its time per epoch.
- Lesson 04: a 512-512-512 network on two batches an epoch, where the order of the rows matters:
  seeded Keras reuses one shuffle order every epoch on NumPy and DataFrame input, dlrun reshuffles
  every epoch, so the best val_loss differs by seed noise (`--seeds 10 --repeats 1` compares the
  means); the ratio says what dlrun's pipeline costs when the math is heavier.


With `--against REV` it instead times dlrun as it is in this tree against dlrun at a git revision
(say the commit before a change), each in fresh processes, rounds alternating: the per-epoch time
of epochs 2 on (the first traces the graph), medians, and their ratio. Target for a change that
adds work to every epoch (checkpoints, say): a ratio of at most 1.10.

    .venv/bin/python tests/bench/bench_course.py [--repeats 3] [--lessons 06,04] [--seeds 1]
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


def course_way(spec, make_model) -> tuple[float, int, float]:
    """Train as the course writes it; return (ms per epoch, epochs, best val_loss)."""
    keras = import_keras()
    data = prepare(spec.data, spec.seed, spec.training.loss)
    names = data.preprocessing.features
    x_train, x_valid = pd.DataFrame(data.x_train, columns=names), pd.DataFrame(data.x_valid, columns=names)
    y_train, y_valid = pd.Series(data.y_train), pd.Series(data.y_valid)

    keras.utils.set_random_seed(spec.seed)
    model = make_model(keras, len(names))
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


def bench(lesson: str, repeats: int, seeds: int) -> float:
    """Run one lesson both ways in alternating rounds, print the medians; return the time ratio dlrun/course.

    With several seeds (each also splitting the rows differently), the best val_loss is their mean.
    """
    config, make_model = LESSONS[lesson]
    base = load_spec(CONFIGS / config)
    course, ours = [], []
    with tempfile.TemporaryDirectory() as out:
        dlrun_way(base, Path(out))  # warm up TensorFlow's one-time costs for both
        for seed in range(base.seed, base.seed + seeds):
            spec = base.model_copy(update={"seed": seed})
            for _ in range(repeats):
                course.append((seed, *course_way(spec, make_model)))
                ours.append((seed, *dlrun_way(spec, Path(out))))
    course_ms = statistics.median(c[1] for c in course)
    dlrun_ms = statistics.median(o[1] for o in ours)
    course_best = statistics.mean({c[0]: c[3] for c in course}.values())
    dlrun_best = statistics.mean({o[0]: o[3] for o in ours}.values())
    over = f", mean of {seeds} seeds" if seeds > 1 else ""
    print(f"lesson {lesson} ({config}):")
    for name, ms, runs, best in (
        ("course (Keras on DataFrames)", course_ms, course, course_best),
        ("dlrun (cached tf.data)", dlrun_ms, ours, dlrun_best),
    ):
        epochs = statistics.median(r[2] for r in runs)
        print(f"  {name + ':':30s}{ms:7.2f} ms/epoch  epochs {epochs:6.0f}  best val_loss {best:.6f}{over}")
    difference = abs(course_best - dlrun_best)
    if lesson == "06":
        print(f"  best val_loss difference: {difference:.2e} (target <= 1e-3: one batch an epoch, order cannot matter)")
    else:
        print(f"  best val_loss difference: {difference:.3g} (no target: the batch order differs, see the docstring)")
    return dlrun_ms / course_ms


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
    parser.add_argument("--lessons", default="06,04", help="comma-separated: 06, 04")
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds per lesson, from the config's; best val_loss is their mean"
    )
    parser.add_argument("--against", metavar="REV", help="time this tree's dlrun against a git revision's")
    args = parser.parse_args()
    if args.against:
        against(args.against, args.repeats)
        return
    ratios = {lesson: bench(lesson, args.repeats, args.seeds) for lesson in args.lessons.split(",")}
    for lesson, ratio in ratios.items():
        target = " (target <= 0.2)" if lesson == "06" else ""
        print(f"ratio dlrun/course, lesson {lesson}: {ratio:.3f}{target}")


if __name__ == "__main__":
    main()
