"""Each command in each git state a project can be in, and what commits hold.

States: outside any repository, a repository with no commits, a detached HEAD. A
command that cannot work in a state exits 2 with one line that names the state and the
next step; one that can (reading the workspace, ``run --commit`` making the first
commit) works. Outside git nothing works: the ledger is git history, and DVC's
pipeline needs the repository too, so every command refuses before reading or running.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import SMALL_PARAMS, git, invoke, make_project
from evalledger.execution.scaffold import init_project

OUTSIDE = "is not in a git repository"
UNBORN = "the repository has no commits yet"
DETACHED = "HEAD is detached (at "
COMMANDS = {
    "list": ["list"],
    "diff": ["diff"],
    "leaderboard": ["leaderboard"],
    "push": ["push"],
    "pull": ["pull"],
    "run --commit": ["run", "--commit", "--force", "--models", "solver"],
    "status": ["status"],
    "show": ["show", "{id}"],
}
#: state -> command -> the words of its one-line refusal, or None where it works.
EXPECTED: dict[str, dict[str, str | None]] = {
    "outside": dict.fromkeys(COMMANDS, OUTSIDE),
    "unborn": {"list": None, "diff": UNBORN, "leaderboard": None, "push": UNBORN,
               "pull": UNBORN, "run --commit": None, "status": None, "show": None},
    "detached": {"list": None, "diff": None, "leaderboard": None, "push": DETACHED,
                 "pull": DETACHED, "run --commit": DETACHED, "status": None, "show": None},
}  # fmt: skip


def _execution(root: Path) -> str:
    return next(p.name for p in (root / "runs").iterdir() if p.name.startswith("exec_"))


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("states")
    made = {}
    # A repository with no commits, and one workspace execution in it.
    unborn = base / "unborn"
    init_project(unborn)
    (unborn / "params.yaml").write_text(SMALL_PARAMS)
    assert invoke(unborn, "run", "--models", "solver").exit_code == 0
    made["unborn"] = unborn
    # A committed execution, then HEAD detached at it.
    detached = base / "detached"
    make_project(detached)
    assert invoke(detached, "run", "--models", "solver", "--commit").exit_code == 0
    git(detached, "checkout", "-q", "--detach")
    made["detached"] = detached
    # The same project without its repository.
    outside = base / "outside"
    shutil.copytree(detached, outside)
    shutil.rmtree(outside / ".git")
    made["outside"] = outside
    return made


def _cases() -> list[object]:
    cases = []
    for state, expected in EXPECTED.items():
        for name in COMMANDS:
            cases.append(pytest.param(state, name, expected[name], id=f"{state}-{name}"))
    return cases


@pytest.mark.parametrize(("state", "name", "refusal"), _cases())
def test_each_command_in_each_git_state(
    templates: dict[str, Path], tmp_path: Path, state: str, name: str, refusal: str | None
) -> None:
    root = tmp_path / state
    shutil.copytree(templates[state], root, symlinks=True)
    runs_before = sorted(p.name for p in (root / "runs").iterdir())
    args = [a.replace("{id}", _execution(root)) for a in COMMANDS[name]]
    result = invoke(root, *args)
    if refusal is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert refusal in result.stderr
    assert "did you mean HEAD" not in result.stderr and "Traceback" not in result.output
    # Refused before anything ran: no new execution.
    assert sorted(p.name for p in (root / "runs").iterdir()) == runs_before


def test_unborn_repository_revisions_name_the_state(templates: dict[str, Path]) -> None:
    result = invoke(templates["unborn"], "leaderboard", "--rev", "HEAD")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: the repository has no commits yet, so there is no revision 'HEAD' yet; "
        "commit the project first, e.g. `evalledger run --commit`"
    )


def test_run_commit_keeps_other_staged_changes_out(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    root = project.root
    (root / "mycode.py").write_text("print('mine')\n")
    git(root, "add", "mycode.py")
    (root / ".gitignore").write_text((root / ".gitignore").read_text())  # unchanged
    result = invoke(project, "run", "--models", "solver", "--commit")
    assert result.exit_code == 0, result.output
    committed = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "mycode.py" not in committed
    assert "dvc.lock" in committed and any(p.startswith("runs/exec_") for p in committed)
    assert git(root, "status", "--porcelain") == "A  mycode.py\n"


def test_init_then_run_commit_leaves_nothing_untracked(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root)  # the library's init does not commit: run --commit takes its files
    (root / "params.yaml").write_text(SMALL_PARAMS)
    assert invoke(root, "run", "--models", "solver", "--commit").exit_code == 0
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    tree = git(root, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert {".gitignore", "runs/.gitkeep", "metrics/.gitkeep", ".evalledger.sh"} <= set(tree)
