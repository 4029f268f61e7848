"""What every command shares: the typer app, the consoles, overrides, and turning errors into one line."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.console import Console

from dlrun.errors import DlrunError

app = typer.Typer(
    help="Declarative deep learning: train Keras models from YAML specs and compare the runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a spec value: PATH=VALUE, e.g. training.epochs=5 (repeatable).", metavar="PATH=VALUE"
    ),
]


@contextlib.contextmanager
def reported():
    """Turn a user's mistake into one message on stderr and a non-zero exit, never a traceback."""
    try:
        yield
    except DlrunError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)
