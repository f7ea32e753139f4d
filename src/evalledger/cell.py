"""Evaluating one cell: call the model on every pending item, score, write the outputs.

Both ``evalledger run`` (many cells in parallel) and ``evalledger cell`` (one cell, the
command that ``dvc repro`` runs for each stage) come through :func:`execute_cell`, so
the files they leave are identical.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalledger.atomic import atomic_write
from evalledger.checkpoint import Checkpoint
from evalledger.errors import CellError, InterruptedRun
from evalledger.matrix import Cell, config_hash
from evalledger.plugins import load_benchmark, load_model

if TYPE_CHECKING:
    from threading import Event

    from evalledger.benchmarks.base import Item
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = ["SCORE_COLUMNS", "CellResult", "cell_metrics", "execute_cell"]

SCORE_COLUMNS = [
    "id", "category", "correct", "score", "partial", "formatted",
    "latency_ms", "prompt_tokens", "completion_tokens", "error",
]  # fmt: skip

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class CellResult:
    """What a finished cell produced."""

    cell: Cell
    n_items: int
    evaluated: int
    metrics: dict[str, Any]


def _quantile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return 0.0
    pos = (len(sorted_vals) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _rate(num: float, den: int) -> float:
    return round(num / den, 6) if den else 0.0


def cell_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Cell metrics from per-item records (the DVC metrics file's content)."""
    n = len(records)
    errors = sum(1 for r in records if r.get("error"))
    lat = sorted(float(r["latency_ms"]) for r in records)
    cats: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        cats.setdefault(r.get("category") or "uncategorised", []).append(r)
    return {
        "accuracy": _rate(sum(r["correct"] for r in records), n),
        "partial_accuracy": _rate(sum(r["partial"] for r in records), n),
        "format_accuracy": _rate(sum(r["formatted"] for r in records), n),
        "n": n,
        "correct": sum(int(r["correct"]) for r in records),
        "errors": errors,
        "latency_ms": {
            "mean": round(sum(lat) / n, 3) if n else 0.0,
            "p50": round(_quantile(lat, 0.5), 3),
            "p95": round(_quantile(lat, 0.95), 3),
        },
        "total_time_s": round(sum(lat) / 1000, 3),
        "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in records),
        "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in records),
        "categories": {
            cat: {"accuracy": _rate(sum(r["correct"] for r in rs), len(rs)), "n": len(rs)}
            for cat, rs in sorted(cats.items())
        },
    }


def _scores_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    for r in records:
        writer.writerow([
            r["id"], r.get("category", ""), int(r["correct"]), r["score"], int(r["partial"]),
            int(r["formatted"]), r["latency_ms"], r.get("prompt_tokens") or 0,
            r.get("completion_tokens") or 0, r.get("error") or "",
        ])  # fmt: skip
    return buf.getvalue()


def _predictions_jsonl(
    records: list[dict[str, Any]], items: dict[str, Item], prompts: dict[str, str]
) -> str:
    lines = []
    for r in records:
        item = items[r["id"]]
        lines.append(json.dumps({
            "id": r["id"], "prompt": prompts[r["id"]], "output": r["output"],
            "extracted": r.get("extracted"), "target": item.target,
        }, ensure_ascii=False))  # fmt: skip
    return "\n".join(lines) + ("\n" if lines else "")


def cell_context(spec: MatrixSpec, cell: Cell) -> tuple[dict[str, Any], str]:
    """The cell's effective configuration and its hash."""
    cfg = cell.effective_config(spec)
    return cfg, config_hash(cfg)


def execute_cell(
    project: Project,
    spec: MatrixSpec,
    cell: Cell,
    *,
    keep_checkpoint: bool = False,
    progress: ProgressFn | None = None,
    stop: Event | None = None,
) -> CellResult:
    """Evaluate every item of ``cell`` not yet in its checkpoint, then write its outputs.

    Finished items are read back from the checkpoint and never evaluated twice. With
    ``keep_checkpoint`` the log stays until the caller has recorded the cell as done.
    """
    cfg, chash = cell_context(spec, cell)
    model_name = cell.axis("model") or ""
    bench_name = cell.axis("benchmark") or ""
    model = load_model(model_name, spec.value_config("model", model_name))
    bench = load_benchmark(bench_name, spec.value_config("benchmark", bench_name))
    template = None
    if cell.axis("prompt_set"):
        template = cfg["prompt_set"].get("template")
    decoding = {k: v for k, v in cfg.get("decoding", {}).items() if k != "name"}
    items = bench.load()
    if not items:
        raise CellError(f"benchmark {bench_name!r} has no items")
    by_id = {it.id: it for it in items}
    if len(by_id) != len(items):
        raise CellError(f"benchmark {bench_name!r} has duplicate item ids")
    prompts = {it.id: bench.prompt(it, template) for it in items}
    evaluated = 0
    try:
        with Checkpoint(project.checkpoint_path(cell, chash)) as ck:
            done = sum(1 for it in items if it.id in ck.records)
            if progress:
                progress(done, len(items))
            for item in items:
                if item.id in ck.records:
                    continue
                if stop is not None and stop.is_set():
                    raise InterruptedRun(f"{cell.key} interrupted after {done} items")
                prompt = prompts[item.id]
                t0 = time.perf_counter()
                try:
                    completion = model.generate(prompt, item, decoding)
                except Exception as exc:
                    raise CellError(f"{type(exc).__name__}: {exc} (item {item.id})") from exc
                latency_ms = round((time.perf_counter() - t0) * 1000, 3)
                score = bench.check(item, completion.text)
                ck.append({
                    "id": item.id, "category": item.category, "correct": score.correct,
                    "score": score.score, "partial": score.partial,
                    "formatted": score.formatted, "extracted": score.extracted,
                    "latency_ms": latency_ms, "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "output": completion.text, "error": None,
                })  # fmt: skip
                evaluated += 1
                done += 1
                if progress:
                    progress(done, len(items))
            records = [ck.records[it.id] for it in items]
            metrics = cell_metrics(records)
            atomic_write(project.path(cell.predictions_path),
                         _predictions_jsonl(records, by_id, prompts))  # fmt: skip
            atomic_write(project.path(cell.scores_path), _scores_csv(records))
            atomic_write(project.path(cell.metrics_path),
                         json.dumps(metrics, indent=2, sort_keys=False) + "\n")  # fmt: skip
            if not keep_checkpoint:
                ck.remove()
    finally:
        model.close()
    return CellResult(cell=cell, n_items=len(items), evaluated=evaluated, metrics=metrics)
