"""One vocabulary of options: short options, the cell filter, --json everywhere, tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from conftest import SMALL_PARAMS, git, invoke, make_project
from evalledger.cli import COMMANDS, cli
from evalledger.project import Project

#: Commands whose JSON is tested where their remotes are set up (tests/test_share.py).
ELSEWHERE = {"push", "pull", "view"}  # view serves until Ctrl-C: tests/test_view.py


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    out = {}
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        out[name] = command
    return out


def test_each_short_option_means_one_thing() -> None:
    meaning: dict[str, tuple[str, str]] = {}
    for name, command in _commands().items():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            longs = [o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")]
            for short in (o for o in [*param.opts, *param.secondary_opts] if o[1] != "-"):
                seen = meaning.setdefault(short, (longs[0], name))
                assert seen[0] == longs[0], f"{short}: {seen} and ({longs[0]}, {name})"
    assert meaning["-r"][0] == "--rev" and meaning["-n"][0] == "--limit"
    assert meaning["-b"][0] == "--benchmarks" and meaning["-m"][0] == "--metric"


SELECTING = ["run", "diff", "leaderboard", "significance", "compare", "reproduce"]


@pytest.mark.parametrize("name", SELECTING)
def test_commands_that_select_cells_share_one_filter(name: str) -> None:
    command = _commands()[name]
    opts = {o for p in command.params for o in p.opts}
    assert {"--models", "--benchmarks", "-b", "--benchmark", "--prompt-sets", "--decodings"} <= opts


def _build(root: Path) -> Project:
    """A project with a committed run and a workspace run that made noisy worse."""
    project = make_project(root / "proj")
    assert invoke(project, "run", "--commit").exit_code == 0
    project.params_path.write_text(SMALL_PARAMS.replace("error_rate: 0.3", "error_rate: 0.6"))
    assert invoke(project, "run").exit_code == 0
    return project


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The ledger that reading commands read (and nothing changes)."""
    return _build(tmp_path_factory.mktemp("ledger"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A ledger the --json cases may change (run, import, delete)."""
    return _build(tmp_path_factory.mktemp("scratch"))


def _ids(project: Project) -> list[str]:
    return sorted(p.name for p in (project.root / "runs").iterdir() if p.is_dir())


#: Each command (but ELSEWHERE's) with arguments that make it print JSON; archive and
#: delete last (they take executions out of the scratch ledger the others read).
JSON_CASES: dict[str, list[str]] = {
    "run": ["run", "--models", "solver", "-b", "arith", "--force"],
    "resume": ["resume", "--dry-run"],
    "cell": ["cell", "model=adder", "benchmark=arith"],
    "status": ["status"],
    "list": ["list"],
    "show": ["show", "{first}"],
    "stats": ["stats"],
    "items": ["items", "solver/arith"],
    "report": ["report", "-o", "{new}.html"],
    "export": ["export", "{first}"],
    "import": ["import", "{export}", "--force"],
    "diff": ["diff", "--models", "noisy"],
    "compare": ["compare", "{first}", "{second}"],
    "leaderboard": ["leaderboard", "--models", "solver,noisy"],
    "significance": ["significance", "solver", "noisy", "-b", "arith"],
    "revert": ["revert", "{first}", "--dry-run"],
    "reproduce": ["reproduce", "--models", "solver", "-b", "arith", "-q"],
    "sweep": ["sweep", "-S", "models.noisy.seed=1,2", "--dry-run"],
    "cache": ["cache", "stats"],
    "init": ["init", "{new}"],
    "archive": ["archive", "{committed}"],
    "delete": ["delete", "{second}", "-y"],
}


def test_every_command_has_a_json_case() -> None:
    assert set(JSON_CASES) == set(COMMANDS) - ELSEWHERE


@pytest.mark.parametrize("name", list(JSON_CASES))
def test_json_on_every_command_parses(name: str, scratch: Project, tmp_path: Path) -> None:
    ids = _ids(scratch)
    dump = tmp_path / "export.json"
    dump.write_text(invoke(scratch, "export", ids[0]).stdout)
    committed = git(scratch.root, "ls-tree", "--name-only", "HEAD", "runs/").split()[-1]
    names = {"first": ids[0], "second": ids[1], "export": dump, "new": tmp_path / "new",
             "committed": committed.removeprefix("runs/")}  # fmt: skip
    args = [a.format(**names) for a in JSON_CASES[name]]
    result = invoke(scratch, *args, "--json")
    assert result.exit_code in (0, 1), result.output  # reproduce exits 1 unless all match
    data = json.loads(result.stdout)
    assert data is not None


def test_diff_filters_cells(ledger: Project) -> None:
    every = json.loads(invoke(ledger, "diff", "--json").stdout)
    assert {c["cell"] for c in every["changes"]} == {"noisy/arith", "noisy/arith_hard"}
    one = json.loads(invoke(ledger, "diff", "--models", "noisy", "-b", "arith", "--json").stdout)
    assert {c["cell"] for c in one["changes"]} == {"noisy/arith"}
    none = json.loads(invoke(ledger, "diff", "--models", "solver,adder", "--json").stdout)
    assert none["changes"] == []
    typo = invoke(ledger, "diff", "--models", "noisi")
    assert typo.exit_code == 2
    assert typo.stderr == (
        "Error: unknown model 'noisi'; did you mean noisy? known: adder, noisy, solver\n"
    )


def test_filters_are_comma_separated_and_repeatable(ledger: Project) -> None:
    def names(*args: str) -> list[str]:
        out = invoke(ledger, "leaderboard", "--json", *args)
        return sorted(e["name"] for e in json.loads(out.stdout)["entries"])

    assert names("--models", "solver,noisy") == names("--models", "solver", "--models", "noisy")
    assert names("--models", "solver,noisy") == ["noisy", "solver"]
    one = json.loads(invoke(ledger, "leaderboard", "--json", "-b", "arith").stdout)
    two = json.loads(invoke(ledger, "leaderboard", "--json", "--benchmarks", "arith").stdout)
    assert one == two


def _render(project: Project, columns: int, *args: str) -> Result:
    runner = CliRunner()
    env = {"COLUMNS": str(columns)}
    return runner.invoke(cli, ["-C", str(project.root), *args], env=env, catch_exceptions=False)


_NUMBER = re.compile(r"(?<![\w.])[-+<]?\d[\d.,e%+-]*(?![\w.])")


def _numbers(text: str) -> set[str]:
    """The number tokens of a text (a split number would leave pieces: "-0.0", "6333")."""
    return {m.rstrip(",") for m in _NUMBER.findall(text)}


@pytest.mark.parametrize(
    "args",
    [["diff"], ["leaderboard"], ["significance", "solver", "noisy", "adder"], ["status"]],
    ids=["diff", "leaderboard", "significance", "status"],
)
@pytest.mark.parametrize("columns", [60, 40])
def test_a_narrow_table_never_splits_a_number(
    ledger: Project, args: list[str], columns: int
) -> None:
    wide = _render(ledger, 250, *args)
    narrow = _render(ledger, columns, *args)
    assert wide.exit_code == narrow.exit_code == 0, narrow.output
    assert _numbers(narrow.stdout) == _numbers(wide.stdout)
    # ... and the numbers are the JSON's, formatted: each JSON value's leading digits show.
    if args[0] in ("diff", "leaderboard"):
        data = json.loads(invoke(ledger, *args, "--json").stdout)
        rows = data.get("changes") or data.get("entries")
        key = "change" if args[0] == "diff" else "value"
        for row in rows:
            shown = f"{row[key]:.3g}".lstrip("-")[:4]
            assert shown in narrow.stdout, (shown, narrow.stdout)


def test_diff_params_show_no_python_reprs(project: Project) -> None:
    params = SMALL_PARAMS.replace("model: [solver, noisy, adder]", "model: [solver, noisy]")
    params = params.replace("strategy: adder}", "strategy: adder, seed: 5}")
    project.params_path.write_text(params)
    out = invoke(project, "diff").stdout
    assert "axes.model" in out and "[solver, noisy, adder]" in out and "[solver, noisy]" in out
    assert "models.adder.seed" in out
    assert "['" not in out and "None" not in out
