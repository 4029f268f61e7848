"""What every command shares: the typer app and its help conventions, the consoles, overrides, errors as one line.

`reported()` is where an error becomes a message: a user's mistake (`DlrunError`) and an
operating-system error (a full disk, no permission) are one line on stderr; anything else is a bug
in dlrun, reported in one line plus a crash report file holding the traceback and the versions
(`dlrun --debug COMMAND` prints the traceback instead). SIGTERM is handled like Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.exceptions import TyperException

from dlrun import __version__
from dlrun.data.csvfile import remembering
from dlrun.errors import DlrunError
from dlrun.runs.layout import os_error

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
    "tune": "Search",
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


CRASH_DIR_VARIABLE = "DLRUN_CRASH_DIR"
"""Folder for crash reports; default: the system's temporary folder."""


class App(typer.Typer):
    """The typer app; run as a program, an error outside any command's `reported()` is still one line."""

    def __call__(self, *args, **kwargs):
        try:
            with reported():
                return super().__call__(*args, **kwargs)
        except typer.Exit as exc:  # from reported(), outside typer's own handling
            sys.exit(exc.exit_code)


app = App(
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


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a spec value: PATH=VALUE, e.g. training.epochs=5 (repeatable).", metavar="PATH=VALUE"
    ),
]

_debug = {"on": False}


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print dlrun's version and exit.", is_eager=True, callback=_print_version),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="DLRUN_DEBUG",
            help="Print the traceback of an unexpected error instead of writing a crash report.",
        ),
    ] = False,
) -> None:
    """Declarative deep learning: train Keras models from YAML specs and compare the runs."""
    _debug["on"] = debug


@contextlib.contextmanager
def reported():
    """Turn any error into one message on stderr and a non-zero exit, never a traceback.

    A user's mistake and an operating-system error say what went wrong where; an unexpected
    exception also writes a crash report (or, with --debug, prints its traceback).
    """
    try:
        with _terminate_as_interrupt(), remembering():
            yield
    except (typer.Exit, typer.Abort, TyperException):
        raise  # typer's own ways to end a command
    except DlrunError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        err.print("interrupted", markup=False)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except OSError as exc:  # one that no dlrun code wrapped: it names its own path, if any
        message = os_error(exc, exc.filename, "access") if exc.filename else (exc.strerror or str(exc))
        err.print(f"error: {message}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        _report_crash(exc)
        raise typer.Exit(1) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt: what `kill`, `timeout`, Docker and job schedulers send."""

    exit_code = 128 + signal.SIGTERM


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While the block runs, SIGTERM stops it as Ctrl-C does (files being written are cleaned up).

    Where SIGTERM is ignored (a launcher asked for that), it stays ignored.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return

    def on_sigterm(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _report_crash(exc: Exception) -> None:
    """Say in one line that dlrun hit a bug, and where the crash report with the traceback is."""
    summary = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
    if _debug["on"]:
        err.print("".join(traceback.format_exception(exc)), markup=False, end="")
        err.print(f"error: unexpected {summary}", markup=False, soft_wrap=True)
        return
    try:
        path = write_crash_report(exc)
    except OSError:
        err.print("".join(traceback.format_exception(exc)), markup=False, end="")
        err.print(f"error: unexpected {summary} (a crash report could not be written)", markup=False)
        return
    err.print(
        f"error: unexpected {summary}. This is a bug in dlrun: please report it with the crash report {path} "
        "(or rerun with dlrun --debug to see the traceback here)",
        markup=False,
        soft_wrap=True,
    )


def write_crash_report(exc: BaseException) -> Path:
    """Write the traceback, the command line and the versions to a new file; return its path."""
    import platform
    import shlex

    from dlrun.runs.layout import write_text
    from dlrun.versions import versions

    folder = Path(os.environ.get(CRASH_DIR_VARIABLE) or _temporary_folder())
    path = folder / f"dlrun-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    lines = [
        "dlrun crash report: please attach this file to an issue",
        f"command: {shlex.join(['dlrun', *sys.argv[1:]])}",
        f"folder: {os.getcwd()}",
        *(f"{name}: {version or 'not installed'}" for name, version in versions().items()),
        f"platform: {platform.platform()}",
        "",
        "".join(traceback.format_exception(exc)),
    ]
    try:
        write_text(path, "\n".join(lines) + "\n", parents=True)
    except DlrunError as error:
        raise OSError(str(error)) from None
    return path


def _temporary_folder() -> str:
    import tempfile

    return tempfile.gettempdir()


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)
