"""Whether a cell's results at a revision can be trusted as they stand.

A cell's metrics can be there and still mislead: some of its items errored (its
accuracy is over the rest), a later attempt failed or was interrupted (the metrics are
an older run's), or it is stale: params.yaml changed after it ran, or its files are not
the ones dvc.lock recorded, which is what ``dvc status`` reports. All of it is read from
the revision's own files (metrics, manifests, params.yaml, dvc.lock), without DVC.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalledger.errors import EvalLedgerError
from evalledger.ledger.views import manifest_views
from evalledger.matrix import Cell, expand, stage_params
from evalledger.metrics import as_number
from evalledger.params import parse_spec
from evalledger.safeload import MAX_DVC_FILE_BYTES, DamagedData, parse_yaml

if TYPE_CHECKING:
    from datetime import datetime

    from evalledger.ledger.history import Snapshot
    from evalledger.manifestview import ManifestView

__all__ = ["CellHealth", "cell_health", "lock_entries"]

LOCK = "dvc.lock"


@dataclass(frozen=True)
class CellHealth:
    """What stands against trusting one cell's results at a revision."""

    key: str
    n: int | None = None
    """Items in the cell (errored ones included), from its metrics."""
    errors: int = 0
    """Items whose model call failed; the cell's accuracies leave them out."""
    failed: str | None = None
    """The error of an attempt that failed after the results were written (or with none)."""
    incomplete: str | None = None
    """Why the results are partial: an attempt interrupted after them, or none finished."""
    stale: str | None = None
    """Why ``dvc status`` would call the cell changed (params, or files not as locked)."""
    has_results: bool = True

    @property
    def error_rate(self) -> float | None:
        """Errored share of the items, when the metrics say how many there are."""
        return self.errors / self.n if self.n else None

    @property
    def flags(self) -> list[str]:
        """``failed``, ``stale``, ``incomplete``: the markers a leaderboard shows."""
        found = (("failed", self.failed), ("stale", self.stale), ("incomplete", self.incomplete))
        return [name for name, why in found if why]

    @property
    def trusted(self) -> bool:
        """No errored item and no marker: what ``--strict`` keeps."""
        return not self.flags and not self.errors


def cell_health(snap: Snapshot, keys: list[str] | None = None) -> dict[str, CellHealth]:
    """Cell key -> its health at a revision.

    With ``keys``, those cells; without, every cell with results plus every cell of the
    matrix that an execution tried and never completed. Every cell's health is worked
    out once per snapshot: a report's leaderboard and heat-map both ask.
    """
    if keys is None and "health" in snap.derived:
        return dict(snap.derived["health"])
    with_results = list(snap.cells) if keys is None else [k for k in keys if k in snap.cells]
    metrics = snap.metrics(with_results)
    manifests = list(manifest_views(snap).values())
    attempts, completed = _latest_attempts(manifests), _completed(manifests)
    matrix = _matrix_cells(snap)
    wanted = list(with_results)
    if keys is None:
        wanted += [k for k in attempts if k not in snap.cells and k in matrix]
    else:
        wanted += [k for k in keys if k not in snap.cells and k in attempts]
    locked = lock_entries(snap) if matrix else None
    in_git = [p for k in with_results if k in matrix for p in _in_git(k)]
    md5s = _md5s(snap, in_git) if locked is not None else {}  # only staleness asks
    out = {}
    for key in wanted:
        data = metrics.get(key, {})
        n, errors = as_number(data.get("n")), as_number(data.get("errors"))
        failed = incomplete = None
        attempt = attempts.get(key)
        if attempt is not None:
            status, when, error = attempt
            done = completed.get(key)
            if done is None or when > done:
                if status == "failed":
                    failed = error or "failed"
                elif status in ("in_progress", "pending"):
                    incomplete = f"an attempt was left {status}"
        has_results = key in snap.cells
        if not has_results and not (failed or incomplete):
            continue  # results removed on purpose: a diff lists the cell as removed
        stale = None
        if has_results and key in matrix and locked is not None:
            stale = _stale_reason(snap, matrix[key], locked, md5s)
        out[key] = CellHealth(
            key, int(n) if n is not None else None, int(errors or 0), failed, incomplete, stale,
            has_results,
        )  # fmt: skip
    if keys is None:
        snap.derived["health"] = out
    return dict(out)


def _completed(manifests: list[ManifestView]) -> dict[str, datetime]:
    """Cell key -> when the run that wrote its current results finished."""
    done: dict[str, datetime] = {}
    for manifest in manifests:
        for key, rec in manifest.cells.items():
            if rec.status == "completed":
                when = rec.finished_at or manifest.updated_at
                if key not in done or when > done[key]:
                    done[key] = when
    return done


def _latest_attempts(
    manifests: list[ManifestView],
) -> dict[str, tuple[str, datetime, str | None]]:
    """Cell key -> (status, when, error) of its latest attempt in any matrix execution."""
    latest: dict[str, tuple[str, datetime, str | None]] = {}
    for manifest in manifests:
        if manifest.kind != "matrix":
            continue
        for key, rec in manifest.cells.items():
            if rec.status == "pending" and not rec.attempts:
                continue  # selected but never started: no claim about the results
            when = rec.finished_at or rec.started_at or manifest.updated_at
            if key not in latest or when >= latest[key][1]:
                latest[key] = (rec.status, when, rec.error)
    return latest


def _matrix_cells(snap: Snapshot) -> dict[str, tuple[Any, Cell]]:
    """Cell key -> (spec, cell) for the matrix of params.yaml at the revision."""
    try:
        spec = parse_spec(snap.params)
    except EvalLedgerError:  # no or unusable params.yaml: no claim about staleness
        return {}
    return {c.key: (spec, c) for c in expand(spec)}


def _parse_lock(data: bytes) -> dict[str, Any]:
    """dvc.lock's stages, reduced to what staleness needs (small enough to cache)."""
    doc = parse_yaml(data, max_bytes=MAX_DVC_FILE_BYTES)
    if not isinstance(doc, dict) or not isinstance(doc.get("stages", {}), dict):
        raise DamagedData("{source} is not a dvc.lock: it has no `stages` mapping")
    stages: dict[str, Any] = {}
    for name, entry in (doc.get("stages") or {}).items():
        if not isinstance(entry, dict):
            continue
        params = entry.get("params")
        recorded = params.get("params.yaml") if isinstance(params, dict) else None
        outs = entry.get("outs")
        md5s = {str(o.get("path")): o.get("md5") for o in outs if isinstance(o, dict)} if (
            isinstance(outs, list)) else {}  # fmt: skip
        # A damaged entry records nothing usable: the cell reads as stale, as DVC says.
        stages[str(name)] = {"params": recorded if isinstance(recorded, dict) else {},
                             "outs": md5s}  # fmt: skip
    return stages


def lock_entries(snap: Snapshot) -> dict[str, Any] | None:
    """The revision's dvc.lock stages; None when it has none (nothing to compare with)."""
    try:
        found = snap.read("dvc.lock", [LOCK], _parse_lock, skip_damaged=True)
    except EvalLedgerError:
        return None
    return found.get(LOCK)


def _in_git(key: str) -> tuple[str, str]:
    return f"metrics/{key}.json", f"metrics/{key}.scores.csv"


def _md5s(snap: Snapshot, paths: list[str]) -> dict[str, str]:
    return snap.read("md5", paths, lambda data: hashlib.md5(data).hexdigest())


def _stale_reason(
    snap: Snapshot, where: tuple[Any, Cell], locked: dict[str, Any], md5s: dict[str, str]
) -> str | None:
    spec, cell = where
    entry = locked.get(cell.stage)
    if entry is None:
        return "not recorded in dvc.lock"
    current = stage_params(spec, cell)
    recorded = entry["params"]
    changed = sorted(k for k in {*current, *recorded} if current.get(k) != recorded.get(k))
    if changed:
        return f"params changed since it ran: {', '.join(changed)}"
    for path in _in_git(cell.key):
        if path in snap.files and entry["outs"].get(path) != md5s.get(path):
            return f"{path} is not the file dvc.lock recorded"
    return None
