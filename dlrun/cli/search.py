"""`dlrun sweep`: many runs of one spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.common import command, err, out, reported
from dlrun.cli.train import TrackOption, TrackUriOption
from dlrun.errors import DlrunError
from dlrun.search.executors import ExecutorKind
from dlrun.search.study import ERROR, OVERRIDES, Direction, PrunerKind, SamplerKind
from dlrun.search.tune import DEFAULT_STARTUP, TRIALS_CSV

TOP = 10
"""Trials the end-of-tune table shows (trials.csv holds them all)."""

# The options sweep and tune share (a tune's trials run on the sweep's executors)
SpecArgument = Annotated[
    Path | None, typer.Argument(metavar="SPEC", help="The experiment's YAML spec (not needed with --resume).")
]
ExecutorOption = Annotated[
    ExecutorKind, typer.Option(help="local (processes on this machine) or ray (a Ray instance or cluster).")
]
AddressOption = Annotated[
    str | None,
    typer.Option(metavar="ADDRESS", help="Ray cluster to use: ray://HOST:10001 or auto; default: start Ray locally."),
]
OutOption = Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder for run directories.")]


@command()
def sweep(
    spec: SpecArgument = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="PATH=V1,V2",
            help="A swept value list, or one value for every run: model.layers[0].units=16,32,64 "
            "(repeatable; split at top-level commas only, so [a,b] stays one value).",
        ),
    ] = None,
    seeds: Annotated[str | None, typer.Option(metavar="SEEDS", help="Seeds to repeat each point with: 0,1,2.")] = None,
    axes_file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="YAML mapping of spec paths to value lists, swept like --set."),
    ] = None,
    jobs: Annotated[int | None, typer.Option(metavar="N", help="Runs in parallel; default: one per CPU core.")] = None,
    executor: ExecutorOption = ExecutorKind.local,
    address: AddressOption = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="SWEEP_DIR",
            help="A sweep folder (runs/<name>/sweep-<timestamp>) to finish: trains only the points without a "
            "finished run (those whose worker died included; not those that failed or hit NaN).",
        ),
    ] = None,
    out_dir: OutOption = Path("runs"),
    track: TrackOption = None,
    track_uri: TrackUriOption = None,
) -> None:
    """Train the grid product of --set value lists (and seeds) in parallel, then compare the runs."""
    from dlrun import api
    from dlrun.runs import compare as comparing
    from dlrun.search import sweep as sweeping

    with reported():
        if resume is not None:
            if spec is not None or sets or seeds or axes_file:
                raise DlrunError("--resume finishes a sweep as it was started: drop SPEC, --set, --seeds and --file")
        elif spec is None:
            raise DlrunError("missing SPEC: dlrun sweep SPEC --set PATH=V1,V2 (or --resume SWEEP_DIR)")

        def plan(sweep_dir: Path, left: int, points: int) -> None:
            if resume is not None:
                out.print(f"resuming sweep {sweep_dir}: {left} of {points} runs left")

        result = api.sweep(
            spec,
            sets or [],
            seeds,
            out_dir,
            executor.value,
            jobs,
            axes_file=axes_file,
            resume=resume,
            address=address,
            track=track.value if track else None,
            track_uri=track_uri,
            console=out,
            on_start=lambda sweep_dir, points: out.print(f"sweep of {points} runs in {sweep_dir}"),
            on_tracked=lambda where: out.print(where, soft_wrap=True, markup=False),
            on_plan=plan,
        )
        sweep_dir, points = result.sweep_dir, len(result.manifest["points"])
        for item in result.skipped:
            err.print(f"skipped {item.path}: {item.reason}", markup=False, soft_wrap=True)
        if result.table:
            comparing.show(
                out,
                result.columns,
                result.table,
                title=f"sweep {sweep_dir}",
                hint=f"{sweep_dir / sweeping.COMPARE_CSV} (every column) or a wider terminal",
            )
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


@command()
def tune(
    spec: SpecArgument = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="PATH=DIST",
            help="A value to search, PATH=DIST with DIST one of loguniform(1e-4,0.1), int(4,256,log), float(0,0.5) "
            "or choice(32,64,256); or PATH=VALUE, one value for every trial (repeatable).",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Trials the study should hold (all processes together); default with --sampler grid: the grid.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(metavar="N", help="Trials in parallel; default 1 (a study then repeats exactly)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Start no trial after this many seconds (running ones finish)."),
    ] = None,
    sampler: Annotated[SamplerKind, typer.Option(help="How values are picked.")] = SamplerKind.tpe,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Sampler seed; default: the spec's seed.")] = None,
    pruner: Annotated[PrunerKind, typer.Option(help="How hopeless trials are stopped early.")] = PrunerKind.median,
    prune_startup: Annotated[
        int, typer.Option(min=0, metavar="N", help="Trials that finish unpruned before median pruning starts.")
    ] = DEFAULT_STARTUP,
    prune_warmup: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="EPOCHS",
            help="Epochs every trial trains before it may be pruned; default: the spec's early_stopping.patience.",
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="Quantity to optimize, at each run's best epoch; default: the spec's monitor."
        ),
    ] = None,
    direction: Annotated[
        Direction | None, typer.Option(help="Whether --metric should go down or up; default: from its name.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Where the study lives: a database URL (sqlite:///study.db, postgresql://...) or a journal file "
            "path; default: study.log in the tune folder.",
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Study name; the same --storage and --study on several machines share one search. Default: the "
            "spec's name.",
        ),
    ] = None,
    executor: ExecutorOption = ExecutorKind.local,
    address: AddressOption = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="TUNE_DIR",
            help="A tune folder (runs/<name>/tune-<time>/) to continue to its trial count (or a new --trials).",
        ),
    ] = None,
    out_dir: OutOption = Path("runs"),
) -> None:
    """Search a spec's values with Optuna (TPE by default), pruning hopeless trials; each trial is a run."""
    from dlrun import api

    with reported():
        if resume is not None:
            given = [
                name
                for name, value in (("SPEC", spec), ("--set", sets), ("--storage", storage), ("--study", study))
                if value
            ]
            if given:
                raise DlrunError(f"--resume continues a tune as it was started: drop {', '.join(given)}")
        elif spec is None:
            raise DlrunError("missing SPEC: dlrun tune SPEC --trials N (or --resume TUNE_DIR)")
        elif trials is None and sampler != SamplerKind.grid and timeout is None:
            raise DlrunError("how many trials? add --trials N (or --timeout SECONDS)")

        def plan(tune_dir: Path, held: int, target: int | None) -> None:
            verb = "resuming" if resume is not None else "tuning"
            count = f"{held} of {target} trials" if target is not None else f"{held} trials"
            out.print(f"{verb} {tune_dir}: {count} in the study", markup=False, soft_wrap=True)

        result = api.tune(
            spec,
            sets or [],
            trials,
            out_dir,
            jobs,
            timeout,
            resume=resume,
            executor=executor.value,
            address=address,
            console=out,
            on_plan=plan,
            make_executor=make_tune_executor,
            sampler=sampler,
            seed=seed,
            pruner=pruner,
            prune_startup=prune_startup,
            prune_warmup=prune_warmup,
            metric=metric,
            direction=direction,
            storage=storage,
            study=study,
        )
        show_tune(result)


def make_tune_executor(kind: str, jobs: int | None, address: str | None):
    """Pick the sweep's executor a user asked for, running tune trials (`dlrun.api.tune_executor`)."""
    from dlrun.api import tune_executor

    return tune_executor(kind, jobs, address)


def show_tune(result) -> None:
    """Print the end of a tune: the best trials, importances, the files written, and how to go on.

    Raises:
        DlrunError: no trial finished, or the tune was interrupted (with its exit code).
    """
    from dlrun.runs import compare as comparing
    from dlrun.runs.labels import short_names
    from dlrun.search import results

    manifest, tune_dir, study = result.manifest, result.tune_dir, result.study
    columns, rows, skipped = results.table(study, manifest)
    for item in skipped:
        err.print(f"skipped {item.path}: {item.reason}", markup=False, soft_wrap=True)
    if rows:
        comparing.write_csv(tune_dir / TRIALS_CSV, columns, rows)
        shown = rows[:TOP]
        comparing.show(
            out,
            columns,
            shown,
            title=f"best {len(shown)} of {len(rows)} trials, by {manifest['metric']} ({manifest['direction']})",
            hint=f"{tune_dir / TRIALS_CSV} (every trial and column) or a wider terminal",
        )
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, soft_wrap=True)
    best = best_trial(study)
    if best is not None:
        weights, basis = results.importances(study, manifest["seed"])
        if weights:
            names = short_names(list(weights))
            shares = ", ".join(f"{names[p]} {w:.2f}" for p, w in weights.items())
            out.print(f"importance: {shares} ({basis})", markup=False, soft_wrap=True)
        else:
            out.print(f"note: {basis}", markup=False, soft_wrap=True)
        written = results.write_figures(study, tune_dir, manifest["metric"], manifest["seed"], bool(weights))
        best_yaml = results.write_best(tune_dir, manifest, best)
        values = best.user_attrs.get(OVERRIDES, [])[len(manifest["constants"]) :]
        out.print(
            f"best: trial {best.number}, {manifest['metric']} {best.value:.6g}: {' '.join(values)}",
            markup=False,
            soft_wrap=True,
        )
        out.print(f"wrote {best_yaml}; train it with: dlrun train {best_yaml}", markup=False, soft_wrap=True)
        files = ", ".join([*(p.name for p in written), TRIALS_CSV])
        out.print(f"wrote {files} in {tune_dir}", markup=False, soft_wrap=True)
    for row in rows:
        if row.get("status") not in ("completed", "early-stopped", "pruned", "running"):
            error = _trial_error(study, row["trial"])
            if error:
                err.print(f"trial {row['trial']} {row.get('status')}: {error}", markup=False, soft_wrap=True)
    if result.orphans:
        numbers = ", ".join(map(str, result.orphans))
        err.print(
            f"warning: the study holds {len(result.orphans)} trial(s) left running by a process that is gone "
            f"(trial {numbers}): they count toward the trial count but will never finish; try their values "
            f"again with: dlrun tune --resume {tune_dir}",
            markup=False,
            soft_wrap=True,
        )
    if result.interrupted:
        error = DlrunError(
            f"tune interrupted; finished trials are kept in the study. Continue it with: dlrun tune --resume {tune_dir}"
        )
        error.exit_code = result.exit_code
        raise error
    if best is None:
        raise DlrunError(f"no trial finished (see the table and messages above); the trials are in {tune_dir}")


def best_trial(study):
    """Return the study's best finished trial, or None while none has finished."""
    try:
        return study.best_trial
    except ValueError:
        return None


def _trial_error(study, number: int) -> str | None:
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    return trial.user_attrs.get(ERROR) if trial is not None else None
