"""What changed between two revisions of the ledger, and whether the change is real.

For every cell whose metrics differ, each metric's old and new value and the change;
where both revisions hold per-item scores for the metric's column, a paired test on the
items the two share, with a confidence interval of the change. Also the cells added or
removed and the params.yaml keys that changed. Defaults mirror ``dvc metrics diff``:
HEAD against the working tree.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.analysis.categories import category_items, category_of
from evalledger.analysis.cellfilter import CellFilter, check_filter, matches
from evalledger.analysis.formatting import format_p, format_value, md_code, md_text
from evalledger.analysis.gate import Problem, find_problems
from evalledger.errors import ConfigError, EvalLedgerError
from evalledger.ledger.directions import directions_at
from evalledger.ledger.gitobjects import WORKSPACE
from evalledger.ledger.scores import column_for
from evalledger.metrics import Directions, as_number, flatten, is_timing_metric

if TYPE_CHECKING:
    from evalledger.analysis.paired import PairedResult
    from evalledger.ledger.history import Ledger, Snapshot

__all__ = [
    "DEFAULT_METRICS",
    "LedgerDiff",
    "MetricChange",
    "ParamChange",
    "diff_revisions",
    "format_p",
    "format_value",
    "lower_is_better",
    "md_code",
    "md_text",
]

#: Metrics shown by default (those a cell has); ``--metric`` or ``--all`` choose others.
DEFAULT_METRICS = ("accuracy", "mean_score", "partial_accuracy", "format_accuracy",
                   "error_rate", "cost")  # fmt: skip


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of this metric is an improvement, by its name alone.

    Readers of a revision use :class:`evalledger.metrics.Directions` from its
    params.yaml instead, which ``metrics:`` can override.
    """
    return Directions().lower_is_better(metric)


@dataclass
class MetricChange:
    """One metric of one cell, at both revisions."""

    cell: str
    metric: str
    old: float | None
    new: float | None
    test: PairedResult | None = None
    significant: bool | None = None
    """p < alpha; None when there are no per-item scores to test."""
    regression: bool = False
    """Set by :meth:`LedgerDiff.regressions`: this change fails the CI gate (``fails_gate``
    in JSON; ``verdict`` says only whether it is a significant move)."""
    lower: bool = False
    """Smaller is better for this metric (from :class:`evalledger.metrics.Directions`)."""

    @property
    def change(self) -> float | None:
        """New - old."""
        if self.old is None or self.new is None:
            return None
        return self.new - self.old

    @property
    def better(self) -> bool | None:
        """Whether the change is an improvement (None when unchanged or one-sided)."""
        change = self.change
        if not change:
            return None
        return (change < 0) if self.lower else (change > 0)

    @property
    def verdict(self) -> str:
        """``improvement``, ``regression`` (both significant), or ``changed``."""
        if self.significant and self.better is not None:
            return "improvement" if self.better else "regression"
        return "changed"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, with the test's method, n, CI and p-value when there is one."""
        out: dict[str, Any] = {
            "cell": self.cell, "metric": self.metric, "old": self.old, "new": self.new,
            "change": self.change, "verdict": self.verdict, "significant": self.significant,
            "fails_gate": self.regression,
        }  # fmt: skip
        if self.test is not None:
            out["test"] = self.test.to_dict()
        return out


@dataclass(frozen=True)
class ParamChange:
    """A params.yaml key that differs between the revisions."""

    key: str
    old: Any
    new: Any


@dataclass
class LedgerDiff:
    """The difference between two revisions of the ledger."""

    a: str
    b: str
    a_commit: str | None
    b_commit: str | None
    changes: list[MetricChange]
    added: list[str]
    removed: list[str]
    params: list[ParamChange]
    unchanged: int
    alpha: float
    confidence: float
    method: str
    notes: list[str] = field(default_factory=list)
    other_changes: int = 0
    """Cells whose files changed only in metrics not compared (e.g. latency)."""
    unreadable: list[str] = field(default_factory=list)
    """Cells whose metrics file could not be read on one side: not compared."""
    problems: list[Problem] = field(default_factory=list)
    """What makes B's metrics untrustworthy besides regressions (see analysis.gate)."""
    timings: list[MetricChange] = field(default_factory=list)
    """Changes of timing metrics (latency, wall time), apart: a re-run moves them alone."""

    @property
    def timing_cells(self) -> list[str]:
        """Cells with a changed timing metric, in order."""
        return list(dict.fromkeys(c.cell for c in self.timings))

    def __post_init__(self) -> None:
        if self.unreadable:
            n = len(self.unreadable)
            self.notes.append(f"{n} cell{'s' if n != 1 else ''} not compared, a metrics file "
                              f"damaged: {', '.join(self.unreadable)}")  # fmt: skip

    @property
    def changed_cells(self) -> list[str]:
        """Cells with at least one changed metric, in order."""
        return list(dict.fromkeys(c.cell for c in self.changes))

    def counts(self) -> dict[str, int]:
        """How many metric changes are significant improvements, regressions, or neither."""
        out = {"improvement": 0, "regression": 0, "changed": 0}
        for c in self.changes:
            out[c.verdict] += 1
        return out

    def summary(self) -> str:
        """One line: cells changed, significant moves, cells added/removed, params."""
        text = self._summary()
        if self.problems:
            kinds: dict[str, int] = {}
            for p in self.problems:
                kinds[p.reason] = kinds.get(p.reason, 0) + 1
            text += f"; problems: {', '.join(f'{n} {r}' for r, n in kinds.items())}"
        return text

    def _summary(self) -> str:
        timed = (f"timings changed in {len(self.timing_cells)} cells (--timings lists them)"
                 if self.timings else "")  # fmt: skip
        if not (self.changes or self.added or self.removed or self.params):
            parts = [f"{self.other_changes} cells differ only in others (--all shows them)"
                     ] if self.other_changes else []  # fmt: skip
            parts += [timed] if timed else []
            if parts:
                return "; ".join(["no change in the compared metrics", *parts])
            return f"no changes between {self.a} and {self.b}"
        c = self.counts()
        parts = [f"{len(self.changed_cells)} cells changed"]
        if self.changes:
            parts.append(
                f"{c['improvement']} significant improvements, {c['regression']} significant "
                f"regressions, {c['changed']} other metric changes"
            )
        if self.added or self.removed:
            parts.append(f"{len(self.added)} cells added, {len(self.removed)} removed")
        if self.params:
            parts.append(f"{len(self.params)} params changed")
        if timed:
            parts.append(timed)
        return "; ".join(parts)

    def regressions(
        self, metrics: list[str] | None = None, threshold: float = 0.0, alpha: float | None = None
    ) -> list[MetricChange]:
        """Changes that fail a CI gate: worse by more than ``threshold``, and significant.

        A change with no per-item scores to test is judged by the threshold alone. With no
        ``metrics``, each cell's primary metric (accuracy, else mean_score) is gated.
        """
        alpha = self.alpha if alpha is None else alpha
        found = []
        primary = {c.cell for c in self.changes if c.metric == "accuracy"}
        for c in self.changes:
            if metrics:
                if c.metric not in metrics:
                    continue
            elif c.metric != "accuracy" and not (
                c.metric == "mean_score" and c.cell not in primary
            ):
                continue
            change = c.change
            if change is None or c.better is not False or abs(change) <= threshold:
                continue
            if c.test is not None and not c.test.p_value < alpha:
                continue
            c.regression = True
            found.append(c)
        return found

    def gate(
        self, metrics: list[str] | None = None, threshold: float = 0.0, alpha: float | None = None
    ) -> list[Problem]:
        """Every reason a CI gate fails: :meth:`regressions`, then :attr:`problems`."""
        rows = [Problem(c.cell, "regression", f"{c.metric} {format_value(c.old)} -> "
                        f"{format_value(c.new)} ({format_value(c.change, True)}"
                        + (f", p {format_p(c.test.p_value)})" if c.test else ", untested)"))
                for c in self.regressions(metrics, threshold, alpha)]  # fmt: skip
        return rows + self.problems

    def ordered(self) -> list[MetricChange]:
        """Significant changes first (regressions, then improvements), then the rest."""
        rank = {"regression": 0, "improvement": 1, "changed": 2}
        return sorted(self.changes, key=lambda c: rank[c.verdict])

    def to_json(self) -> dict[str, Any]:
        """The whole diff as JSON-ready data."""
        return {
            "a": {"rev": self.a, "commit": self.a_commit},
            "b": {"rev": self.b, "commit": self.b_commit},
            "summary": self.summary(), "counts": self.counts(),
            "alpha": self.alpha, "confidence": self.confidence, "method": self.method,
            "changes": [c.to_json() for c in self.changes],
            "cells_added": self.added, "cells_removed": self.removed,
            "params": [{"key": p.key, "old": p.old, "new": p.new} for p in self.params],
            "unchanged_cells": self.unchanged, "other_changes": self.other_changes,
            "unreadable_cells": self.unreadable,
            "problems": [p.to_json() for p in self.problems],
            "timing_changes": [c.to_json() for c in self.timings],
            "notes": self.notes,
        }  # fmt: skip

    def to_csv(self) -> str:
        """One row per cell and metric (plus added/removed cells)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["cell", "metric", "old", "new", "change", "verdict", "method", "n",
                    "ci_low", "ci_high", "p_value"])  # fmt: skip
        for c in self.changes:
            t = c.test
            test = (
                [t.method, t.n, _csv(t.ci_low), _csv(t.ci_high), _csv(t.p_value)] if t else [""] * 5
            )
            w.writerow(
                [c.cell, c.metric, _csv(c.old), _csv(c.new), _csv(c.change), c.verdict, *test]
            )
        for key in self.added:
            w.writerow([key, "", "", "", "", "added", "", "", "", "", ""])
        for key in self.removed:
            w.writerow([key, "", "", "", "", "removed", "", "", "", "", ""])
        for p in self.problems:
            w.writerow([p.cell, "", "", "", "", p.reason, "", "", "", "", ""])
        for c in self.timings:
            w.writerow([c.cell, c.metric, _csv(c.old), _csv(c.new), _csv(c.change), "timing",
                        "", "", "", "", ""])  # fmt: skip
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A pull-request comment: a summary line, significant changes first, marked."""
        from evalledger.analysis.diff_markdown import diff_markdown

        return diff_markdown(self)


def _csv(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(value)


def _pick_metrics(flat_old: dict[str, Any], flat_new: dict[str, Any],
                  metrics: list[str] | None, all_metrics: bool) -> list[str]:  # fmt: skip
    keys = list(dict.fromkeys([*flat_old, *flat_new]))
    if all_metrics:
        return [k for k in keys if as_number(flat_old.get(k)) is not None
                or as_number(flat_new.get(k)) is not None]  # fmt: skip
    wanted = metrics or list(DEFAULT_METRICS)
    return [m for m in wanted if m in flat_old or m in flat_new]


def _check_metrics(metrics: list[str], snaps: list[Snapshot]) -> None:
    """ConfigError for a ``-m`` that no cell of either revision has (a typo passes no gate)."""
    known: set[str] = set()
    for snap in snaps:
        for data in snap.metrics().values():
            known.update(k for k, v in flatten(data).items() if as_number(v) is not None)
    for name in metrics:
        if name not in known and known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            shown = sorted(known, key=lambda k: (k.count("."), k))
            more = f" and {len(shown) - 15} more" if len(shown) > 15 else ""
            raise ConfigError(f"unknown metric {name!r} for -m/--metric",
                              f"{guess}known: {', '.join(shown[:15])}{more}")  # fmt: skip


def diff_revisions(
    ledger: Ledger,
    a_rev: str | None = None,
    b_rev: str | None = None,
    *,
    metrics: list[str] | None = None,
    all_metrics: bool = False,
    method: str = "auto",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    cluster: str | None = None,
    max_error_rise: float = 0.0,
    filters: CellFilter | None = None,
) -> LedgerDiff:
    """Compare the ledger at ``a_rev`` (default HEAD) with ``b_rev`` (default the workspace).

    ``max_error_rise`` is how much a cell's error rate may rise before it is a problem;
    ``filters`` (axis -> values) keeps the cells that match, on both sides.
    """
    a_rev = a_rev or "HEAD"
    b_rev = b_rev or WORKSPACE
    if "HEAD" in (a_rev, b_rev) and not ledger.git.has_commits:
        raise EvalLedgerError(
            "the repository has no commits yet, so there is no HEAD to compare with",
            "commit the ledger first, e.g. `evalledger run --commit`",
        )
    a, b = ledger.snapshot(a_rev), ledger.snapshot(b_rev)
    if metrics:
        _check_metrics(metrics, [a, b])
    directions = directions_at(b if b.params else a)  # the newer side's say
    check_filter(filters, [c.axes for s in (a, b) for c in s.cells.values()])
    a_keys = [k for k, c in a.cells.items() if matches(c.axes, filters)]
    b_keys = [k for k, c in b.cells.items() if matches(c.axes, filters)]
    common = [k for k in b_keys if k in a.cells]
    changed = [k for k in common if a.cells[k].metrics_oid != b.cells[k].metrics_oid
               or a.cells[k].scores_oid != b.cells[k].scores_oid]  # fmt: skip
    old_m, new_m = a.metrics(changed), b.metrics(changed)
    # A metrics file that could not be read (warned about already) is no change to report.
    unreadable = [k for k in changed if k not in old_m or k not in new_m]
    changed = [k for k in changed if k not in unreadable]
    tested: list[tuple[str, str, str, str | None]] = []
    changes: list[MetricChange] = []
    timings: list[MetricChange] = []
    asked = set(metrics or [])
    for key in changed:
        flat_old, flat_new = flatten(old_m.get(key, {})), flatten(new_m.get(key, {}))
        picked = _pick_metrics(flat_old, flat_new, metrics, all_metrics)
        timing = [m for m in dict.fromkeys([*flat_old, *flat_new])
                  if is_timing_metric(m) and m not in asked]  # fmt: skip
        for metric in dict.fromkeys([*picked, *timing]):
            old, new = as_number(flat_old.get(metric)), as_number(flat_new.get(metric))
            if old == new:
                continue
            change = MetricChange(key, metric, old, new, lower=directions.lower_is_better(metric))
            if metric in timing:  # the clock, not the answers: listed apart
                timings.append(change)
                continue
            changes.append(change)
            category = category_of(metric)
            col = category[1] if category else column_for(metric)
            both = old is not None and new is not None
            if both and col and a.cells[key].scores_oid and b.cells[key].scores_oid:
                tested.append((key, metric, col, category[0] if category else None))
    _test_changes(a, b, changes, tested, method=method, alpha=alpha, confidence=confidence,
                  n_resamples=n_resamples, seed=seed, cluster=cluster)  # fmt: skip
    moved = {c.cell for c in changes} | {c.cell for c in timings}
    other = len([k for k in changed if k not in moved])
    from evalledger.ledger.health import cell_health

    added = [k for k in b_keys if k not in a.cells]
    problems = find_problems(cell_health(b), old_m, {**new_m, **b.metrics(added)}, unreadable,
                             max_error_rise=max_error_rise)  # fmt: skip
    problems = [
        p
        for p in problems
        if matches(dict(zip(b.axis_names, p.cell.split("/"), strict=False)), filters)
    ]
    params = [
        ParamChange(k, old, new) for k, (old, new) in _param_changes(a.params, b.params).items()
    ]
    return LedgerDiff(
        a=a.label, b=b.label, a_commit=a.commit, b_commit=b.commit, changes=changes,
        added=added,
        removed=[k for k in a_keys if k not in b.cells],
        params=params, unchanged=len(common) - len(changed) - len(unreadable), alpha=alpha,
        confidence=confidence, method=method, other_changes=other,
        unreadable=unreadable, problems=problems, timings=timings,
        notes=[note] if (note := directions.note()) else [],
    )  # fmt: skip


def _param_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    fo, fn = flatten(old), flatten(new)
    return {k: (fo.get(k), fn.get(k)) for k in dict.fromkeys([*fo, *fn])
            if fo.get(k) != fn.get(k)}  # fmt: skip


def _test_changes(
    a: Snapshot, b: Snapshot, changes: list[MetricChange],
    tested: list[tuple[str, str, str, str | None]], **options: Any,
) -> None:  # fmt: skip
    if not tested:
        return
    from evalledger.analysis.pairing import paired_arrays
    from evalledger.analysis.significance import compare_paired

    keys = list(dict.fromkeys(k for k, _, _, _ in tested))
    old_t, new_t = a.score_tables(keys), b.score_tables(keys)
    by_id = {(c.cell, c.metric): c for c in changes}
    cluster = options.pop("cluster")
    alpha = options.pop("alpha")
    for key, metric, col, category in tested:
        if key not in old_t or key not in new_t:
            continue
        old, new = old_t[key], new_t[key]
        if category is not None:  # a category's change is tested on its own items
            old, new = category_items(old, category), category_items(new, category)
        pair = paired_arrays(old, new, col, cluster)
        if pair is None:
            continue
        x, y, clusters = pair
        result = compare_paired(x, y, clusters=clusters, **options)
        change = by_id[(key, metric)]
        change.test = result
        change.significant = bool(result.p_value < alpha)
