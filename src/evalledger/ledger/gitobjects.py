"""Reading files at any git revision straight from git objects, without a checkout.

Everything goes through git's plumbing commands: ``rev-parse`` to resolve a revision,
``ls-tree`` to list the files of a commit with their blob ids, one ``cat-file --batch``
per batch of blobs, and one ``log --raw`` walk for the history of many files at once. The
working tree and the index are never written, so ``git status`` is the same before and
after any read.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalledger.errors import EvalLedgerError, UnknownRevisionError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["WORKSPACE", "Change", "ExperimentRef", "GitObjects", "blob_id"]

#: The revision name of the working tree (as in ``dvc metrics diff``).
WORKSPACE = "workspace"


def blob_id(data: bytes) -> str:
    """The id git gives a blob with these bytes (so workspace files share the cache)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class Change:
    """One file changed by one commit, from ``git log --raw``."""

    commit: str
    time: int
    path: str
    old: str | None
    new: str | None
    """The blob id after the commit; None when the commit deleted the file."""
    source: str = ""
    """The ref the walk reached the commit from (``refs/heads/x``), with ``source=True``."""


@dataclass(frozen=True)
class ExperimentRef:
    """A DVC experiment: the ref ``refs/exps/<ba>/<seline sha>/<name>`` and its commit."""

    name: str
    ref: str
    commit: str
    baseline: str
    """The commit the experiment was run from (the ref's two middle parts)."""
    time: int
    """The experiment commit's committer time (Unix seconds)."""


#: Bytes asked of each read of a working-tree file (most ledger files are smaller).
_READ_BLOCK = 1 << 16
#: Read only, not inherited, and on Windows without newline translation.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

#: DVC's own refs under ``refs/exps/`` (``exec/EXEC_HEAD``, ``celery/...``) are not
#: experiments: only ``refs/exps/<2 hex>/<38 hex>/<name>`` are.
_EXP_REF_PARTS = 5


class GitObjects:
    """Plumbing reads of one repository."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved: dict[str, str] = {}

    def _git(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never touch the index on reads
        try:
            proc = subprocess.run(
                ["git", *args], cwd=self.root, input=input, capture_output=True, env=env
            )
        except FileNotFoundError:
            raise EvalLedgerError("git is not installed", "install git and retry") from None
        if check and proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise EvalLedgerError(f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
        return proc.stdout

    def _git_together(self, *commands: list[str]) -> list[bytes]:
        """The output of read-only git commands run side by side (as ``check=False``)."""
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        try:
            procs = [
                subprocess.Popen(["git", *args], cwd=self.root, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                for args in commands
            ]  # fmt: skip
        except FileNotFoundError:
            raise EvalLedgerError("git is not installed", "install git and retry") from None
        return [proc.communicate()[0] for proc in procs]  # each drains its own pipe

    @property
    def has_commits(self) -> bool:
        """Whether HEAD points at a commit."""
        return bool(self._git("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False))

    def resolve(self, rev: str) -> str:
        """The commit SHA of a revision: SHA, branch, tag, ``HEAD~3`` or DVC experiment name."""
        if rev in self._resolved:
            return self._resolved[rev]
        sha = ""
        if not rev.startswith("-"):
            out = self._git("rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False)
            sha = out.decode().strip()
        if not sha and rev != WORKSPACE and not self.has_commits:
            from evalledger.gitinfo import no_commits_error

            raise no_commits_error(f"no revision {rev!r} yet")
        if not sha:
            sha = self._resolve_experiment(rev)
        self._resolved[rev] = sha
        return sha

    def _refs(self, *patterns: str) -> list[str]:
        out = self._git("for-each-ref", "--format=%(refname)", *patterns, check=False)
        return out.decode().split()

    def experiment_refs(self) -> dict[str, str]:
        """DVC experiments: name -> ref (``refs/exps/<baseline>/<name>``)."""
        return {ref.rsplit("/", 1)[-1]: ref for ref in self._refs("refs/exps")}

    def experiments(self) -> list[ExperimentRef]:
        """Every DVC experiment ref with its commit, baseline and time; newest first."""
        fmt = "%(refname)%00%(objectname)%00%(committerdate:unix)"
        out = self._git("for-each-ref", f"--format={fmt}", "refs/exps", check=False)
        found: list[ExperimentRef] = []
        for line in out.decode(errors="replace").splitlines():
            ref, _, rest = line.partition("\0")
            commit, _, when = rest.partition("\0")
            parts = ref.split("/")
            baseline = "".join(parts[2:4])
            if len(parts) != _EXP_REF_PARTS or len(baseline) != 40 or not _is_hex(baseline):
                continue
            found.append(ExperimentRef(parts[4], ref, commit, baseline, int(when or 0)))
        found.sort(key=lambda e: (e.time, e.name), reverse=True)
        return found

    def _resolve_experiment(self, rev: str) -> str:
        exps = [ref for ref in self._refs("refs/exps") if ref.rsplit("/", 1)[-1] == rev]
        if len(exps) == 1:
            return self._git("rev-parse", exps[0]).decode().strip()
        names = [r.split("/", 2)[-1] for r in self._refs("refs/heads", "refs/tags")]
        names += [r.rsplit("/", 1)[-1] for r in self._refs("refs/exps")]
        candidates = sorted({*names, "HEAD", WORKSPACE})
        close = difflib.get_close_matches(rev, candidates, n=3, cutoff=0.5)
        if len(exps) > 1:
            raise UnknownRevisionError(
                f"revision {rev!r} names {len(exps)} DVC experiments",
                f"use a full ref, e.g. {exps[0]}",
            )
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else "use a commit, branch, tag, HEAD~N, a DVC experiment name or 'workspace'"
        )
        raise UnknownRevisionError(f"unknown revision {rev!r}", hint)

    def ls_tree(self, commit: str, paths: Iterable[str]) -> dict[str, str]:
        """Path -> blob id of the files under ``paths`` in a commit."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths)
        files: dict[str, str] = {}
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == b"blob":
                files[path.decode()] = parts[2].decode()
        return files

    def read_blobs(self, oids: Iterable[str]) -> dict[str, bytes]:
        """The contents of many blobs through one ``git cat-file --batch``."""
        wanted = list(dict.fromkeys(oids))
        if not wanted:
            return {}
        out = self._git("cat-file", "--batch", input="\n".join(wanted).encode() + b"\n")
        blobs: dict[str, bytes] = {}
        pos = 0
        for oid in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) < 3 or header[1] == b"missing":
                continue
            size = int(header[2])
            blobs[oid] = out[pos : pos + size]
            pos += size + 1
        return blobs

    def log_changes(
        self, paths: Iterable[str], revs: Iterable[str] = ("HEAD",), *, source: bool = False
    ) -> list[Change]:
        """Every change to files under ``paths`` reachable from ``revs``: one history walk.

        Newest first. Merge commits are shown against their first parent. ``revs`` may
        include ``--branches``, ``--tags`` and ``--remotes``; with ``source`` each change
        names the ref its commit was reached from.
        """
        args = ["log", "--raw", "--no-abbrev", "--no-renames", "-m", "--first-parent"]
        fmt = "--format=%x01%H %ct %S" if source else "--format=%x01%H %ct"
        args += [fmt, *revs, "--", *paths]
        out = self._git(*args, check=False).decode(errors="replace")
        changes: list[Change] = []
        commit, when, ref = "", 0, ""
        for line in out.splitlines():
            if line.startswith("\x01"):
                commit, _, rest = line[1:].partition(" ")
                ts, _, ref = rest.partition(" ")
                when = int(ts or 0)
            elif line.startswith(":"):
                meta, _, path = line.partition("\t")
                parts = meta.split()
                old, new = parts[2], parts[3]
                zero = "0" * len(old)
                changes.append(
                    Change(commit, when, path, None if old == zero else old,
                           None if new == zero else new, ref)
                )  # fmt: skip
        return changes

    def workspace_files(self, paths: Iterable[str]) -> dict[str, str]:
        """Path -> blob id of the working tree's files under ``paths``.

        Files whose index entry is current keep the index's id without being read;
        modified and untracked ones are read and hashed, deleted ones are left out.
        """
        paths = list(paths)
        files: dict[str, str] = {}
        out, changed, others = self._git_together(  # three reads of the index at once
            ["ls-files", "-s", "-z", "--", *paths],
            ["diff-files", "--name-only", "-z", "--", *paths],
            ["ls-files", "--others", "--exclude-standard", "-z", "--", *paths],
        )
        for entry in out.split(b"\0"):
            if entry:
                meta, _, path = entry.partition(b"\t")
                files[path.decode()] = meta.split()[1].decode()
        stale = [p.decode() for p in (changed + b"\0" + others).split(b"\0") if p]
        for rel in stale:
            try:
                files[rel] = blob_id((self.root / rel).read_bytes())
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                files.pop(rel, None)
        return files

    def read_workspace(self, rel: str) -> bytes | None:
        """A working-tree file's bytes, or None if it does not exist."""
        # A str path and os.read, not pathlib's nor a file object: a leaderboard reads two
        # files a cell, and a buffered file object cost twice the syscalls' time.
        try:
            fd = os.open(f"{self.root}{os.sep}{rel}", _OPEN_FLAGS)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            data = os.read(fd, _READ_BLOCK)
            if not data:
                return data
            parts = [data]
            while block := os.read(fd, _READ_BLOCK):
                parts.append(block)
            return data if len(parts) == 1 else b"".join(parts)
        except IsADirectoryError:  # os.open opens a folder; reading it fails
            return None
        finally:
            os.close(fd)

    def commit_details(self, commits: Iterable[str]) -> dict[str, tuple[int, str, str]]:
        """SHA -> (commit time, author name, subject) for many commits at once."""
        shas = list(dict.fromkeys(commits))
        if not shas:
            return {}
        out = self._git(
            "log", "--no-walk=unsorted", "--format=%H%x00%ct%x00%an%x00%s", *shas, check=False
        ).decode(errors="replace")
        info: dict[str, tuple[int, str, str]] = {}
        for line in out.splitlines():
            parts = line.split("\x00")
            if len(parts) == 4 and parts[1].isdigit():
                info[parts[0]] = (int(parts[1]), parts[2], parts[3])
        return info
