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
from dlrun.runs import layout
from dlrun.runs.history import VAL, quantities
from dlrun.runs.reading import Run, flatten, read_config, run_label

FIXED_COLUMNS = ("epochs_run", "best_epoch")
TAIL_COLUMNS = ("wall_time_s", "status")


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
    """Return the dotted paths whose values are not the same in every run (absent counts as a value)."""
    keys = list(dict.fromkeys(k for run in runs for k in run.params))
    missing = object()
    return [k for k in keys if len({_hashable(run.params.get(k, missing)) for run in runs}) > 1 and k != "name"]


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value


def rows(runs: list[Run], all_params: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Build the comparison: column names and one row (a dict) per run.

    Columns: `run`, the spec values (only those that differ, unless `all_params`), `epochs_run`,
    `best_epoch`, `best:<q>` and `last:<q>` for every quantity, `wall_time_s`, `status`, `run_dir`.
    A run without some quantity has None there.
    """
    params = list(dict.fromkeys(k for run in runs for k in run.params)) if all_params else changed_params(runs)
    quantities = quantity_order(runs)
    columns = ["run", *params, *FIXED_COLUMNS]
    columns += [f"{kind}:{q}" for q in quantities for kind in ("best", "last")]
    columns += [*TAIL_COLUMNS, "run_dir"]
    table = []
    for run in runs:
        best_epoch = run.best_epoch
        best = run.history.row(best_epoch) if best_epoch else {}
        last = run.history.row(run.history.epochs[-1]) if len(run.history) else {}
        row: dict[str, Any] = {"run": run.label, **{p: run.params.get(p) for p in params}}
        row["epochs_run"] = len(run.history)
        row["best_epoch"] = best_epoch
        for q in quantities:
            row[f"best:{q}"] = best.get(q)
            row[f"last:{q}"] = last.get(q)
        row["wall_time_s"] = run.summary.get("wall_time_s")
        row["status"] = str(run.status)
        row["run_dir"] = str(run.run_dir)
        table.append(row)
    return columns, table


def sort_rows(columns: list[str], table: list[dict[str, Any]], key: str, descending: bool = False) -> list[dict]:
    """Sort rows by one column; blanks go last whatever the direction.

    Raises:
        DlrunError: the column is not in the table.
    """
    if key not in columns:
        raise DlrunError(f"--sort {key!r}: no such column; choose one of: {', '.join(columns)}")
    present = [row for row in table if row.get(key) is not None]
    blank = [row for row in table if row.get(key) is None]
    numeric = all(isinstance(row[key], (int, float)) and not isinstance(row[key], bool) for row in present)
    present.sort(key=lambda row: row[key] if numeric else str(row[key]), reverse=descending)
    return present + blank


def write_csv(path: Path, columns: list[str], table: list[dict[str, Any]]) -> None:
    """Write the rows as CSV, lists and mappings as YAML flow text, blanks as empty cells."""
    with layout.atomic_path(path, parents=True) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
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


def rich_table(columns: list[str], table: list[dict[str, Any]], title: str | None = None):
    """Build the rich table shown in the terminal (the `run_dir` column is left to files)."""
    from rich.table import Table

    shown = [c for c in columns if c != "run_dir"]
    view = Table(title=title)
    for column in shown:
        numeric = column in FIXED_COLUMNS or column.startswith(("best:", "last:")) or column == "wall_time_s"
        view.add_column(_header(column), justify="right" if numeric else "left", overflow="fold")
    for row in table:
        view.add_row(*(cell_text(row.get(c)) for c in shown))
    return view


def print_table(console, view) -> None:
    """Print a table at its natural width when the output is a file or a pipe, not squeezed to 80 columns."""
    if console.is_terminal:
        console.print(view)
    else:
        from rich.console import Console

        natural = console.measure(view, options=console.options.update_width(10_000)).maximum
        Console(file=console.file, width=max(console.width, natural), highlight=False).print(view)


def _header(column: str) -> str:
    """Break a long column name where it reads naturally (`best:` / `val_loss`, dotted steps)."""
    if len(column) <= 10:
        return column
    head, sep, rest = column.partition(":")
    if sep:
        return f"{head}:\n{rest}"
    return ".\n".join(column.split("."))


# --- diff ------------------------------------------------------------------------------------


def diff_configs(a: Run, b: Run) -> list[tuple[str, Any, Any]]:
    """Return (path, A's value, B's value) for each spec value that differs, `name` included."""
    keys = list(dict.fromkeys([*a.params, *b.params]))
    return [
        (k, a.params.get(k), b.params.get(k)) for k in keys if _hashable(a.params.get(k)) != _hashable(b.params.get(k))
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
    """Name seed groups by the spec values that tell them apart (`training.epochs=5`), or by run name."""
    params = []
    for group in groups:
        try:
            flat = flatten(read_config(run_dirs[group[0]]))
        except DlrunError:
            flat = {}
        flat.pop("seed", None)
        params.append(flat)
    keys = list(dict.fromkeys(k for p in params for k in p))
    differing = [k for k in keys if len({_hashable(p.get(k)) for p in params}) > 1 and k != "name"]
    labels = []
    for group, flat in zip(groups, params):
        name = flat.get("name") or run_label(run_dirs[group[0]])
        parts = [f"{k}={cell_text(flat.get(k))}" for k in differing]
        text = ", ".join(parts) if parts else str(name)
        labels.append(f"{text} ({len(group)} seed{'s' if len(group) != 1 else ''})")
    return labels
