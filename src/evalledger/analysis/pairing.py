"""Paired significance tests between models, cells, executions or revisions.

An operand of ``evalledger significance`` is a model (its cells, paired with another
model's on each benchmark), a cell key (``model/benchmark``), an execution ID, or a git
revision (the same cells paired across revisions); ``NAME@REV`` reads it at a revision.
Items are paired by id; every comparison of one invocation is one family for the
Holm-Bonferroni correction.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.errors import StatsError, UnknownExecutionError, UnknownRevisionError
from evalledger.ledger.scores import column_for

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from evalledger.analysis.paired import PairedResult
    from evalledger.ledger.history import Ledger, Snapshot
    from evalledger.ledger.scores import ScoreTable

__all__ = [
    "Comparison",
    "Operand",
    "SignificanceReport",
    "paired_arrays",
    "resolve_operand",
    "run_significance",
]


def paired_arrays(
    a: ScoreTable, b: ScoreTable, column: str, cluster: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Values of ``column`` for the items both tables scored, in one order, and clusters.

    ``cluster`` names the label column to cluster on (``cluster`` or ``category``); by
    default the ``cluster`` column is used when the tables have one. Returns None when
    the tables share fewer than two items.
    """
    import numpy as np

    if column not in a.columns or column not in b.columns:
        known = ", ".join(sorted(set(a.columns) & set(b.columns))) or "none"
        raise StatsError(f"no per-item column {column!r} to compare; known: {known}")
    va, vb = a.values(column), b.values(column)
    ids = [i for i in va if i in vb]
    if len(ids) < 2:
        return None
    x = np.fromiter((va[i] for i in ids), dtype=float, count=len(ids))
    y = np.fromiter((vb[i] for i in ids), dtype=float, count=len(ids))
    labels = None
    if cluster is not None or b.cluster or a.cluster:
        name = cluster or "cluster"
        found = b.clusters(name) or a.clusters(name)
        if found is None:
            raise StatsError(
                f"no {name!r} labels in the per-item scores to cluster on",
                "use --cluster category, or add a cluster field to the benchmark",
            )
        labels = np.array([found.get(i, i) for i in ids], dtype=object)
    return x, y, labels


@dataclass
class Operand:
    """One side of a comparison: cells (unit -> cell key) at a revision."""

    name: str
    snapshot: Snapshot
    cells: dict[str, str]
    """Unit (the cell key, or without its model for a model operand) -> cell key."""
    kind: str
    """``model``, ``cell``, ``execution`` or ``revision``."""


def resolve_operand(ledger: Ledger, text: str, rev: str | None = None) -> Operand:
    """Resolve ``NAME[@REV]``: a model, a cell key, an execution ID or a revision."""
    name, _, at = text.partition("@")
    snap = ledger.snapshot(at or rev)
    models = {c.axes.get("model", ""): None for c in snap.cells.values()}
    if name in models:
        cells = {_without_model(c.axes): k for k, c in snap.cells.items()
                 if c.axes.get("model") == name}  # fmt: skip
        return Operand(text, snap, cells, "model")
    if name in snap.cells:
        return Operand(text, snap, {_without_model(snap.cells[name].axes): name}, "cell")
    if not at:
        try:
            info = ledger.find_execution(name)
        except UnknownExecutionError:
            pass
        else:
            home = ledger.home(info)
            owned = [k for k, v in ledger.results(info).items() if v is not None]
            return Operand(text, home, {k: k for k in owned if k in home.cells}, "execution")
        try:
            other = ledger.snapshot(name)
        except UnknownRevisionError:
            pass
        else:
            return Operand(text, other, {k: k for k in other.cells}, "revision")
    import difflib

    known = list(models) + list(snap.cells)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"models: {', '.join(models)}"
    raise StatsError(f"{name!r} is not a model, cell, execution or revision at {snap.label}", hint)


def _without_model(axes: dict[str, str]) -> str:
    return "/".join(v for a, v in axes.items() if a != "model")


@dataclass
class Comparison:
    """One paired test: operand A against operand B on one unit (benchmark or cell)."""

    a: str
    b: str
    unit: str
    metric: str
    result: PairedResult
    mde: float | None = None
    """Minimum detectable effect (power 0.8 at alpha) with the items compared."""
    mde_at: dict[int, float] = field(default_factory=dict)
    """Minimum detectable effect at other numbers of items (``--items``)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the operands, the unit, and the test with its effect size and CI."""
        return {"a": self.a, "b": self.b, "unit": self.unit, "metric": self.metric,
                **self.result.to_dict(), "mde": self.mde,
                "mde_at": {str(k): v for k, v in self.mde_at.items()}}  # fmt: skip


@dataclass
class SignificanceReport:
    """Every comparison of one invocation, Holm-adjusted as one family."""

    operands: list[str]
    metric: str
    method: str
    alpha: float
    comparisons: list[Comparison]
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"operands": self.operands, "metric": self.metric, "method": self.method,
                "alpha": self.alpha, "correction": "holm-bonferroni",
                "comparisons": [c.to_json() for c in self.comparisons],
                "skipped": self.skipped}  # fmt: skip

    def save(self, metrics_dir: Path) -> Path:
        """Write the report as JSON beside the metrics (``metrics/_significance/``)."""
        from evalledger.ledger.history import SIGNIFICANCE_DIR

        def part(text: str) -> str:  # operands and metric become one file name, nothing more
            return re.sub(r"[^A-Za-z0-9_+-]+", "-", text).strip("-") or "-"

        slug = "_vs_".join(part(o) for o in self.operands)
        path = metrics_dir / SIGNIFICANCE_DIR / f"{slug}.{part(self.metric)}.json"
        atomic_write(path, json.dumps(self.to_json(), indent=2) + "\n")
        return path


def run_significance(
    ledger: Ledger,
    operands: list[str],
    *,
    rev: str | None = None,
    benchmarks: list[str] | None = None,
    metric: str = "accuracy",
    method: str = "bootstrap",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    cluster: str | None = None,
    items: list[int] | None = None,
) -> SignificanceReport:
    """Paired tests between every pair of operands on every unit they share."""
    import numpy as np

    from evalledger.analysis.power import minimum_detectable_effect
    from evalledger.analysis.significance import compare_paired, holm_bonferroni

    if len(operands) < 2:
        raise StatsError("significance needs at least two operands", "e.g. `solver noisy`")
    column = column_for(metric)
    if column is None:
        raise StatsError(
            f"metric {metric!r} has no per-item scores to test",
            "use accuracy, mean_score, partial_accuracy, format_accuracy or a score column",
        )
    sides = [resolve_operand(ledger, o, rev) for o in operands]
    by_model = all(s.kind == "model" for s in sides)
    units = [_units(s, by_model) for s in sides]
    shared = [u for u in units[0] if all(u in other for other in units[1:])]
    if benchmarks:
        shared = [u for u in shared if u.split("/")[0] in benchmarks]
    if not shared:
        raise StatsError(
            f"{', '.join(operands)} share no benchmark with per-item scores",
            "pick operands evaluated on the same benchmarks (see `evalledger leaderboard`)",
        )
    comparisons: list[Comparison] = []
    skipped: list[str] = []
    for unit in shared:
        tables = [
            s.snapshot.score_tables([u[unit]]).get(u[unit])
            for s, u in zip(sides, units, strict=True)
        ]
        for i in range(len(sides)):
            for j in range(i + 1, len(sides)):
                ta, tb = tables[i], tables[j]
                pair = paired_arrays(ta, tb, column, cluster) if ta and tb else None
                if pair is None:
                    skipped.append(f"{unit}: {operands[i]} vs {operands[j]} share < 2 items")
                    continue
                x, y, labels = pair
                result = compare_paired(
                    x, y, method=method, n_resamples=n_resamples, confidence=confidence,
                    seed=seed, clusters=labels,
                )  # fmt: skip
                sd = float(np.std(y - x, ddof=1))
                design = (result.se / (sd / math.sqrt(result.n))) ** 2 if sd > 0 else 1.0
                mde = at = None
                if sd > 0:
                    mde = minimum_detectable_effect(sd, result.n, alpha=alpha, design_effect=design)
                    at = {n: minimum_detectable_effect(sd, n, alpha=alpha, design_effect=design)
                          for n in items or []}  # fmt: skip
                comparisons.append(Comparison(operands[i], operands[j], unit, metric, result,
                                              mde, at or {}))  # fmt: skip
    if comparisons:
        adjusted = holm_bonferroni([c.result.p_value for c in comparisons])
        for c, p in zip(comparisons, adjusted, strict=True):
            c.result = replace(c.result, p_adjusted=p)
    return SignificanceReport(operands, metric, comparisons[0].result.method if comparisons
                              else method, alpha, comparisons, skipped)  # fmt: skip


def _units(side: Operand, by_model: bool) -> dict[str, str]:
    if by_model:
        return side.cells
    return {key: key for key in side.cells.values()}
