"""Tables on a screen: numbers never split, and a table too wide for it transposed or narrowed.

compare, the table a sweep ends with, and diff print through `show`. A table that fits is printed as
it is. One that does not is transposed (its columns become rows, one column per run), and when that
does not fit either it keeps only the columns that matter, with one line saying what was left out
and how to see it. A number is never broken across lines: the table is only ever drawn at a width
where every word of every cell fits whole.

On a terminal, and wherever COLUMNS is set, the width is the terminal's; written to a file or a
pipe, a table takes its natural width, up to `PIPED_WIDTH`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

PIPED_WIDTH = 160
"""Widest line a table is drawn at for a file or a pipe, where no terminal says how wide to be."""

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(inf|nan)$")


@dataclass
class Column:
    """One column of a table: its key in the rows, the header shown, and whether it must stay when narrowed."""

    key: str
    header: str
    essential: bool = False
    label: bool = False
    """Tells the rows apart (a spec value that differs): kept when the table is narrowed."""


def width_of(console) -> int | None:
    """Return the width to fit, or None for a file or pipe (natural width, up to `PIPED_WIDTH`)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return console.width if console.is_terminal else None


def show(
    console,
    columns: Sequence[Column],
    rows: Sequence[dict[str, str]],
    title: str | None = None,
    row_label: str = "run",
    hint: str = "a wider terminal",
    transpose: bool = True,
) -> list[str]:
    """Print rows of text cells as a table that fits the screen (see the module's docstring).

    Args:
        console: Where to print (a rich Console).
        columns: The columns, in order.
        rows: One dict of cell texts per row, by column key; missing keys are blank.
        title: Shown above the table.
        row_label: The key whose cell names a row; it heads the row's column when transposed.
        hint: How to see the columns left out, for the line that says what was (`--csv FILE, --json`).
        transpose: Whether a table too wide may be turned on its side before columns are left out.

    Returns:
        The keys of the columns shown.
    """
    target = width_of(console)
    limit = target or PIPED_WIDTH
    grid = _grid(columns, rows)
    if _needed(grid) <= limit:
        _print(console, _table(grid, title, target), target)
        return [c.key for c in columns]
    if transpose and len(rows) > 1:
        flipped = _transposed(columns, rows, row_label)
        if _needed(flipped) <= limit:
            _print(console, _table(flipped, title, target), target)
            return [c.key for c in columns]
    kept = [c for c in columns if c.essential or c.label]
    if any(c.label for c in kept) and _needed(_grid(kept, rows)) > limit:
        # Too many differing values: the row's label says them in one cell.
        kept = [Column(row_label, row_label, label=True)] + [c for c in columns if c.essential and not c.label]
    _print(console, _table(_grid(kept, rows), title, target), target)
    left = [c for c in columns if c.key not in {k.key for k in kept}]
    if left:
        console.print(f"Left out to fit: {left_out(left)}; see them with {hint}.", markup=False, highlight=False)
    return [c.key for c in kept]


def left_out(columns: Sequence[Column], most: int = 4) -> str:
    """Say briefly which columns were left out: `3 spec values, epochs_run, last:*, wall_time_s`."""
    values = [c for c in columns if c.label]
    names = [f"{len(values)} spec value{'s' if len(values) != 1 else ''}"] if values else []
    others = [c.header for c in columns if not c.label]
    for kind in ("last:", "best:"):
        group = [h for h in others if h.startswith(kind)]
        if len(group) > 2:
            others = [h for h in others if not h.startswith(kind)] + [f"{kind}*"]
    names += others
    if len(names) > most + 1:
        names = names[:most] + [f"{len(names) - most} more"]
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]


@dataclass
class _Grid:
    """Headers and cells, column by column, before they are drawn."""

    headers: list[str]
    cells: list[list[str]]  # per column
    numeric: list[bool]


def _grid(columns: Sequence[Column], rows: Sequence[dict[str, str]]) -> _Grid:
    cells = [[row.get(c.key, "") for row in rows] for c in columns]
    return _Grid([_broken(c.header) for c in columns], cells, [is_numeric(column) for column in cells])


def _transposed(columns: Sequence[Column], rows: Sequence[dict[str, str]], row_label: str) -> _Grid:
    """Turn the table on its side: a row per column, a column per row headed by its label."""
    turned = [c for c in columns if c.key != row_label]
    first = [c.header for c in turned]
    per_row = [[row.get(c.key, "") for c in turned] for row in rows]
    return _Grid(["", *(row.get(row_label, "") for row in rows)], [first, *per_row], [False] + [True] * len(rows))


def _needed(grid: _Grid) -> int:
    """Return the narrowest width at which every word of every cell (and header) fits whole."""
    return sum(_widths(grid)[0]) + _overhead(grid)


def _widths(grid: _Grid) -> tuple[list[int], list[int]]:
    """Each column's narrowest width (its longest word) and natural width (its longest line)."""
    from rich.cells import cell_len

    narrowest, natural = [], []
    for header, cells in zip(grid.headers, grid.cells):
        texts = [header, *cells]
        lines = [line for text in texts for line in text.splitlines() or [""]]
        narrowest.append(max(cell_len(word) for line in lines for word in line.split() or [""]))
        natural.append(max(cell_len(line) for line in lines))
    return narrowest, natural


def _number_widths(grid: _Grid) -> list[int]:
    """Each column's longest number (its whole width for a numeric column), which no squeeze may split."""
    from rich.cells import cell_len

    widths = []
    for cells in grid.cells:
        words = [word for text in cells for word in text.split()]
        widths.append(max([1] + [cell_len(w) for w in words if _NUMBER.match(w)]))
    return widths


def _overhead(grid: _Grid) -> int:
    return 3 * len(grid.headers) + 1  # a space either side of each cell, and the box's lines


def _table(grid: _Grid, title: str | None, target: int | None):
    """Build the rich table, each column given a width at which no word (no number) is ever split.

    rich would squeeze a table too wide by shortening its widest columns, words and numbers cut with
    an ellipsis; widths set here never go below a column's longest word.
    """
    from rich.table import Table

    narrowest, natural = _widths(grid)
    widths = natural
    room = (target or PIPED_WIDTH) - _overhead(grid)
    if sum(narrowest) > room:  # even narrowed it does not fit: long words fold, never below a number's width
        floors = _number_widths(grid)
        spare = max(0, room - sum(floors))
        give = [n - f for n, f in zip(narrowest, floors)]
        widths = [f + (g * spare) // max(1, sum(give)) for f, g in zip(floors, give)]
    elif sum(natural) > room:  # share the room: every column its longest word, the rest where lines are longest
        widths = list(narrowest)
        spare = room - sum(widths)
        wants = sorted(range(len(widths)), key=lambda i: natural[i] - narrowest[i])
        for position, i in enumerate(wants):
            give = min(natural[i] - widths[i], spare // (len(wants) - position))
            widths[i] += give
            spare -= give
    view = Table(title=title)
    for header, numeric, width in zip(grid.headers, grid.numeric, widths):
        view.add_column(header, justify="right" if numeric else "left", width=width, overflow="fold")
    for cells in zip(*grid.cells):
        view.add_row(*cells)
    return view


def is_numeric(cells: Sequence[str]) -> bool:
    """Tell whether every non-blank cell is a number (blanks alone are not)."""
    filled = [c for c in cells if c not in ("", "-")]
    return bool(filled) and all(_NUMBER.match(c) for c in filled)


def _broken(header: str) -> str:
    """Let a long header break where it reads naturally: after `best:`, or between dotted steps."""
    if len(header) <= 10:
        return header
    head, sep, rest = header.partition(":")
    return f"{head}:\n{rest}" if sep else ".\n".join(header.split("."))


def _print(console, renderable, target: int | None) -> None:
    if target is None:  # a file or a pipe: the natural width, not squeezed to 80 columns
        natural = console.measure(renderable, options=console.options.update_width(PIPED_WIDTH)).maximum
        width = max(80, min(natural, PIPED_WIDTH))
    else:
        width = target
    if width == console.width:
        console.print(renderable)
    else:
        from rich.console import Console

        Console(file=console.file, width=width, highlight=False).print(renderable)
