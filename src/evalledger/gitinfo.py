"""The git state of a project, read with the git command line (no library import)."""

from __future__ import annotations

import hashlib
import subprocess
from typing import TYPE_CHECKING

from evalledger.errors import EXIT_USAGE, EvalLedgerError
from evalledger.redact import scrub_text

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.manifest import GitState

__all__ = [
    "LAUNCHER",
    "LEDGER_PATHS",
    "GitStateError",
    "check_commit_target",
    "code_hash",
    "detached_error",
    "git",
    "git_commit",
    "git_diff_hash",
    "git_state",
    "no_commits_error",
    "not_a_repository_error",
    "repo_state",
]

#: The launcher that dvc.yaml's ``cmd`` runs (``sh .evalledger.sh cell ...``): it finds
#: the interpreter that last ran evalledger here, so ``dvc repro`` needs no activated venv.
LAUNCHER = ".evalledger.sh"

#: Top-level paths of a project that hold results and ledger state, not code: their
#: changes (new results, a params edit) leave :func:`code_hash` unchanged.
LEDGER_PATHS = (
    "runs", "metrics", "predictions", "dvc.lock", "dvc.yaml", "params.yaml",
    ".evalledger", ".dvc", LAUNCHER,
)  # fmt: skip
#: git's empty tree: the base to compare against before the first commit.
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


#: git commands whose ``-m`` message is recorded in the repository.
_MESSAGE_COMMANDS = frozenset({"commit", "tag", "merge", "notes"})


def _scrubbed_messages(args: tuple[str, ...]) -> list[str]:
    """``args`` with the ``-m``/``--message`` values of a recording command redacted."""
    out = list(args)
    if not out or out[0] not in _MESSAGE_COMMANDS:
        return out
    for i, arg in enumerate(out):
        if arg == "--":  # paths follow
            break
        if arg in ("-m", "--message") and i + 1 < len(out):
            out[i + 1] = scrub_text(out[i + 1])
        elif arg.startswith("--message="):
            out[i] = "--message=" + scrub_text(arg.removeprefix("--message="))
    return out


def git(root: Path, *args: str, check: bool = True, input: str | None = None) -> str:
    """Run a git command in ``root`` (feeding it ``input``) and return its stdout.

    The message of a ``commit``, ``tag``, ``merge`` or ``notes`` (``-m``) passes the
    redaction point: git keeps it forever.
    """
    try:
        proc = subprocess.run(
            ["git", *_scrubbed_messages(args)], cwd=root, capture_output=True, text=True,
            check=False, input=input,
        )  # fmt: skip
    except FileNotFoundError:
        raise EvalLedgerError("git is not installed", "install git and retry") from None
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise EvalLedgerError(f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
    return proc.stdout


class GitStateError(EvalLedgerError):
    """The git repository is in a state the command cannot work in: none, no commits, detached.

    ``state`` names it: ``outside`` (no repository), ``unborn`` (no commits yet) or
    ``detached`` (HEAD on no branch).
    """

    exit_code = EXIT_USAGE

    def __init__(self, state: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.state = state


def repo_state(root: Path) -> str:
    """``outside`` (no git work tree), ``unborn`` (no commits), ``detached`` or ``branch``."""
    try:
        inside = git(root, "rev-parse", "--is-inside-work-tree", check=False).strip()
    except EvalLedgerError:  # git is not installed: as good as no repository
        return "outside"
    if inside != "true":
        return "outside"
    if not git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip():
        return "unborn"
    if not git(root, "symbolic-ref", "-q", "HEAD", check=False).strip():
        return "detached"
    return "branch"


def not_a_repository_error(root: Path) -> GitStateError:
    """The one message for a project outside any git repository."""
    return GitStateError(
        "outside",
        f"{root} is not in a git repository: evalledger keeps its ledger in git",
        f"run `git init` in {root}, then commit the project (`git add -A && git commit`)",
    )


def no_commits_error(what: str) -> GitStateError:
    """The one message for a repository without commits; ``what`` is what needed one."""
    return GitStateError(
        "unborn",
        f"the repository has no commits yet, so there is {what}",
        "commit the project first, e.g. `evalledger run --commit`",
    )


def detached_error(root: Path, what: str) -> GitStateError:
    """The one message for a detached HEAD; ``what`` is what needs a branch."""
    head = git(root, "rev-parse", "--short", "HEAD", check=False).strip()
    return GitStateError(
        "detached",
        f"HEAD is detached (at {head or 'an unknown commit'}): {what}",
        "check out a branch first (`git switch <branch>`, or `git switch -c <new-branch>` "
        "to keep this commit)",
    )


def check_commit_target(root: Path) -> None:
    """Refuse, before anything runs, a repository that a ledger commit cannot go to.

    Outside git there is nothing to commit to, and on a detached HEAD the commit would
    belong to no branch; a repository with no commits gets its first commit.
    """
    state = repo_state(root)
    if state == "outside":
        raise not_a_repository_error(root)
    if state == "detached":
        raise detached_error(root, "a commit here would be on no branch, easy to lose")


def git_state(root: Path) -> GitState:
    """HEAD commit, branch, whether tracked files have uncommitted changes and their hash.

    ``diff_hash`` (:func:`git_diff_hash`) is computed only when the tree is dirty, so a
    clean tree costs no extra git call. ``code_hash`` is left to :func:`code_hash`.
    """
    commit = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip() or None
    branch = git(root, "symbolic-ref", "--short", "-q", "HEAD", check=False).strip() or None
    dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no", check=False).strip())
    diff_hash = git_diff_hash(root, head=commit) if dirty else None
    from evalledger.manifest import GitState  # pydantic: only once a manifest is written

    return GitState(commit=commit, branch=branch, dirty=dirty, diff_hash=diff_hash)


def git_diff_hash(root: Path, head: str | None = "HEAD") -> str | None:
    """sha256 (16 hex) of ``git diff HEAD --binary``: tracked files' uncommitted changes.

    Staged and unstaged changes both count (untracked files do not); None when there are
    none, or outside git. Before the first commit (``head=None``, or no HEAD) the diff is
    taken against the empty tree. The patch is streamed into the hash, so a large binary
    change costs no memory.
    """
    base = head or _EMPTY_TREE
    if head == "HEAD" and not _git_ok(root, "rev-parse", "--verify", "-q", "HEAD"):
        base = _EMPTY_TREE
    cmd = ["git", "-c", "core.quotepath=false", "diff", "--binary", "--no-color",
           "--no-ext-diff", "--no-textconv", base, "--"]  # fmt: skip
    h = hashlib.sha256()
    empty = True
    try:
        with subprocess.Popen(
            cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ) as proc:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(1 << 16):
                empty = False
                h.update(chunk)
    except OSError:  # git is not installed
        return None
    if proc.returncode != 0 or empty:
        return None
    return h.hexdigest()[:16]


def _git_ok(root: Path, *args: str) -> bool:
    """Whether a git command succeeds in ``root`` (output discarded)."""
    try:
        return (
            subprocess.run(["git", *args], cwd=root, capture_output=True, check=False).returncode
            == 0
        )
    except OSError:
        return False


#: Never staged: the temp files of a write killed before its rename.
_NO_TEMP_FILES = ":(exclude,glob)**/.*.tmp"


def git_commit(root: Path, paths: list[str], message: str) -> str | None:
    """Commit ``paths`` and nothing else; the new SHA, or None if git already holds them.

    New and changed files are staged, tracked files that are gone are staged as removals,
    and temp files are never staged. The commit takes only ``paths`` (a pathspec commit,
    ``git commit --only``): whatever else the user had staged stays staged and out of
    it. What an interrupted earlier commit staged under ``paths`` is committed too.
    ``message`` is redacted (:func:`evalledger.redact.scrub_text`, in :func:`git`)
    before git records it.
    """
    gone = [p for p in paths if not (root / p).exists()]
    # git refuses a path it neither sees nor tracks; a tracked one that is gone is a removal.
    tracked = git(root, "ls-files", "-z", "--", *gone).split("\0") if gone else []
    specs = [p for p in paths if p not in gone
             or any(t == p or t.startswith(p + "/") for t in tracked)]  # fmt: skip
    if not specs:
        return None
    git(root, "add", "-A", "--", *specs, _NO_TEMP_FILES)
    head = git(root, "rev-parse", "-q", "--verify", "HEAD", check=False).strip()
    changed = (
        git(root, "diff", "--cached", "--name-only", "-z", "--no-renames", "HEAD", "--", *specs)
        if head
        else git(root, "ls-files", "-z", "--", *specs)
    )
    # Only the paths that differ from HEAD: a pathspec naming nothing git knows fails.
    only = sorted({p for p in changed.split("\0") if p})
    if not only:
        return None
    git(root, "commit", "-q", "--only", "-m", message, "--", *only)  # redacted by git()
    return git(root, "rev-parse", "HEAD").strip()


def code_hash(root: Path) -> str | None:
    """A hash of the project's code as it is in the working tree, ledger files aside.

    The code is every file under ``root`` outside :data:`LEDGER_PATHS`: HEAD's tree for
    it (``git ls-tree``), overlaid with the files that differ from HEAD (``git diff
    HEAD``) and the untracked, non-ignored ones (``git ls-files --others``), each by its
    blob id (``git hash-object``, so line-ending filters apply as on commit). The hash is
    that of the sorted (path, blob id) list: committing results leaves it unchanged,
    editing code changes it, and the same code hashes the same committed or not. None
    outside a git work tree.
    """
    try:
        if git(root, "rev-parse", "--is-inside-work-tree", check=False).strip() != "true":
            return None
    except EvalLedgerError:  # git is not installed
        return None
    prefix = git(root, "rev-parse", "--show-prefix").strip()
    head = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip()
    blobs: dict[str, str] = {}
    if head:  # the project folder's tree; absent when it was never committed
        listing = git(root, "ls-tree", "-r", "-z", f"HEAD:{prefix}", check=False)
        for entry in listing.split("\0"):
            meta, _, path = entry.partition("\t")
            if path and path.split("/", 1)[0] not in LEDGER_PATHS:
                blobs[path] = meta.split()[2]
    spec = ["--", ".", *(f":(exclude){p}" for p in LEDGER_PATHS)]
    base = head or _EMPTY_TREE
    changed = git(root, "diff", "--name-only", "-z", "--no-renames", "--relative", base, *spec)
    untracked = git(root, "ls-files", "-z", "--others", "--exclude-standard", *spec)
    paths = sorted({p for p in (changed + untracked).split("\0") if p})
    files = [p for p in paths if (root / p).is_file() and "\n" not in p]
    hashed = git(root, "hash-object", "--stdin-paths", input="\n".join(files)) if files else ""
    blobs.update(zip(files, hashed.split(), strict=True))
    for path in paths:
        if not (root / path).exists() and not (root / path).is_symlink():
            blobs.pop(path, None)  # deleted since HEAD
    h = hashlib.sha256()
    for path in sorted(blobs):
        h.update(f"{path}\0{blobs[path]}\n".encode())
    return h.hexdigest()[:16]
