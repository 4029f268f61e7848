"""The errors dlrun raises for a user's mistakes (`cli.py` prints them without a traceback), and its warnings."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

logger = logging.getLogger("dlrun")
"""Where dlrun's warnings go. Until it has a handler, `warn` gives it one that writes each as one line on
the standard error of the moment (as Optuna's own logger does); add a handler, or set a level, to route
or silence them."""


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is when a record comes (a captured one included)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def warn(message: str) -> None:
    """Tell the user of something that did not stop the command: `warning: <message>`, one line, no traceback."""
    if not logger.handlers:
        logger.addHandler(_Stderr())
        logger.propagate = False  # the line once, whatever handlers the application gave the root logger
    logger.warning("warning: %s", message)


class DlrunError(Exception):
    """A mistake of the user's, or a run that could not finish: one clear message, no traceback."""

    exit_code = 1


class SpecError(DlrunError):
    """The spec file, or an override of it, is not a valid experiment."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.args[0]
        if len(self.problems) == 1:
            problem = self.problems[0]
            return problem.render() if problem.where else f"{self.args[0]}: {problem.render()}"
        lines = [f"{self.args[0]}: {len(self.problems)} problems"]
        lines += ["- " + p.render().replace("\n", "\n  ") for p in self.problems]
        return "\n".join(lines)


class DataError(DlrunError):
    """A CSV cannot be used as the spec says: missing file or column, wrong type, NaN, ..."""


class TrainingError(DlrunError):
    """Training started but did not finish (a NaN loss, an error, an interrupt): the run directory keeps what it did."""

    def __init__(self, message: str, status: str = "failed", run_dir=None):
        super().__init__(message)
        self.status = str(status)
        """How the run ended, as `dlrun.runs.status.Status` words it (nan, failed, interrupted)."""
        self.exit_code = 130 if self.status == "interrupted" else 1
        self.run_dir = run_dir
        """The run directory that keeps what training did, when one was made."""


@dataclass
class Problem:
    """One thing wrong in a spec: where it is, and what to do about it."""

    path: str
    """Dotted path of the field, like `model.layers[2].rate`."""
    message: str
    """What was received, what was expected, and how to fix it."""
    where: str = ""
    """`file:line:column`, or `--set PATH=VALUE` for an override."""
    source_line: str = ""
    """The offending line of the file, shown under the message."""

    def render(self) -> str:
        head = f"{self.where}: " if self.where else ""
        text = f"{head}{self.path + ': ' if self.path else ''}{self.message}"
        if self.source_line:
            text += f"\n    | {self.source_line}"
        return text
