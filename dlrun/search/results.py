"""What a tune leaves to act on: the trials as a compare table, parameter importances, best.yaml, Optuna's PNGs.

The table is `dlrun compare`'s, one row per trial of the study (every process's), with the trial's
number; a trial without a run directory here (an invalid combination of values, or a run on another
machine) is a row of its values and status. best.yaml is the spec file itself, comments kept, with the
best trial's values written in (through the loader's override rule) and its search section removed.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError
from dlrun.runs import compare, layout
from dlrun.runs.reading import Run, Skipped, load_run
from dlrun.runs.status import FINISHED
from dlrun.search import study as studies

BEST_YAML = "best.yaml"
HISTORY_PNG = "optimization_history.png"
IMPORTANCES_PNG = "param_importances.png"


def table(study, manifest: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]], list[Skipped]]:
    """Build the trials' compare table, best objective first; failed trials and those without a value last.

    Failures that were tried again (a dead worker, an interrupt) are left out (their retry has the row), and
    so are surplus trials (`dlrun.search.study.left_out`).
    """
    metric, descending = manifest["metric"], manifest["direction"] == "max"
    loaded: list[tuple[Any, Run]] = []
    without_run = []
    skipped: list[Skipped] = []
    for trial in study.get_trials(deepcopy=False):
        if studies.left_out(trial) or trial.state.name == "WAITING":
            continue
        run_dir = trial.user_attrs.get(studies.RUN_DIR)
        if run_dir and Path(run_dir).is_dir():
            try:
                loaded.append((trial, load_run(Path(run_dir))))
                continue
            except DlrunError as exc:
                skipped.append(Skipped(Path(run_dir), str(exc)))
        without_run.append(trial)
    columns, rows = compare.rows([run for _, run in loaded]) if loaded else (["run", "status"], [])
    for (trial, _), row in zip(loaded, rows):
        row["trial"] = trial.number
        row["run"] = f"trial {trial.number} {row['run']}"  # a narrow screen shows runs by label alone
    paths = list(manifest["search"])
    for trial in without_run:
        row = {"run": f"trial {trial.number}", "trial": trial.number, "status": _status(trial)}
        row.update({path: _value(trial.params.get(path)) for path in paths if path in trial.params})
        if trial.value is not None:
            row[f"best:{metric}"] = trial.value
        rows.append(row)
    missing = [p for p in paths if p not in columns and any(p in row for row in rows)]
    columns = columns[:1] + ["trial"] + missing + columns[1:]
    if f"best:{metric}" not in columns:
        columns.insert(columns.index("status") if "status" in columns else len(columns), f"best:{metric}")
    ranked = [row for row in rows if _ranked(row, metric)]
    others = [row for row in rows if not _ranked(row, metric)]
    ranked.sort(key=lambda row: row[f"best:{metric}"], reverse=descending)
    return columns, ranked + sorted(others, key=lambda row: row["trial"]), skipped


def _ranked(row: dict[str, Any], metric: str) -> bool:
    value = row.get(f"best:{metric}")
    return row.get("status") in (*FINISHED, "pruned") and isinstance(value, (int, float)) and math.isfinite(value)


def _status(trial) -> str:
    return trial.user_attrs.get(studies.STATUS) or {"RUNNING": "running", "FAIL": "failed"}.get(
        trial.state.name, trial.state.name.lower()
    )


def _value(value: Any) -> Any:
    """A choice of a list or mapping is stored as YAML text; show it as the value."""
    from dlrun.spec.yamltext import parse_value

    if isinstance(value, str) and value[:1] in "[{":
        return parse_value(value)
    return value


# --- importances and figures ----------------------------------------------------------------


def importances(study, seed: int) -> tuple[dict[str, float] | None, str]:
    """Return each parameter's importance (fANOVA, seeded; they sum to 1) and what they rest on; or None and why."""
    optuna = studies.import_optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, f"importances need 2 finished trials, and {len(complete)} finished unpruned"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        return found, f"fANOVA over the {len(complete)} trials that finished unpruned"
    except ImportError:
        return None, 'importances need scikit-learn, which is not installed: pip install "dlrun[tune]"'
    except (RuntimeError, ValueError) as exc:  # e.g. every finished trial has the same values
        return None, f"importances could not be computed ({exc})"


def write_figures(study, tune_dir: Path, metric: str, seed: int, with_importances: bool) -> list[Path]:
    """Draw Optuna's optimization history (and the importances) as PNGs in the tune folder; return them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optuna = studies.import_optuna()
    from optuna.visualization import matplotlib as drawing

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        figures = [(HISTORY_PNG, lambda: drawing.plot_optimization_history(study, target_name=metric))]
        if with_importances:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            figures.append(
                (
                    IMPORTANCES_PNG,
                    lambda: drawing.plot_param_importances(study, evaluator=evaluator, target_name=metric),
                )
            )
        for name, draw in figures:
            axes = draw()
            figure = axes.figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            with layout.atomic_path(tune_dir / name) as tmp:
                figure.savefig(tmp, format="png", dpi=100)
            plt.close(figure)
            written.append(tune_dir / name)
    return written


# --- best.yaml --------------------------------------------------------------------------------


def write_best(tune_dir: Path, manifest: dict[str, Any], trial) -> Path:
    """Write best.yaml: the spec file with the best trial's values (and the tune's constants) written in.

    Its comments and layout are kept; `search:` is removed, data paths are made absolute (the file lives
    in the tune folder) and the spec's name is set, so `dlrun train best.yaml` trains the best trial again.

    Raises:
        DlrunError: the spec cannot be read, or the result is not a valid spec (a bug: it trained as a trial).
    """
    from ruamel.yaml import YAML

    from dlrun.spec.loader import Source, apply_overrides, load_spec

    spec_path = Path(manifest["spec"])
    overrides = trial.user_attrs.get(studies.OVERRIDES) or []
    loaded = load_spec(spec_path, overrides)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # a flow mapping stays on its line
    document = yaml.load(spec_path.read_text(encoding="utf-8-sig"))
    apply_overrides(Source(document), overrides)
    document.pop("search", None)
    for key in ("path", "validation_path", "test_path"):
        if document["data"].get(key) is not None:
            document["data"][key] = getattr(loaded.data, key)
    if document.get("name") is None:
        document.insert(0, "name", loaded.name)
    lines = [
        f"The best trial of dlrun tune {tune_dir}: trial {trial.number}, {manifest['metric']} {trial.value:.6g}.",
        f"The spec {spec_path} with these values set: dlrun train trains it as is.",
        *overrides,
    ]
    document.yaml_set_start_comment("\n".join(lines))
    import io

    text = io.StringIO()
    yaml.dump(document, text)
    path = tune_dir / BEST_YAML
    layout.write_text(path, text.getvalue())
    load_spec(path)  # what a user will train must be valid
    return path
