"""The manifests of a revision as its health and directions read them (no pydantic).

:func:`manifest_views` is :meth:`Snapshot.manifests(skip_damaged=...)
<evalledger.ledger.history.Snapshot.manifests>` reduced to
:class:`~evalledger.manifestview.ManifestView`: the same executions, the same warnings for
damaged ones, but each cached by blob id as the few fields readers need, so a warm read
loads a few numbers per cell and a cold one validates with the model only a manifest
that :func:`~evalledger.manifestview.light_view` cannot vouch for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalledger.errors import CorruptFileError
from evalledger.ledger.cellread import paused_gc
from evalledger.manifestview import (
    ManifestView,
    light_view,
    load_view,
    parse_manifest_file,
)
from evalledger.safeload import check_depth, corrupt_file, restore_hint, warn_skipped

if TYPE_CHECKING:
    from datetime import datetime

    from evalledger.ledger.history import Snapshot
    from evalledger.manifest import ExecutionManifest

__all__ = ["manifest_views", "view_of"]

_KIND = "manifest_view"


def manifest_views(snap: Snapshot, *, skip_damaged: bool = True) -> dict[str, ManifestView]:
    """Execution ID -> its manifest's view at ``snap``; worked out once per snapshot.

    A damaged manifest is refused, or with ``skip_damaged`` left out with the warning
    :meth:`~evalledger.ledger.history.Snapshot.manifests` gives.
    """
    memo = f"manifest_views:{skip_damaged}"
    if memo in snap.derived:
        return dict(snap.derived[memo])
    with paused_gc():  # tens of thousands of cell records, none in a cycle
        snap.derived[memo] = _views(snap, skip_damaged=skip_damaged)
    return dict(snap.derived[memo])


def _views(snap: Snapshot, *, skip_damaged: bool) -> dict[str, ManifestView]:
    paths = {f"runs/{i}/manifest.yaml": i for i in snap.manifest_ids}
    oids = {p: snap.files[p] for p in paths if p in snap.files}
    cache = snap.ledger.cache
    found = cache.get_many(_KIND, set(oids.values()))
    missing = [p for p, oid in oids.items() if oid not in found]
    if missing:
        # Read, not through the parsed cache: the view is what is kept of a manifest.
        for path, data in sorted(snap.raw(missing).items()):
            view = _view(snap, path, data, skip_damaged=skip_damaged)
            if view is not None:
                found[oids[path]] = view
                cache.put(_KIND, oids[path], view)
        cache.flush()
    return {paths[p]: load_view(found[oid]) for p, oid in sorted(oids.items()) if oid in found}


def _view(snap: Snapshot, path: str, data: bytes, *, skip_damaged: bool) -> dict[str, Any] | None:
    """The view of one manifest file, or None for a damaged one.

    None comes with the warning :meth:`Snapshot.manifests` gives (with ``skip_damaged``;
    else the CorruptFileError is raised).
    """
    hint = restore_hint(path, snap.commit)
    try:
        raw = parse_manifest_file(data, check_depth=False)
        view = light_view(raw)
        # The nesting parse_manifest_file checks: a view vouches that each cell record is
        # flat (the depth walk of 50,000 of them cost a tenth of a second), not the rest.
        check_depth(raw if view is None else {k: v for k, v in raw.items() if k != "cells"})
    except (ValueError, RecursionError) as exc:  # not YAML, cut short: as Snapshot.read says
        error = corrupt_file(snap.source(path), exc, hint)
        if not skip_damaged:
            raise error from None
        warn_skipped(error)
        return None
    if view is not None:
        return view
    from evalledger.manifest import load_manifest  # upgrades it, or says why not

    try:
        return view_of(load_manifest(raw, snap.source(path), hint))
    except CorruptFileError as exc:
        if not skip_damaged:
            raise
        warn_skipped(exc, "that execution is left out")
        return None


def view_of(manifest: ExecutionManifest) -> dict[str, Any]:
    """The JSON form of a :class:`ManifestView` of a validated manifest."""

    def iso(when: datetime | None) -> str | None:
        return None if when is None else when.isoformat()

    return {
        "id": manifest.execution_id, "kind": manifest.kind,
        "updated_at": iso(manifest.updated_at), "directions": dict(manifest.directions),
        "cells": {k: [rec.status.value, iso(rec.started_at), iso(rec.finished_at),
                      rec.attempts, rec.error] for k, rec in manifest.cells.items()},
    }  # fmt: skip
