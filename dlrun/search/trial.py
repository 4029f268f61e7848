"""A tune trial in its worker: a sweep point's training (`run_point`) that reports every epoch to the study.

The report is a plain Keras callback driven by `on_epoch_end` logs, so it works with any training loop
that calls callbacks: each epoch's objective goes to the study (Optuna's intermediate values), and when
the study's pruner says the trial is hopeless, the callback stops training and says why
(`stop_status`), which makes the run's status `pruned`. A storage that fails mid-trial stops the
reports, never the training.
"""

from __future__ import annotations

import math
from typing import Any

from dlrun.runs.status import Status
from dlrun.search.executors import run_point


def run_trial(
    index: int, spec_path: str, overrides: list[str], out: str, job: dict[str, Any], threads: int
) -> dict[str, Any]:
    """Train trial `index` (its number) as a sweep worker trains a point, reporting each epoch to the study.

    Args:
        job: {"tracking": MLflow settings or None, "trial": `Reporter`'s settings}.

    Returns:
        `run_point`'s result, plus "warning" when the reports to the study stopped.
    """
    reports: list[Reporter] = []

    def callbacks() -> list:
        reports.append(Reporter(job["trial"]))
        return [pruning_callback(reports[0])]

    result = run_point(index, spec_path, overrides, out, job.get("tracking"), threads, callbacks)
    if reports and reports[0].broken:
        result["warning"] = f"its epochs could not be reported to the study, so it was not pruned: {reports[0].broken}"
    return result


class Reporter:
    """Report a trial's epochs to its study, and ask the study's pruner whether to stop.

    `settings`: {"storage": URL or path, "study": name, "trial": its number, "metric": the logged quantity, "pruner":
    `dlrun.search.study.make_pruner`'s settings}.
    """

    def __init__(self, settings: dict[str, Any]):
        from dlrun.search.study import import_optuna, make_pruner, open_storage, trial_id

        optuna = import_optuna()
        self.metric = settings["metric"]
        self.broken: str | None = None
        self.storage = open_storage(settings["storage"])
        self.study = optuna.load_study(
            study_name=settings["study"],
            storage=self.storage,
            sampler=optuna.samplers.RandomSampler(),  # never samples here: the driver asked for the values
            pruner=make_pruner(settings["pruner"]),
        )
        self.trial_id = trial_id(settings["storage"], settings["study"], settings["trial"])

    def report(self, epoch: int, logs: dict[str, Any] | None) -> bool:
        """Report epoch `epoch` (1-based) and return whether the pruner stops the trial there."""
        value = (logs or {}).get(self.metric)
        if self.broken or value is None:
            return False
        value = float(value)
        if not math.isfinite(value):
            return False  # TerminateOnNaN ends the run; the driver records it as failed
        try:  # what Trial.report and Trial.should_prune do, through the storage's and pruner's public methods
            self.storage.set_trial_intermediate_value(self.trial_id, epoch, value)
            return self.study.pruner.prune(self.study, self.storage.get_trial(self.trial_id))
        except Exception as exc:  # a storage that went away: train on, unpruned
            self.broken = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            return False


def pruning_callback(reporter: Reporter):
    """Build the Keras callback that reports each epoch's logs and stops training when the trial is pruned."""
    from dlrun.backend import import_keras

    keras = import_keras()

    class Pruning(keras.callbacks.Callback):
        stop_status: str | None = None
        """`pruned` once the pruner stopped the trial (`dlrun.training.fit` makes it the run's status)."""

        def on_epoch_end(self, epoch, logs=None):
            if reporter.report(epoch + 1, logs):
                self.model.stop_training = True
                self.stop_status = str(Status.PRUNED)

    return Pruning()
