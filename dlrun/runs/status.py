"""How a run ended: the one list of statuses that summary.json, sweeps, compare and the CLI share."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A run's status, as written in summary.json (`str` values, so JSON and tables show the word)."""

    COMPLETED = "completed"
    """Trained every epoch asked for."""
    EARLY_STOPPED = "early-stopped"
    """Stopped by early stopping."""
    INTERRUPTED = "interrupted"
    """Stopped by Ctrl-C or SIGTERM; every finished epoch is kept."""
    PRUNED = "pruned"
    """Stopped by `dlrun tune`'s pruner: a trial that looked worse than the others at the same epoch."""
    NAN = "nan"
    """The loss became NaN or infinite; training stopped there."""
    FAILED = "failed"
    """An error inside training (or before it, for a sweep point whose spec is invalid)."""
    INCOMPLETE = "incomplete"
    """No summary.json: still training, or killed before it could write one."""
    PENDING = "pending"
    """A sweep point that has not run yet."""

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """Whether the run trained to its end (all epochs, or until early stopping)."""
        return self in FINISHED


FINISHED = frozenset({Status.COMPLETED, Status.EARLY_STOPPED})


def status_of(summary: dict | None) -> Status:
    """Return the status a summary records; INCOMPLETE without a summary (or with an unknown word)."""
    try:
        return Status((summary or {}).get("status"))
    except ValueError:
        return Status.INCOMPLETE
