"""Rankings of models (or cells) on a metric, with 95% confidence intervals.

A cell's interval comes from its per-item scores: the mean +- z x SE; when items share a
cluster, the clustered SE (Miller 2024) with the CR1 correction and Student's t on G - 1
df, as ``significance`` uses. For 0/1 scores without clusters (and for a
proportion with no scores) it is the Wilson score interval, which stays sensible near 0
and 1 where mean +- z x SE collapses to a point (300 of 300 correct is not [1, 1], and
one item right is [0.21, 1]). A category metric (``categories.<name>.accuracy``) is
computed from the items of that category only, so its n is the category's; an agent's
success rate (``agents.<name>.success_rate``) has the n of the items the agent ran on.

A model's value is the mean over the benchmarks it was run on. Its interval combines the
cells' intervals as independent estimates by MOVER (Zou & Donner 2008): the distance
from the mean to each bound is sqrt(sum of the cells' squared distances) / B. With
symmetric cell intervals this is mean +- z sqrt(sum SE^2) / B; with Wilson intervals it
keeps their asymmetry, so it never collapses at 0 or 1 either.

Every row also says what stands against trusting it (see :mod:`evalledger.ledger.health`):
the share of items that errored, and ``failed``, ``stale`` or ``incomplete`` markers.
``strict`` leaves such cells out. Models run on disjoint benchmark sets have means over
different things, and ranking them together is refused.
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from evalledger.analysis.agents import agent_counts, check_agent_metric
from evalledger.analysis.categories import category_items, category_of
from evalledger.analysis.cellfilter import CellFilter, check_filter, matches, merge_filter
from evalledger.analysis.formatting import format_value, md_code, md_text
from evalledger.analysis.intervals import mover_mean_interval, wilson_interval
from evalledger.analysis.metricnames import default_metric, explain_empty
from evalledger.errors import ConfigError
from evalledger.ledger.directions import directions_at
from evalledger.ledger.health import CellHealth, cell_health
from evalledger.ledger.scores import METRIC_COLUMNS, ScoreTable, column_for, summarize
from evalledger.metrics import as_number

if TYPE_CHECKING:
    from evalledger.ledger.history import Ledger, Snapshot

__all__ = [
    "CellScore",
    "Entry",
    "Leaderboard",
    "build_leaderboard",
    "cell_scores",
    "wilson_interval",
]

FORMATS = ("table", "md", "csv", "json", "html")


@dataclass(frozen=True)
class CellScore:
    """One cell's value of a metric at one revision, with its standard error."""

    rev: str
    key: str
    axes: dict[str, str]
    value: float
    se: float | None
    n: int | None
    binary: bool = False
    """The value is a proportion of n independent 0/1 items (Wilson interval applies)."""
    health: CellHealth | None = None
    clusters: int | None = None
    """G when the SE is clustered: the interval then uses t on G - 1 df (with CR1)."""

    @property
    def benchmark(self) -> str:
        """The cell's benchmark."""
        return self.axes.get("benchmark", "")

    @property
    def system(self) -> str:
        """The cell without its benchmark: the model (and prompt set, decoding)."""
        return "/".join(v for a, v in self.axes.items() if a != "benchmark")


@dataclass
class Entry:
    """One row of a leaderboard."""

    rank: int
    name: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n_items: int | None
    benchmarks: dict[str, float] = field(default_factory=dict)
    errored: float | None = None
    """Share of the items (of every cell in the row) whose model call errored."""
    flags: list[str] = field(default_factory=list)
    """``failed``, ``stale``, ``incomplete``: why the row should not be trusted as is."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"rank": self.rank, "name": self.name, "value": self.value,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "n_items": self.n_items,
                "errored": self.errored, "flags": self.flags,
                "benchmarks": self.benchmarks}  # fmt: skip

    @property
    def errored_text(self) -> str:
        """``0%``, ``28.3%`` or ``-``."""
        if self.errored is None:
            return "-"
        return "0%" if self.errored == 0 else f"{self.errored:.1%}"


@dataclass
class Leaderboard:
    """A ranking, and the pivot of systems by benchmarks behind it."""

    metric: str
    by: str
    revs: list[str]
    confidence: float
    entries: list[Entry]
    benchmarks: list[str]
    ascending: bool = False
    """True when lower values rank first (loss, errors, cost, latency)."""
    notes: list[str] = field(default_factory=list)

    def title(self) -> str:
        """e.g. ``accuracy by model at workspace``."""
        order = " (lower is better)" if self.ascending else ""
        return f"{self.metric}{order} by {self.by} at {', '.join(self.revs)}"

    def ci_text(self, e: Entry) -> str:
        """``[0.71, 0.78]`` or ``-``."""
        if e.ci_low is None or e.ci_high is None:
            return "-"
        return f"[{format_value(e.ci_low)}, {format_value(e.ci_high)}]"

    def pivot(self, limit: int | None = None) -> list[str]:
        """The benchmarks shown as columns (by model, several benchmarks, at most ``limit``)."""
        if self.by != "model" or len(self.benchmarks) < 2:
            return []
        return self.benchmarks if limit is None or len(self.benchmarks) <= limit else []

    def columns(self, limit: int | None = None) -> list[str]:
        """Header of the text formats (per-benchmark columns up to ``limit`` of them).

        By model over several benchmarks the value is their mean, and its column says so.
        """
        conf = f"{self.confidence:.0%} CI"
        value = self.metric
        if self.by == "model" and len(self.benchmarks) > 1:
            value = f"mean {self.metric}"
        flags = ["flags"] if self.flagged else []
        return ["rank", self.by, value, conf, "items", "errored", *flags, *self.pivot(limit)]

    @property
    def flagged(self) -> bool:
        """Whether any row has a marker (the text formats show the column only then)."""
        return any(e.flags for e in self.entries)

    def rows(self, limit: int | None = None) -> list[list[str]]:
        """Rows of the text formats, matching :meth:`columns`."""
        pivot = self.pivot(limit)
        return [
            [str(e.rank), e.name, format_value(e.value), self.ci_text(e),
             "-" if e.n_items is None else str(e.n_items), e.errored_text,
             *([" ".join(e.flags) or "-"] if self.flagged else []),
             *[format_value(e.benchmarks.get(b)) for b in pivot]]
            for e in self.entries
        ]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"metric": self.metric, "by": self.by, "revs": self.revs,
                "confidence": self.confidence, "benchmarks": self.benchmarks,
                "entries": [e.to_json() for e in self.entries],
                "notes": self.notes}  # fmt: skip

    def to_csv(self) -> str:
        """Full-precision CSV, one row per entry (benchmarks as columns)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["rank", self.by, self.metric, "ci_low", "ci_high", "items", "errored",
                    "flags", *self.benchmarks])  # fmt: skip
        for e in self.entries:
            w.writerow([e.rank, e.name, e.value, _blank(e.ci_low), _blank(e.ci_high),
                        _blank(e.n_items), _blank(e.errored), " ".join(e.flags),
                        *[_blank(e.benchmarks.get(b))
                                             for b in self.benchmarks]])  # fmt: skip
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A Markdown table."""
        cols = self.columns()
        align = "|".join("---:" if i != 1 else "---" for i in range(len(cols)))
        lines = [f"**{md_text(self.title())}**", "", "| " + " | ".join(map(md_text, cols)) + " |",
                 f"|{align}|"]  # fmt: skip
        for row in self.rows():
            row[1] = md_code(row[1])
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """A self-contained HTML page with the table."""
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns())
        body = "\n".join(
            "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in self.rows()
        )
        return (
            "<!doctype html>\n<html><head><meta charset='utf-8'>"
            f"<title>{esc(self.title())}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2rem}"
            "table{border-collapse:collapse}th,td{padding:.3rem .7rem;border-bottom:1px solid #ddd;"
            "text-align:right}th:nth-child(2),td:nth-child(2){text-align:left}"
            "</style></head><body>"
            f"<h2>{esc(self.title())}</h2>\n<table><thead><tr>{head}</tr></thead><tbody>\n"
            f"{body}\n</tbody></table></body></html>\n"
        )


def _blank(value: Any) -> Any:
    return "" if value is None else value


def cell_scores(
    snap: Snapshot,
    metric: str,
    benchmarks: list[str] | None = None,
    filters: CellFilter | None = None,
) -> list[CellScore]:
    """Each kept cell's value of ``metric`` at a revision, with its SE where it can be had."""
    keys = [k for k, c in snap.cells.items() if matches(c.axes, merge_filter(filters, benchmarks))]
    category = category_of(metric)
    col = category[1] if category else column_for(metric)
    # summaries first: they read each cell's metrics with its scores, a cache row a cell
    summaries = snap.summaries(keys) if col and not category else {}
    metrics = snap.metrics(keys)
    tables = snap.score_tables(k for k in keys if snap.cells[k].scores_oid) if category else {}
    # every cell kept: the snapshot's health, worked out once (a report asks again)
    health = cell_health(snap) if len(keys) == len(snap.cells) else cell_health(snap, keys)
    out = []
    for key in keys:
        data = metrics.get(key, {})
        value = as_number(_lookup(data, metric))
        if value is None:
            continue
        se, n, binary, clusters = None, None, False, None
        counts = data
        if category:
            counts = _lookup(data, f"categories.{category[0]}") or {}
            table = tables.get(key)
            summary = _category_summary(table, *category) if table else None
        else:
            summary = summaries.get(key, {}).get(col or "")
        if summary:
            n = int(summary["n"])
            se = summary["sd"] / math.sqrt(n) if n else None
            if "se_clustered" in summary:
                clusters = int(summary.get("clusters", 0)) or None
                se = _cr1(summary["se_clustered"], clusters)
            binary = "se_clustered" not in summary and _all_zero_or_one(summary)
        else:
            # error_rate is over every item; the other proportions over the scored ones
            raw_n = (
                _scored(agent_counts(data, metric) or counts)
                if metric != "error_rate"
                else counts.get("n")
            )
            if isinstance(raw_n, int) and raw_n > 0 and _proportion(metric) and 0 <= value <= 1:
                n = raw_n
                se = math.sqrt(value * (1 - value) / n)
                binary = True
        axes = snap.cells[key].axes
        out.append(CellScore(snap.label, key, axes, float(value), se, n, binary,
                             _with_counts(health[key], counts), clusters))  # fmt: skip
    return out


def _cr1(se: float, clusters: int | None) -> float:
    """The CR1 small-sample correction of a clustered SE: x sqrt(G / (G - 1))."""
    return se * math.sqrt(clusters / (clusters - 1)) if clusters and clusters > 1 else se


def _category_summary(table: ScoreTable, category: str, col: str) -> dict[str, float] | None:
    """n, mean, sd (and clustered SE) of one column over the items of one category."""
    if col not in table.columns or not table.category:
        return None
    return summarize(category_items(table, category)).get(col)


def _scored(counts: dict[str, Any]) -> Any:
    """Scored items of a cell (or category): ``scored``, else n minus errors."""
    if "scored" in counts:
        return counts["scored"]
    n, errors = counts.get("n"), counts.get("errors") or 0
    return n - errors if isinstance(n, int) and isinstance(errors, int) else n


def _with_counts(h: CellHealth, counts: dict[str, Any]) -> CellHealth:
    """The cell's health with the errors and n of what is ranked (a category's own)."""
    n, errors = as_number(counts.get("n")), as_number(counts.get("errors"))
    if n is None or (h.n == int(n) and h.errors == int(errors or 0)):
        return h  # the cell's own counts, as its health has them
    return replace(h, n=int(n), errors=int(errors or 0))


def _all_zero_or_one(summary: dict[str, float]) -> bool:
    """Whether scores in [0, 1] were all 0 or 1.

    Exactly then sum x^2 = sum x, so the sample variance is n p (1 - p) / (n - 1).
    """
    n, p, sd = summary["n"], summary["mean"], summary["sd"]
    if n == 1:  # one item: binary when it is 0 or 1, so it gets Wilson's [0.21, 1]
        return p in (0.0, 1.0)
    if n < 2 or not 0.0 <= p <= 1.0:
        return False
    return math.isclose(sd * sd, n * p * (1 - p) / (n - 1), rel_tol=1e-9, abs_tol=1e-12)


def _lookup(data: dict[str, Any], metric: str) -> Any:
    """A metric by name, or by dotted path into nested metrics (``latency_ms.p50``)."""
    if metric in data:
        return data[metric]
    node: Any = data
    for part in metric.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _proportion(metric: str) -> bool:
    """Whether a metric is a share of items, so its binomial SE is meaningful."""
    return metric in METRIC_COLUMNS or metric.endswith(("accuracy", "_rate"))


def build_leaderboard(
    ledger: Ledger,
    revs: list[str] | None = None,
    *,
    metric: str | None = None,
    benchmarks: list[str] | None = None,
    by: str = "model",
    top: int | None = None,
    confidence: float = 0.95,
    strict: bool = False,
    filters: CellFilter | None = None,
) -> Leaderboard:
    """Rank models (``by="model"``) or cells (``by="cell"``) at one or more revisions.

    With ``strict``, cells with errored items or a marker are left out, and models that
    then lack a benchmark the others have.
    """
    if by not in ("model", "cell"):
        raise ConfigError(f"unknown --by {by!r}; known: model, cell")
    snaps = [ledger.snapshot(r) for r in revs] if revs else [ledger.snapshot()]
    metric = metric or default_metric(snaps)
    filters = merge_filter(filters, benchmarks)  # a misspelt value must not be left out silently
    check_filter(filters, [c.axes for s in snaps for c in s.cells.values()])
    check_agent_metric(snaps, metric, filters)
    benchmarks = filters.get("benchmark")
    scores: list[CellScore] = []
    for snap in snaps:
        scores += cell_scores(snap, metric, filters=filters)
    if not scores:
        explain_empty(snaps, metric, benchmarks)
    notes: list[str] = []
    if strict:
        left = [s for s in scores if s.health is not None and not s.health.trusted]
        scores = [s for s in scores if s not in left]
        if left:
            notes.append(f"--strict left out {len(left)} cell(s): "
                         + ", ".join(f"{s.key} ({_why(s)})" for s in left))  # fmt: skip
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    multi = len(snaps) > 1
    entries: list[Entry] = []
    if by == "cell":
        for s in scores:
            entries.append(_cell_entry(f"{s.key}@{s.rev}" if multi else s.key, s, z))
    else:
        groups: dict[str, list[CellScore]] = {}
        for s in scores:
            groups.setdefault(f"{s.system}@{s.rev}" if multi else s.system, []).append(s)
        _refuse_disjoint(groups)
        everywhere = {s.benchmark for s in scores}
        for name, cells in list(groups.items()):
            if strict and {c.benchmark for c in cells} != everywhere:
                del groups[name]
                notes.append(f"--strict left out {name}: not run on every benchmark")
                continue
            entry = _model_entry(name, cells, z)
            if len(everywhere) > 1 and {c.benchmark for c in cells} != everywhere:
                entry.flags.append("incomplete")  # a mean over fewer benchmarks than the rest
            entries.append(entry)
    directions = directions_at(snaps[-1])
    desc = not directions.lower_is_better(metric)
    entries.sort(key=lambda e: (-e.value if desc else e.value, e.name))
    for i, e in enumerate(entries, 1):
        e.rank = i
    if top is not None:
        entries = entries[:top]
    benches = sorted({s.benchmark for s in scores})
    if note := directions.note():
        notes.append(note)
    return Leaderboard(metric, by, [s.label for s in snaps], confidence, entries, benches,
                       ascending=not desc, notes=notes)  # fmt: skip


def _why(s: CellScore) -> str:
    h = s.health
    assert h is not None
    parts = list(h.flags)
    if h.errors:
        parts.append(f"{h.errors} of {h.n} items errored")
    return ", ".join(parts)


def _refuse_disjoint(groups: dict[str, list[CellScore]]) -> None:
    """Means over benchmark sets that share nothing are not comparable."""
    sets = {name: {c.benchmark for c in cells} for name, cells in groups.items()}
    if sets and set.intersection(*sets.values()):
        return  # a benchmark every group has: no two are disjoint (and no pair loop)
    names = list(sets)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if not sets[first] & sets[second]:
                raise ConfigError(
                    f"{first} ({', '.join(sorted(sets[first]))}) and {second} "
                    f"({', '.join(sorted(sets[second]))}) share no benchmark, so their means "
                    "are not comparable",
                    "rank shared benchmarks with -b NAME, or single cells with --by cell",
                )


def _cell_interval(s: CellScore, z: float) -> tuple[float, float] | None:
    if s.binary and s.n:
        return wilson_interval(s.value, s.n, z)
    if s.se is None:
        return None
    crit = z
    if s.clusters and s.clusters > 1:  # few clusters: Student's t on G - 1 df, as significance
        import scipy.special

        confidence = 2 * NormalDist().cdf(z) - 1
        crit = float(scipy.special.stdtrit(s.clusters - 1, 0.5 + confidence / 2))
    return s.value - crit * s.se, s.value + crit * s.se


def _errored(cells: list[CellScore]) -> float | None:
    known = [c.health for c in cells if c.health is not None and c.health.n]
    if not known:
        return None
    return sum(h.errors for h in known) / sum(h.n or 0 for h in known)


def _flags(cells: list[CellScore]) -> list[str]:
    found = {f for c in cells if c.health is not None for f in c.health.flags}
    return [f for f in ("failed", "stale", "incomplete") if f in found]


def _cell_entry(name: str, s: CellScore, z: float) -> Entry:
    ci = _cell_interval(s, z)
    return Entry(0, name, s.value, ci[0] if ci else None, ci[1] if ci else None, s.n,
                 {s.benchmark: s.value}, _errored([s]), _flags([s]))  # fmt: skip


def _model_entry(name: str, cells: list[CellScore], z: float) -> Entry:
    """A model over its cells: their mean, and the MOVER combination of their intervals."""
    if len(cells) == 1:  # one benchmark: the model's interval is its cell's
        return _cell_entry(name, cells[0], z)
    values = [c.value for c in cells]
    intervals = [_cell_interval(c, z) for c in cells]
    found = [i for i in intervals if i is not None]
    low, high = mover_mean_interval(values, found) if len(found) == len(cells) else (None, None)
    value = math.fsum(values) / len(values)
    ns = [c.n for c in cells]
    n = None if None in ns else sum(ns)  # type: ignore[arg-type]
    return Entry(0, name, value, low, high, n, {c.benchmark: c.value for c in cells},
                 _errored(cells), _flags(cells))  # fmt: skip
