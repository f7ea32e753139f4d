"""Side-by-side comparison of executions or revisions: config, performance, cost, winner.

Each side is an execution (its own results, read where it was committed) or a revision
(every cell there). Only the configuration keys that differ are shown. Performance is
per benchmark and metric with the best value marked; the winner has the best mean of the
primary metric over the cells every side has, with its margin over the runner-up and
over the average of the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.errors import StatsError, UnknownExecutionError, UnknownRevisionError
from evalledger.metrics import Directions, as_number, flatten

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger

__all__ = ["COMPARED_METRICS", "Side", "SideBySide", "compare_sides"]

COMPARED_METRICS = ("accuracy", "partial_accuracy", "format_accuracy", "mean_score")
_COSTS = ("cost", "prompt_tokens", "completion_tokens", "errors", "wall_time_s")


@dataclass
class Side:
    """One column of the comparison."""

    ref: str
    label: str
    kind: str
    """``execution`` or ``revision``."""
    config: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    """Unit (cell key, or benchmark when every side is one model) -> metrics."""


@dataclass
class SideBySide:
    """Several executions or revisions side by side."""

    sides: list[Side]
    config_diff: dict[str, list[Any]]
    performance: list[tuple[str, str, list[float | None], int | None]]
    """(unit, metric, value per side, index of the best side)."""
    costs: dict[str, list[float | None]]
    primary: str
    means: list[float | None]
    winner: int | None
    margin: float | None
    """Winner's mean minus the runner-up's."""
    vs_others: float | None
    """Winner's mean minus the average of the other sides' means."""
    common_units: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        labels = [s.label for s in self.sides]
        return {
            "sides": [{"ref": s.ref, "label": s.label, "kind": s.kind} for s in self.sides],
            "config_differences": {k: dict(zip(labels, v, strict=True))
                                   for k, v in self.config_diff.items()},
            "performance": [{"unit": u, "metric": m, "values": dict(zip(labels, v, strict=True)),
                             "best": labels[b] if b is not None else None}
                            for u, m, v, b in self.performance],
            "costs": {k: dict(zip(labels, v, strict=True)) for k, v in self.costs.items()},
            "primary_metric": self.primary,
            "means": dict(zip(labels, self.means, strict=True)),
            "winner": labels[self.winner] if self.winner is not None else None,
            "margin": self.margin, "vs_others": self.vs_others,
            "common_units": self.common_units,
        }  # fmt: skip


def _side(ledger: Ledger, ref: str) -> tuple[Side, dict[str, dict[str, str]]]:
    """A side and the axes of each of its cells."""
    try:
        info = ledger.find_execution(ref)
    except UnknownExecutionError as exec_err:
        try:
            snap = ledger.snapshot(ref)
        except UnknownRevisionError as rev_err:
            raise UnknownRevisionError(
                f"{ref!r} is neither an execution nor a revision",
                f"{exec_err.hint}; {rev_err.hint}",
            ) from None
        axes = {k: c.axes for k, c in snap.cells.items()}
        return Side(ref, snap.label, "revision", snap.params, snap.metrics()), axes
    manifest = ledger.manifest(info)
    results = {k: v for k, v in ledger.results(info).items() if v is not None}
    axes = {k: manifest.cells[k].axes for k in results}
    label = info.execution_id
    return Side(ref, label, "execution", manifest.config, results), axes


def compare_sides(ledger: Ledger, refs: list[str], primary: str = "accuracy") -> SideBySide:
    """Compare executions or revisions (at least two)."""
    if len(refs) < 2:
        raise StatsError("compare needs at least two executions or revisions")
    built = [_side(ledger, r) for r in refs]
    sides = [s for s, _ in built]
    # Sides that are one model each (as in a hyperparameter sweep) compare per benchmark.
    systems = [{_system(a) for a in axes.values()} for _, axes in built]
    if all(len(s) == 1 for s in systems) and len({next(iter(s)) for s in systems}) > 1:
        for side, axes in built:
            side.metrics = {axes[k].get("benchmark", k): v for k, v in side.metrics.items()}
    directions = Directions.from_params(sides[-1].config)
    flat_cfg = [flatten(s.config) for s in sides]
    keys = list(dict.fromkeys(k for f in flat_cfg for k in f))
    config_diff = {k: [f.get(k) for f in flat_cfg] for k in keys
                   if any(f.get(k) != flat_cfg[0].get(k) for f in flat_cfg)}  # fmt: skip
    units = list(dict.fromkeys(u for s in sides for u in s.metrics))
    performance = []
    for unit in units:
        for metric in COMPARED_METRICS:
            values = [as_number(s.metrics.get(unit, {}).get(metric)) for s in sides]
            if all(v is None for v in values):
                continue
            performance.append(
                (unit, metric, values, _best(values, directions.lower_is_better(metric)))
            )
    costs: dict[str, list[float | None]] = {}
    for name in _COSTS:
        totals = [_total(s.metrics, name) for s in sides]
        if any(t is not None for t in totals):
            costs[name] = totals
    common = [u for u in units if all(as_number(s.metrics.get(u, {}).get(primary)) is not None
                                      for s in sides)]  # fmt: skip
    pool = common or units
    means = []
    for s in sides:
        vals = [as_number(s.metrics.get(u, {}).get(primary)) for u in pool]
        got = [v for v in vals if v is not None]
        means.append(math.fsum(got) / len(got) if got else None)
    lower = directions.lower_is_better(primary)
    winner = _best(means, lower)
    margin = vs_others = None
    if winner is not None:
        others = [m for i, m in enumerate(means) if i != winner and m is not None]
        if others:
            best_other = min(others) if lower else max(others)
            margin = means[winner] - best_other  # type: ignore[operator]
            vs_others = means[winner] - math.fsum(others) / len(others)  # type: ignore[operator]
    return SideBySide(sides, config_diff, performance, costs, primary, means, winner, margin,
                      vs_others, len(common),
                      notes=[n] if (n := directions.note()) else [])  # fmt: skip


def _system(axes: dict[str, str]) -> str:
    return "/".join(v for a, v in axes.items() if a != "benchmark")


def _best(values: list[float | None], lower: bool) -> int | None:
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(present) < 2 or len({v for v, _ in present}) == 1:
        return None
    pick = min if lower else max
    return pick(present, key=lambda p: p[0])[1]


def _total(metrics: dict[str, dict[str, Any]], name: str) -> float | None:
    values = [as_number(m.get(name)) for m in metrics.values()]
    got = [v for v in values if v is not None]
    return math.fsum(got) if got else None
