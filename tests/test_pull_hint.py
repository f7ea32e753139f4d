"""A fresh clone says `evalledger pull` instead of evaluating every cell again.

Real git (a bare origin) and a real DVC remote in a folder: the clone lacks the cached
predictions that dvc.lock records, and `run` must not spend the model calls again.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import dvc, git, invoke, make_project


def _clone(origin: Path, to: Path) -> Path:
    subprocess_git = git(origin.parent, "clone", "-q", str(origin), str(to))
    assert subprocess_git == ""
    git(to, "config", "user.email", "t@example.invalid")
    git(to, "config", "user.name", "t")
    return to


def test_a_fresh_clone_is_told_to_pull_and_a_pull_makes_it_up_to_date(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    store = tmp_path / "store"
    dvc(project.root, "remote", "add", "-d", "store", str(store))
    git(project.root, "add", ".dvc/config")
    git(project.root, "commit", "-qm", "a DVC remote")
    assert invoke(project, "run", "--commit").exit_code == 0
    dvc(project.root, "push")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(project.root), str(origin))
    clone = _clone(origin, tmp_path / "clone")

    before = sorted(p.name for p in (clone / "runs").iterdir())
    out = invoke(clone, "run")
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert "6 cells up to date in dvc.lock lack their predictions in the workspace" in out.stderr
    assert "may be on the DVC remote 'store'" in out.stderr or "in the local DVC" in out.stderr
    assert "run `evalledger pull` (or `dvc checkout`) first" in out.stderr
    assert sorted(p.name for p in (clone / "runs").iterdir()) == before  # nothing ran

    assert invoke(clone, "pull").exit_code == 0
    again = invoke(clone, "run")
    assert again.exit_code == 0 and "up to date" in again.output
    assert json.loads(dvc(clone, "status", "--json").stdout) == {}


def test_outputs_in_the_local_cache_suggest_checkout_and_force_evaluates(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    (project.root / "predictions/solver/arith.jsonl").unlink()
    out = invoke(project, "run", "--models", "solver")
    assert out.exit_code == 2
    assert "1 cell up to date in dvc.lock lacks its predictions in the workspace " in out.stderr
    assert "(solver/arith); their outputs are in the local DVC cache" in out.stderr
    dvc(project.root, "checkout", "eval@solver-arith")
    assert (project.root / "predictions/solver/arith.jsonl").is_file()
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    (project.root / "predictions/solver/arith.jsonl").unlink()
    forced = invoke(project, "run", "--models", "solver", "--force")
    assert forced.exit_code == 0 and "2/2 cells completed" in forced.output


def test_without_cache_or_remote_the_cells_are_evaluated_again(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    clone = _clone(project.root, tmp_path / "clone")  # no DVC cache, no remote
    out = invoke(clone, "run", "--models", "solver")
    assert out.exit_code == 0 and "2/2 cells completed" in out.output
