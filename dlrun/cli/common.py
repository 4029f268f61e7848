"""What every command shares: the typer app and its help conventions, the consoles, overrides, errors as one line."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from dlrun import __version__
from dlrun.errors import DlrunError

PANELS = {
    "train": "First steps",
    "validate": "First steps",
    "check": "First steps",
    "init": "First steps",
    "plot": "Runs",
    "compare": "Runs",
    "diff": "Runs",
    "diagnose": "Runs",
    "sweep": "Search",
    "predict": "Using a run",
    "evaluate": "Using a run",
    "export": "Using a run",
    "config": "Spec tools",
    "schema": "Spec tools",
}
"""Each command's help panel, in the order `dlrun --help` lists them: the order the README presents them."""


class _Flag(TyperOption):
    """An option whose help shows no value type when it takes no value (typer 0.29 prints `--quiet <bool>`)."""

    def display_type_rich(self, ctx) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)


class _Argument(TyperArgument):
    """An argument shown as Unix help does: `SPEC`, `[SPEC]`, `SOURCES...` (typer 0.29 prints `{spec}`)."""

    def display_type_rich(self, ctx) -> str | None:
        return None  # its name says it (typer 0.29 adds `<list[Path]>`)

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"

    def _rich_display_name(self) -> str:
        name = self.metavar or self.name.upper()
        return name if self.nargs == 1 or name.endswith("...") else f"{name}..."

    def make_metavar(self, ctx=None, *, usage: bool = False) -> str:
        """Name the argument the same way in typer 0.28, whose usage line and help table come from here."""
        return self._usage_display_name() if usage else self._rich_display_name()


def _untyped(kind):
    """Return a copy of a parameter type whose help shows no `<path>` (typer 0.28 prints the type's name)."""
    import copy

    quiet = copy.copy(kind)
    quiet.__class__ = type(f"Untyped{type(kind).__name__}", (type(kind),), {"get_metavar": lambda *a, **k: ""})
    return quiet


def _conventional(params) -> None:
    """Give typer's parameters the help conventions above, and help text that survives rich markup (`[a,b]`)."""
    for param in params:
        if type(param) in (TyperOption, TyperArgument):
            param.__class__ = _Flag if isinstance(param, TyperOption) else _Argument
            if isinstance(param, TyperArgument) and getattr(param, "type", None) is not None:
                param.type = _untyped(param.type)  # typer 0.28; 0.29's arguments have no type here
            if param.help:
                param.help = escape(param.help)


class Command(TyperCommand):
    """A command whose help follows the conventions (see `_conventional`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = escape(self.help) if self.help else self.help

    def get_params(self, ctx):
        params = super().get_params(ctx)  # the help option is made here, on first use
        _conventional(params)
        return params


class Group(TyperGroup):
    """The `dlrun` group: conventional help, and the commands listed in `PANELS` order."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        _conventional(params)
        return params

    def list_commands(self, ctx) -> list[str]:
        order = list(PANELS)
        return sorted(super().list_commands(ctx), key=lambda n: order.index(n) if n in order else len(order))


app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def command(name: str | None = None, typer_app: typer.Typer = app):
    """Register a function as a command, in its help panel (`PANELS`), with the help conventions."""

    def register(function):
        panel = PANELS.get(name or function.__name__) if typer_app is app else None
        return typer_app.command(name, cls=Command, rich_help_panel=panel)(function)

    return register


def _print_version(value: bool) -> None:
    if value:
        print(f"dlrun {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print dlrun's version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """Declarative deep learning: train Keras models from YAML specs and compare the runs."""


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
