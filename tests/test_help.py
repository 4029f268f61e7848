"""The command line follows the conventions: --version, -h, flags shown as flags, help that survives markup, panels."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from dlrun import __version__
from dlrun.cli import app
from dlrun.cli.common import PANELS

runner = CliRunner()
COMMANDS = [
    ["train"],
    ["validate"],
    ["check"],
    ["init"],
    ["plot"],
    ["compare"],
    ["diff"],
    ["diagnose"],
    ["sweep"],
    ["tune"],
    ["export"],
]
COMMANDS += [["predict"], ["evaluate"], ["config"], ["config", "show"], ["schema"], []]


def help_of(*args: str, flag: str = "--help", width: int = 100) -> str:
    result = runner.invoke(app, [*args, flag], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_version_prints_the_package_version_and_exits():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"dlrun {__version__}\n"


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "dlrun")
def test_every_help_shows_flags_as_flags_and_arguments_as_unix_help_does(args):
    text = help_of(*args, flag="-h")
    assert text == help_of(*args)  # -h is --help
    assert "<bool>" not in text  # typer 0.29 shows `--quiet <bool>` as if a flag took a value
    assert "{" not in text and "<list[" not in text  # `{spec}`, `<list[Path]>`
    assert re.search(r"--help\s+-h\s+Show this message and exit", text)


def test_train_help_reads_as_usage_conventions():
    text = help_of("train")
    assert "Usage: root train [OPTIONS] [SPEC]" in text  # optional: --resume RUN_DIR needs none
    assert re.search(r"--quiet\s+-q\s+No progress bar", text)
    assert re.search(r"--out\s+DIR\s+Folder for run directories", text)
    assert "Usage: root compare [OPTIONS] SOURCES..." in help_of("compare")
    assert "Usage: root sweep [OPTIONS] [SPEC]" in help_of("sweep")


def test_help_text_survives_rich_markup():
    text = " ".join(help_of("sweep", width=200).replace("│", " ").split())  # wherever the help wraps
    assert "so [a,b] stays one value" in text


def test_choices_are_listed():
    assert "<minmax|std>" in help_of("plot") and "<local|ray>" in help_of("sweep")


def test_commands_are_grouped_in_the_readme_order():
    text = help_of()
    panels = [line.strip("╭─ ").split(" ─")[0] for line in text.splitlines() if line.startswith("╭─")]
    assert panels == ["Options", *dict.fromkeys(PANELS.values())]
    listed = [m.group(1) for m in re.finditer(r"^│ (\w+) ", text, re.M)]
    assert listed == list(PANELS)
    assert listed[:4] == ["train", "validate", "check", "init"]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "dlrun")
def test_no_help_text_is_cut_at_80_columns(args):
    # rich ends a word too long for its column with "…": `PATH=loguniform(1e-4,1e-1…` hid the range's end.
    text = help_of(*args, width=80)
    assert "…" not in text
