"""Holds for the runs of processes a test starts: a run waits at an epoch's end until the test lets it go.

A test that kills, interrupts or races a training in another process (a sweep's workers, a tune, a
`dlrun train` writing to a log) needs the run to be mid-training when it acts, whatever the machine's
speed. Python imports this module at start-up in every process whose PYTHONPATH holds tests/support
(multiprocessing's spawned workers too); with DLRUN_TEST_HOLD naming a folder (`tests/holds.py` writes
it), `dlrun.training.fit.fit` is wrapped so that, once the folder holds a `plan.json`, each run this
process trains takes an ordinal (1, 2, ... over all the processes, in the order they start) and, when
the plan lists it, waits at the end of the plan's epoch: it writes `held-<ordinal>.json` (its pid and
run directory), then waits until the file `release` exists or the process gets SIGINT or SIGTERM (which
dlrun's own handler then sees as usual).
Without DLRUN_TEST_HOLD nothing changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

FOLDER = os.environ.get("DLRUN_TEST_HOLD")
TARGET = "dlrun.training.fit"


def _ordinal(folder: str) -> int:
    """Take the next free ordinal in the folder (an exclusive create, so two processes never get the same)."""
    k = 1
    while True:
        try:
            os.close(os.open(os.path.join(folder, f"started-{k}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return k
        except FileExistsError:
            k += 1


def _hold_callback(folder: str, ordinal: int, epoch: int, run_dir):
    import json
    import signal
    import time

    import keras

    class Hold(keras.callbacks.Callback):
        def on_epoch_end(self, index, logs=None):
            if index + 1 != epoch:
                return
            signalled = []
            previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

            def on_signal(signum, frame):
                signalled.append(signum)
                handler = previous[signum]
                if callable(handler):
                    handler(signum, frame)

            for signum in previous:
                signal.signal(signum, on_signal)
            try:
                held = os.path.join(folder, f"held-{ordinal}.json")
                with open(held + ".tmp", "w") as out:  # whole or absent: the test reads it as it appears
                    json.dump({"pid": os.getpid(), "run_dir": os.path.abspath(run_dir), "epoch": epoch}, out)
                os.replace(held + ".tmp", held)
                while not signalled and not os.path.exists(os.path.join(folder, "release")):
                    time.sleep(0.01)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)

    return Hold()


def _wrap(module) -> None:
    import inspect
    import json

    original = module.fit
    signature = inspect.signature(original)

    def fit(*args, **kwargs):
        call = signature.bind(*args, **kwargs)
        try:
            with open(os.path.join(FOLDER, "plan.json")) as plan_file:
                plan = json.load(plan_file)
        except FileNotFoundError:  # no hold asked for (yet): the run trains as it would
            return original(*call.args, **call.kwargs)
        ordinal = _ordinal(FOLDER)
        if plan["runs"] == "all" or ordinal in plan["runs"]:
            hold = _hold_callback(FOLDER, ordinal, plan["epoch"], call.arguments["run_dir"])
            call.arguments["extra_callbacks"] = [*(call.arguments.get("extra_callbacks") or []), hold]
        return original(*call.args, **call.kwargs)

    module.fit = fit


class _Finder(importlib.abc.MetaPathFinder):
    """Wrap `fit` once `dlrun.training.fit` is loaded, by whatever path it is imported."""

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            _wrap(module)

        loader.exec_module = exec_and_wrap
        return spec


if FOLDER:
    sys.meta_path.insert(0, _Finder())
