"""The git state of a project, read with the git command line (no library import)."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from evalledger.errors import EvalLedgerError
from evalledger.manifest import GitState

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["git", "git_commit", "git_state"]


def git(root: Path, *args: str, check: bool = True) -> str:
    """Run a git command in ``root`` and return its stdout."""
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise EvalLedgerError("git is not installed", "install git and retry") from None
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise EvalLedgerError(f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
    return proc.stdout


def git_state(root: Path) -> GitState:
    """HEAD commit, branch and whether tracked files have uncommitted changes."""
    commit = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip() or None
    branch = git(root, "symbolic-ref", "--short", "-q", "HEAD", check=False).strip() or None
    dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no", check=False).strip())
    return GitState(commit=commit, branch=branch, dirty=dirty)


def git_commit(root: Path, paths: list[str], message: str) -> str:
    """Stage ``paths`` (those that exist) and commit them; return the new commit SHA."""
    existing = [p for p in paths if (root / p).exists()]
    if existing:
        git(root, "add", "--", *existing)
    # Files removed since the last commit must be staged as removals too.
    git(root, "add", "-u", "--", *[p for p in paths if not (root / p).exists()] or ["."])
    if not git(root, "diff", "--cached", "--name-only").strip():
        raise EvalLedgerError("nothing to commit: the ledger files are unchanged")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()
