"""Start-up stays cheap: ``--help``, ``--version`` and simple commands load nothing heavy.

Each case runs in a fresh interpreter and is checked on the modules it imported, never
on its timing (``benchmarks/bench_startup.py`` measures that). pydantic is for the
commands that read a manifest, and only once they do.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

import evalledger
from evalledger.cli import COMMANDS, SHORT_HELP, cli

#: Top-level packages that no start-up path may import.
HEAVY = ("pydantic", "pydantic_core", "asyncio", "pandas", "scipy", "numpy", "dvc", "git",
         "yaml", "ruamel", "aiohttp", "rich")  # fmt: skip
#: What a command's module may bring along besides itself.
SHARED = {"evalledger.cli._complete", "evalledger.cli._options", "evalledger.cli._render"}


def _heavy(modules: set[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def _import_log(args: list[str], cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules ``python -X importtime -m evalledger ARGS`` imported, and the process."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "evalledger", *args],
        cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip
    log = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    return {ln.rsplit("|", 1)[1].strip() for ln in log[1:]}, proc  # [0] is the header


def _loaded_after(code: str) -> set[str]:
    """``sys.modules`` after running ``code`` in a fresh interpreter.

    importtime leaves out what ``importlib.import_module`` loads (the command modules),
    so which commands were loaded is read here.
    """
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(proc.stdout.splitlines()[-1]))


def _cli_main(*args: str) -> str:
    return (
        "import contextlib, io\nfrom evalledger.cli import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    cli.main({list(args)!r}, prog_name='evalledger')"
    )


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], *([name, "--help"] for name in sorted(COMMANDS))],
    ids=" ".join,
)  # fmt: skip
def test_help_and_version_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    modules, proc = _import_log(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "click" in modules  # the log was read
    assert _heavy(modules) == []


def test_a_command_outside_a_project_fails_before_loading_pydantic(tmp_path: Path) -> None:
    modules, proc = _import_log(["status"], tmp_path)
    errors = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert proc.returncode == 2 and len(errors) == 1 and errors[0].startswith("Error: ")
    assert _heavy(modules) == []


@pytest.mark.parametrize("code", ["import evalledger", "import evalledger.cli"])
def test_importing_the_package_loads_nothing_heavy(code: str) -> None:
    assert _heavy(_loaded_after(code)) == []


def test_root_help_and_version_load_no_command() -> None:
    for args in (["--help"], ["--version"]):
        loaded = {m for m in _loaded_after(_cli_main(*args)) if m.startswith("evalledger.cli.")}
        assert loaded == set(), args


@pytest.mark.parametrize("name", ["list", "diff", "run", "report", "status"])
def test_a_commands_help_loads_only_that_command(name: str) -> None:
    own = COMMANDS[name].split(":")[0]
    loaded = {m for m in _loaded_after(_cli_main(name, "--help")) if m.startswith("evalledger.")}
    assert {m for m in loaded if m.startswith("evalledger.cli.")} - SHARED == {own}
    # the library stays unloaded: just the cheap core cli/__init__ needs
    assert loaded - SHARED - {own} <= {"evalledger.cli", "evalledger.errors",
                                       "evalledger.project", "evalledger.safeload"}  # fmt: skip


def test_loading_every_command_loads_no_pandas_scipy_dvc_or_git() -> None:
    code = (
        "import click, evalledger.cli as c\n"
        "[c.cli.get_command(click.Context(c.cli), n) for n in c.COMMANDS]"
    )
    loaded = set(_heavy(_loaded_after(code)))  # running a command may load pydantic
    assert not loaded & {"pandas", "scipy", "dvc", "git", "numpy"}, loaded


def test_the_short_help_table_matches_each_command() -> None:
    assert list(SHORT_HELP) == list(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        assert SHORT_HELP[name] == command.get_short_help_str(limit=1000), name


def test_the_version_is_the_packages() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert evalledger.__version__ == pyproject["project"]["version"]
    assert evalledger.__version__ == importlib.metadata.version("evalledger")
