"""Where an execution's manifest lives: :class:`ExecutionInfo`, and their index.

``ledger/history.py`` indexes them; ``ledger/resolve.py`` finds one by ID or name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalledger.ledger.gitobjects import WORKSPACE
from evalledger.manifestview import EXECUTION_ID_RE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from evalledger.ledger.gitobjects import Change

__all__ = ["ExecutionInfo", "index_changes"]


@dataclass
class ExecutionInfo:
    """Where an execution's manifest lives in history and in the working tree."""

    execution_id: str
    oid: str
    """Blob id of the newest version of the manifest (workspace first)."""
    commit: str | None
    """The commit that last changed the manifest; None when the newest is uncommitted."""
    first_commit: str | None = None
    """The commit that added the manifest."""
    in_workspace: bool = False
    committed_time: int | None = None
    ref: str | None = None
    """The branch or tag holding it, for an execution not in HEAD's history."""

    @property
    def where(self) -> str:
        """``abc1234``, ``workspace`` (uncommitted), ``abc1234 (deleted)`` or ``abc1234 (on x)``."""
        if self.commit is None:
            return WORKSPACE
        if self.ref is not None:
            return f"{self.commit[:7]} (on {self.ref})"
        return self.commit[:7] + ("" if self.in_workspace else " (deleted)")


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/remotes/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def index_changes(changes: Iterable[Change]) -> dict[str, ExecutionInfo]:
    """Execution ID -> where its newest manifest is, from a newest-first walk of runs/."""
    infos: dict[str, ExecutionInfo] = {}
    for change in changes:
        parts = change.path.split("/")
        if len(parts) != 3 or parts[2] != "manifest.yaml" or not EXECUTION_ID_RE.match(parts[1]):
            continue
        info = infos.get(parts[1])
        if change.new is not None and info is None:
            infos[parts[1]] = info = ExecutionInfo(
                parts[1], change.new, change.commit, committed_time=change.time,
                ref=_short_ref(change.source) if change.source else None,
            )  # fmt: skip
        if info is not None and change.new is not None:
            info.first_commit = change.commit  # older changes come later
    return infos
