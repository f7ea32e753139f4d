"""A fresh clone restores its results instead of evaluating every cell again.

Real git (a bare origin) and a real DVC remote in a folder: the clone lacks the cached
predictions that dvc.lock records, and `run` must not spend the model calls again: it
restores them (DVC cache, then `dvc pull`), and says to pull when it cannot.
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


def _pushed_clone(tmp_path: Path, *, push: bool = True) -> Path:
    project = make_project(tmp_path / "p")
    store = tmp_path / "store"
    dvc(project.root, "remote", "add", "-d", "store", str(store))
    git(project.root, "add", ".dvc/config")
    git(project.root, "commit", "-qm", "a DVC remote")
    assert invoke(project, "run", "--commit").exit_code == 0
    if push:
        dvc(project.root, "push")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(project.root), str(origin))
    return _clone(origin, tmp_path / "clone")


def test_a_fresh_clone_restores_its_results_from_the_remote_instead_of_paying(
    tmp_path: Path,
) -> None:
    clone = _pushed_clone(tmp_path)
    before = sorted(p.name for p in (clone / "runs").iterdir())
    plan = invoke(clone, "run", "--dry-run")  # read-only: it only says what to do
    assert plan.exit_code == 2 and plan.stderr.count("\n") == 1
    assert "6 cells up to date in dvc.lock lack their predictions in the workspace" in plan.stderr
    assert "may be on the DVC remote 'store'" in plan.stderr
    assert "run `evalledger pull` (or `dvc checkout`) first" in plan.stderr

    out = invoke(clone, "run")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == ("restored 6 cells' predictions from the DVC cache or remote instead "
                        "of evaluating them: 150 model calls saved")  # fmt: skip
    assert lines[1].startswith("all 6 selected cells are up to date")
    assert sorted(p.name for p in (clone / "runs").iterdir()) == before  # nothing ran
    assert json.loads(dvc(clone, "status", "--json").stdout) == {}
    assert git(clone, "status", "--porcelain") == ""


def test_what_the_remote_lacks_stops_the_run_with_the_advice_to_pull(tmp_path: Path) -> None:
    clone = _pushed_clone(tmp_path, push=False)
    out = invoke(clone, "run")
    assert out.exit_code == 2 and out.stdout == ""
    assert "6 cells up to date in dvc.lock lack their predictions in the workspace" in out.stderr
    assert "or `evalledger run --force` to evaluate them again" in out.stderr


def test_outputs_in_the_local_cache_are_checked_out_and_force_evaluates(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    path = project.root / "predictions/solver/arith.jsonl"
    kept = path.read_bytes()
    path.unlink()
    out = invoke(project, "run", "--models", "solver")
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("restored 1 cell's predictions from the DVC cache or remote")
    assert path.read_bytes() == kept
    status = json.loads(dvc(project.root, "status", "--json").stdout)
    assert not [stage for stage in status if stage.startswith("eval@solver-")]
    path.unlink()
    forced = invoke(project, "run", "--models", "solver", "--force")
    assert forced.exit_code == 0 and "2/2 cells completed" in forced.output


def test_without_cache_or_remote_the_cells_are_evaluated_again(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    clone = _clone(project.root, tmp_path / "clone")  # no DVC cache, no remote
    out = invoke(clone, "run", "--models", "solver")
    assert out.exit_code == 0 and "2/2 cells completed" in out.output
