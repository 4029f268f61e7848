"""Runs side by side: the spec values that differ, and each quantity at the best epoch and the last.

Reads only run directories (config.yaml, summary.json, history.csv): no TensorFlow, no pandas, so
`dlrun compare` starts fast. Values come from history.csv, the record of every epoch; summary.json
says which epoch was best (by the run's own monitored quantity) and how the run ended.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from dlrun.errors import DlrunError
from dlrun.runs import labels, layout
from dlrun.runs.diagnosis import diagnose
from dlrun.runs.history import VAL, quantities
from dlrun.runs.reading import Run, flatten, read_config

FIXED_COLUMNS = ("epochs_run", "best_epoch")
TAIL_COLUMNS = ("fit", "wall_time_s", "status")
"""`fit` is `dlrun.runs.diagnosis`'s reading of the curves: underfit, overfit, unstable or ok."""
LOSS = "training.loss"
"""Runs trained with different losses have loss values on different scales (mae in miles per gallon,
cross-entropy in nats): their rows are grouped by loss, never ranked together, and a note says so."""


def quantity_order(runs: list[Run]) -> list[str]:
    """Order the quantities for columns: each run's monitored one first, then loss, then metrics."""
    seen: list[str] = []
    for run in runs:
        monitor = run.summary.get("monitor")
        if monitor and monitor not in seen:
            seen.append(monitor)
    every = [c for run in runs for c in run.history.columns]
    for base in quantities(every):
        for column in (base, VAL + base):
            if column in every and column not in seen:
                seen.append(column)
    return seen


def changed_params(runs: list[Run]) -> list[str]:
    """Return the dotted paths whose values are not the same in every run (absent counts as a value), `name` aside."""
    return labels.differing([run.params for run in runs], exclude=("name",))


def losses(table: list[dict[str, Any]]) -> list[str]:
    """Return the distinct losses of the rows (their `training.loss` column), in order of first appearance."""
    return list(dict.fromkeys(cell_text(row[LOSS]) for row in table if row.get(LOSS) is not None))


def mixed_losses_note(table: list[dict[str, Any]]) -> str | None:
    """Say that the rows mix losses, whose values are not comparable, and how they are shown; None if they do not."""
    found = losses(table)
    if len(found) < 2:
        return None
    return (
        f"note: these runs were trained with different losses ({', '.join(sorted(found))}): loss and val_loss "
        "compare only within one loss, so the rows are grouped by it (the loss column); compare one loss's runs to "
        "rank them"
    )


def _grouped(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep each loss's rows together, losses in order of first appearance, rows in their order within one."""
    order = {loss: i for i, loss in enumerate(losses(table))}
    if len(order) < 2:
        return table
    return sorted(table, key=lambda row: order.get(cell_text(row.get(LOSS)), len(order)))


def rows(runs: list[Run], all_params: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Build the comparison: column names and one row (a dict) per run.

    Columns: `run` (its label by what differs, `dlrun.runs.labels`), `model` (the compact layer
    stack, when stacks of another shape differ and not `all_params`), the spec values (only those
    that differ, `name` included when it does, unless `all_params`), `epochs_run`, `best_epoch`,
    `best:<q>` and `last:<q>` for every quantity, `fit`, `wall_time_s`, `status`, `run_dir`. A run without
    some quantity has None there.
    """
    every = [run.params for run in runs]
    if all_params:
        params = list(dict.fromkeys(k for p in every for k in p))
    else:
        params = labels.differing(every)
        if labels.MODEL in labels.label_keys(every):
            params = [labels.MODEL, *params]
    quantities = quantity_order(runs)
    columns = ["run", *params, *FIXED_COLUMNS]
    columns += [f"{kind}:{q}" for q in quantities for kind in ("best", "last")]
    columns += [*TAIL_COLUMNS, "run_dir"]
    table = []
    names = labels.run_labels(every, labels.stamps([run.run_dir for run in runs]))
    for run, name in zip(runs, names):
        best_epoch = run.best_epoch
        best = run.history.row(best_epoch) if best_epoch else {}
        last = run.history.row(run.history.epochs[-1]) if len(run.history) else {}
        row: dict[str, Any] = {"run": name, **{p: labels.value_of(run.params, p) for p in params}}
        row["epochs_run"] = len(run.history)
        row["best_epoch"] = best_epoch
        for q in quantities:
            row[f"best:{q}"] = best.get(q)
            row[f"last:{q}"] = last.get(q)
        row["fit"] = diagnose(run.history, run.summary).fit
        row["wall_time_s"] = run.summary.get("wall_time_s")
        row["status"] = str(run.status)
        row["run_dir"] = str(run.run_dir)
        table.append(row)
    return columns, _grouped(table)  # a loss that differs is a differing spec value: the rows have it


def shown_params(columns: list[str]) -> list[str]:
    """Return the spec-value columns a screen shows: the layer fields stand behind `model` when it is there."""
    end = columns.index(FIXED_COLUMNS[0]) if FIXED_COLUMNS[0] in columns else 1
    params = columns[1:end]
    return [p for p in params if not labels.is_layer_path(p)] if labels.MODEL in params else params


def sort_rows(columns: list[str], table: list[dict[str, Any]], key: str, descending: bool = False) -> list[dict]:
    """Sort rows by one column; blanks go last whatever the direction.

    Raises:
        DlrunError: the column is not in the table.
    """
    short = {name: path for path, name in labels.short_names(shown_params(columns)).items()}
    key = key if key in columns else short.get(key, key)  # `--sort lr`, as the table heads it
    if key not in columns:
        raise DlrunError(f"--sort {key!r}: no such column; choose one of: {', '.join(columns)}")
    present = [row for row in table if row.get(key) is not None]
    blank = [row for row in table if row.get(key) is None]
    numeric = all(isinstance(row[key], (int, float)) and not isinstance(row[key], bool) for row in present)
    present.sort(key=lambda row: row[key] if numeric else str(row[key]), reverse=descending)
    return _grouped(present + blank)  # ranked within each loss, never across two


def write_csv(path: Path, columns: list[str], table: list[dict[str, Any]]) -> None:
    """Write the rows as CSV, lists and mappings as YAML flow text, blanks as empty cells."""
    with layout.atomic_path(path, parents=True) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        # LF, as every other file dlrun writes: csv's default CRLF leaves a stray \r in shell pipelines
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in table:
            writer.writerow({c: cell_text(row.get(c), raw=True) for c in columns})


def write_json(path: Path, columns: list[str], table: list[dict[str, Any]]) -> None:
    """Write the rows as a JSON list of objects, keys in column order."""
    layout.write_json(path, [{c: row.get(c) for c in columns} for row in table], parents=True)


def cell_text(value: Any, raw: bool = False) -> str:
    """Format one cell: floats to 6 significant digits on screen (in full for files), blanks empty."""
    if value is None:
        return ""
    if isinstance(value, float) and not raw:
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return str(value)


def show(
    console,
    columns: list[str],
    table: list[dict[str, Any]],
    title: str | None = None,
    hint: str = "--csv FILE, --json or a wider terminal",
) -> None:
    """Print the comparison so that it fits the screen (`dlrun.runs.screen`); files keep every column.

    On screen, spec values are headed by their short names (`lr`, `units`); a `model` column stands
    for the layer fields it spells, and the `run` column is shown only when the spec values do not
    tell the rows apart. When narrowed, the columns that stay are the spec values, the best epoch,
    the monitored quantity there, and the status.
    """
    from dlrun.runs import screen

    params = shown_params(columns)
    end = columns.index(FIXED_COLUMNS[0]) if FIXED_COLUMNS[0] in columns else 1
    headers = labels.short_names(params)
    cells = [
        {c: labels.shown(c, row.get(c)) if c in params else cell_text(row.get(c)) for c in columns} for row in table
    ]
    told_apart = bool(params) and len({tuple(cell[p] for p in params) for cell in cells}) == len(cells)
    best = next((c for c in columns if c.startswith("best:")), None)
    shown = [] if told_apart else [screen.Column("run", "run", label=True)]
    shown += [screen.Column(p, headers[p], label=True) for p in params]
    shown += [
        screen.Column(c, c, essential=c in ("best_epoch", best, "status")) for c in columns[end:] if c != "run_dir"
    ]
    if labels.MODEL in screen.show(console, shown, cells, title=title, hint=hint):
        console.print(f"model: {labels.STACK_LEGEND}", markup=False, highlight=False)
    note = mixed_losses_note(table)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)


# --- diff ------------------------------------------------------------------------------------


def diff_configs(a: Run, b: Run) -> list[tuple[str, Any, Any]]:
    """Return (path, A's value, B's value) for each spec value that differs, `name` included.

    Layer stacks of another shape are one `model` row, spelled as `dlrun.runs.labels.layer_stack` does.
    """
    return [
        (key, labels.value_of(a.params, key), labels.value_of(b.params, key))
        for key in labels.label_keys([a.params, b.params], exclude=())
    ]


def diff_metrics(a: Run, b: Run) -> list[tuple[str, float | None, float | None, float | None]]:
    """Return (quantity, A, B, B - A) at each run's own best epoch, for every quantity either logged."""
    _, table = rows([a, b])
    out = []
    for q in quantity_order([a, b]):
        va, vb = table[0][f"best:{q}"], table[1][f"best:{q}"]
        out.append((q, va, vb, vb - va if va is not None and vb is not None else None))
    out.append(
        (
            "best_epoch",
            a.summary.get("best_epoch"),
            b.summary.get("best_epoch"),
            _minus(b.summary.get("best_epoch"), a.summary.get("best_epoch")),
        )
    )
    return out


def show_diff(console, a: Run, b: Run) -> None:
    """Print two runs' labels, their spec differences and their values at the best epoch, fitted to the screen."""
    from dlrun.runs import screen

    names = labels.run_labels([a.params, b.params], labels.stamps([a.run_dir, b.run_dir]))
    heads = [{"": side, "label": name, "dir": _shown_path(run.run_dir)} for side, name, run in zip("AB", names, (a, b))]
    columns = [screen.Column("", ""), screen.Column("label", "label"), screen.Column("dir", "run directory")]
    screen.show(console, columns, heads, transpose=False)
    config = diff_configs(a, b)
    if config:
        cells = [{"path": k, "A": cell_text(va) or "-", "B": cell_text(vb) or "-"} for k, va, vb in config]
        columns = [screen.Column(c, c, essential=True) for c in ("path", "A", "B")]
        screen.show(console, columns, cells, title="Spec differences", transpose=False)
        if any(k == labels.MODEL for k, _, _ in config):
            console.print(f"model: {labels.STACK_LEGEND}", markup=False, highlight=False)
    else:
        console.print("The specs are identical.")
    cells = [
        {"quantity": q, **{side: cell_text(v) or "-" for side, v in zip(("A", "B", "B-A"), values)}}
        for q, *values in diff_metrics(a, b)
    ]
    columns = [screen.Column(c, c, essential=True) for c in ("quantity", "A", "B", "B-A")]
    screen.show(console, columns, cells, title="At each run's best epoch", transpose=False)


def _shown_path(path: Path) -> str:
    """Write a path relative to the working folder when it is below it, as a user would type it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _minus(b: Any, a: Any) -> Any:
    return b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None


# --- seed groups -------------------------------------------------------------------------------


def seed_groups(run_dirs: list[Path]) -> list[list[int]]:
    """Group runs whose configs are equal but for `seed`; returns lists of indexes into run_dirs.

    A path without a readable config.yaml is a group of its own. Groups keep the order of their
    first run.
    """
    groups: dict[Any, list[int]] = {}
    for index, run_dir in enumerate(run_dirs):
        try:
            params = flatten(read_config(run_dir))
        except DlrunError:
            groups[("alone", index)] = [index]
            continue
        params.pop("seed", None)
        key = json.dumps(params, sort_keys=True, default=str)
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def group_labels(run_dirs: list[Path], groups: list[list[int]]) -> list[str]:
    """Name seed groups by what tells them apart (`epochs=5 (3 seeds)`), as `dlrun.runs.labels` names runs."""
    params: list[dict[str, Any] | None] = []
    for group in groups:
        try:
            flat = flatten(read_config(run_dirs[group[0]]))
        except DlrunError:
            flat = None
        else:
            flat.pop("seed", None)
        params.append(flat)
    names = labels.run_labels(params, labels.stamps([run_dirs[group[0]] for group in groups]))
    return [f"{name} ({len(group)} seed{'s' if len(group) != 1 else ''})" for name, group in zip(names, groups)]
