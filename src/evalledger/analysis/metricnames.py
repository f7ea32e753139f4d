"""The metric a ranking uses by default, and why one no cell holds cannot be ranked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalledger.errors import ConfigError
from evalledger.metrics import flatten

if TYPE_CHECKING:
    from evalledger.ledger.history import Snapshot

__all__ = ["default_metric", "explain_empty"]


def default_metric(snaps: list[Snapshot]) -> str:
    """``accuracy``, or ``mean_score`` for cells that have no accuracy."""
    for snap in snaps:
        first = next(iter(snap.metrics(list(snap.cells)[:1]).values()), {})
        if "accuracy" in first:
            return "accuracy"
        if "mean_score" in first:
            return "mean_score"
    return "accuracy"


def explain_empty(snaps: list[Snapshot], metric: str, benchmarks: list[str] | None) -> None:
    """Raise the ConfigError that says why no cell has ``metric`` (always raises)."""
    where = ", ".join(s.label for s in snaps)
    cells = [c for s in snaps for c in s.cells.values()]
    if not cells:
        raise ConfigError(f"no cell metrics at {where}", "run `evalledger run` first")
    if benchmarks:
        known = sorted({c.axes.get("benchmark", "") for c in cells})
        missing = [b for b in benchmarks if b not in known]
        if missing:
            raise ConfigError(f"unknown benchmark {missing[0]!r}; known: {', '.join(known)}")
    snap = snaps[0]
    sample = flatten(next(iter(snap.metrics(list(snap.cells)[:1]).values()), {}))
    known_m = [k for k, v in sample.items() if isinstance(v, int | float)]
    raise ConfigError(f"unknown metric {metric!r}; known: {', '.join(known_m[:12])}")
