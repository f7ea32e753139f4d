"""Finding cells evaluated more than once with the same configuration, data and code.

A cell's duplicate key is :func:`evalledger.manifest.cell_fingerprint` of its config
hash, its benchmark data hash and the project's code hash. Manifests written before the
code hash existed (schema < 3) use their git commit as the code, so they match only
runs of the very same commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalledger.ledger.listing import readable_manifests
from evalledger.manifest import CellStatus, ExecutionManifest, cell_fingerprint

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger

__all__ = [
    "DuplicateGroup",
    "code_key",
    "find_duplicates",
    "previous_runs",
    "record_fingerprint",
]


def code_key(manifest: ExecutionManifest) -> str | None:
    """The code an execution ran: its code hash, else its commit."""
    git = manifest.git
    return git.code_hash or (f"commit:{git.commit}" if git.commit else None)


def record_fingerprint(manifest: ExecutionManifest, key: str) -> str | None:
    """The fingerprint of a cell an execution completed; None if it did not complete it.

    What "already evaluated with the same configuration, data and code" compares: the
    duplicate warning, ``list --duplicates`` and reusing outputs from history.
    """
    rec = manifest.cells.get(key)
    if rec is None or rec.status != CellStatus.COMPLETED:
        return None
    return cell_fingerprint(rec.config_hash, rec.data_hash, code_key(manifest))


@dataclass
class DuplicateGroup:
    """Completed runs of one cell with one fingerprint."""

    fingerprint: str
    cell: str
    config_hash: str
    runs: list[str] = field(default_factory=list)
    """Execution IDs, oldest first."""


def _fingerprints(ledger: Ledger) -> dict[tuple[str, str], DuplicateGroup]:
    groups: dict[tuple[str, str], DuplicateGroup] = {}
    # Oldest first by creation time: IDs made within one second sort randomly. A damaged
    # manifest is left out with a warning: it must not block a new run.
    manifests = sorted((m for _, m in readable_manifests(ledger, ledger.executions())),
                       key=lambda m: m.created_at)  # fmt: skip
    for manifest in manifests:
        for key, rec in manifest.cells.items():
            fp = record_fingerprint(manifest, key)
            if fp is None:
                continue
            group = groups.setdefault((key, fp), DuplicateGroup(fp, key, rec.config_hash))
            group.runs.append(manifest.execution_id)
    return groups


def find_duplicates(ledger: Ledger) -> list[DuplicateGroup]:
    """Every cell that was completed more than once with the same fingerprint."""
    return [g for g in _fingerprints(ledger).values() if len(g.runs) > 1]


def previous_runs(ledger: Ledger, manifest: ExecutionManifest) -> dict[str, list[str]]:
    """Cell key -> earlier executions that completed it with the same fingerprint."""
    groups = _fingerprints(ledger)
    code = code_key(manifest)
    found: dict[str, list[str]] = {}
    for key, rec in manifest.cells.items():
        group = groups.get((key, cell_fingerprint(rec.config_hash, rec.data_hash, code)))
        earlier = [r for r in group.runs if r != manifest.execution_id] if group else []
        if earlier:
            found[key] = earlier
    return found
