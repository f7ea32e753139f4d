"""evalledger push, pull and archive against a local bare git repo and DVC remote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import Result

from conftest import dvc, git, invoke
from evalledger.project import Project


def _remotes(project: Project, tmp_path: Path, *, dvc_remote: bool = True) -> Path:
    """A bare repo as origin and (optionally) a folder as the default DVC remote."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(project.root, "remote", "add", "origin", str(bare))
    if dvc_remote:
        store = tmp_path / "store"
        store.mkdir()
        dvc(project.root, "remote", "add", "-d", "store", str(store))
        git(project.root, "commit", "-qm", "DVC remote", "--", ".dvc/config")
    return bare


def _clone(bare: Path, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(bare), str(where)], check=True)
    return where


def _only_execution(project: Project) -> str:
    """The single execution ID under runs/ (skipping .gitkeep)."""
    (exec_id,) = [p.name for p in project.runs_dir.iterdir() if not p.name.startswith(".")]
    return exec_id


def _one_line_error(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr


def test_push_pull_round_trip(project: Project, tmp_path: Path) -> None:
    bare = _remotes(project, tmp_path)
    assert invoke(project, "run", "--commit").exit_code == 0
    result = invoke(project, "push")
    assert result.exit_code == 0, result.output
    assert "git: pushed to origin:" in result.stdout and "[new branch]" in result.stdout
    assert "dvc: pushed to store: 6 files pushed" in result.stdout
    again = invoke(project, "push")
    assert "everything up to date" in again.stdout and "Everything is up to date" in again.stdout

    clone = _clone(bare, tmp_path / "clone")
    assert not (clone / "predictions" / "solver" / "arith.jsonl").exists()
    result = invoke(clone, "pull")
    assert result.exit_code == 0, result.output
    assert "up to date with origin" in result.stdout and "dvc: pulled from store" in result.stdout
    for key in ("solver/arith", "noisy/arith_hard", "adder/arith"):
        theirs = (clone / "predictions" / f"{key}.jsonl").read_bytes()
        assert theirs == (project.root / "predictions" / f"{key}.jsonl").read_bytes()
    mine = json.loads(invoke(project, "leaderboard", "--json").stdout)
    assert json.loads(invoke(clone, "leaderboard", "--json").stdout) == mine

    # New results made in the clone come back to the original through pull.
    assert invoke(clone, "run", "--models", "noisy", "--force", "--commit").exit_code == 0
    assert invoke(clone, "push").exit_code == 0
    result = invoke(project, "pull")
    assert result.exit_code == 0, result.output
    assert "git: pulled 1 commit(s) from origin" in result.stdout
    assert git(project.root, "rev-parse", "HEAD") == git(clone, "rev-parse", "HEAD")
    assert git(project.root, "status", "--porcelain") == ""


def test_push_refused_when_behind(project: Project, tmp_path: Path) -> None:
    bare = _remotes(project, tmp_path)
    assert invoke(project, "push", "--git-only").exit_code == 0
    clone = _clone(bare, tmp_path / "clone")
    (clone / "notes.md").write_text("theirs\n")
    git(clone, "add", "notes.md")
    git(clone, "commit", "-qm", "theirs")
    git(clone, "push", "-q")
    (project.root / "mine.md").write_text("mine\n")
    git(project.root, "add", "mine.md")
    git(project.root, "commit", "-qm", "mine")
    _one_line_error(invoke(project, "push", "--git-only"), 1, "`evalledger pull` first")
    _one_line_error(invoke(project, "pull", "--git-only"), 1, "have diverged")


def test_missing_remotes(project: Project, tmp_path: Path) -> None:
    _one_line_error(invoke(project, "push"), 2, "`git remote add origin <url>`")
    _one_line_error(invoke(project, "pull"), 2, "`git remote add origin <url>`")
    _one_line_error(invoke(project, "push", "--remote", "up"), 2, "no git remote 'up'")
    _remotes(project, tmp_path, dvc_remote=False)
    _one_line_error(invoke(project, "push"), 2, "`dvc remote add -d store <path-or-url>`")
    _one_line_error(invoke(project, "push", "--dvc-only"), 2, "no default DVC remote")
    _one_line_error(invoke(project, "push", "--dvc-remote", "nope"), 2, "no DVC remote 'nope'")
    # Nothing moved before the DVC remote was found missing.
    assert git(project.root, "ls-remote", "origin") == ""
    assert invoke(project, "push", "--git-only").exit_code == 0
    _one_line_error(invoke(project, "pull"), 2, "`dvc remote add -d store <path-or-url>`")
    result = invoke(project, "push", "--git-only", "--dvc-only")
    assert result.exit_code == 2


def test_archive_tags_the_execution_commit(project: Project, tmp_path: Path) -> None:
    bare = _remotes(project, tmp_path)
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    run_commit = git(project.root, "rev-parse", "HEAD").strip()
    exec_id = _only_execution(project)
    git(project.root, "commit", "-q", "--allow-empty", "-m", "later work")
    result = invoke(project, "archive", exec_id[-8:])
    assert result.exit_code == 0, result.output
    tag = f"run/{exec_id}"
    assert f"tagged {tag} -> {run_commit[:10]}" in result.stdout
    assert "evalledger push --tags" in result.stdout
    assert git(project.root, "rev-parse", f"{tag}^{{commit}}").strip() == run_commit
    assert git(project.root, "cat-file", "-t", tag).strip() == "tag"
    message = git(project.root, "tag", "-l", "--format=%(contents:subject)", tag).strip()
    assert message == f"{exec_id}: completed (2/2 cells completed)"

    _one_line_error(invoke(project, "archive", exec_id), 2, "already exists")
    assert "moved" in invoke(project, "archive", exec_id, "--force").stdout

    assert invoke(project, "push").exit_code == 0
    assert tag not in git(project.root, "ls-remote", "--tags", str(bare))
    result = invoke(project, "push", "--tags")
    assert result.exit_code == 0 and f"{tag} [new tag]" in result.stdout
    remote_tags = git(project.root, "ls-remote", "--tags", str(bare))
    assert f"{run_commit}\trefs/tags/{tag}^{{}}" in remote_tags


def test_archive_refuses_uncommitted_and_unknown(project: Project) -> None:
    assert invoke(project, "run", "--models", "solver").exit_code == 0
    exec_id = _only_execution(project)
    _one_line_error(invoke(project, "archive", exec_id), 2, "commit it first")
    _one_line_error(invoke(project, "archive", "exec_1999"), 2, "unknown execution")
    assert git(project.root, "tag", "-l") == ""


def test_push_pull_and_archive_json(project: Project, tmp_path: Path) -> None:
    _remotes(project, tmp_path)
    assert invoke(project, "run", "--models", "solver", "--commit").exit_code == 0
    pushed = json.loads(invoke(project, "push", "--json").stdout)
    assert pushed["git"].startswith("pushed to origin:") and pushed["dvc"].startswith("pushed to")
    assert len(pushed["lines"]) == 2
    pulled = json.loads(invoke(project, "pull", "--git-only", "--json").stdout)
    assert pulled["dvc"] is None and "up to date" in pulled["git"]
    tagged = json.loads(invoke(project, "archive", _only_execution(project), "--json").stdout)
    assert tagged["tag"] == f"run/{_only_execution(project)}" and tagged["replaced"] is False
    assert tagged["commit"] == git(project.root, "rev-parse", "HEAD").strip()
