"""The report's Training view: tracked runs' curves, and each config key against a metric.

At the revision, every tracked run name has its series (``metrics/_series/<name>/``),
its summary (``metrics/_experiments/<name>.json``) and its config and params
(``metrics/_params/<name>.yaml``): the curves of all names are overlaid per metric, and
for each numeric config key a point per run shows the key's value against the summary
metric chosen (seed 001's "hyperparameter impact").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from evalledger.metrics import as_number, flatten

if TYPE_CHECKING:
    from evalledger.ledger.history import Snapshot

__all__ = ["SERIES_CAP", "training_data"]

#: The most series points the page embeds.
SERIES_CAP = 50_000


def training_data(snap: Snapshot) -> dict[str, Any]:
    """``series`` points, ``config`` points and the ``metric`` they are plotted against."""
    series_paths = [
        p for p in snap.files if p.startswith("metrics/_series/") and p.endswith(".tsv")
    ]
    summary_paths = [p for p in snap.files
                     if p.startswith("metrics/_experiments/") and p.endswith(".json")]  # fmt: skip
    param_paths = [p for p in snap.files
                   if p.startswith("metrics/_params/") and p.endswith(".yaml")]  # fmt: skip
    blobs = snap.raw(series_paths + summary_paths + param_paths)
    series: list[dict[str, Any]] = []
    for path in sorted(series_paths):
        name, _, metric = path[len("metrics/_series/") : -len(".tsv")].partition("/")
        for line in blobs.get(path, b"").decode("utf-8", errors="replace").splitlines()[1:]:
            step, _, value = line.partition("\t")
            if len(series) < SERIES_CAP and step.lstrip("-").isdigit() and value:
                try:
                    series.append({"run": name, "metric": metric, "step": int(step),
                                   "value": float(value)})  # fmt: skip
                except ValueError:
                    continue
    summaries: dict[str, dict[str, Any]] = {}
    for path in summary_paths:
        try:
            data = json.loads(blobs.get(path, b"{}"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict):
            summaries[path[len("metrics/_experiments/") : -len(".json")]] = flatten(data)
    metrics = sorted({k for s in summaries.values() for k in s if k not in ("step", "nonfinite")})
    target = next((m for m in metrics if m.endswith("loss") and m.startswith("val")),
                  metrics[0] if metrics else None)  # fmt: skip
    config: list[dict[str, Any]] = []
    for path in param_paths:
        name = path[len("metrics/_params/") : -len(".yaml")]
        try:
            params = yaml.safe_load(blobs.get(path, b"") or b"{}")
        except yaml.YAMLError:
            continue
        final = as_number(summaries.get(name, {}).get(target)) if target else None
        if not isinstance(params, dict) or final is None:
            continue
        for key, raw in flatten(params).items():
            number = as_number(raw)
            if number is not None:
                config.append({"run": name, "key": key, "x": number, "value": final})
    return {"series": series, "config": config, "metric": target}
