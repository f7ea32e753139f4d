"""The report's Breakdown view: per category, errors, latency, cost and agents.

Category accuracies come with a 95% Wilson interval over that category's own scored
items (its ``n`` less its errors), never the cell's. Cost per item divides the cell's
cost by its items; agents are the ``agents`` block of multi-agent cells.
"""

from __future__ import annotations

from typing import Any

from evalledger.analysis.intervals import wilson_interval

__all__ = ["ROW_CAP", "breakdown"]

_Z = 1.959963984540054
#: The most rows of each table of the view (the page says when it holds fewer).
ROW_CAP = 5_000


def breakdown(cells: dict[str, dict[str, Any]], axes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """``categories``, ``cells`` (errors, latency, cost) and ``agents`` rows of the view."""
    categories, rows, agents = [], [], []
    for key, metrics in cells.items():
        ax = axes[key]
        system = "/".join(v for a, v in ax.items() if a != "benchmark")
        bench = ax.get("benchmark", "")
        for name, cat in (metrics.get("categories") or {}).items():
            acc, n = cat.get("accuracy"), cat.get("n")
            scored = (n or 0) - (cat.get("errors") or 0)
            if not isinstance(acc, int | float) or scored <= 0:
                continue
            low, high = wilson_interval(float(acc), scored, _Z)
            categories.append({"system": system, "benchmark": bench, "category": name,
                               "value": acc, "low": low, "high": high, "n": scored})  # fmt: skip
        latency = metrics.get("latency_ms") or {}
        n, cost = metrics.get("n") or 0, metrics.get("cost")
        patterns = metrics.get("error_patterns") or {}
        rows.append({
            "cell": key, "n": n, "errors": metrics.get("errors", 0),
            "error_patterns": ", ".join(f"{k} x{v}" for k, v in patterns.items()) or "",
            "p50": latency.get("p50"), "p95": latency.get("p95"),
            "cost_per_item": round(cost / n, 8) if isinstance(cost, int | float) and n else None,
        })  # fmt: skip
        for name, a in (metrics.get("agents") or {}).items():
            agents.append({"cell": key, "agent": name, **a})
    return {"categories": categories[:ROW_CAP], "cells": rows[:ROW_CAP],
            "agents": agents[:ROW_CAP], "cap": ROW_CAP,
            "truncated": max(len(categories), len(rows), len(agents)) > ROW_CAP}  # fmt: skip
