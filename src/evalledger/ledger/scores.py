"""Per-item score tables (``metrics/<cell>.scores.csv``): parsing and summaries.

A cell metric computed from per-item scores has a column here, so two revisions or two
models can be compared item by item: ``accuracy`` is the mean of ``correct``,
``mean_score`` of ``score``, ``partial_accuracy`` of ``partial`` and ``format_accuracy``
of ``formatted``. Errored items (non-empty ``error``) are not scored and are left out,
as they are from the metrics themselves.

Every row is an item, errored ones included, so a file's rows are its metrics' ``n``.
With repeated samples (a ``sample`` column) a row is one answer, and a table holds one
row per question: the mean of its answers (:mod:`evalledger.execution.repeats`).
A file that is not well formed (not UTF-8, a row of the wrong width, a cut last line, a
non-number in a number column, over 256 MiB) is refused with a
:class:`~evalledger.safeload.DamagedData` rather than read in part.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from evalledger.safeload import MAX_SCORES_BYTES, DamagedData, check_size

__all__ = [
    "ITEM_COLUMNS",
    "METRIC_COLUMNS",
    "ScoreTable",
    "check_scores",
    "column_for",
    "is_score_table_json",
    "is_summary_json",
    "parse_scores",
    "summarize",
    "summarize_file",
    "summarize_files",
    "summarize_many",
    "summary_or_error",
]

#: cell metric -> the per-item column it is the mean of.
METRIC_COLUMNS: dict[str, str] = {
    "accuracy": "correct",
    "mean_score": "score",
    "partial_accuracy": "partial",
    "format_accuracy": "formatted",
}
#: Numeric per-item columns (others, like ``category``, are labels). Any may be absent:
#: ``latency_ms`` is only in files written before timings moved to the predictions file,
#: and in a Tracker's when its caller logs per-item latency.
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

    @property
    def rows(self) -> int:
        """Item rows of the file, errored ones included (the metrics' ``n``)."""
        return len(self.ids) + self.errored

    def values(self, column: str) -> dict[str, float]:
        """Item id -> value of one column."""
        return dict(zip(self.ids, self.columns[column], strict=True))

    def clusters(self, column: str = "cluster") -> dict[str, str] | None:
        """Item id -> cluster label (``cluster``, or ``category`` when asked)."""
        labels = self.category if column == "category" else self.cluster
        if not labels:
            return None
        return dict(zip(self.ids, labels, strict=True))


def is_score_table_json(value: Any) -> bool:
    """Whether ``value`` has the shape of :meth:`ScoreTable.to_json` (for the cache)."""
    if not isinstance(value, dict) or not isinstance(value.get("ids"), list):
        return False
    columns, n = value.get("columns"), len(value["ids"])
    return isinstance(columns, dict) and all(
        isinstance(c, list) and len(c) == n for c in columns.values()
    )


def is_summary_json(value: Any) -> bool:
    """Whether ``value`` has the shape of :func:`summarize_file`'s result (for the cache)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("rows"), int)
        and isinstance(value.get("columns"), dict)
        and all(isinstance(c, dict) and "n" in c for c in value["columns"].values())
    )


def _text(data: bytes) -> str:
    check_size(len(data), MAX_SCORES_BYTES)
    if not data:
        raise DamagedData("{source} is empty; a scores file has at least its header line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"bad byte at offset {exc.start}"
        raise DamagedData(f"{{source}} is not UTF-8 text ({where})") from None
    if not text.endswith(("\n", "\r")):
        raise DamagedData("{source} ends in the middle of a line: it was cut short")
    return text


def _header(first: list[str]) -> list[str]:
    if "id" not in first and not any(c in first for c in ITEM_COLUMNS):
        shown = ",".join(first)[:60]
        raise DamagedData(f"{{source}} has no score columns (its first line is {shown!r})")
    return first


def _width_error(line: int, got: int, width: int) -> DamagedData:
    return DamagedData(
        f"{{source}} line {line} has {got} fields where the header has {width}: the file is "
        "truncated or damaged"
    )


def check_scores(data: bytes) -> int:
    """The item rows of a well-formed scores file, errored ones included.

    DamagedData when it is not one: empty, over 256 MiB, not UTF-8, cut in the middle of
    a line, without score columns, or with a row of another width than the header. The
    values themselves are checked where they are read.
    """
    text = _text(data)
    if '"' in text:  # quoted fields may hold commas and newlines: the csv module
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
        width = len(_header(rows[0]))
        for i, row in enumerate(rows[1:], start=2):
            if len(row) != width:
                raise _width_error(i, len(row), width)
        return len(rows) - 1
    lines = text.splitlines()
    width = len(_header(lines[0].split(",")))
    # One count over the whole text; a row is looked at only to name a bad one.
    if text.count(",") != (width - 1) * len(lines):
        for i, line in enumerate(lines[1:], start=2):
            if line.count(",") != width - 1:
                raise _width_error(i, line.count(",") + 1, width)
    return len(lines) - 1


def _number(text: str, line: int, column: str) -> float:
    if not text:
        return math.nan  # an empty value is missing, not wrong
    try:
        return float(text)
    except ValueError:
        raise DamagedData(
            f"{{source}} line {line}: {text[:20]!r} in column {column!r} is not a number"
        ) from None


def parse_scores(data: bytes) -> ScoreTable:
    """Parse a scores CSV; rows with an ``error`` are counted apart, not scored.

    DamagedData when the file is not well formed (see :func:`check_scores`) or a number
    column holds something else than a number.
    """
    text = _text(data)
    if '"' in text:  # quoted fields (commas in error messages): the csv module
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
    else:  # the common case, several times faster than csv.reader
        rows = [line.split(",") for line in text.splitlines()]
    header = _header(rows[0])
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
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise _width_error(line, len(row), width)
        if err_i is not None and row[err_i]:
            errored += 1
            continue
        ids.append(row[id_i] if id_i is not None else str(len(ids)))
        for c in numeric:
            cols[c].append(_number(row[index[c]], line, c))
        if cat_i is not None:
            cats.append(row[cat_i])
        if clu_i is not None:
            clusters.append(row[clu_i])
    table = ScoreTable(ids, cols, cats, clusters if clu_i is not None else None, errored)
    if "sample" in index and id_i is not None:  # repeated samples: one row per answer
        errored_ids = {row[id_i] for row in rows[1:] if err_i is not None and row[err_i]}
        return _per_question(table, errored_ids)
    return table


def _per_question(table: ScoreTable, errored_ids: set[str]) -> ScoreTable:
    """A table of repeated samples as one row per question: the mean of its answers.

    The per-question mean is the unit of pairing and of standard errors (Miller 2024);
    a question none of whose answers was scored counts as errored.
    """
    order: dict[str, list[int]] = {}
    for i, item_id in enumerate(table.ids):
        order.setdefault(item_id, []).append(i)
    columns: dict[str, list[float]] = {}
    for name, values in table.columns.items():
        means = []
        for rows in order.values():
            got = [values[i] for i in rows if not math.isnan(values[i])]
            means.append(math.fsum(got) / len(got) if got else math.nan)
        columns[name] = means
    first = [rows[0] for rows in order.values()]
    return ScoreTable(
        list(order), columns, [table.category[i] for i in first] if table.category else [],
        [table.cluster[i] for i in first] if table.cluster is not None else None,
        len(errored_ids - set(order)),
    )  # fmt: skip


def summarize_file(data: bytes) -> dict[str, Any]:
    """``{"rows": item rows, "columns": summarize(...)}`` of one scores file."""
    table = parse_scores(data)
    return {"rows": table.rows, "columns": summarize(table)}


def summarize_files(blobs: dict[str, bytes]) -> dict[str, Any]:
    """:func:`summarize_file` of many files, one at a time; a damaged one maps to the why.

    Each file is reduced as it comes (see :func:`_fast_summary`) to a few numbers per
    column: nothing of it is kept, and no data frame is built.
    """
    return {oid: summary_or_error(data) for oid, data in blobs.items()}


def summary_or_error(data: bytes) -> dict[str, Any] | DamagedData:
    """:func:`summarize_file` of one file, or the DamagedData why it has none."""
    try:
        fast = _fast_summary(data)
        if fast is not None:
            return fast
        check_scores(data)  # a row of the wrong width is named before a bad value
        table = parse_scores(data)  # with repeated samples, a row per question
        return {"rows": table.rows, "columns": summarize(table)}
    except DamagedData as exc:
        return exc


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


def summarize_many(blobs: dict[str, bytes]) -> dict[str, Any]:
    """:func:`summarize` for many score files at once (the same results).

    A file that :func:`parse_scores` refuses maps to the DamagedData why.
    """
    found = summarize_files(blobs)
    return {oid: v if isinstance(v, DamagedData) else v["columns"] for oid, v in found.items()}


#: Number text -> its value, for the few spellings score columns repeat (``0``, ``1.0``).
_VALUES: dict[str, float] = {}
_VALUES_MAX = 4096
#: Value text -> count of a column -> its :func:`_moments` (which depend on nothing else).
_MOMENTS: dict[frozenset[tuple[str, int]], dict[str, float] | None] = {}
_UNSEEN: Any = object()


def _fast_summary(data: bytes) -> dict[str, Any] | None:
    """:func:`summarize_file` of a plain file, without a row loop in Python; else None.

    The file's body is split into one flat list of fields (every line having the
    header's width is checked first), a column is a slice of it, and its mean and sd come
    from the counts of each distinct value: score columns hold a handful (``0``, ``1``).
    None sends the file to :func:`parse_scores`, which names what is wrong with it or
    reads what this does not: quoted fields, clusters, repeated samples.
    """
    text = _text(data)
    if '"' in text:
        return None
    lines = text.splitlines()
    header = _header(lines[0].split(","))
    if "sample" in header or "cluster" in header:
        return None
    width, body = len(header), lines[1:]
    if body and set(map(str.count, body, repeat(","))) != {width - 1}:
        return None
    index = {name: i for i, name in enumerate(header)}
    flat = ",".join(body).split(",") if body else []
    kept: list[int] | None = None
    if "error" in index:  # errored items are not scored
        errors = flat[index["error"] :: width]
        if errors.count("") != len(errors):
            kept = [i for i, e in enumerate(errors) if not e]
    columns: dict[str, dict[str, float]] = {}
    for col in _SUMMARISED:
        if col not in index:
            continue
        values = flat[index[col] :: width]
        if kept is not None:
            values = [values[i] for i in kept]
        distinct = set(values)  # score columns: a few spellings, counted in C
        counts = {t: values.count(t) for t in distinct} if len(distinct) <= 4 else Counter(values)
        # the same few counts recur across cells (11 of 20 right): each is worked out once
        key = frozenset(counts.items())
        entry = _MOMENTS.get(key, _UNSEEN)
        if entry is _UNSEEN:
            entry = _moments(counts)
            if len(_MOMENTS) < _VALUES_MAX:
                _MOMENTS[key] = entry
        if entry is None:
            return None
        if entry:
            columns[col] = dict(entry)
    return {"rows": len(body), "columns": columns}


def _moments(counts: dict[str, int]) -> dict[str, float] | None:
    """n, mean and sd (ddof=1) of values given as text -> count; None if one is no number.

    Empty and NaN values are missing, as in :func:`summarize`.
    """
    pairs: list[tuple[float, int]] = []
    n = 0
    for text, count in counts.items():
        value = _VALUES.get(text)
        if value is None:
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                return None
            if len(_VALUES) < _VALUES_MAX:
                _VALUES[text] = value
        if math.isnan(value):
            continue
        pairs.append((value, count))
        n += count
    if n == 0:
        return {}
    if len(pairs) <= 2:  # one rounding either way: as exact as fsum, and faster
        mean = sum([v * c for v, c in pairs]) / n
        ss = sum([c * (v - mean) ** 2 for v, c in pairs])
    else:
        mean = math.fsum(v * c for v, c in pairs) / n
        ss = math.fsum(c * (v - mean) ** 2 for v, c in pairs)
    return {"n": float(n), "mean": mean, "sd": math.sqrt(ss / (n - 1)) if n > 1 else 0.0}
