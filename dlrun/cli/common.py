"""What every command shares: the typer app, the consoles, overrides, and turning errors into one line.

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
from typer.exceptions import TyperException

from dlrun.errors import DlrunError
from dlrun.runs.layout import os_error

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

_debug = {"on": False}


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="DLRUN_DEBUG",
            help="Print the traceback of an unexpected error instead of writing a crash report.",
        ),
    ] = False,
) -> None:
    _debug["on"] = debug


@contextlib.contextmanager
def reported():
    """Turn any error into one message on stderr and a non-zero exit, never a traceback.

    A user's mistake and an operating-system error say what went wrong where; an unexpected
    exception also writes a crash report (or, with --debug, prints its traceback).
    """
    try:
        with _terminate_as_interrupt():
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
