"""Rankings of models (or cells) on a metric, with 95% confidence intervals.

A cell's interval comes from its per-item scores: the mean +- z x SE, with the clustered
SE when items share a cluster (Miller 2024). For 0/1 scores without clusters (and for a
proportion with no scores) it is the Wilson score interval, which stays sensible near 0
and 1 where mean +- z x SE collapses to a point (300 of 300 correct is not [1, 1]). A
model's value is the mean over the benchmarks it was run on, and its SE combines the
benchmarks' SEs as independent (sqrt(sum SE^2) / B).
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from evalledger.analysis.diff import format_value, md_code, md_text
from evalledger.analysis.intervals import wilson_interval
from evalledger.errors import ConfigError
from evalledger.ledger.scores import METRIC_COLUMNS, column_for
from evalledger.metrics import Directions, as_number, flatten

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

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"rank": self.rank, "name": self.name, "value": self.value,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "n_items": self.n_items,
                "benchmarks": self.benchmarks}  # fmt: skip


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
        return ["rank", self.by, value, conf, "items", *self.pivot(limit)]

    def rows(self, limit: int | None = None) -> list[list[str]]:
        """Rows of the text formats, matching :meth:`columns`."""
        pivot = self.pivot(limit)
        return [
            [str(e.rank), e.name, format_value(e.value), self.ci_text(e),
             "-" if e.n_items is None else str(e.n_items),
             *[format_value(e.benchmarks.get(b)) for b in pivot]]
            for e in self.entries
        ]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"metric": self.metric, "by": self.by, "revs": self.revs,
                "confidence": self.confidence, "benchmarks": self.benchmarks,
                "entries": [e.to_json() for e in self.entries]}  # fmt: skip

    def to_csv(self) -> str:
        """Full-precision CSV, one row per entry (benchmarks as columns)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["rank", self.by, self.metric, "ci_low", "ci_high", "items", *self.benchmarks])
        for e in self.entries:
            w.writerow([e.rank, e.name, e.value, _blank(e.ci_low), _blank(e.ci_high),
                        _blank(e.n_items), *[_blank(e.benchmarks.get(b))
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
    snap: Snapshot, metric: str, benchmarks: list[str] | None = None
) -> list[CellScore]:
    """Each cell's value of ``metric`` at a revision, with its SE where it can be had."""
    keys = [k for k, c in snap.cells.items()
            if not benchmarks or c.axes.get("benchmark") in benchmarks]  # fmt: skip
    metrics = snap.metrics(keys)
    col = column_for(metric)
    summaries = snap.summaries(keys) if col else {}
    out = []
    for key in keys:
        data = metrics.get(key, {})
        value = as_number(_lookup(data, metric))
        if value is None:
            continue
        se, n, binary = None, None, False
        summary = summaries.get(key, {}).get(col or "")
        if summary:
            n = int(summary["n"])
            se = summary.get("se_clustered", summary["sd"] / math.sqrt(n) if n else None)
            binary = "se_clustered" not in summary and _all_zero_or_one(summary)
        else:
            # error_rate is over every item; the other proportions over the scored ones
            raw_n = data.get("n") if metric == "error_rate" else data.get("scored", data.get("n"))
            if isinstance(raw_n, int) and raw_n > 0 and _proportion(metric) and 0 <= value <= 1:
                n = raw_n
                se = math.sqrt(value * (1 - value) / n)
                binary = True
        axes = snap.cells[key].axes
        out.append(CellScore(snap.label, key, axes, float(value), se, n, binary))
    return out


def _all_zero_or_one(summary: dict[str, float]) -> bool:
    """Whether scores in [0, 1] were all 0 or 1.

    Exactly then sum x^2 = sum x, so the sample variance is n p (1 - p) / (n - 1).
    """
    n, p, sd = summary["n"], summary["mean"], summary["sd"]
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
) -> Leaderboard:
    """Rank models (``by="model"``) or cells (``by="cell"``) at one or more revisions."""
    if by not in ("model", "cell"):
        raise ConfigError(f"unknown --by {by!r}; known: model, cell")
    snaps = [ledger.snapshot(r) for r in revs] if revs else [ledger.snapshot()]
    metric = metric or _default_metric(snaps)
    if benchmarks:  # a misspelt one among several must not be silently left out
        known = sorted({c.axes.get("benchmark", "") for s in snaps for c in s.cells.values()})
        missing = [b for b in benchmarks if b not in known]
        if missing and known:
            raise ConfigError(f"unknown benchmark {missing[0]!r}; known: {', '.join(known)}")
    scores: list[CellScore] = []
    for snap in snaps:
        scores += cell_scores(snap, metric, benchmarks)
    if not scores:
        _explain_empty(snaps, metric, benchmarks)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    multi = len(snaps) > 1
    entries: list[Entry] = []
    if by == "cell":
        for s in scores:
            name = f"{s.key}@{s.rev}" if multi else s.key
            entries.append(_cell_entry(name, s, z))
    else:
        groups: dict[str, list[CellScore]] = {}
        for s in scores:
            groups.setdefault(f"{s.system}@{s.rev}" if multi else s.system, []).append(s)
        for name, cells in groups.items():
            if len(cells) == 1:  # one benchmark: the model's interval is its cell's
                entries.append(_cell_entry(name, cells[0], z))
                continue
            value = math.fsum(c.value for c in cells) / len(cells)
            ses = [c.se for c in cells]
            se = None if None in ses else math.sqrt(math.fsum(x * x for x in ses)) / len(cells)  # type: ignore[operator]
            ns = [c.n for c in cells]
            n = None if None in ns else sum(ns)  # type: ignore[arg-type]
            entries.append(_entry(name, value, se, n, z, {c.benchmark: c.value for c in cells}))
    directions = Directions.from_params(snaps[-1].params)
    desc = not directions.lower_is_better(metric)
    entries.sort(key=lambda e: (-e.value if desc else e.value, e.name))
    for i, e in enumerate(entries, 1):
        e.rank = i
    if top is not None:
        entries = entries[:top]
    benches = sorted({s.benchmark for s in scores})
    note = directions.note()
    return Leaderboard(metric, by, [s.label for s in snaps], confidence, entries, benches,
                       ascending=not desc, notes=[note] if note else [])  # fmt: skip


def _cell_entry(name: str, s: CellScore, z: float) -> Entry:
    entry = _entry(name, s.value, s.se, s.n, z, {s.benchmark: s.value})
    if s.binary and s.n:
        entry.ci_low, entry.ci_high = wilson_interval(s.value, s.n, z)
    return entry


def _entry(name: str, value: float, se: float | None, n: int | None, z: float,
           benchmarks: dict[str, float]) -> Entry:  # fmt: skip
    if se is None:
        return Entry(0, name, value, None, None, n, benchmarks)
    return Entry(0, name, value, value - z * se, value + z * se, n, benchmarks)


def _default_metric(snaps: list[Snapshot]) -> str:
    for snap in snaps:
        first = next(iter(snap.metrics(list(snap.cells)[:1]).values()), {})
        if "accuracy" in first:
            return "accuracy"
        if "mean_score" in first:
            return "mean_score"
    return "accuracy"


def _explain_empty(snaps: list[Snapshot], metric: str, benchmarks: list[str] | None) -> None:
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
