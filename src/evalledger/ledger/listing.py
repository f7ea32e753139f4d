"""Executions across history: listing, one execution in full, and ledger statistics."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.errors import CorruptFileError, EvalLedgerError
from evalledger.heartbeat_state import liveness
from evalledger.manifest import CellStatus
from evalledger.safeload import warn_skipped

if TYPE_CHECKING:
    from collections.abc import Iterable

    from evalledger.ledger.gitobjects import ExperimentRef
    from evalledger.ledger.history import ExecutionInfo, Ledger
    from evalledger.manifest import ExecutionManifest

__all__ = [
    "ExecutionRow",
    "ExecutionView",
    "ExperimentRow",
    "ledger_stats",
    "list_executions",
    "list_experiments",
    "readable_manifests",
    "show_execution",
]


@dataclass
class ExecutionRow:
    """One execution in a listing."""

    info: ExecutionInfo
    manifest: ExecutionManifest
    status: str = ""
    """The recorded status; for an ``in_progress`` tracked run, whether it is ``running``,
    ``crashed`` or ``stale`` (:func:`evalledger.heartbeat_state.liveness`)."""

    def __post_init__(self) -> None:
        self.status = self.status or self.manifest.status.value

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        counts = self.manifest.counts()
        return {
            "kind": "experiment" if self.manifest.kind == "experiment" else "execution",
            "execution_id": self.info.execution_id,
            "created_at": self.manifest.created_at.isoformat(),
            "status": self.status,
            "recorded_status": self.manifest.status.value,
            "cells": len(self.manifest.cells),
            "completed": counts["completed"],
            "failed": counts["failed"],
            "commit": self.info.commit,
            "ref": self.info.ref,
            "in_workspace": self.info.in_workspace,
            "command": self.manifest.command,
            "overrides": self.manifest.overrides,
        }


def readable_manifests(
    ledger: Ledger, infos: Iterable[ExecutionInfo]
) -> list[tuple[ExecutionInfo, ExecutionManifest]]:
    """The manifests of ``infos``; each damaged one is left out with a warning naming it.

    One bad file (a collaborator's commit, a damaged disk) must not hide, or block,
    every other execution.
    """
    out = []
    for info in infos:
        try:
            out.append((info, ledger.manifest(info)))
        except CorruptFileError as exc:
            warn_skipped(exc, "that execution is left out")
    return out


def list_executions(
    ledger: Ledger, limit: int | None = None, *, all_refs: bool = False
) -> list[ExecutionRow]:
    """Executions in HEAD's history and the working tree, newest first.

    With ``all_refs``, also those committed only on other branches, tags or
    remote-tracking branches. A damaged manifest is left out with a warning.
    """
    infos = ledger.executions(all_refs=all_refs)
    found = readable_manifests(ledger, infos)
    rows = [ExecutionRow(info, m, liveness(ledger.project, m)) for info, m in found]
    # IDs made within one second share their time part, and their suffix is random.
    rows.sort(key=lambda r: (r.manifest.created_at, r.info.execution_id), reverse=True)
    return rows if limit is None else rows[:limit]


@dataclass
class ExperimentRow:
    """One DVC experiment (a ``refs/exps/...`` ref) in a listing."""

    exp: ExperimentRef
    cells: int
    """Cells with a metrics file in the experiment's commit."""
    changed: dict[str, tuple[Any, Any]] | None
    """Flattened params.yaml key -> (baseline value, experiment value) for the keys that
    differ; None when the baseline commit is not in this repository."""
    executions: list[str] = field(default_factory=list)
    """Execution manifests the experiment's commit added to its baseline's."""

    @property
    def created_at(self) -> datetime:
        """The experiment commit's time, UTC."""
        return datetime.fromtimestamp(self.exp.time, UTC)

    def changed_text(self) -> str:
        """``key=value`` for each changed param, like the ``-S`` that made it."""
        if self.changed is None:
            return "? (baseline not in this repository)"
        text = ", ".join(f"{k}={_param_text(new)}" for k, (_, new) in self.changed.items())
        return text or "(same as baseline)"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        changed = None
        if self.changed is not None:
            changed = {k: {"old": old, "new": new} for k, (old, new) in self.changed.items()}
        return {
            "kind": "dvc-experiment", "name": self.exp.name, "ref": self.exp.ref,
            "commit": self.exp.commit, "baseline": self.exp.baseline,
            "created_at": self.created_at.isoformat(), "cells": self.cells,
            "params": changed, "executions": self.executions,
        }  # fmt: skip


def _param_text(value: Any) -> str:
    import json

    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def list_experiments(ledger: Ledger, limit: int | None = None) -> list[ExperimentRow]:
    """DVC experiments (``refs/exps/``), newest first, with what each changed in params.yaml."""
    from evalledger.metrics import flatten

    rows = []
    for exp in ledger.git.experiments()[:limit]:
        snap = ledger.snapshot(exp.ref)
        changed: dict[str, tuple[Any, Any]] | None = None
        executions = list(snap.manifest_ids)
        try:
            base = ledger.snapshot(exp.baseline)
        except EvalLedgerError:  # the baseline was not fetched with the experiment
            pass
        else:
            executions = [i for i in executions if i not in set(base.manifest_ids)]
            try:
                old, new = flatten(base.params), flatten(snap.params)
            except CorruptFileError as exc:  # the rest of the row stands without them
                warn_skipped(exc, "the experiment's params are left out")
            else:
                changed = {
                    k: (old.get(k), new.get(k))
                    for k in dict.fromkeys([*old, *new])
                    if old.get(k) != new.get(k)
                }
        rows.append(ExperimentRow(exp, len(snap.cells), changed, executions))
    return rows


@dataclass
class ExecutionView:
    """An execution with its configuration, provenance and per-cell results."""

    info: ExecutionInfo
    manifest: ExecutionManifest
    revision: str
    """Where its results were read: a short commit or ``workspace``."""
    results: dict[str, dict[str, Any] | None]
    """Cell key -> metrics; None where a later execution overwrote the cell."""
    status: str = ""
    """As :attr:`ExecutionRow.status`: ``crashed`` for a killed tracked run."""

    def __post_init__(self) -> None:
        self.status = self.status or self.manifest.status.value

    def agent_rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(cell, agent, its metrics)`` for each agent of each cell that has agents."""
        rows = []
        for key, metrics in self.results.items():
            agents = metrics.get("agents") if metrics else None
            if isinstance(agents, dict):
                rows += [(key, name, m) for name, m in agents.items() if isinstance(m, dict)]
        return rows

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the manifest, where it was read, and the results."""
        return {
            "execution_id": self.info.execution_id, "status": self.status,
            "commit": self.info.commit,
            "first_commit": self.info.first_commit, "revision": self.revision,
            "manifest": self.manifest.model_dump(mode="json"), "results": self.results,
        }  # fmt: skip


def show_execution(ledger: Ledger, ref: str) -> ExecutionView:
    """One execution by ID (or a unique part of one), with its results."""
    info = ledger.find_execution(ref)
    manifest = ledger.manifest(info)
    return ExecutionView(info, manifest, ledger.home(info).label, ledger.results(info),
                         liveness(ledger.project, manifest))  # fmt: skip


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
