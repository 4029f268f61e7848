"""The `dlrun` command: parse arguments, call one function, present the result or the error.

One module per group of commands; importing them registers their commands on `app`; `--help`
lists them in the panels and order of `dlrun.cli.common.PANELS`, the README's.
"""

from __future__ import annotations

import sys

from dlrun.cli import diagnose, runs, search, spec, train, use  # noqa: F401  (registers the commands)
from dlrun.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point for `python -m dlrun`."""
    app(prog_name="dlrun")


if __name__ == "__main__":
    sys.exit(main())
