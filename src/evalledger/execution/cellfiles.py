"""Writing a cell's files: ``predictions/<cell>.jsonl``, ``.scores.csv`` and metrics.

One pass over the cell's records, in item order, writes all three; the records may
stream from the checkpoint (:mod:`evalledger.execution.streaming`), so a cell of a
million items is never held to be written.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any, Protocol

from evalledger.atomic import AtomicLines, atomic_write
from evalledger.errors import CellError
from evalledger.execution.cellmetrics import cell_metrics
from evalledger.execution.repeats import with_repeats
from evalledger.execution.streaming import StreamedItems
from evalledger.plugin_types import question_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from evalledger.matrix import Cell
    from evalledger.plugin_types import Item
    from evalledger.project import Project


class CellOutputs(Protocol):
    """What writing a cell's files needs of it (a PreparedCell, without importing it)."""

    cell: Cell
    items: list[Item] | StreamedItems
    price: tuple[float, float] | None
    repeats: int

    def prompt_of(self, item: Item) -> str:
        """The prompt sent for ``item``."""
        ...


__all__ = [
    "CLUSTER_COLUMN",
    "SAMPLE_COLUMN",
    "SCORE_COLUMNS",
    "TIMED_SCORE_COLUMNS",
    "CellOutputs",
    "ScoresCsv",
    "prediction_line",
    "write_outputs",
]

#: The columns of a cell's ``.scores.csv``: only what the answers determine, so a re-run
#: of a deterministic model rewrites the file byte for byte. Each item's ``latency_ms``
#: is in the predictions file (DVC-cached, not in git) and the item checkpoint.
SCORE_COLUMNS = [
    "id", "category", "correct", "score", "partial", "formatted",
    "prompt_tokens", "completion_tokens", "error",
]  # fmt: skip
#: The columns with per-item ``latency_ms``: those of score files written before
#: timings left them, and of a Tracker's, which keeps the latency its caller logged.
TIMED_SCORE_COLUMNS = [*SCORE_COLUMNS[:6], "latency_ms", *SCORE_COLUMNS[6:]]
#: Appended to SCORE_COLUMNS when some item of the cell has ``meta["cluster"]``.
CLUSTER_COLUMN = "cluster"
#: Appended to SCORE_COLUMNS for repeated samples: the answer's sample number.
SAMPLE_COLUMN = "sample"


class ScoresCsv:
    """Per-item score rows, in item order; a ``cluster`` column only when some item has one.

    With ``samples`` (repeats), a row per answer: the question's id and a ``sample``
    column. Nothing of the clock is written here (see :data:`SCORE_COLUMNS`).
    """

    def __init__(self, clusters: bool, samples: bool) -> None:
        self.clusters, self.samples = clusters, samples
        self._buf = io.StringIO()
        self._writer = csv.writer(self._buf, lineterminator="\n")

    def _flushed(self) -> str:
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return text

    def header(self) -> str:
        header = [*SCORE_COLUMNS, *([SAMPLE_COLUMN] if self.samples else [])]
        self._writer.writerow([*header, CLUSTER_COLUMN] if self.clusters else header)
        return self._flushed()

    def row(self, item: Item, r: dict[str, Any]) -> str:
        question, sample = question_of(r["id"]) if self.samples else (r["id"], None)
        row = [
            question, r.get("category", ""), int(r["correct"]), r["score"], int(r["partial"]),
            int(r["formatted"]), r.get("prompt_tokens") or 0, r.get("completion_tokens") or 0,
            r.get("error") or "", *([sample] if self.samples else []),
        ]  # fmt: skip
        if self.clusters:
            row.append(str(item.meta["cluster"]) if "cluster" in item.meta else "")
        self._writer.writerow(row)
        return self._flushed()


def prediction_line(prepared: CellOutputs, item: Item, r: dict[str, Any]) -> str:
    """One line per item: prompt, output, target, and the item's ``latency_ms``."""
    row = {
        "id": r["id"], "prompt": prepared.prompt_of(item), "output": r.get("output"),
        "extracted": r.get("extracted"), "target": item.target,
    }  # fmt: skip
    if r.get("detail"):
        row["judge"] = r["detail"]
    if r.get("error"):
        row["error"] = r["error"]
    row["latency_ms"] = r["latency_ms"]
    if r.get("agents"):
        row["agents"] = r["agents"]
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_outputs(
    project: Project,
    prepared: CellOutputs,
    records: Iterable[dict[str, Any]],
    wall_time_s: float,
) -> tuple[dict[str, Any], int]:
    """Write the cell's predictions, scores and metrics from ``records`` (in item order).

    One pass over the records (they may stream from the checkpoint): predictions and
    scores go to temp files together, renamed into place only once all is written.
    Returns the metrics and how many items errored; CellError when every item errored.
    """
    cell, items = prepared.cell, prepared.items
    if isinstance(items, StreamedItems):
        clusters = items.has_clusters
    else:
        clusters = any("cluster" in it.meta for it in items)
    scores_csv = ScoresCsv(clusters, prepared.repeats > 1)
    counts = {"n": 0, "errored": 0}
    first_error: list[str] = []
    held: list[dict[str, Any]] = []  # only for repeats: with_repeats groups by question
    with (AtomicLines(project.path(cell.predictions_path)) as predictions,
          AtomicLines(project.path(cell.scores_path)) as scores):  # fmt: skip
        scores.write(scores_csv.header())

        def written() -> Iterator[dict[str, Any]]:
            for item, r in zip(items, records, strict=True):
                if r["id"] != item.id:
                    raise CellError(
                        f"the checkpoint's record for {item.id} is {r['id']}'s",
                        "evaluate the cell again with `evalledger run --force`",
                    )
                counts["n"] += 1
                if r.get("error"):
                    counts["errored"] += 1
                    if not first_error:
                        first_error.append(r["error"])
                predictions.write(prediction_line(prepared, item, r))
                scores.write(scores_csv.row(item, r))
                if prepared.repeats > 1:
                    held.append(r)
                yield r

        metrics = cell_metrics(written(), prepared.price, wall_time_s)
        if counts["errored"] == counts["n"]:
            raise CellError(f"all {counts['n']} items errored; first: {first_error[0]}")
        if prepared.repeats > 1:
            metrics = with_repeats(metrics, held, prepared.repeats)
        predictions.commit()
        scores.commit()
    atomic_write(project.path(cell.metrics_path), json.dumps(metrics, indent=2) + "\n")
    return metrics, counts["errored"]
