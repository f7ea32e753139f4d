"""The training side of a diff: tracked runs' final metrics, and the runs that made B.

A tracked experiment's summary, ``metrics/_experiments/<name>.json`` (``<exp id>.json`` in
older ledgers), holds the last value of each step metric. Each changed one is a change
row of the summary (cell ``_experiments/<name>``), with its direction from
:func:`evalledger.ledger.directions.directions_at`, untested: there are no per-item
scores. The experiments whose manifests are new at B, with their checkpoints, say which
runs produced B's side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalledger.analysis.changes import MetricChange
from evalledger.analysis.trained import CheckpointRef, ExperimentRef
from evalledger.metrics import as_number, flatten, is_timing_metric

if TYPE_CHECKING:
    from evalledger.ledger.history import Snapshot
    from evalledger.metrics import Directions

__all__ = [
    "CheckpointRef",
    "ExperimentRef",
    "new_experiments",
    "summary_changes",
    "summary_metric_names",
]

#: Summary keys that are bookkeeping, not metrics.
_BOOKKEEPING = frozenset({"step", "nonfinite"})


def _summary_paths(snap: Snapshot) -> list[str]:
    from evalledger.project import SUMMARY_DIR

    folder = f"metrics/{SUMMARY_DIR}/"
    return sorted(p for p in snap.files if p.startswith(folder) and p.endswith(".json")
                  and "/" not in p[len(folder):])  # fmt: skip


def _summaries(snap: Snapshot) -> dict[str, dict[str, Any]]:
    """``_experiments/<name>`` -> the summary's numeric metrics, flattened (dotted keys)."""
    from functools import partial

    from evalledger.safeload import MAX_METRICS_BYTES, parse_json

    parse = partial(parse_json, max_bytes=MAX_METRICS_BYTES)
    found = snap.read("training summary", _summary_paths(snap), parse, skip_damaged=True)
    out = {}
    for path, data in found.items():
        flat = flatten(data) if isinstance(data, dict) else {}
        out[path[len("metrics/") : -len(".json")]] = {
            k: v for k, v in flat.items()
            if k not in _BOOKKEEPING and as_number(v) is not None
        }  # fmt: skip
    return out


def summary_metric_names(snap: Snapshot) -> set[str]:
    """Every metric of this revision's training summaries (for ``-m`` checks)."""
    return {k for data in _summaries(snap).values() for k in data}


def summary_changes(
    a: Snapshot, b: Snapshot, directions: Directions, metrics: list[str] | None,
    all_metrics: bool,
) -> tuple[list[MetricChange], list[MetricChange]]:  # fmt: skip
    """The changed summary metrics, then the changed timings among them (listed apart).

    With ``metrics`` (and not ``all_metrics``) only those are compared; else every one.
    """
    old_s, new_s = _summaries(a), _summaries(b)
    asked = set(metrics or [])
    changes: list[MetricChange] = []
    timings: list[MetricChange] = []
    for key in dict.fromkeys([*old_s, *new_s]):
        old_d, new_d = old_s.get(key, {}), new_s.get(key, {})
        for metric in dict.fromkeys([*old_d, *new_d]):
            timing = is_timing_metric(metric) and metric not in asked
            if metrics and not all_metrics and metric not in asked and not timing:
                continue
            old, new = as_number(old_d.get(metric)), as_number(new_d.get(metric))
            if old == new:
                continue
            change = MetricChange(key, metric, old, new, lower=directions.lower_is_better(metric))
            (timings if timing else changes).append(change)
    return changes, timings


def new_experiments(a: Snapshot, b: Snapshot) -> list[ExperimentRef]:
    """Tracked runs whose manifests B holds and A does not, oldest first."""
    fresh = set(b.manifest_ids) - set(a.manifest_ids)
    if not fresh:
        return []
    out = []
    for exp_id, manifest in sorted(b.manifests(skip_damaged=True).items()):
        if exp_id not in fresh or manifest.kind != "experiment":
            continue
        ckpts = [CheckpointRef(c.path, c.sha256, c.size, c.step) for c in manifest.checkpoints]
        out.append(ExperimentRef(exp_id, manifest.name, ckpts))
    return out
