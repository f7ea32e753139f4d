"""Cell metrics from per-item records: the content of ``metrics/<cell>.json``."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

__all__ = ["cell_metrics"]


def _quantile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return 0.0
    pos = (len(sorted_vals) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _rate(num: float, den: int) -> float:
    return round(num / den, 6) if den else 0.0


def cell_metrics(
    records: list[dict[str, Any]],
    price: tuple[float, float] | None = None,
    wall_time_s: float | None = None,
) -> dict[str, Any]:
    """Cell metrics from per-item records (the DVC metrics file's content).

    Accuracies are over the scored items; errored items are counted apart (``errors``,
    ``error_rate``, ``error_patterns``) and never as wrong answers. When items carry
    per-agent records, ``agents`` holds each agent's figures over the scored items. Keys come in one
    order, and the timings (:data:`~evalledger.metrics.TIMING_METRICS`) sit together, so
    a re-run of a deterministic model changes one block of lines and nothing else.
    """
    n = len(records)
    scored = [r for r in records if not r.get("error")]
    ns = len(scored)
    lat = sorted(float(r["latency_ms"]) for r in scored)
    prompt_tokens = sum(int(r.get("prompt_tokens") or 0) for r in records)
    completion_tokens = sum(int(r.get("completion_tokens") or 0) for r in records)
    cats: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        cats.setdefault(r.get("category") or "uncategorised", []).append(r)
    patterns = Counter(r["error_class"] for r in records if r.get("error"))
    metrics: dict[str, Any] = {
        "accuracy": _rate(sum(r["correct"] for r in scored), ns),
        "partial_accuracy": _rate(sum(r["partial"] for r in scored), ns),
        "format_accuracy": _rate(sum(r["formatted"] for r in scored), ns),
        "mean_score": _rate(sum(float(r["score"]) for r in scored), ns),
        "n": n,
        "scored": ns,
        "correct": sum(int(r["correct"]) for r in scored),
        "errors": n - ns,
        "error_rate": _rate(n - ns, n),
        "latency_ms": {
            "mean": round(sum(lat) / ns, 3) if ns else 0.0,
            "p50": round(_quantile(lat, 0.5), 3),
            "p95": round(_quantile(lat, 0.95), 3),
        },
        "total_time_s": round(sum(lat) / 1000, 3),
    }
    if wall_time_s is not None:
        metrics["wall_time_s"] = round(wall_time_s, 3)
    metrics["prompt_tokens"] = prompt_tokens
    metrics["completion_tokens"] = completion_tokens
    cached = [r for r in records if r.get("cached")]
    if price is not None:
        # cost counts the calls made; answers from the response cache are shown apart
        metrics["cost"] = _cost([r for r in records if not r.get("cached")], price)
        if cached:
            metrics["cached_cost"] = _cost(cached, price)
    if cached:
        metrics["cache_hits"] = len(cached)
    metrics["categories"] = {}
    for cat, rs in sorted(cats.items()):
        ok = [r for r in rs if not r.get("error")]
        metrics["categories"][cat] = {
            "accuracy": _rate(sum(r["correct"] for r in ok), len(ok)),
            "n": len(rs),
            "errors": len(rs) - len(ok),
        }
    if any(r.get("agents") for r in scored):
        metrics["agents"] = _agent_metrics(scored)
    metrics["error_patterns"] = dict(sorted(patterns.items()))
    return metrics


def _cost(records: list[dict[str, Any]], price: tuple[float, float]) -> float:
    prompt = sum(int(r.get("prompt_tokens") or 0) for r in records)
    completion = sum(int(r.get("completion_tokens") or 0) for r in records)
    return round((prompt * price[0] + completion * price[1]) / 1e6, 6)


def _agent_metrics(scored: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per agent, over the scored items it ran on: successes, mean latency, cost, tokens.

    Latency and cost are over the records that report them (None when none does).
    """
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in scored:
        for rec in r.get("agents") or ():
            runs.setdefault(rec["name"], []).append(rec)
    out = {}
    for name, recs in sorted(runs.items()):
        lat = [float(a["latency_ms"]) for a in recs if a.get("latency_ms") is not None]
        costs = [float(a["cost"]) for a in recs if a.get("cost") is not None]
        successes = sum(bool(a["success"]) for a in recs)
        out[name] = {
            "success_rate": _rate(successes, len(recs)), "n": len(recs), "successes": successes,
            "mean_latency_ms": round(math.fsum(lat) / len(lat), 3) if lat else None,
            "cost": round(math.fsum(costs), 6) if costs else None,
            "prompt_tokens": sum(int(a.get("prompt_tokens") or 0) for a in recs),
            "completion_tokens": sum(int(a.get("completion_tokens") or 0) for a in recs),
        }  # fmt: skip
    return out
