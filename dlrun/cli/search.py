"""`dlrun sweep`: many runs of one spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.common import command, err, out, reported
from dlrun.cli.train import TrackOption, TrackUriOption, tracking_of
from dlrun.errors import DlrunError
from dlrun.search.executors import ExecutorKind


@command()
def sweep(
    spec: Annotated[
        Path | None, typer.Argument(metavar="SPEC", help="The experiment's YAML spec (not needed with --resume).")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="PATH=V1,V2",
            help="A swept value list, or one value for every run: training.optimizer.learning_rate=0.01,0.001 "
            "(repeatable; split at top-level commas only, so [a,b] stays one value).",
        ),
    ] = None,
    seeds: Annotated[str | None, typer.Option(metavar="SEEDS", help="Seeds to repeat each point with: 0,1,2.")] = None,
    axes_file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="YAML mapping of spec paths to value lists, swept like --set."),
    ] = None,
    jobs: Annotated[int | None, typer.Option(metavar="N", help="Runs in parallel; default: one per CPU core.")] = None,
    executor: Annotated[
        ExecutorKind, typer.Option(help="local (processes on this machine) or ray (a Ray instance or cluster).")
    ] = ExecutorKind.local,
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS", help="Ray cluster to use: ray://HOST:10001 or auto; default: start Ray locally."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="SWEEP_DIR",
            help="A sweep folder (runs/<name>/sweep-<timestamp>) to finish: trains only the points without a "
            "finished run (those whose worker died included; not those that failed or hit NaN).",
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder for run directories.")] = Path("runs"),
    track: TrackOption = None,
    track_uri: TrackUriOption = None,
) -> None:
    """Train the grid product of --set value lists (and seeds) in parallel, then compare the runs."""
    from dlrun.runs import compare as comparing
    from dlrun.search import sweep as sweeping

    with reported():
        if resume is not None:
            if spec is not None or sets or seeds or axes_file:
                raise DlrunError("--resume finishes a sweep as it was started: drop SPEC, --set, --seeds and --file")
            sweep_dir = resume
            manifest = sweeping.read_manifest(sweep_dir)
            points = len(manifest["points"])
        else:
            if spec is None:
                raise DlrunError("missing SPEC: dlrun sweep SPEC --set PATH=V1,V2 (or --resume SWEEP_DIR)")
            grid = sweeping.make_grid(sets or [], seeds, axes_file)
            points = len(grid.points())
        runner = sweeping.make_executor(executor.value, jobs, address, points)
        if resume is None:
            tracking = settings_of(spec, grid.constants, track, track_uri, out_dir)
            sweep_dir = sweeping.start(spec, grid, out_dir)
        else:  # the runs folder the sweep was started with holds its default MLflow store
            tracking = settings_of(
                Path(manifest["spec"]), manifest["constants"], track, track_uri, resume.parent.parent, manifest
            )
        if resume is None:
            out.print(f"sweep of {points} runs in {sweep_dir}")

        def plan(left: int) -> None:
            if resume is not None:
                out.print(f"resuming sweep {sweep_dir}: {left} of {points} runs left")

        parent = sweep_tracking(tracking, sweep_dir)
        result = None
        try:
            result = sweeping.execute(sweep_dir, runner, console=out, on_plan=plan, tracking=parent)
            for item in result.skipped:
                err.print(f"skipped {item.path}: {item.reason}", markup=False, soft_wrap=True)
            if result.table:
                comparing.write_csv(sweep_dir / sweeping.COMPARE_CSV, result.columns, result.table)
                comparing.show(
                    out,
                    result.columns,
                    result.table,
                    title=f"sweep {sweep_dir}",
                    hint=f"{sweep_dir / sweeping.COMPARE_CSV} (every column) or a wider terminal",
                )
        finally:
            if parent is not None:  # after compare.csv, which the sweep's MLflow run keeps
                parent.finish(result)
        for point in result.failures:
            if point.get("error") and point["status"] != "interrupted":
                err.print(
                    f"point {point['index']} ({' '.join(point['overrides'])}) {point['status']}: {point['error']}",
                    markup=False,
                    soft_wrap=True,
                )
        if result.interrupted:
            error = DlrunError(
                f"sweep interrupted; finished runs are kept. Run the rest with: dlrun sweep --resume {sweep_dir}"
            )
            error.exit_code = result.exit_code
            raise error
        if result.failures:
            retried = sum(bool(p.get("retry")) for p in result.failures)
            raise DlrunError(
                f"{len(result.failures)} of {points} runs did not finish; see the table and messages above"
                + (
                    f". {retried} lost their worker (killed, out of memory): dlrun sweep --resume {sweep_dir} "
                    "trains them again"
                    if retried
                    else ""
                )
            )


def settings_of(
    spec: Path, constants: list[str], track, track_uri: str | None, runs_folder: Path, manifest: dict | None = None
):
    """Resolve where a sweep's runs are logged: --track, --track-uri, the spec, or where a resumed sweep was logged."""
    from dlrun.spec.loader import load_spec

    try:
        section = load_spec(spec, constants).tracking
    except DlrunError:
        section = None  # a resumed sweep whose spec is gone or changed: execute says so
    return tracking_of(section, track, track_uri, runs_folder, (manifest or {}).get("tracking"))


def sweep_tracking(tracking, sweep_dir: Path):
    """Open the sweep's MLflow run, and say where it is (None: not tracked, or MLflow failed and said so)."""
    if tracking is None:
        return None
    from dlrun.training.tracking import SweepTracking

    parent = SweepTracking.start(tracking, sweep_dir)
    if parent is not None:
        out.print(tracking.where(), soft_wrap=True, markup=False)
    return parent
