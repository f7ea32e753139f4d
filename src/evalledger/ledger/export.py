"""Exporting executions (manifest, per-cell metrics and item scores) to JSON, and back.

An export is self-contained: ``evalledger import`` recreates the manifest and the cell
files in another project. Imports are checked in full before any file is written, and
every file is written atomically, so a bad export leaves the project as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.errors import ConfigError
from evalledger.ledger.listing import readable_manifests
from evalledger.ledger.scores import check_scores
from evalledger.manifest import dump_manifest, load_manifest
from evalledger.safeload import DamagedData, corrupt_file, load_json, read_bounded

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.ledger.history import Ledger
    from evalledger.manifest import ExecutionManifest
    from evalledger.project import Project

__all__ = ["EXPORT_FORMAT", "ImportResult", "export_executions", "import_executions"]

EXPORT_FORMAT = "evalledger-export"
EXPORT_VERSION = 1
#: The largest export ``import`` reads: exports carry every cell's item scores.
MAX_EXPORT_BYTES = 512 << 20


def export_executions(ledger: Ledger, refs: list[str] | None) -> dict[str, Any]:
    """Executions (all when ``refs`` is None) with their results, as JSON-ready data."""
    if refs is None:  # everything: a damaged manifest is left out with a warning
        pairs = readable_manifests(ledger, ledger.executions())
    else:  # named ones: each must be readable
        pairs = [(info, ledger.manifest(info)) for info in map(ledger.find_execution, refs)]
    out = []
    for info, manifest in pairs:
        home = ledger.home(info)
        results = ledger.results(info)
        owned = [k for k, v in results.items() if v is not None]
        scores = home.read("scores_text", [f"metrics/{k}.scores.csv" for k in owned],
                           lambda d: d.decode("utf-8"))  # fmt: skip
        cells = {
            k: {"metrics": results[k], "scores_csv": scores.get(f"metrics/{k}.scores.csv")}
            for k in owned
        }
        out.append({"manifest": manifest.model_dump(mode="json"), "commit": info.commit,
                     "cells": cells})  # fmt: skip
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
            "exported_at": datetime.now(UTC).isoformat(), "executions": out}  # fmt: skip


@dataclass
class ImportResult:
    """What an import wrote and skipped."""

    executions: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Cell files that already existed and were left as they were (no ``--force``)."""


def _check_scores(text: str, metrics: dict[str, Any], where: str) -> None:
    """An imported scores CSV must be whole: well formed, one row per item ``n`` counts."""
    try:
        rows = check_scores(text.encode("utf-8"))
    except DamagedData as exc:
        raise corrupt_file(f"{where}: scores_csv", exc, "export it again") from None
    n = metrics.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != rows:
        raise ConfigError(f"{where}: scores_csv has {rows} item rows but its metrics count n={n}")


def _check(data: Any, source: str) -> list[tuple[ExecutionManifest, dict[str, Any]]]:
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ConfigError(f"{source} is not an evalledger export",
                          "create one with `evalledger export`")  # fmt: skip
    if data.get("version") != EXPORT_VERSION:
        version = data.get("version")
        raise ConfigError(
            f"{source} has export version {version!r}; this evalledger reads {EXPORT_VERSION}",
            "upgrade evalledger",
        )
    entries = data.get("executions")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'executions' must be a list")
    checked = []
    for i, entry in enumerate(entries):
        where = f"{source}: executions[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not an object")
        manifest = load_manifest(entry.get("manifest"), source=f"{where}.manifest")
        cells = entry.get("cells") or {}
        if not isinstance(cells, dict):
            raise ConfigError(f"{where}.cells must be an object")
        # load_manifest checked every cell of the manifest (names, keys matching axes), the
        # ones this export carries files for and the others alike.
        for key, cell in cells.items():
            if key not in manifest.cells:
                raise ConfigError(f"{where}: cell {key!r} is not a cell of its manifest")
            if not isinstance(cell, dict) or not isinstance(cell.get("metrics"), dict):
                raise ConfigError(f"{where}: cell {key!r} has no metrics object")
            scores = cell.get("scores_csv")
            if not isinstance(scores, str | None):
                raise ConfigError(f"{where}: cell {key!r}: scores_csv must be text")
            if scores is not None:
                _check_scores(scores, cell["metrics"], f"{where}: cell {key!r}")
        checked.append((manifest, cells))
    return checked


def import_executions(project: Project, path: Path, *, force: bool = False) -> ImportResult:
    """Recreate exported executions and their cell files in ``project``.

    An execution that already exists is an error unless ``force``; existing cell files
    are kept unless ``force`` (the workspace may hold newer results for those cells).
    """
    try:
        raw = read_bounded(path, MAX_EXPORT_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    data = load_json(raw, str(path), max_bytes=MAX_EXPORT_BYTES,
                     hint="export it again with `evalledger export`")  # fmt: skip
    checked = _check(data, path.name)
    if not force:
        for manifest, _ in checked:
            if (project.runs_dir / manifest.execution_id).exists():
                raise ConfigError(f"execution {manifest.execution_id} already exists",
                                  "pass --force to overwrite it")  # fmt: skip
    # A cell several imported executions ran gets the newest one's files (as owners() picks).
    newest: dict[str, tuple[datetime, str]] = {}
    for manifest, cells in checked:
        for key in cells:
            when = (manifest.cells[key].finished_at or manifest.updated_at, manifest.execution_id)
            newest[key] = max(newest.get(key, when), when)
    result = ImportResult()
    for manifest, cells in checked:
        for key, cell in cells.items():
            if newest[key][1] != manifest.execution_id:
                continue
            files = {f"metrics/{key}.json": json.dumps(cell["metrics"], indent=2) + "\n"}
            if cell.get("scores_csv") is not None:
                files[f"metrics/{key}.scores.csv"] = cell["scores_csv"]
            for rel, text in files.items():
                target = project.path(rel)
                if target.exists() and not force:
                    result.kept.append(rel)
                    continue
                atomic_write(target, text)
                result.written.append(rel)
        rel = f"runs/{manifest.execution_id}/manifest.yaml"
        atomic_write(project.path(rel), dump_manifest(manifest))
        result.written.append(rel)
        result.executions.append(manifest.execution_id)
    return result
