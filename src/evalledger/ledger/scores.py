"""Per-item score tables (``metrics/<cell>.scores.csv``): parsing and summaries.

A cell metric computed from per-item scores has a column here, so two revisions or two
models can be compared item by item: ``accuracy`` is the mean of ``correct``,
``mean_score`` of ``score``, ``partial_accuracy`` of ``partial`` and ``format_accuracy``
of ``formatted``. Errored items (non-empty ``error``) are not scored and are left out,
as they are from the metrics themselves.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ITEM_COLUMNS",
    "METRIC_COLUMNS",
    "ScoreTable",
    "column_for",
    "parse_scores",
    "summarize",
    "summarize_many",
]

#: cell metric -> the per-item column it is the mean of.
METRIC_COLUMNS: dict[str, str] = {
    "accuracy": "correct",
    "mean_score": "score",
    "partial_accuracy": "partial",
    "format_accuracy": "formatted",
}
#: Numeric per-item columns (others, like ``category``, are labels).
ITEM_COLUMNS = ("correct", "score", "partial", "formatted", "latency_ms",
                "prompt_tokens", "completion_tokens")  # fmt: skip
_SUMMARISED = ("correct", "score", "partial", "formatted")


def column_for(metric: str) -> str | None:
    """The per-item column behind a metric (a column name maps to itself), or None."""
    if metric in METRIC_COLUMNS:
        return METRIC_COLUMNS[metric]
    return metric if metric in ITEM_COLUMNS else None


@dataclass
class ScoreTable:
    """The scored items of one cell at one revision."""

    ids: list[str]
    columns: dict[str, list[float]]
    """Numeric columns, errored items already removed."""
    category: list[str] = field(default_factory=list)
    cluster: list[str] | None = None
    errored: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (for the parsed-blob cache)."""
        return {"ids": self.ids, "columns": self.columns, "category": self.category,
                "cluster": self.cluster, "errored": self.errored}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreTable:
        """Inverse of :meth:`to_json`."""
        return cls(data["ids"], data["columns"], data.get("category") or [],
                   data.get("cluster"), int(data.get("errored") or 0))  # fmt: skip

    def values(self, column: str) -> dict[str, float]:
        """Item id -> value of one column."""
        return dict(zip(self.ids, self.columns[column], strict=True))

    def clusters(self, column: str = "cluster") -> dict[str, str] | None:
        """Item id -> cluster label (``cluster``, or ``category`` when asked)."""
        labels = self.category if column == "category" else self.cluster
        if not labels:
            return None
        return dict(zip(self.ids, labels, strict=True))


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_scores(data: bytes) -> ScoreTable:
    """Parse a scores CSV; rows with an ``error`` are counted apart, not scored."""
    text = data.decode("utf-8", errors="replace")
    if '"' in text:  # quoted fields (commas in error messages): the csv module
        rows = list(csv.reader(io.StringIO(text)))
    else:  # the common case, several times faster than csv.reader
        rows = [line.split(",") for line in text.splitlines()]
    if not rows:
        return ScoreTable([], {})
    header = rows[0]
    index = {name: i for i, name in enumerate(header)}
    numeric = [c for c in ITEM_COLUMNS if c in index]
    id_i, cat_i = index.get("id"), index.get("category")
    err_i, clu_i = index.get("error"), index.get("cluster")
    ids: list[str] = []
    cols: dict[str, list[float]] = {c: [] for c in numeric}
    cats: list[str] = []
    clusters: list[str] = []
    errored = 0
    width = len(header)
    for row in rows[1:]:
        if len(row) < width:
            continue
        if err_i is not None and row[err_i]:
            errored += 1
            continue
        ids.append(row[id_i] if id_i is not None else str(len(ids)))
        for c in numeric:
            cols[c].append(_float(row[index[c]]))
        if cat_i is not None:
            cats.append(row[cat_i])
        if clu_i is not None:
            clusters.append(row[clu_i])
    return ScoreTable(ids, cols, cats, clusters if clu_i is not None else None, errored)


def summarize(table: ScoreTable) -> dict[str, dict[str, float]]:
    """Per score column: n, mean, sd (ddof=1) and the clustered SE when clusters exist.

    This is what a leaderboard's confidence intervals need, small enough to cache for
    every cell.
    """
    out: dict[str, dict[str, float]] = {}
    for col in _SUMMARISED:
        values = table.columns.get(col)
        if values is None:
            continue
        pairs = [(i, v) for i, v in enumerate(values) if not math.isnan(v)]
        n = len(pairs)
        if n == 0:
            continue
        mean = math.fsum(v for _, v in pairs) / n
        ss = math.fsum((v - mean) ** 2 for _, v in pairs)
        sd = math.sqrt(ss / (n - 1)) if n > 1 else 0.0
        entry = {"n": float(n), "mean": mean, "sd": sd}
        if table.cluster:
            sums: dict[str, float] = {}
            for i, v in pairs:
                sums[table.cluster[i]] = sums.get(table.cluster[i], 0.0) + (v - mean)
            # Miller (2024), "Adding Error Bars to Evals": SE^2 = sum_c (sum_i e_ic)^2 / n^2
            entry["se_clustered"] = math.sqrt(math.fsum(s * s for s in sums.values())) / n
            entry["clusters"] = float(len(sums))
        out[col] = entry
    return out


def summarize_many(blobs: dict[str, bytes]) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`summarize` for many score files at once, vectorised (same results).

    Files that share a header are concatenated and parsed in one pass by pandas' C
    reader, and every cell's n, mean, sd and clustered SE come from ``np.bincount``; a
    leaderboard over 10,000 cells needs this, not a Python loop over two million rows.
    Files with quoted fields (commas in error messages) take :func:`summarize`.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    groups: dict[bytes, list[tuple[str, bytes]]] = {}
    for oid, data in blobs.items():
        head, nl, body = data.partition(b"\n")
        if not nl or b'"' in data or b"\r" in head:
            out[oid] = summarize(parse_scores(data))
            continue
        groups.setdefault(head, []).append((oid, body))
    for head, members in groups.items():
        out.update(_summarize_group(head.decode("utf-8", errors="replace").split(","), members))
    return out


def _summarize_group(
    header: list[str], members: list[tuple[str, bytes]]
) -> dict[str, dict[str, dict[str, float]]]:
    import numpy as np
    import pandas as pd

    columns = [c for c in _SUMMARISED if c in header]
    wanted = [*columns, *[c for c in ("error", "cluster") if c in header]]
    bodies = [body if body.endswith(b"\n") or not body else body + b"\n" for _, body in members]
    counts = np.array([b.count(b"\n") for b in bodies], dtype=np.int64)
    result: dict[str, dict[str, dict[str, float]]] = {oid: {} for oid, _ in members}
    if not columns or counts.sum() == 0:
        return result
    # Only empty fields are missing: an empty error means the item was scored.
    frame = pd.read_csv(
        io.BytesIO(b"".join(bodies)), header=None, names=header, usecols=wanted,
        dtype={"cluster": str} if "cluster" in header else None,
        keep_default_na=False, na_values={c: [""] for c in wanted}, engine="c",
    )  # fmt: skip
    index = np.repeat(np.arange(len(members)), counts)
    keep = np.ones(len(frame), dtype=bool)
    if "error" in frame:
        keep &= frame["error"].isna().to_numpy()
    clusters = None
    if "cluster" in frame:
        pair = pd.MultiIndex.from_arrays([index, frame["cluster"].to_numpy()])
        clusters = pd.factorize(pair)[0]
    groups = len(members)
    for col in columns:
        x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        ok = keep & ~np.isnan(x)
        idx, vals = index[ok], x[ok]
        n = np.bincount(idx, minlength=groups).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(idx, weights=vals, minlength=groups) / n
            dev = vals - mean[idx]
            ss = np.bincount(idx, weights=dev * dev, minlength=groups)
            sd = np.where(n > 1, np.sqrt(ss / np.maximum(n - 1, 1)), 0.0)
        se_c = n_c = None
        if clusters is not None:
            codes = clusters[ok]
            sums = np.bincount(codes, weights=dev, minlength=int(clusters.max()) + 1)
            owner = np.zeros(len(sums), dtype=np.int64)
            owner[codes] = idx
            present = np.bincount(codes, minlength=len(sums)) > 0
            sq = np.bincount(owner[present], weights=sums[present] ** 2, minlength=groups)
            n_c = np.bincount(owner[present], minlength=groups)
            with np.errstate(invalid="ignore", divide="ignore"):
                se_c = np.sqrt(sq) / n
        for g, (oid, _) in enumerate(members):
            if n[g] == 0:
                continue
            entry = {"n": float(n[g]), "mean": float(mean[g]), "sd": float(sd[g])}
            if se_c is not None and n_c is not None:
                entry["se_clustered"] = float(se_c[g])
                entry["clusters"] = float(n_c[g])
            result[oid][col] = entry
    return result
