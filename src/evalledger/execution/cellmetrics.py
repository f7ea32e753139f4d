"""Cell metrics from per-item records: the content of ``metrics/<cell>.json``."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

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
    records: Iterable[dict[str, Any]],
    price: tuple[float, float] | None = None,
    wall_time_s: float | None = None,
) -> dict[str, Any]:
    """Cell metrics from per-item records (the DVC metrics file's content).

    Accuracies are over the scored items; errored items are counted apart (``errors``,
    ``error_rate``, ``error_patterns``) and never as wrong answers. When items carry
    per-agent records, ``agents`` holds each agent's figures over the scored items. Keys come in one
    order, and the timings (:data:`~evalledger.metrics.TIMING_METRICS`) sit together, so
    a re-run of a deterministic model changes one block of lines and nothing else.

    One pass over ``records``, keeping counts and one float per item (the latencies):
    a million records are read as they stream, never held.
    """
    n = ns = correct = partial = formatted = 0
    score_sum = 0.0
    lat = array("d")
    tokens = {False: [0, 0], True: [0, 0]}  # cached? -> [prompt, completion]
    n_cached = 0
    cats: dict[str, list[int]] = {}  # category -> [n, scored, correct]
    patterns: Counter[str] = Counter()
    agent_runs: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        n += 1
        cached = bool(r.get("cached"))
        n_cached += cached
        counts = tokens[cached]
        counts[0] += int(r.get("prompt_tokens") or 0)
        counts[1] += int(r.get("completion_tokens") or 0)
        cat = cats.setdefault(r.get("category") or "uncategorised", [0, 0, 0])
        cat[0] += 1
        if r.get("error"):
            patterns[r["error_class"]] += 1
            continue
        ns += 1
        correct += r["correct"]
        partial += r["partial"]
        formatted += r["formatted"]
        score_sum += float(r["score"])
        lat.append(float(r["latency_ms"]))
        cat[1] += 1
        cat[2] += r["correct"]
        for rec in r.get("agents") or ():
            agent_runs.setdefault(rec["name"], []).append(rec)
    latencies = sorted(lat)
    del lat
    metrics: dict[str, Any] = {
        "accuracy": _rate(correct, ns),
        "partial_accuracy": _rate(partial, ns),
        "format_accuracy": _rate(formatted, ns),
        "mean_score": _rate(score_sum, ns),
        "n": n,
        "scored": ns,
        "correct": int(correct),
        "errors": n - ns,
        "error_rate": _rate(n - ns, n),
        "latency_ms": {
            "mean": round(sum(latencies) / ns, 3) if ns else 0.0,
            "p50": round(_quantile(latencies, 0.5), 3),
            "p95": round(_quantile(latencies, 0.95), 3),
        },
        "total_time_s": round(sum(latencies) / 1000, 3),
    }
    if wall_time_s is not None:
        metrics["wall_time_s"] = round(wall_time_s, 3)
    metrics["prompt_tokens"] = tokens[False][0] + tokens[True][0]
    metrics["completion_tokens"] = tokens[False][1] + tokens[True][1]
    if price is not None:
        # cost counts the calls made; answers from the response cache are shown apart
        metrics["cost"] = _cost(tokens[False][0], tokens[False][1], price)
        if n_cached:
            metrics["cached_cost"] = _cost(tokens[True][0], tokens[True][1], price)
    if n_cached:
        metrics["cache_hits"] = n_cached
    metrics["categories"] = {
        name: {"accuracy": _rate(ok_correct, ok), "n": total, "errors": total - ok}
        for name, (total, ok, ok_correct) in sorted(cats.items())
    }
    if agent_runs:
        metrics["agents"] = _agent_metrics(agent_runs)
    metrics["error_patterns"] = dict(sorted(patterns.items()))
    return metrics


def _cost(prompt: int, completion: int, price: tuple[float, float]) -> float:
    return round((prompt * price[0] + completion * price[1]) / 1e6, 6)


def _agent_metrics(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per agent, over the scored items it ran on: successes, mean latency, cost, tokens.

    Latency and cost are over the records that report them (None when none does).
    """
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
