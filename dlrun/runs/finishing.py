"""A run's last files: the plots it promises, and the status it takes only once they are all on disk.

The end of training writes summary.json twice. First with the files still to write (`missing`: the
plots) and, where the run ended for good (completed, early-stopped, pruned, NaN), the status
`incomplete` with the status to come (`final_status`); then, once every plot is on disk, with its
final status (`finish`). A full disk or a kill -9 between the two leaves a run that says which files
it lacks, and keeps its checkpoint; `dlrun plot RUN` or `dlrun train --resume RUN` writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError
from dlrun.runs import layout, lock
from dlrun.runs.history import History
from dlrun.runs.status import FINISHED, Status, status_of

MISSING = "missing"
"""summary.json's list of the files a run promises that are not on disk yet (paths in the run directory)."""
FINAL = "final_status"
"""summary.json's status a run takes once its missing files are written."""
ENDED = frozenset({*FINISHED, Status.NAN, Status.PRUNED})
"""Statuses with nothing to resume: the checkpoint goes once every file is on disk."""


def promised(history: History) -> list[str]:
    """Return the plot files a run with this history promises, as paths in its directory."""
    from dlrun.runs.plot import plot_names

    return [f"{layout.PLOTS}/{name}" for name in plot_names(history)]


def pending(summary: dict[str, Any] | None, status: Status, files: list[str]) -> dict[str, Any]:
    """Return the summary to write before a run's last files: the files missing, and a final status held back."""
    written = {**(summary or {}), MISSING: files}
    if status in ENDED:
        written.update({"status": str(Status.INCOMPLETE), FINAL: str(status)})
    return written


def missing(run_dir: Path, summary: dict[str, Any] | None) -> list[str]:
    """Return the files a run's summary says are still to write and that are not on disk."""
    return [name for name in (summary or {}).get(MISSING) or [] if not (Path(run_dir) / name).is_file()]


def unfinished(summary: dict[str, Any] | None) -> bool:
    """Tell whether a summary was written before its run's last files (they may be on disk or not)."""
    return bool((summary or {}).get(MISSING))


def note(run_dir: Path, summary: dict[str, Any]) -> str:
    """Say which files a run lacks and the command that writes them."""
    lacking = missing(run_dir, summary) or summary.get(MISSING) or []
    return (
        f"{run_dir} lacks {', '.join(lacking)} (a full disk, or the process was killed while writing them); "
        f"{_command(run_dir)}"
    )


def _command(run_dir: Path) -> str:
    return f"write them with: dlrun plot {run_dir}"


def finish(run_dir: Path, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a run's plots, then its summary with its final status; remove its checkpoint if it ended for good.

    Args:
        summary: the final summary (training's end has it in memory); default: summary.json's, its
            held-back status restored.

    Returns:
        The summary written.

    Raises:
        DlrunError: a file cannot be written (a full disk): summary.json still says which are missing.
    """
    from dlrun.runs.plot import write_run_plots
    from dlrun.runs.reading import read_summary

    run_dir = Path(run_dir)
    if summary is None:
        summary = read_summary(run_dir)
        if FINAL in summary:
            summary["status"] = summary[FINAL]
    summary = {key: value for key, value in summary.items() if key not in (MISSING, FINAL)}
    try:
        write_run_plots(run_dir, summary=summary)
    except DlrunError as exc:
        raise DlrunError(f"{exc}; the run is not complete without its plots: {_command(run_dir)}") from None
    layout.write_json(run_dir / layout.SUMMARY, summary)
    if status_of(summary) in ENDED:
        (run_dir / layout.CHECKPOINT).unlink(missing_ok=True)
    lock.clear_stale(run_dir)
    return summary


def finish_found(paths: list[Path]) -> list[tuple[Path, list[str], dict[str, Any]]]:
    """Finish every run under `paths` that lacks files and that no live process writes (`dlrun plot` does).

    Returns:
        Each run finished, the files it lacked, and its summary now.

    Raises:
        DlrunError: a file cannot be written (summary.json still says which are missing).
    """
    from dlrun.runs.reading import find_runs, read_summary

    done = []
    for run_dir in find_runs(paths)[0]:
        try:
            summary = read_summary(run_dir)
        except DlrunError:
            continue  # an unreadable summary is the reader's to report
        holder = lock.holder(run_dir)
        if not unfinished(summary) or (holder is not None and holder.alive()):
            continue
        lacking = missing(run_dir, summary)
        with lock.held(run_dir):
            lock.remove_stale_temporaries(run_dir)
            done.append((run_dir, lacking, finish(run_dir)))
    return done
