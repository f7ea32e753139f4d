"""Executions across history: listing, one execution in full, and ledger statistics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.manifest import CellStatus

if TYPE_CHECKING:
    from evalledger.history import ExecutionInfo, Ledger
    from evalledger.manifest import ExecutionManifest

__all__ = ["ExecutionRow", "ExecutionView", "ledger_stats", "list_executions", "show_execution"]


@dataclass
class ExecutionRow:
    """One execution in a listing."""

    info: ExecutionInfo
    manifest: ExecutionManifest

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        counts = self.manifest.counts()
        return {
            "execution_id": self.info.execution_id,
            "created_at": self.manifest.created_at.isoformat(),
            "status": self.manifest.status.value,
            "cells": len(self.manifest.cells),
            "completed": counts["completed"],
            "failed": counts["failed"],
            "commit": self.info.commit,
            "in_workspace": self.info.in_workspace,
            "command": self.manifest.command,
            "overrides": self.manifest.overrides,
        }


def list_executions(ledger: Ledger, limit: int | None = None) -> list[ExecutionRow]:
    """Executions in HEAD's history and the working tree, newest first."""
    rows = [ExecutionRow(info, ledger.manifest(info)) for info in ledger.executions()]
    # IDs made within one second share their time part, and their suffix is random.
    rows.sort(key=lambda r: (r.manifest.created_at, r.info.execution_id), reverse=True)
    return rows if limit is None else rows[:limit]


@dataclass
class ExecutionView:
    """An execution with its configuration, provenance and per-cell results."""

    info: ExecutionInfo
    manifest: ExecutionManifest
    revision: str
    """Where its results were read: a short commit or ``workspace``."""
    results: dict[str, dict[str, Any] | None]
    """Cell key -> metrics; None where a later execution overwrote the cell."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the manifest, where it was read, and the results."""
        return {
            "execution_id": self.info.execution_id, "commit": self.info.commit,
            "first_commit": self.info.first_commit, "revision": self.revision,
            "manifest": self.manifest.model_dump(mode="json"), "results": self.results,
        }  # fmt: skip


def show_execution(ledger: Ledger, ref: str) -> ExecutionView:
    """One execution by ID (or a unique part of one), with its results."""
    info = ledger.find_execution(ref)
    return ExecutionView(info, ledger.manifest(info), ledger.home(info).label,
                         ledger.results(info))  # fmt: skip


def _folder_size(path: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            try:
                size += (Path(dirpath) / name).stat().st_size
                files += 1
            except OSError:
                pass
    return files, size


def ledger_stats(ledger: Ledger) -> dict[str, Any]:
    """Counts and sizes: executions, cells, items, files on disk, ledger commits."""
    rows = list_executions(ledger)
    statuses: dict[str, int] = {}
    cell_status: dict[str, int] = {}
    items = errored = 0
    for row in rows:
        statuses[row.manifest.status.value] = statuses.get(row.manifest.status.value, 0) + 1
        for rec in row.manifest.cells.values():
            cell_status[rec.status.value] = cell_status.get(rec.status.value, 0) + 1
            if rec.status == CellStatus.COMPLETED:
                items += rec.examples_completed
                errored += rec.examples_errored
    ws = ledger.snapshot()
    root = ledger.project.root
    sizes = {}
    for name in ("runs", "metrics", "predictions", ".dvc/cache", ".evalledger/cache"):
        files, size = _folder_size(root / name)
        sizes[name] = {"files": files, "bytes": size}
    changes = ledger.git.log_changes(["runs", "metrics"])
    commits = {c.commit for c in changes if not c.path.endswith(".gitkeep")}
    return {
        "executions": len(rows), "executions_by_status": statuses,
        "cell_runs": sum(cell_status.values()), "cell_runs_by_status": cell_status,
        "items_scored": items, "items_errored": errored,
        "cells_in_workspace": len(ws.cells),
        "models": len({c.axes.get("model") for c in ws.cells.values()}),
        "benchmarks": len({c.axes.get("benchmark") for c in ws.cells.values()}),
        "ledger_commits": len(commits), "sizes": sizes,
    }  # fmt: skip
