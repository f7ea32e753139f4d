"""The result of a diff: metric changes, parameter changes, and how they render.

:func:`evalledger.analysis.diff.diff_revisions` builds a :class:`LedgerDiff`; this module
holds it and its formats (JSON, CSV, the pull-request comment) so that readers of a
diff need not import how it is computed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalledger.analysis.formatting import format_p, format_value, md_code, md_text
from evalledger.analysis.gate import Problem
from evalledger.metrics import Directions

if TYPE_CHECKING:
    from evalledger.analysis.paired import PairedResult
    from evalledger.analysis.trained import ExperimentRef

__all__ = ["COLLAPSE_ROWS", "LedgerDiff", "MetricChange", "ParamChange", "lower_is_better"]

#: A pull-request comment folds its "Other changes" table into <details> past this many.
COLLAPSE_ROWS = 20


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
            "fails_gate": self.regression, "direction": "lower" if self.lower else "higher",
            "better": self.better,
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
    experiments: list[ExperimentRef] = field(default_factory=list)
    """Tracked runs whose manifests are new at B, with their checkpoints."""

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
            "experiments": [e.to_json() for e in self.experiments],
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
        conf = f"{self.confidence:.0%}"
        lines = [f"### evalledger diff: {md_code(self.a)} → {md_code(self.b)}", "",
                 f"**{self.summary()}**", ""]  # fmt: skip
        significant = [c for c in self.ordered() if c.verdict != "changed"]
        other = [c for c in self.ordered() if c.verdict == "changed"]
        head = f"| | cell | metric | old | new | change | {conf} CI | p | n |"
        rule = "|---|---|---|---:|---:|---:|---|---:|---:|"
        for title, rows in (("Significant changes", significant), ("Other changes", other)):
            if not rows:
                continue
            # a long table would bury the summary of a PR comment: fold it
            fold = title == "Other changes" and len(rows) > COLLAPSE_ROWS
            if fold:
                lines += [f"<details><summary>{title}: {len(rows)} rows</summary>", ""]
            lines += [f"#### {title}", "", head, rule]
            for c in rows:
                lines.append(_md_row(c))
            lines.append("")
            if fold:
                lines += ["</details>", ""]
        if self.problems:
            lines += ["#### Problems", "", "| | cell | reason | detail |", "|---|---|---|---|"]
            lines += [f"| ⚠️ | {md_code(p.cell)} | {p.reason} | {md_text(p.detail)} |"
                      for p in self.problems]  # fmt: skip
            lines.append("")
        if self.timings:  # collapsed: a re-run moves them and nothing else
            lines += [f"<details><summary>Timing changes in {len(self.timing_cells)} cells"
                      "</summary>", "", "| cell | metric | old | new | change |",
                      "|---|---|---:|---:|---:|"]  # fmt: skip
            lines += [f"| {md_code(c.cell)} | {md_text(c.metric)} | {format_value(c.old)} | "
                      f"{format_value(c.new)} | {format_value(c.change, True)} |"
                      for c in self.timings]  # fmt: skip
            lines += ["", "</details>", ""]
        if self.added or self.removed:
            lines += ["#### Cells added or removed", ""]
            lines += [f"- added {md_code(k)}" for k in self.added]
            lines += [f"- removed {md_code(k)}" for k in self.removed]
            lines.append("")
        if self.params:
            lines += ["#### Parameters", "", "| param | old | new |", "|---|---|---|"]
            for p in self.params:
                lines.append(f"| {md_code(p.key)} | {_md_param(p.old)} | {_md_param(p.new)} |")
            lines.append("")
        from evalledger.analysis.trained import markdown_lines

        lines += markdown_lines(self.experiments)
        used = sorted({c.test.method for c in self.changes if c.test is not None})
        tests = f"paired {' / '.join(used)} tests on per-item scores" if used else "no tests"
        cells = f"{self.unchanged} cell{'s' if self.unchanged != 1 else ''} unchanged"
        untested = ""
        if any(c.test is None and c.better is not None for c in other):
            untested = " better/worse: moved that way, untested (no per-item scores)."
        lower = " ↓: lower is better." if any(c.lower for c in self.changes) else ""
        lines.append(
            f"<sub>{tests}, alpha {self.alpha:g}; {cells}. 🟢 significant improvement, "
            f"🔴 significant regression.{untested}{lower}</sub>"
        )
        for note in self.notes:
            lines.append(f"<sub>{note}</sub>")
        return "\n".join(lines) + "\n"


def _csv(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(value)


_MARK = {"improvement": "🟢", "regression": "🔴", "changed": ""}


def _md_row(c: MetricChange) -> str:
    t = c.test
    ci = f"[{format_value(t.ci_low, True)}, {format_value(t.ci_high, True)}]" if t else "-"
    mark = _MARK[c.verdict]
    if t is None and c.significant is None and c.better is not None:
        mark = "better" if c.better else "worse"  # by its direction; nothing to test
    metric = md_text(c.metric) + (" ↓" if c.lower else "")
    return (
        f"| {mark} | {md_code(c.cell)} | {metric} | {format_value(c.old)} | "
        f"{format_value(c.new)} | {format_value(c.change, True)} | {ci} | "
        f"{format_p(t.p_value if t else None)} | {t.n if t else '-'} |"
    )


def _md_param(value: Any) -> str:
    if value is None:
        return "-"
    return md_code(json.dumps(value) if not isinstance(value, str) else value)
