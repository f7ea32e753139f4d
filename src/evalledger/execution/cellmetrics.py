"""Cell metrics from per-item records: the content of ``metrics/<cell>.json``."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["MetricsTally", "cell_metrics"]


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
    tally = MetricsTally()
    add = tally.add
    for r in records:
        add(r)
    return tally.metrics(price, wall_time_s)


class MetricsTally:
    """:func:`cell_metrics` in parts: records added one by one, in item order.

    Apart from per-agent records, what it holds is :meth:`state` (JSON) and
    :attr:`latencies` (float64s), so a streamed cell's tally is kept across a kill with
    its partial outputs (:mod:`evalledger.execution.partial_outputs`) and taken up again
    with :meth:`from_state`: the metrics are those of one uninterrupted pass.
    """

    def __init__(self) -> None:
        self.n = self.ns = self.correct = self.partial = self.formatted = self.n_cached = 0
        self.score_sum = 0.0
        self.latencies = array("d")
        self.tokens = {False: [0, 0], True: [0, 0]}  # cached? -> [prompt, completion]
        self.cats: dict[str, list[int]] = {}  # category -> [n, scored, correct]
        self.patterns: Counter[str] = Counter()
        self.agent_runs: dict[str, list[dict[str, Any]]] = {}

    def add(self, r: dict[str, Any]) -> None:
        """Count one item's record."""
        self.n += 1
        cached = bool(r.get("cached"))
        self.n_cached += cached
        counts = self.tokens[cached]
        counts[0] += int(r.get("prompt_tokens") or 0)
        counts[1] += int(r.get("completion_tokens") or 0)
        cat = self.cats.setdefault(r.get("category") or "uncategorised", [0, 0, 0])
        cat[0] += 1
        if r.get("error"):
            self.patterns[r["error_class"]] += 1
            return
        self.ns += 1
        self.correct += r["correct"]
        self.partial += r["partial"]
        self.formatted += r["formatted"]
        self.score_sum += float(r["score"])
        self.latencies.append(float(r["latency_ms"]))
        cat[1] += 1
        cat[2] += r["correct"]
        for rec in r.get("agents") or ():
            self.agent_runs.setdefault(rec["name"], []).append(rec)

    _FIELDS = ("n", "ns", "correct", "partial", "formatted", "n_cached", "score_sum")

    def state(self) -> dict[str, Any]:
        """Everything but the latencies and agent records, as JSON values."""
        assert not self.agent_runs, "per-agent records are not kept in a state"
        state: dict[str, Any] = {name: getattr(self, name) for name in self._FIELDS}
        state.update(tokens=[self.tokens[False], self.tokens[True]], cats=self.cats,
                     patterns=dict(self.patterns))  # fmt: skip
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], latencies: array[float]) -> MetricsTally:
        """The tally :meth:`state` and :attr:`latencies` were taken of."""
        tally = cls()
        for name in cls._FIELDS:
            setattr(tally, name, state[name])
        tally.score_sum = float(state["score_sum"])
        tally.tokens = {False: list(state["tokens"][0]), True: list(state["tokens"][1])}
        tally.cats = {str(k): list(v) for k, v in state["cats"].items()}
        tally.patterns = Counter(state["patterns"])
        tally.latencies = latencies
        return tally

    def metrics(
        self, price: tuple[float, float] | None = None, wall_time_s: float | None = None
    ) -> dict[str, Any]:
        """The metrics of the records added (see :func:`cell_metrics`)."""
        n, ns, tokens, n_cached = self.n, self.ns, self.tokens, self.n_cached
        latencies = sorted(self.latencies)
        metrics: dict[str, Any] = {
            "accuracy": _rate(self.correct, ns),
            "partial_accuracy": _rate(self.partial, ns),
            "format_accuracy": _rate(self.formatted, ns),
            "mean_score": _rate(self.score_sum, ns),
            "n": n,
            "scored": ns,
            "correct": int(self.correct),
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
            for name, (total, ok, ok_correct) in sorted(self.cats.items())
        }
        if self.agent_runs:
            metrics["agents"] = _agent_metrics(self.agent_runs)
        metrics["error_patterns"] = dict(sorted(self.patterns.items()))
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
