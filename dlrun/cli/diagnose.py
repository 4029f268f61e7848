"""`dlrun diagnose`: the full reading of a run's learning curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.common import command, fmt, out, reported
from dlrun.runs.layout import HISTORY


@command()
def diagnose(
    run: Annotated[
        Path, typer.Argument(metavar="RUN", help="A run directory (runs/<name>/<timestamp>/), or a history.csv.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the diagnosis as JSON instead of text.")] = False,
) -> None:
    """Read a run's learning curves: underfit, overfit, unstable, plateau or healthy, with evidence and what to try.

    A run trained before baselines existed gets its baseline recomputed when its CSV is unchanged
    (same sha256); nothing in the run directory is written.
    """
    from dlrun.api import diagnosis_of
    from dlrun.runs.reading import is_run_dir

    with reported():
        history, summary, diagnosis, note = diagnosis_of(run)
        run_dir = history.path.parent
        known = is_run_dir(run_dir) and history.path.name == HISTORY
    if as_json:
        print(json.dumps({"run": str(run_dir if known else history.path), **diagnosis.to_dict()}, indent=2))
        return
    for line in reading_lines(history.path, summary, diagnosis, note):
        out.print(line, markup=False, soft_wrap=True)


def reading_lines(path: Path, summary: dict, diagnosis, note: str | None) -> list[str]:
    """The diagnosis as text: the run, its baseline, then each finding with its evidence and suggestions."""
    lines = [f"{path.parent if path.name == HISTORY else path}: {diagnosis.fit or 'too few epochs to read'}"]
    if summary.get("status"):
        best = summary.get("best_epoch")
        lines.append(
            f"  {summary['status']} after {summary.get('epochs_run')} of {summary.get('epochs')} epochs"
            + (f"; best epoch {best} by {summary.get('monitor')}" if best is not None else "")
        )
    constants = summary.get("baseline_constants") or {}
    for quantity, value in (summary.get("baseline") or {}).items():
        lines.append(f"  baseline val_{quantity} {fmt(value)}{_constant(constants.get(quantity))}")
    if note:
        lines.append(f"  ({note})")
    elif summary and "baseline" not in summary:
        lines.append("  (no baseline in this run's summary: read without one)")
    for finding in diagnosis.findings:
        lines += ["", finding.summary]
        lines += [f"  - {line}" for line in finding.evidence]
        if finding.suggestions:
            lines.append("  try:")
            for suggestion in finding.suggestions:
                lines += [f"    {suggestion.option}", f"        {suggestion.why}"]
    return lines


def _constant(constant: dict | None) -> str:
    """Say which constant a baseline predicts: `: always predicting 0.6231, the positive rate of ...`."""
    if not constant or "rule" not in constant:
        return ""
    value = constant.get("predict")
    shown = f"[{', '.join(f'{v:.4g}' for v in value)}]" if isinstance(value, list) else f"{value:.4g}"
    return f": always predicting {shown}, {constant['rule']}"
