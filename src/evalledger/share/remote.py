"""Sharing the ledger: ``evalledger push``, ``pull`` and ``archive``.

The ledger is git (manifests, metrics, per-item scores, dvc.lock) plus DVC's cache
(predictions). ``push`` sends both to the configured remotes: ``git push`` of the current
branch, then ``dvc push``; ``pull`` brings both back (``git pull --ff-only``, then ``dvc
pull`` to restore the predictions). Both run git and dvc as subprocesses and check that
the remotes exist first, so a missing remote is one clear message rather than a half
done transfer. ``archive`` tags the commit holding an execution as ``run/<id>``.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalledger.errors import ConfigError, EvalLedgerError

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.project import Project

__all__ = [
    "TAG_PREFIX",
    "ArchiveResult",
    "ShareResult",
    "archive_execution",
    "pull_ledger",
    "push_ledger",
]

#: Executions are tagged ``run/<execution id>``.
TAG_PREFIX = "run/"
_RUN_TAGS = f"refs/tags/{TAG_PREFIX}*"
_GIT_REMOTE_FIX = "add one with `git remote add origin <url>`"
_DVC_REMOTE_FIX = "add one with `dvc remote add -d store <path-or-url>` and commit .dvc/config"


@dataclass
class ShareResult:
    """What a push or pull moved: one summary line per tool."""

    lines: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, str | list[str] | None]:
        """``{"git": ..., "dvc": ..., "lines": [...]}``: each tool's line, None if skipped."""
        by_tool = {ln.partition(": ")[0]: ln.partition(": ")[2] for ln in self.lines}
        return {"git": by_tool.get("git"), "dvc": by_tool.get("dvc"), "lines": self.lines}


@dataclass
class ArchiveResult:
    """The tag ``archive`` created."""

    tag: str
    commit: str
    message: str
    replaced: bool = False


def _run(root: Path, cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise EvalLedgerError(f"{cmd[0]} is not installed", f"install {cmd[0]} and retry") from None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(root, ["git", *args])


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The dvc of this interpreter's environment, whatever is first on PATH.
    return _run(root, [sys.executable, "-m", "dvc", *args])


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith(("error", "fatal"))]
    return (errors or lines or [f"exit code {proc.returncode}"])[-1]


def _branch(root: Path, verb: str) -> str:
    """The current branch; refused when there is no repository or HEAD is detached."""
    from evalledger.gitinfo import detached_error, not_a_repository_error, repo_state

    state = repo_state(root)
    if state == "outside":
        raise not_a_repository_error(root)
    if state == "detached":
        raise detached_error(root, f"there is no branch to {verb}")
    # An unborn branch (no commits yet) has a name already: `git init` gave it one.
    return _git(root, "symbolic-ref", "--short", "-q", "HEAD").stdout.strip()


def _unborn(root: Path) -> bool:
    return _git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}").returncode != 0


def _git_remote(root: Path, branch: str, remote: str | None) -> str:
    """The remote to use: ``remote``, else the branch's upstream remote, else origin."""
    remotes = _git(root, "remote").stdout.split()
    if remote is None:
        upstream = _git(root, "config", f"branch.{branch}.remote").stdout.strip()
        remote = upstream if upstream in remotes else "origin"
    if remote not in remotes:
        known = f" (known: {', '.join(remotes)})" if remotes else ""
        if _unborn(root):
            from evalledger.gitinfo import GitStateError

            raise GitStateError(
                "unborn",
                f"the repository has no commits yet and no git remote {remote!r}{known}",
                "to start from a shared ledger, `git remote add origin <url>` and run "
                "`evalledger pull`; to start one, `evalledger run --commit`",
            )
        raise ConfigError(f"no git remote {remote!r}{known}", _GIT_REMOTE_FIX)
    return remote


def _dvc_remote(root: Path, remote: str | None) -> str:
    """The DVC remote to use: ``remote``, else the default one."""
    listed = _dvc(root, "remote", "list")
    if listed.returncode != 0:
        raise EvalLedgerError(f"dvc remote list failed: {_last_line(listed)}")
    remotes = [ln.split()[0] for ln in listed.stdout.splitlines() if ln.strip()]
    if remote is None:
        default = _dvc(root, "remote", "default")  # exits 1 when none is set
        remote = default.stdout.strip() if default.returncode == 0 else None
        if not remote:
            hint = f"pass -r ({', '.join(remotes)}) or set a default" if remotes else ""
            raise ConfigError("no default DVC remote", hint or _DVC_REMOTE_FIX)
    if remote not in remotes:
        raise ConfigError(f"no DVC remote {remote!r}", _DVC_REMOTE_FIX)
    return remote


def _push_summary(remote: str, porcelain: str) -> str:
    """One line from ``git push --porcelain``: what each ref did."""
    moved, same = [], 0
    for line in porcelain.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        flag, refs, summary = parts[0], parts[1], parts[2]
        name = refs.split(":")[-1].removeprefix("refs/heads/").removeprefix("refs/tags/")
        if flag == "=":
            same += 1
        else:
            moved.append(f"{name} {summary.strip()}")
    text = ", ".join(moved) if moved else "everything up to date"
    extra = f" ({same} other ref(s) up to date)" if moved and same else ""
    return f"git: pushed to {remote}: {text}{extra}"


def _dvc_summary(verb: str, remote: str, proc: subprocess.CompletedProcess[str]) -> str:
    out = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    return f"dvc: {verb} {remote}: {out[-1] if out else 'done'}"


def push_ledger(
    project: Project,
    *,
    remote: str | None = None,
    dvc_remote: str | None = None,
    tags: bool = False,
    git: bool = True,
    dvc: bool = True,
) -> ShareResult:
    """``git push`` the current branch (and ``run/*`` tags), then ``dvc push`` outputs."""
    root = project.root
    result = ShareResult()
    branch = remote_name = dvc_name = None
    if git:  # check every remote before moving anything
        branch = _branch(root, "push")
        if _unborn(root):
            from evalledger.gitinfo import no_commits_error

            raise no_commits_error("nothing to push")
        remote_name = _git_remote(root, branch, remote)
    if dvc:
        dvc_name = _dvc_remote(root, dvc_remote)
    if git:
        assert branch is not None and remote_name is not None
        has_upstream = bool(_git(root, "config", f"branch.{branch}.merge").stdout.strip())
        args = ["push", "--porcelain", *([] if has_upstream else ["-u"]), remote_name,
                f"refs/heads/{branch}:refs/heads/{branch}"]  # fmt: skip
        if tags:
            args.append(f"{_RUN_TAGS}:{_RUN_TAGS}")
        proc = _git(root, *args)
        if proc.returncode != 0:
            rejected = any(ln.startswith("!") for ln in proc.stdout.splitlines())
            if rejected or "non-fast-forward" in proc.stderr or "fetch first" in proc.stderr:
                raise EvalLedgerError(
                    f"git push to {remote_name} was refused: it has commits this branch lacks",
                    "run `evalledger pull` first, then push again",
                )
            raise EvalLedgerError(f"git push to {remote_name} failed: {_last_line(proc)}")
        result.lines.append(_push_summary(remote_name, proc.stdout))
    if dvc:
        assert dvc_name is not None
        proc = _dvc(root, "push", "-r", dvc_name)
        if proc.returncode != 0:
            raise EvalLedgerError(f"dvc push to {dvc_name} failed: {_last_line(proc)}",
                                  "check the remote's path or credentials")  # fmt: skip
        result.lines.append(_dvc_summary("pushed to", dvc_name, proc))
    return result


def pull_ledger(
    project: Project,
    *,
    remote: str | None = None,
    dvc_remote: str | None = None,
    git: bool = True,
    dvc: bool = True,
) -> ShareResult:
    """``git pull --ff-only`` the current branch, then ``dvc pull`` its outputs."""
    root = project.root
    result = ShareResult()
    if git:
        branch = _branch(root, "pull into")
        remote_name = _git_remote(root, branch, remote)
        before = _git(root, "rev-parse", "-q", "--verify", "HEAD").stdout.strip()
        proc = _git(root, "pull", "--ff-only", "--quiet", remote_name, branch)
        if proc.returncode != 0:
            text = proc.stderr + proc.stdout
            if "Not possible to fast-forward" in text or "diverg" in text:
                raise EvalLedgerError(
                    f"{branch} and {remote_name}/{branch} have diverged",
                    f"merge or rebase with git (`git pull --rebase {remote_name} {branch}`), "
                    "then run `evalledger pull` again",
                )
            if "couldn't find remote ref" in text:
                raise EvalLedgerError(f"{remote_name} has no branch {branch!r}",
                                      "push it first with `evalledger push`")  # fmt: skip
            raise EvalLedgerError(f"git pull from {remote_name} failed: {_last_line(proc)}")
        after = _git(root, "rev-parse", "HEAD").stdout.strip()
        if before == after:
            result.lines.append(f"git: {branch} is up to date with {remote_name}")
        else:
            span = f"{before[:7]}..{after[:7]}" if before else after[:7]
            count = _git(root, "rev-list", "--count", span if before else after).stdout.strip()
            result.lines.append(f"git: pulled {count} commit(s) from {remote_name} ({span})")
    if dvc:
        # After the git pull: .dvc/config (and its remote) may just have arrived.
        dvc_name = _dvc_remote(root, dvc_remote)
        proc = _dvc(root, "pull", "-r", dvc_name)
        if proc.returncode != 0:
            raise EvalLedgerError(
                f"dvc pull from {dvc_name} failed: {_last_line(proc)}",
                "check the remote, or push from where the results were made",
            )
        result.lines.append(_dvc_summary("pulled from", dvc_name, proc))
    return result


def archive_execution(project: Project, ref: str, *, force: bool = False) -> ArchiveResult:
    """Tag the commit holding execution ``ref`` (any unique part of its ID) ``run/<id>``.

    The annotated tag's message is the execution's summary. Refuses an execution whose
    newest manifest is not committed, and an existing tag unless ``force``.
    """
    from evalledger.ledger.history import Ledger

    with Ledger(project) as ledger:
        info = ledger.find_execution(ref)
        if info.commit is None:
            raise ConfigError(
                f"{info.execution_id} exists only uncommitted in the workspace",
                f"commit it first (`git add runs/{info.execution_id} metrics dvc.lock && "
                "git commit`)",
            )
        manifest = ledger.manifest(info)
    tag = f"{TAG_PREFIX}{info.execution_id}"
    existing = _git(project.root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}")
    replaced = existing.returncode == 0
    if replaced and not force:
        raise ConfigError(f"tag {tag} already exists (on {existing.stdout.strip()[:7]})",
                          "pass --force to move it")  # fmt: skip
    message = f"{info.execution_id}: {manifest.status.value} ({manifest.summary()})"
    args = ["tag", "-a", *(["-f"] if replaced else []), "-m", message, tag, info.commit]
    proc = _git(project.root, *args)
    if proc.returncode != 0:
        raise EvalLedgerError(f"git tag {tag} failed: {_last_line(proc)}")
    return ArchiveResult(tag, info.commit, message, replaced)
