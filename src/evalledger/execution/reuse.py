"""Outputs evaluated before: restore them from history instead of paying again.

When params.yaml goes back to a configuration evaluated in an older commit (``evalledger
revert``, a hand edit, a ``-S`` override), the cells it makes stale were evaluated
before. :func:`find_reusable` looks in HEAD's history, newest execution first, for a
completed record of each stale cell with the cell's fingerprint now (configuration,
benchmark data and code, compared as :func:`~evalledger.ledger.duplicates.
record_fingerprint` does for the duplicate warning), at a commit whose files are that
execution's: the metrics and scores in git, and the md5 dvc.lock recorded for the
predictions, which the local DVC cache or the default remote holds.
:func:`reuse_outputs` writes the three files back (each atomically, byte for byte) and
records the cells in dvc.lock, so they are up to date as ``dvc status`` sees them.

Everything is read from git objects, never a checkout; only the commits that changed
runs/ are walked (one ``git log``), and only when some cell is stale. ``--force`` skips
all of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalledger.errors import EvalLedgerError
from evalledger.manifest import cell_fingerprint
from evalledger.matrix import stage_params

if TYPE_CHECKING:
    from pathlib import Path

    from evalledger.ledger.execinfo import ExecutionInfo
    from evalledger.ledger.history import Ledger
    from evalledger.manifest import ExecutionManifest
    from evalledger.matrix import Cell
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = ["Reusable", "ReuseSearch", "find_reusable", "reuse_outputs"]

_MD5 = re.compile(r"[0-9a-f]{32}")
#: What :func:`_outputs_at` says when only the predictions are missing.
_NO_PREDICTIONS = "no predictions"


@dataclass(frozen=True)
class Reusable:
    """A cell's outputs from an earlier execution, ready to be written back."""

    cell: Cell
    execution_id: str
    commit: str
    """The commit whose metrics, scores and dvc.lock are the execution's."""
    items: int
    """Items in the cell: the model calls not made again."""
    metrics: bytes
    scores: bytes
    predictions_md5: str
    predictions: Path | None
    """The DVC object holding the predictions (local cache or folder remote); None when
    only a network remote may have them (fetched through DVC)."""


@dataclass
class ReuseSearch:
    """What :func:`find_reusable` found for the stale cells."""

    found: dict[str, Reusable] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Cell key -> an execution that evaluated it identically, whose predictions neither
    the DVC cache nor a remote holds (so the cell is evaluated again)."""


def find_reusable(project: Project, spec: MatrixSpec, cells: list[Cell]) -> ReuseSearch:
    """The ``cells`` (stale ones) whose outputs an identical earlier evaluation left.

    Read-only. Executions only in the working tree do not count (their outputs are the
    workspace's, which are stale), nor cells completed with errored items.
    """
    from evalledger.execution.cell import benchmark_data_hash, cell_context
    from evalledger.execution.outputs import object_sources
    from evalledger.gitinfo import code_hash
    from evalledger.ledger.history import Ledger

    search = ReuseSearch()
    if not cells:
        return search
    try:
        with Ledger(project) as ledger:
            infos = [i for i in ledger.executions() if i.commit is not None]
            if not infos:
                return search
            chashes = {c.key: cell_context(spec, c, project.root)[1] for c in cells}
            found = _same_configs(ledger, infos, chashes)
            if not found:  # no configuration evaluated before: no data or code to hash
                return search
            code = code_hash(project.root)
            data: dict[str, str | None] = {}
            wanted: dict[str, tuple[Cell, str]] = {}
            for cell in cells:
                bench = cell.values[1]
                if bench not in data:
                    data[bench] = benchmark_data_hash(project, spec, bench)
                fingerprint = cell_fingerprint(chashes[cell.key], data[bench], code)
                wanted[cell.key] = (cell, fingerprint)
            sources = object_sources(project.root)
            for info, manifest in found:
                same = [k for k in manifest.cells if k in wanted]
                for key in [k for k in same if _same_run(manifest, k, wanted[k][1])]:
                    cell = wanted[key][0]
                    for commit in dict.fromkeys((info.commit, info.first_commit)):
                        if commit is None:
                            continue
                        hit = _outputs_at(ledger, commit, spec, cell, manifest, sources)
                        if isinstance(hit, str):
                            search.unavailable.setdefault(key, info.execution_id)
                        elif isinstance(hit, Reusable):
                            search.found[key] = hit
                            search.unavailable.pop(key, None)
                            del wanted[key]
                            break
                if not wanted:
                    break
    except EvalLedgerError:
        return ReuseSearch()  # history that cannot be read vouches for nothing: evaluate
    return search


def _same_configs(
    ledger: Ledger, infos: list[ExecutionInfo], chashes: dict[str, str]
) -> list[tuple[ExecutionInfo, ExecutionManifest]]:
    """The executions that ran some cell at its config hash now, newest first."""
    from evalledger.ledger.listing import readable_manifests

    found = [(info, m) for info, m in readable_manifests(ledger, infos)
             if any(chashes.get(k) == r.config_hash for k, r in m.cells.items())]  # fmt: skip
    found.sort(key=lambda im: (im[1].created_at, im[0].execution_id), reverse=True)
    return found


def _same_run(manifest: ExecutionManifest, key: str, fingerprint: str) -> bool:
    from evalledger.ledger.duplicates import record_fingerprint

    rec = manifest.cells.get(key)
    return (rec is not None and rec.examples_errored == 0
            and record_fingerprint(manifest, key) == fingerprint)  # fmt: skip


def _outputs_at(
    ledger: Ledger,
    commit: str,
    spec: MatrixSpec,
    cell: Cell,
    manifest: ExecutionManifest,
    sources: tuple[Path, str | None, Path | None],
) -> Reusable | str | None:
    """The cell's outputs at ``commit`` when they are ``manifest``'s and obtainable.

    None when that commit's files are not the execution's; :data:`_NO_PREDICTIONS` when
    they are but no DVC cache or remote can give the predictions back.
    """
    from evalledger.ledger.health import lock_entries

    snap = ledger.snapshot(commit)
    paths = [cell.metrics_path, cell.scores_path]
    if not all(p in snap.files for p in paths):
        return None
    if snap.owners(skip_damaged=True).get(cell.key) != manifest.execution_id:
        return None  # a later execution's results, or none of this one's
    entry = (lock_entries(snap) or {}).get(cell.stage)
    if entry is None or entry["params"] != stage_params(spec, cell):
        return None
    raw = snap.raw(paths)
    outs = entry["outs"]
    if any(p not in raw or hashlib.md5(raw[p]).hexdigest() != outs.get(p) for p in paths):
        return None  # dvc.lock at that commit does not vouch for these files
    md5 = outs.get(cell.predictions_path)
    if not isinstance(md5, str) or not _MD5.fullmatch(md5):
        return None
    cache, remote, remote_dir = sources
    where = None
    for base in (cache, remote_dir):
        if base is not None and (obj := base / "files" / "md5" / md5[:2] / md5[2:]).is_file():
            where = obj
            break
    if where is None and (remote is None or remote_dir is not None):
        return _NO_PREDICTIONS  # in no cache, and no remote that could have it
    metrics = raw[cell.metrics_path]
    return Reusable(cell, manifest.execution_id, commit, _items(metrics),
                    metrics, raw[cell.scores_path], md5, where)  # fmt: skip


def _items(metrics: bytes) -> int:
    try:
        n = json.loads(metrics).get("n")
    except (ValueError, AttributeError):
        return 0
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def _fetch(project: Project, found: Reusable) -> bytes | None:
    """The predictions from the default (network) remote, through DVC, at that commit."""
    try:
        import dvc.api

        data = dvc.api.read(found.cell.predictions_path, repo=str(project.root),
                            rev=found.commit, mode="rb")  # fmt: skip
    except Exception:  # any DVC or network failure: evaluate instead
        return None
    return data if isinstance(data, bytes) else None


def reuse_outputs(
    project: Project, spec: MatrixSpec, search: ReuseSearch, overrides: list[str] | None = None
) -> dict[str, Reusable]:
    """Restore the outputs ``search`` found and record the cells in dvc.lock.

    Returns the cells restored (key -> where from); those whose predictions could not
    be had after all join ``search.unavailable``. Each file is written atomically, and a
    cell is recorded once all three are back. ``spec`` is params.yaml's with
    ``overrides``, which are written into params.yaml first (as a run writes them), so
    dvc.lock records what params.yaml says.
    """
    from evalledger.atomic import atomic_write
    from evalledger.execution.pipeline import record_cells, sync_dvc_yaml
    from evalledger.params import apply_overrides

    if not search.found:
        return {}
    apply_overrides(project.params_path, overrides or [])
    sync_dvc_yaml(project, spec)  # the cells' stages must be in dvc.yaml to be recorded
    restored: dict[str, Reusable] = {}
    for key, hit in search.found.items():
        data = hit.predictions.read_bytes() if hit.predictions else _fetch(project, hit)
        if data is None or hashlib.md5(data).hexdigest() != hit.predictions_md5:
            search.unavailable[key] = hit.execution_id
            continue
        atomic_write(project.path(hit.cell.predictions_path), data)
        atomic_write(project.path(hit.cell.scores_path), hit.scores)
        atomic_write(project.path(hit.cell.metrics_path), hit.metrics)
        restored[key] = hit
    record_cells(project, [hit.cell for hit in restored.values()], spec)
    return restored
