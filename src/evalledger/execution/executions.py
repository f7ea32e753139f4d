"""The executions of a project: ``runs/<execution id>/manifest.yaml``."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from evalledger.errors import NothingToResumeError, UnknownExecutionError
from evalledger.manifest import EXECUTION_ID_RE, ExecutionManifest, read_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.project import Project

__all__ = [
    "execution_ids",
    "latest_execution_id",
    "load_execution",
    "manifest_path",
    "resolve_execution_id",
]


def manifest_path(project: Project, execution_id: str) -> Path:
    """Where an execution's manifest lives."""
    return project.runs_dir / execution_id / "manifest.yaml"


def execution_ids(project: Project) -> list[str]:
    """Every execution ID in the workspace, oldest first (IDs start with their time)."""
    if not project.runs_dir.is_dir():
        return []
    return sorted(
        p.name for p in project.runs_dir.iterdir()
        if EXECUTION_ID_RE.match(p.name) and (p / "manifest.yaml").is_file()
    )  # fmt: skip


def latest_execution_id(project: Project) -> str | None:
    """The newest execution; ties within one second are broken by ``created_at``."""
    ids = execution_ids(project)
    if not ids:
        return None
    second = ids[-1][: len("exec_YYYY-MM-DD_HHMMSS")]
    same = [i for i in ids if i.startswith(second)]
    if len(same) == 1:
        return same[0]
    return max(same, key=lambda i: read_manifest(manifest_path(project, i)).created_at)


def resolve_execution_id(project: Project, ref: str | None) -> str:
    """An execution ID from a full ID or a unique part of one, or None for the latest."""
    if ref is None:
        latest = latest_execution_id(project)
        if latest is None:
            raise NothingToResumeError(
                "no execution found in runs/", "start one with `evalledger run`"
            )
        return latest
    ids = execution_ids(project)
    if ref in ids:
        return ref
    matches = [i for i in ids if ref in i]  # a prefix, the hex suffix or the time part
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UnknownExecutionError(
            f"execution {ref!r} is ambiguous; it matches {', '.join(matches[:5])}"
        )
    close = difflib.get_close_matches(ref, ids, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `evalledger status` or runs/"
    raise UnknownExecutionError(f"unknown execution {ref!r}", hint)


def load_execution(project: Project, ref: str | None) -> ExecutionManifest:
    """Load an execution by reference (see :func:`resolve_execution_id`)."""
    return read_manifest(manifest_path(project, resolve_execution_id(project, ref)))
