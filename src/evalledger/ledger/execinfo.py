"""Where an execution's manifest lives: :class:`ExecutionInfo`.

``ledger/history.py`` indexes them; ``ledger/resolve.py`` finds one by ID or name.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalledger.ledger.gitobjects import WORKSPACE

__all__ = ["ExecutionInfo"]


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
