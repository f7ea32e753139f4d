"""What the HTML report shows, gathered from the ledger at one revision.

Everything here is plain data (dicts, lists, strings, numbers) that the page embeds as
JSON: the leaderboard, a model x benchmark heat-map with each cell's health markers,
and the items of every cell (prompt, output, target, score) for the items view. Item
texts come from the cell's predictions at the revision (the workspace file, or DVC's
cache object by the md5 in that revision's dvc.lock); a cell whose predictions are not
here (not pulled) still lists its items from the scores file, without texts, and the
page says to run ``evalledger pull``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.ledger.health import cell_health
from evalledger.plugin_types import question_of
from evalledger.report.history import HISTORY_CAP

if TYPE_CHECKING:
    from collections.abc import Iterable

    from evalledger.ledger.history import Ledger, Snapshot

__all__ = ["ITEM_CAP", "ReportData", "collect"]

#: The most item rows the page embeds (the page says when it shows fewer).
ITEM_CAP = 10_000
#: Item texts are cut to this many characters in the page.
TEXT_CAP = 2_000
#: The most flipped items the Diff view shows side by side.
FLIP_CAP = 2_000


@dataclass
class ReportData:
    """The report's content (see the module docstring)."""

    title: str
    revision: str
    commit: str | None
    metric: str
    leaderboard: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    items: list[dict[str, Any]]
    items_total: int
    other_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Revision label -> its items of the same cells, for side by side across revisions."""
    missing_predictions: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    """The metric of every committed version of every cell (:mod:`.history`)."""
    breakdown: dict[str, Any] = field(default_factory=dict)
    """Per category, error, latency, cost and agent rows (:mod:`.breakdown`)."""
    training: dict[str, Any] = field(default_factory=dict)
    """Tracked runs' series and config points (:mod:`.training`)."""
    diff: dict[str, Any] | None = None
    """Against ``--base``: :meth:`LedgerDiff.to_json`, plus ``flipped`` items per cell."""

    @property
    def totals(self) -> dict[str, Any]:
        """Counts and costs over every cell: cells, items, errored items, cost, tokens."""

        def total(key: str) -> float:
            return sum(float(c.get(key) or 0) for c in self.cells)

        return {"cells": len(self.cells), "items": int(total("n")),
                "errors": int(total("errors")), "cost": round(total("cost"), 6),
                "flagged": sum(1 for c in self.cells if c["flags"])}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, for the page's data block."""
        return {
            "title": self.title, "revision": self.revision, "commit": self.commit,
            "metric": self.metric, "leaderboard": self.leaderboard, "cells": self.cells,
            "items": self.items, "items_total": self.items_total, "item_cap": ITEM_CAP,
            "other_items": self.other_items,
            "missing_predictions": self.missing_predictions, "models": self.models,
            "history_points": len(self.history), "breakdown": self.breakdown,
            "history_capped": len(self.history) >= HISTORY_CAP,
            "diff": self.diff, "training_points": len(self.training.get("series", [])),
            "training_metric": self.training.get("metric"), "totals": self.totals,
        }  # fmt: skip


def _cut(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= TEXT_CAP else text[:TEXT_CAP] + " [...]"


def _predictions(snap: Snapshot, key: str) -> dict[str, dict[str, Any]] | None:
    """Item id -> prediction as the revision recorded it (workspace, or DVC's cache)."""
    from evalledger.ledger.items import predictions_at

    data = predictions_at(snap, key)
    if data is None:
        return None
    out = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                out[str(rec["id"])] = rec
    return out


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace"))))


def _score_blobs(snap: Snapshot, keys: Iterable[str] | None = None) -> dict[str, bytes]:
    """The scores files of ``keys`` (default: every cell), read in one batch."""
    keys = list(snap.cells) if keys is None else list(keys)
    found = snap.raw(f"metrics/{k}.scores.csv" for k in keys)
    return {k: data for k in keys if (data := found.get(f"metrics/{k}.scores.csv")) is not None}


def _diff(ledger: Ledger, base: str, rev: str | None) -> dict[str, Any]:
    """The diff against ``base``, and per changed cell the items whose correctness flipped."""
    from evalledger.analysis.diff import diff_revisions

    diff = diff_revisions(ledger, base, rev)
    out = diff.to_json()
    old_snap, new_snap = ledger.snapshot(base), ledger.snapshot(rev)
    flipped: dict[str, dict[str, list[str]]] = {}
    side: list[dict[str, Any]] = []  # the flipped items' answers at both revisions
    changed = [k for k in dict.fromkeys(c.cell for c in diff.changes)
               if k in old_snap.cells and k in new_snap.cells]  # fmt: skip
    old_blobs, new_blobs = _score_blobs(old_snap, changed), _score_blobs(new_snap, changed)
    for key in changed:
        before = {r["id"]: r.get("correct") == "1" for r in _rows(old_blobs.get(key, b""))
                  if not r.get("error") and not r.get("sample")}  # fmt: skip
        after = {r["id"]: r.get("correct") == "1" for r in _rows(new_blobs.get(key, b""))
                 if not r.get("error") and not r.get("sample")}  # fmt: skip
        shared = [i for i in after if i in before]
        flipped[key] = {"fixed": [i for i in shared if after[i] and not before[i]],
                        "broken": [i for i in shared if before[i] and not after[i]]}  # fmt: skip
        ids = flipped[key]["broken"] + flipped[key]["fixed"]  # broken first
        if ids and len(side) < FLIP_CAP:
            old, new = _predictions(old_snap, key) or {}, _predictions(new_snap, key) or {}
            side += [{"cell": key, "id": i, "before": before[i], "after": after[i],
                      "target": _cut((new.get(i) or old.get(i) or {}).get("target")),
                      "output_before": _cut(old.get(i, {}).get("output")),
                      "output_after": _cut(new.get(i, {}).get("output"))}
                     for i in ids[: FLIP_CAP - len(side)]]  # fmt: skip
    out["flipped"] = flipped
    out["side_by_side"] = side
    return out


def _system(axes: dict[str, str]) -> str:
    """What a leaderboard ranks: the cell without its benchmark (model/prompt_set/...)."""
    return "/".join(v for a, v in axes.items() if a != "benchmark")


def _items(
    snap: Snapshot, score_blobs: dict[str, bytes]
) -> tuple[list[dict[str, Any]], int, list[str]]:
    """Up to :data:`ITEM_CAP` item rows of these cells, and the count of all.

    Also the cells whose predictions are not here (their rows have no texts).
    """
    items: list[dict[str, Any]] = []
    missing: list[str] = []
    total = 0
    for key, blob in score_blobs.items():
        files = snap.cells[key]
        total += max(0, blob.count(b"\n") - 1)
        if len(items) >= ITEM_CAP:  # counted, not parsed: the page holds at most the cap
            continue
        rows = _rows(blob)
        preds = _predictions(snap, key)
        if preds is None and rows:
            missing.append(key)
        for row in rows:
            if len(items) >= ITEM_CAP:
                break
            sample = row.get("sample") or None
            pid = f"{row['id']}#{sample}" if sample else row["id"]
            pred = (preds or {}).get(pid, {})
            items.append({
                "cell": key, "model": files.axes.get("model", ""), "system": _system(files.axes),
                "benchmark": files.axes.get("benchmark", ""),
                "id": question_of(pid)[0] if sample else row["id"], "sample": sample,
                "category": row.get("category", ""), "correct": row.get("correct") == "1",
                "score": row.get("score"), "error": row.get("error") or None,
                "prompt": _cut(pred.get("prompt")), "output": _cut(pred.get("output")),
                "target": _cut(pred.get("target")), "extracted": _cut(pred.get("extracted")),
            })  # fmt: skip
    return items, total, missing


def collect(
    ledger: Ledger, rev: str | None = None, metric: str | None = None,
    base: str | None = None, compare: Iterable[str] = (),
) -> ReportData:  # fmt: skip
    """The report's content at ``rev`` (default: the workspace), against ``base`` if any.

    The items of ``compare`` and ``base`` (the cells the page shows at ``rev``, up to
    :data:`ITEM_CAP` each) come along, so that any two models at any of these revisions
    can be put side by side.
    """
    from evalledger.analysis.leaderboard import build_leaderboard
    from evalledger.report.breakdown import breakdown
    from evalledger.report.history import history_points
    from evalledger.report.training import training_data

    snap = ledger.snapshot(rev)
    entries: list[dict[str, Any]] = []
    chosen = metric or "accuracy"
    if snap.cells:  # a ledger of tracked runs only has no leaderboard, but a report
        board = build_leaderboard(ledger, [rev] if rev else None, metric=metric)
        entries, chosen = board.to_json()["entries"], board.metric
    health = cell_health(snap)
    all_metrics = snap.metrics()
    cells: list[dict[str, Any]] = []
    score_blobs = _score_blobs(snap)
    for key, files in snap.cells.items():
        data = all_metrics.get(key) or {}
        h = health.get(key)
        cells.append({
            "cell": key, "model": files.axes.get("model", ""), "system": _system(files.axes),
            "benchmark": files.axes.get("benchmark", ""), "value": data.get(chosen),
            "n": data.get("n"), "errors": data.get("errors", 0), "cost": data.get("cost"),
            "flags": (h.flags if h else []) + (["errored"] if data.get("errors") else []),
        })  # fmt: skip
    items, total, missing = _items(snap, score_blobs)
    others: dict[str, list[dict[str, Any]]] = {}
    shown, seen = list(dict.fromkeys(i["cell"] for i in items)), {snap.commit}
    for other in [*compare, *([base] if base else [])]:
        other_snap = ledger.snapshot(other)
        if other_snap.commit in seen:  # the page's own revision, or one named twice
            continue
        seen.add(other_snap.commit)
        # the cells the page shows, at that revision: what side by side can pair
        keys = [k for k in shown if k in other_snap.cells]
        others[other_snap.label] = _items(other_snap, _score_blobs(other_snap, keys))[0]
    commit = snap.commit
    if commit is None and ledger.git.has_commits:  # the workspace: name the commit it is on
        commit = ledger.git.resolve("HEAD")
    return ReportData(
        title="evalledger report", revision=snap.label, commit=commit,
        metric=chosen, leaderboard=entries, cells=cells, items=items, other_items=others,
        items_total=total, missing_predictions=missing,
        models=sorted({c["system"] for c in cells}),
        history=history_points(ledger, rev, chosen),
        breakdown=breakdown(all_metrics, {k: c.axes for k, c in snap.cells.items()}),
        diff=_diff(ledger, base, rev) if base else None,
        training=training_data(snap),
    )  # fmt: skip
