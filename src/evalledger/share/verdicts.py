"""The verdict on a reproduced cell: its new metrics against the recorded ones.

``compare_cell`` says ``match``, ``consistent`` (different, but within the noise by a
paired test of the per-item scores) or ``differs``; ``ReproduceReport`` gathers the
verdicts of one ``evalledger reproduce``. Nothing here runs anything or touches git.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.errors import EvalLedgerError

if TYPE_CHECKING:
    from evalledger.analysis.paired import PairedResult
    from evalledger.ledger.scores import ScoreTable

__all__ = [
    "VERDICTS",
    "CellCheck",
    "ReproduceReport",
    "compare_cell",
    "compare_stage",
    "is_ignored",
    "numeric_metrics",
]

#: Per-cell verdicts, best first.
VERDICTS = ("match", "consistent", "differs", "failed", "missing")
#: Metrics that must be equal even under sampled decoding: the benchmark's item count.
_STRUCTURAL = ("n",)
_PRIMARY = ("accuracy", "mean_score")
_TOLERANCE = 1e-9
#: Rates in metrics files are rounded to 6 decimals.
_ROUNDING = 1e-6


@dataclass
class CellCheck:
    """The verdict on one reproduced cell."""

    cell: str
    verdict: str
    metric: str | None = None
    """The cell's headline metric (accuracy, else mean_score)."""
    recorded: float | None = None
    reproduced: float | None = None
    differing: list[str] = field(default_factory=list)
    """Compared metrics whose values differ."""
    tests: dict[str, PairedResult] = field(default_factory=dict)
    """Metric -> paired test of its per-item column, for differing metrics that have one."""
    note: str | None = None
    kind: str = "cell"
    """``cell`` (an evaluation cell) or ``stage`` (a DVC stage of the user's, re-run)."""
    changes: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """For a stage: differing ``file:metric`` -> (recorded, reproduced)."""

    @property
    def change(self) -> float | None:
        """Reproduced - recorded, for the headline metric."""
        if self.recorded is None or self.reproduced is None:
            return None
        return self.reproduced - self.recorded

    @property
    def test(self) -> PairedResult | None:
        """The test with the smallest p-value (the one that decides the verdict)."""
        if not self.tests:
            return None
        return min(self.tests.values(), key=lambda t: t.p_value)

    @property
    def ok(self) -> bool:
        """Whether the cell reproduced: exactly, or within the noise."""
        return self.verdict in ("match", "consistent")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "cell": self.cell, "verdict": self.verdict, "metric": self.metric,
            "recorded": self.recorded, "reproduced": self.reproduced, "change": self.change,
            "p_value": self.test.p_value if self.test else None,
            "differing": self.differing,
            "tests": {m: t.to_dict() for m, t in self.tests.items()}, "note": self.note,
            "kind": self.kind,
            "changes": {k: {"recorded": a, "reproduced": b} for k, (a, b) in self.changes.items()},
        }  # fmt: skip


@dataclass
class ReproduceReport:
    """Every checked cell of one ``evalledger reproduce``."""

    rev: str
    commit: str
    alpha: float
    checks: list[CellCheck]
    ignored: list[str]
    """Metrics not compared because they vary from run to run."""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every cell matched or was consistent."""
        return all(c.ok for c in self.checks)

    def counts(self) -> dict[str, int]:
        """Verdict -> number of cells."""
        out = dict.fromkeys(VERDICTS, 0)
        for c in self.checks:
            out[c.verdict] += 1
        return out

    def summary(self) -> str:
        """One line: the revision and how many cells got each verdict."""
        counts = ", ".join(f"{n} {v}" for v, n in self.counts().items() if n)
        stages = sum(c.kind == "stage" for c in self.checks)
        what = f" ({stages} stage(s), {len(self.checks) - stages} cell(s))" if stages else ""
        return f"reproduced {self.rev} ({self.commit[:7]}): {counts or 'no cells'}{what}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"rev": self.rev, "commit": self.commit, "alpha": self.alpha, "ok": self.ok,
                "summary": self.summary(), "counts": self.counts(),
                "cells": [c.to_json() for c in self.checks if c.kind == "cell"],
                "stages": [c.to_json() for c in self.checks if c.kind == "stage"],
                "ignored_metrics": self.ignored,
                "notes": self.notes}  # fmt: skip


# ------------------------------------------------------------------------ comparison


def is_ignored(name: str) -> bool:
    """Whether a dotted metric name varies from run to run: a timing, not compared.

    :func:`evalledger.metrics.is_timing_metric` decides, as it does for ``diff``.
    """
    from evalledger.metrics import is_timing_metric

    return is_timing_metric(name)


def numeric_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """A metrics file's numbers, by dotted name."""
    from evalledger.metrics import as_number, flatten

    values = {key: as_number(value) for key, value in flatten(metrics).items()}
    return {key: value for key, value in values.items() if value is not None}


def _equal(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)


def compare_cell(
    key: str,
    recorded: dict[str, Any],
    reproduced: dict[str, Any],
    recorded_scores: ScoreTable | None,
    reproduced_scores: ScoreTable | None,
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> CellCheck:
    """Compare one cell's reproduced metrics with its recorded ones.

    ``match`` when every compared metric is equal; otherwise ``consistent`` when the item
    count is equal and a paired test of every differing metric with a per-item column
    has p >= ``alpha``, else ``differs``.
    """
    from evalledger.analysis.pairing import paired_arrays
    from evalledger.analysis.significance import compare_paired
    from evalledger.ledger.scores import column_for

    old, new = numeric_metrics(recorded), numeric_metrics(reproduced)
    metric = next((m for m in _PRIMARY if m in old), None)
    check = CellCheck(key, "match", metric, old.get(metric) if metric else None,
                      new.get(metric) if metric else None)  # fmt: skip
    names = [k for k in dict.fromkeys([*old, *new]) if not is_ignored(k)]
    check.differing = [k for k in names if not _equal(old.get(k), new.get(k))]
    if not check.differing:
        return check
    check.verdict = "differs"
    structural = [k for k in check.differing if k in _STRUCTURAL]
    if structural:
        check.note = f"{', '.join(structural)} differs: not the same items"
        return check
    if recorded_scores is None or reproduced_scores is None:
        check.note = "no per-item scores to test the difference"
        return check
    inconsistent = _disagreeing(check.differing, old, new, recorded_scores, reproduced_scores)
    if inconsistent:
        check.note = inconsistent
        return check
    untested, columns = [], set()
    for name in check.differing:
        column = column_for(name)
        if column is None:
            untested.append(name)
            continue
        if column in columns:
            continue
        columns.add(column)
        try:
            pair = paired_arrays(recorded_scores, reproduced_scores, column)
            if pair is None:
                check.note = "fewer than 2 items in common"
                return check
            x, y, _ = pair
            check.tests[name] = compare_paired(x, y, method="auto", confidence=confidence)
        except EvalLedgerError as exc:
            check.note = f"{name}: {exc.message}"
            return check
    if not check.tests:
        check.note = f"{', '.join(untested[:3])} differ(s) and have no per-item scores to test"
        return check
    worst = check.test
    assert worst is not None
    if worst.p_value >= alpha:
        check.verdict = "consistent"
        ci = f"[{worst.ci_low:+.4g}, {worst.ci_high:+.4g}]"
        check.note = f"within noise: {worst.method}, {confidence:.0%} CI {ci}"
    else:
        check.note = f"{worst.method} p={worst.p_value:.3g} < alpha {alpha:g}"
    return check


def _disagreeing(
    names: list[str],
    old: dict[str, float],
    new: dict[str, float],
    old_scores: ScoreTable,
    new_scores: ScoreTable,
) -> str | None:
    """A note when a mean metric does not equal the mean of its own per-item column.

    Then the per-item test would judge items the metric was not computed from (e.g. a
    hand-edited metrics file), so the difference cannot be put down to noise.
    """
    from evalledger.ledger.scores import METRIC_COLUMNS

    for name in names:
        column = METRIC_COLUMNS.get(name)
        if column is None:
            continue
        for side, metrics, table in (("recorded", old, old_scores),
                                     ("reproduced", new, new_scores)):  # fmt: skip
            values = [v for v in table.columns.get(column, []) if not math.isnan(v)]
            value = metrics.get(name)
            if not values or value is None:
                continue
            mean = math.fsum(values) / len(values)
            if abs(value - mean) > _ROUNDING:
                return (f"the {side} {name} ({value:.4g}) is not the mean of its per-item "
                        f"{column} ({mean:.4g})")  # fmt: skip
    return None


def _metric_name(key: str) -> str:
    """The dotted metric of a ``file:metric`` key (series rows are numbered)."""
    name = key.split(":", 1)[-1]
    return name.split(".", 1)[1] if name.split(".", 1)[0].isdigit() and "." in name else name


def compare_stage(
    stage: str,
    recorded: dict[str, float],
    reproduced: dict[str, float],
    recorded_series: dict[str, float],
    reproduced_series: dict[str, float],
    *,
    rtol: float = 0.05,
) -> CellCheck:
    """Compare a re-run stage's metrics and series (``file:metric`` -> number).

    ``match`` when every number but the timings is equal (as in :func:`compare_cell`);
    otherwise ``consistent`` when every differing metric of the metrics files is within
    ``rtol`` of its recorded value (training has no per-item scores to test), else
    ``differs``. Series differences are reported but do not decide between the two.
    """
    check = CellCheck(stage, "match", kind="stage")
    names = [k for k in dict.fromkeys([*recorded, *reproduced]) if not is_ignored(_metric_name(k))]
    series = [k for k in dict.fromkeys([*recorded_series, *reproduced_series])
              if not is_ignored(_metric_name(k))]  # fmt: skip
    if names:
        check.metric = names[0]
    differing = [k for k in names if not _equal(recorded.get(k), reproduced.get(k))]
    moved = [k for k in series if not _equal(recorded_series.get(k), reproduced_series.get(k))]
    check.differing = differing + moved
    check.changes = {k: (recorded.get(k), reproduced.get(k)) for k in differing}
    if differing:
        check.metric = differing[0]
    if check.metric:
        check.recorded, check.reproduced = recorded.get(check.metric), reproduced.get(check.metric)
    if not check.differing:
        return check
    far = [k for k in differing if not _near(recorded.get(k), reproduced.get(k), rtol)]
    check.verdict = "differs" if far else "consistent"
    shown = far or differing
    numbers = "; ".join(f"{k} {_fmt(recorded.get(k))} -> {_fmt(reproduced.get(k))}"
                        for k in shown[:3])  # fmt: skip
    more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
    parts = [numbers + more] if numbers else []
    if moved:
        parts.append(f"{len(moved)} series point(s) differ")
    if far:
        parts.append(f"beyond {rtol:.0%} of the recorded values")
    elif differing:
        parts.append(f"within {rtol:.0%} of the recorded values (unseeded run?)")
    else:
        parts.append("final metrics equal")
        check.verdict = "consistent"
    check.note = "; ".join(parts)
    return check


def _near(a: float | None, b: float | None, rtol: float) -> bool:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return _equal(a, b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + _ROUNDING


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"
