"""The git state of a project, read with the git command line (no library import)."""

from __future__ import annotations

import hashlib
import subprocess
from typing import TYPE_CHECKING

from evalledger.errors import EvalLedgerError
from evalledger.manifest import GitState

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LEDGER_PATHS", "code_hash", "git", "git_commit", "git_state"]

#: Top-level paths of a project that hold results and ledger state, not code: their
#: changes (new results, a params edit) leave :func:`code_hash` unchanged.
LEDGER_PATHS = (
    "runs", "metrics", "predictions", "dvc.lock", "dvc.yaml", "params.yaml",
    ".evalledger", ".dvc",
)  # fmt: skip
#: git's empty tree: the base to compare against before the first commit.
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def git(root: Path, *args: str, check: bool = True, input: str | None = None) -> str:
    """Run a git command in ``root`` (feeding it ``input``) and return its stdout."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False, input=input
        )
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


def code_hash(root: Path) -> str | None:
    """A hash of the project's code: HEAD's tree and uncommitted changes, ledger aside.

    The code is everything under ``root`` except :data:`LEDGER_PATHS`. The hash covers
    the HEAD tree's entries for it and, when it has uncommitted changes, the blob id of
    each changed file (or its removal) and of each untracked, non-ignored file, as
    ``git hash-object`` computes them. So committing results does not change the hash,
    and editing code does, committed or not. Blob ids rather than ``git diff`` text keep
    the hash independent of the user's diff settings. None outside a git work tree.
    """
    try:
        if git(root, "rev-parse", "--is-inside-work-tree", check=False).strip() != "true":
            return None
    except EvalLedgerError:  # git is not installed
        return None
    prefix = git(root, "rev-parse", "--show-prefix").strip()
    head = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip()
    h = hashlib.sha256()
    if head:  # the project folder's tree; absent when it was never committed
        for entry in git(root, "ls-tree", "-z", f"HEAD:{prefix}", check=False).split("\0"):
            _, _, name = entry.partition("\t")
            if name and name not in LEDGER_PATHS:
                h.update(f"tree {entry}\n".encode())
    spec = ["--", ".", *(f":(exclude){p}" for p in LEDGER_PATHS)]
    base = head or _EMPTY_TREE
    changed = git(root, "diff", "--name-only", "-z", "--no-renames", "--relative", base, *spec)
    untracked = git(root, "ls-files", "-z", "--others", "--exclude-standard", *spec)
    paths = sorted({p for p in (changed + untracked).split("\0") if p})
    files = [p for p in paths if (root / p).is_file() and "\n" not in p]
    blobs = git(root, "hash-object", "--stdin-paths", input="\n".join(files)) if files else ""
    ids = dict(zip(files, blobs.split(), strict=True))
    for path in paths:
        h.update(f"work {path}\0{ids.get(path, 'absent')}\n".encode())
    return h.hexdigest()[:16]
