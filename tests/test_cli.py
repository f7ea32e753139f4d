from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from evalledger.cli import COMMANDS, cli

#: Every command is held to every rule below.
_NO_EXAMPLE_YET: set[str] = set()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.help and len(command.help.strip()) > 20
    result = CliRunner().invoke(cli, [name, "--help"], catch_exceptions=False)
    assert result.exit_code == 0 and "Usage: " in result.output
    if name in _NO_EXAMPLE_YET:
        return
    # An example: an "Examples:" block whose lines are whole command lines of this command.
    assert "Examples:" in result.output, result.output
    examples = result.output.split("Examples:", 1)[1].strip().splitlines()
    assert examples and all(line.strip().startswith(f"evalledger {name}") for line in examples)


def test_root_help_lists_every_command_on_one_uncut_line() -> None:
    result = CliRunner().invoke(cli, ["--help"], catch_exceptions=False, terminal_width=80)
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output
    listing = result.output.split("Commands:", 1)[1]
    assert "..." not in listing
    lines = [ln for ln in listing.splitlines() if ln.strip()]
    mine = [ln for ln in lines if ln.split()[0] in set(COMMANDS) - _NO_EXAMPLE_YET]
    assert len(mine) == len(COMMANDS) - len(_NO_EXAMPLE_YET)  # one line each, none wrapped


@pytest.mark.parametrize(
    ("typed", "suggestion"),
    [("leaderbord", "did you mean leaderboard?"), ("stat", "did you mean stats or status?"),
     ("lst", "did you mean list?")],
)  # fmt: skip
def test_a_mistyped_command_gets_a_suggestion(typed: str, suggestion: str) -> None:
    result = CliRunner().invoke(cli, [typed], catch_exceptions=False)
    assert result.exit_code == 2
    assert f"Error: No such command '{typed}'; {suggestion}" in result.output


def test_an_unknown_command_with_no_close_match_is_refused() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"], catch_exceptions=False)
    assert result.exit_code == 2 and "No such command 'frobnicate'; see" in result.output


def test_method_choices_match_the_statistics_library() -> None:
    from evalledger.analysis.significance import METHODS
    from evalledger.cli._options import METHOD_NAMES

    assert sorted(METHOD_NAMES) == sorted(METHODS)


def test_python_dash_m_and_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "evalledger", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "0.1.0" in proc.stdout


def test_not_a_project_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), "status"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "run `evalledger init` first" in result.output


def test_public_api_names_resolve() -> None:
    import evalledger
    import evalledger.cli.run  # loads the library modules behind `run`

    for name in evalledger.__all__:
        assert getattr(evalledger, name) is not None, name
    assert callable(evalledger.run) and evalledger.run.__module__ == "evalledger.execution.runner"
    assert callable(evalledger.init_project)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_documented_in_the_readme(name: str) -> None:

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `evalledger ")]
    assert any(f"`evalledger {name}" in line or f"/ `{name}" in line for line in table), name


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["run", "-j", "0"], "Invalid value for '-j' / '--jobs'"),
     (["leaderboard", "--nope"], "No such option '--nope'"),
     (["--nope"], "No such option '--nope'"),
     (["diff", "--threshold", "x"], "Invalid value for '--threshold'"),
     (["show"], "Missing argument 'EXECUTION_ID'")],
)  # fmt: skip
def test_a_usage_error_is_one_line_naming_the_help(
    args: list[str], needle: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), *args], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stdout == "" and "Usage:" not in result.stderr
    assert result.stderr.count("\n") == 1 and needle in result.stderr
    assert result.stderr.rstrip().endswith("--help`")
