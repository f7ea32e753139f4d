"""Paired significance tests between models, cells, executions or revisions.

An operand of ``evalledger significance`` is a model (its cells, paired with another
model's on each benchmark), a cell key (``model/benchmark``), an axis value
(``condition=treatment``: its cells, paired on the rest of their keys), an execution ID,
or a git revision (the same cells paired across revisions); ``NAME@REV`` reads it at a
revision.
Items are paired by id; every comparison of one invocation is one family for the
Holm-Bonferroni correction.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from evalledger.analysis.categories import category_items, category_of
from evalledger.analysis.cellfilter import CellFilter, check_filter, matches, merge_filter
from evalledger.atomic import atomic_write
from evalledger.errors import StatsError, UnknownExecutionError, UnknownRevisionError
from evalledger.ledger.scores import ITEM_COLUMNS, METRIC_COLUMNS, column_for

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from evalledger.analysis.paired import PairedResult
    from evalledger.ledger.history import Ledger, Snapshot
    from evalledger.ledger.scores import ScoreTable

__all__ = [
    "CLUSTER_COLUMNS",
    "Comparison",
    "Operand",
    "SignificanceReport",
    "check_cluster_column",
    "paired_arrays",
    "resolve_operand",
    "run_significance",
]


#: The per-item label columns items can be clustered on.
CLUSTER_COLUMNS = ("cluster", "category")


def check_cluster_column(cluster: str | None, tables: list[ScoreTable]) -> None:
    """StatsError unless ``cluster`` is None or a label column the tables can cluster on."""
    if cluster is None or cluster in CLUSTER_COLUMNS:
        return
    have = [c for c in CLUSTER_COLUMNS if any(t.clusters(c) for t in tables)]
    hint = (f"cluster on one of: {', '.join(have)}" if have else
            "these scores have no cluster or category labels; leave --cluster out")  # fmt: skip
    raise StatsError(f"unknown cluster column {cluster!r}", hint)


def paired_arrays(
    a: ScoreTable, b: ScoreTable, column: str, cluster: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Values of ``column`` for the items both tables scored, in one order, and clusters.

    ``cluster`` names the label column to cluster on (``cluster`` or ``category``; any
    other name is a StatsError listing the valid ones); by default the ``cluster``
    column is used when the tables have one. Returns None when the tables share fewer
    than two items.
    """
    import numpy as np

    check_cluster_column(cluster, [a, b])
    if column not in a.columns or column not in b.columns:
        known = ", ".join(sorted(set(a.columns) & set(b.columns))) or "none"
        raise StatsError(
            f"no per-item column {column!r} to compare", f"columns with scores: {known}"
        )
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
    """``model``, ``cell``, ``slice`` (``AXIS=VALUE``), ``execution`` or ``revision``."""


def resolve_operand(ledger: Ledger, text: str, rev: str | None = None) -> Operand:
    """Resolve ``NAME[@REV]``: a model, a cell key, an execution ID or a revision.

    A text with ``@`` that is no ``NAME@REV`` (e.g. the revision ``HEAD@{1}``) is
    tried as a revision whole.
    """
    name, _, at = text.partition("@")
    try:
        return _resolve(ledger, text, name, at, rev)
    except (StatsError, UnknownRevisionError):
        if not at:
            raise
        try:
            whole = ledger.snapshot(text)
        except UnknownRevisionError:
            pass
        else:
            return Operand(text, whole, {k: k for k in whole.cells}, "revision")
        raise


def _resolve(ledger: Ledger, text: str, name: str, at: str, rev: str | None) -> Operand:
    snap = ledger.snapshot(at or rev)
    if "=" in name:
        return _axis_slice(snap, text, name)
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
    return _without(axes, "model")


def _without(axes: dict[str, str], axis: str) -> str:
    return "/".join(v for a, v in axes.items() if a != axis)


def _axis_slice(snap: Snapshot, text: str, name: str) -> Operand:
    """``AXIS=VALUE``: the cells with that value, each paired on the rest of its key.

    ``condition=control condition=treatment`` pairs each model's (and benchmark's...)
    items across the two conditions: the treatment effect, one test per such cell.
    """
    axis, _, value = name.partition("=")
    values: dict[str, set[str]] = {}
    for cell in snap.cells.values():
        for a, v in cell.axes.items():
            values.setdefault(a, set()).add(v)
    if axis not in values:
        raise StatsError(f"no axis {axis!r} at {snap.label} in {text}",
                         f"axes: {', '.join(values) or 'none (no cells)'}")  # fmt: skip
    if value not in values[axis]:
        raise StatsError(f"no {axis} {value!r} at {snap.label}",
                         f"{axis}: {', '.join(sorted(values[axis]))}")  # fmt: skip
    cells = {_without(c.axes, axis): k for k, c in snap.cells.items() if c.axes.get(axis) == value}
    return Operand(text, snap, cells, "slice")


@dataclass
class Comparison:
    """One test: operand A against operand B on one unit (benchmark or cell)."""

    a: str
    b: str
    unit: str
    metric: str
    result: PairedResult
    mde: float | None = None
    """Minimum detectable effect (power 0.8 at alpha) with the items compared."""
    mde_at: dict[int, float] = field(default_factory=dict)
    """Minimum detectable effect at other numbers of items (``--items``)."""
    items: dict[str, int] = field(default_factory=dict)
    """Items scored: ``shared`` by both, ``a_only`` and ``b_only`` (left out when paired)."""
    paired: bool = True

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the operands, the unit, and the test with its effect size and CI."""
        return {"a": self.a, "b": self.b, "unit": self.unit, "metric": self.metric,
                **self.result.to_dict(), "mde": self.mde,
                "mde_at": {str(k): v for k, v in self.mde_at.items()},
                "paired": self.paired, "items": self.items, "note": self.note()}  # fmt: skip

    def note(self) -> str | None:
        """Which items were tested, when not simply the same items on both sides."""
        shared, a_only, b_only = (self.items.get(k, 0) for k in ("shared", "a_only", "b_only"))
        if not self.paired:
            return (f"unpaired: all {shared + a_only} items of {self.a} and "
                    f"{shared + b_only} of {self.b} ({shared} shared)")  # fmt: skip
        if not a_only and not b_only:
            return None
        if a_only == b_only:
            return f"{shared} shared items; {a_only} on each side left out"
        return (f"{shared} shared items; {a_only} of {self.a}'s and {b_only} of "
                f"{self.b}'s left out")  # fmt: skip


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
    method: str = "auto",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    cluster: str | None = None,
    items: list[int] | None = None,
    unpaired: bool = False,
    filters: CellFilter | None = None,
) -> SignificanceReport:
    """Tests between every pair of operands on every unit they share.

    Paired on the items both sides scored (``method``, by default ``auto``: see
    :func:`evalledger.analysis.significance.choose_method`), or with ``unpaired`` an
    unpaired test of all items of each side (Fisher's exact test for 0/1 scores,
    Welch's t-test otherwise).
    """
    if len(operands) < 2:
        raise StatsError("significance needs at least two operands", "e.g. `solver noisy`")
    category = category_of(metric)  # tested on that category's items only
    column = category[1] if category else column_for(metric)
    if column is None:
        raise StatsError(
            f"unknown metric {metric!r}: it has no per-item scores to test",
            f"metrics: {', '.join([*METRIC_COLUMNS, *ITEM_COLUMNS])}, categories.<name>.accuracy",
        )
    if unpaired and method != "auto":
        raise StatsError(
            f"--unpaired picks its own test, not {method}",
            "leave --method out: Fisher's exact test for 0/1 scores, else Welch's t-test",
        )
    sides = [resolve_operand(ledger, o, rev) for o in operands]
    units = _units(sides)
    shared = [u for u in units[0] if all(u in other for other in units[1:])]
    filters = merge_filter(filters, benchmarks)
    if filters:
        cells = [c.axes for s in sides for c in s.snapshot.cells.values()]
        check_filter(filters, cells, StatsError)
        shared = [u for u in shared if any(matches(_axes(s, m[u]), filters)
                                           for s, m in zip(sides, units, strict=True))]  # fmt: skip
        benchmarks = filters.get("benchmark")
    if not shared:
        among = f" among {', '.join(benchmarks)}" if benchmarks else ""
        raise StatsError(
            f"{', '.join(operands)} share no benchmark with per-item scores{among}",
            "pick operands evaluated on the same benchmarks (see `evalledger leaderboard`)",
        )
    options = {"method": method, "n_resamples": n_resamples, "confidence": confidence,
               "seed": seed}  # fmt: skip
    comparisons: list[Comparison] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for unit in shared:
        tables = [
            s.snapshot.score_tables([u[unit]]).get(u[unit])
            for s, u in zip(sides, units, strict=True)
        ]
        if category:
            seen.update(c for t in tables if t for c in t.category)
            tables = [category_items(t, category[0]) if t else None for t in tables]
        for i in range(len(sides)):
            for j in range(i + 1, len(sides)):
                ta, tb = tables[i], tables[j]
                label = f"{unit}: {operands[i]} vs {operands[j]}"
                if ta is None or tb is None:
                    skipped.append(f"{label} have no per-item scores")
                    continue
                found = _compare(ta, tb, column, cluster, unpaired, alpha, items, options)
                if isinstance(found, str):
                    skipped.append(f"{label} {found}")
                    continue
                result, mde, at, counts = found
                comparisons.append(Comparison(operands[i], operands[j], unit, metric, result,
                                              mde, at, counts, not unpaired))  # fmt: skip
    if category and category[0] not in seen:
        raise StatsError(f"unknown category {category[0]!r} in {metric!r}",
                         f"categories: {', '.join(sorted(seen)) or 'none'}")  # fmt: skip
    if comparisons:
        from evalledger.analysis.significance import holm_bonferroni

        adjusted = holm_bonferroni([c.result.p_value for c in comparisons])
        for c, p in zip(comparisons, adjusted, strict=True):
            c.result = replace(c.result, p_adjusted=p)
    return SignificanceReport(operands, metric, comparisons[0].result.method if comparisons
                              else method, alpha, comparisons, skipped)  # fmt: skip


def _compare(
    ta: ScoreTable, tb: ScoreTable, column: str, cluster: str | None, unpaired: bool,
    alpha: float, items: list[int] | None, options: dict[str, Any],
) -> tuple[PairedResult, float | None, dict[int, float], dict[str, int]] | str:  # fmt: skip
    """One test of two cells' scores, its MDEs and item counts; or why it was skipped."""
    import numpy as np

    from evalledger.analysis.power import minimum_detectable_effect
    from evalledger.analysis.significance import compare_paired, compare_unpaired

    pair = paired_arrays(ta, tb, column, cluster)
    va, vb = ta.values(column), tb.values(column)
    common = sum(1 for i in va if i in vb)
    counts = {"shared": common, "a_only": len(va) - common, "b_only": len(vb) - common}
    if unpaired:
        if pair is not None and pair[2] is not None:
            raise StatsError(
                "--unpaired does not account for clustered items",
                "leave --unpaired out: the paired test on shared items is cluster-robust",
            )
        x = np.fromiter(va.values(), dtype=float, count=len(va))
        y = np.fromiter(vb.values(), dtype=float, count=len(vb))
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if min(len(x), len(y)) < 2:
            return "have < 2 scored items on a side"
        result = compare_unpaired(x, y, confidence=options["confidence"])
        # SE^2 = var_a / n_a + var_b / n_b: with N items a side it is (var_a + var_b) / N.
        spread = math.sqrt(float(np.var(x, ddof=1) + np.var(y, ddof=1)))
        if result.se <= 0 or spread <= 0:
            return result, None, {}, counts
        return (result, minimum_detectable_effect(result.se, 1, alpha=alpha),
                {n: minimum_detectable_effect(spread, n, alpha=alpha) for n in items or []},
                counts)  # fmt: skip
    if pair is None:
        return "share < 2 items"
    x, y, labels = pair
    result = compare_paired(x, y, clusters=labels, **options)
    d = y - x
    d = d[~np.isnan(d)]  # the pairs the test used
    sd = float(np.std(d, ddof=1))
    if not sd > 0 or not result.se > 0:
        return result, None, {}, counts
    design = (result.se / (sd / math.sqrt(result.n))) ** 2
    mde = minimum_detectable_effect(sd, result.n, alpha=alpha, design_effect=design)
    at = {n: minimum_detectable_effect(sd, n, alpha=alpha, design_effect=design)
          for n in items or []}  # fmt: skip
    return result, mde, at, counts


def _axes(side: Operand, key: str) -> dict[str, str]:
    cell = side.snapshot.cells.get(key)
    return cell.axes if cell is not None else {}


def _units(sides: list[Operand]) -> list[dict[str, str]]:
    """Per side, unit -> cell key, with the units that pair the sides' cells.

    Models and cells pair on the cell without its model (the benchmark); axis slices
    (``condition=control``) on the cell without that axis; cells alone always pair,
    whatever their benchmarks; revisions and executions (and models or
    cells beside them) pair on the whole cell key.
    """
    kinds = {s.kind for s in sides}
    if kinds == {"cell"}:
        names = list(dict.fromkeys(unit for s in sides for unit in s.cells))
        label = " vs ".join(names)
        return [dict.fromkeys([label], next(iter(s.cells.values()))) for s in sides]
    if kinds <= {"model", "cell"} or kinds == {"slice"}:
        return [s.cells for s in sides]
    return [{key: key for key in s.cells.values()} for s in sides]
