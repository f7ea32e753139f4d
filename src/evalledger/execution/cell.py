"""Evaluating one cell: call the model on every pending item, score, write the outputs.

Both ``evalledger run`` (many cells on one event loop) and ``evalledger cell`` (one cell,
the command that ``dvc repro`` runs for each stage) come through :func:`evaluate_cell`,
so the files they leave are identical.

Items run concurrently (the model's ``max_concurrency``). An item whose call still fails
after the adapter's retries is recorded as errored, with its error class and message: it
is counted in the metrics, never scored as wrong, and retried on resume.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from evalledger.atomic import atomic_write, atomic_write_lines
from evalledger.errors import CellError, EvalLedgerError, InterruptedRun
from evalledger.execution.cellmetrics import cell_metrics
from evalledger.execution.cellplugins import PluginConfigs, plugin_configs
from evalledger.execution.checkpoint import Checkpoint
from evalledger.execution.repeats import (
    expand_samples,
    repeats_for,
    sample_decoding,
    with_repeats,
)
from evalledger.execution.response_cache import ResponseCache, cache_path
from evalledger.matrix import Cell, config_hash
from evalledger.plugin_types import agent_records, question_of
from evalledger.plugins import load_benchmark
from evalledger.redact import scrub_text

if TYPE_CHECKING:
    from pathlib import Path
    from threading import Event

    from evalledger.benchmarks.base import Benchmark
    from evalledger.models.base import Model
    from evalledger.params import MatrixSpec
    from evalledger.plugin_types import Item, ItemScore
    from evalledger.project import Project
    from evalledger.scorers.base import Scorer

__all__ = [
    "CLUSTER_COLUMN",
    "SCORE_COLUMNS",
    "TIMED_SCORE_COLUMNS",
    "CellResult",
    "ItemsEvaluator",
    "PreparedCell",
    "benchmark_data_hash",
    "cell_benchmark",
    "cell_context",
    "cell_metrics",
    "evaluate_cell",
    "evaluate_items",
    "execute_cell",
    "prepare_cell",
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
#: File hashes of benchmark data, by path, size and mtime (below ``.evalledger/``).
DATA_HASH_CACHE = "cache/data_hashes.json"

#: ``progress(done, total, errors)``: items finished (scored or errored) so far.
ProgressFn = Callable[[int, int, int], None]


class ItemsEvaluator(Protocol):
    """Evaluates a cell's pending items into its checkpoint.

    :func:`evaluate_items` in this process, or a remote executor's
    (:mod:`evalledger.execution.ray_executor`).
    """

    def __call__(
        self,
        prepared: PreparedCell,
        ck: Checkpoint,
        items: list[Item],
        *,
        progress: ProgressFn | None = None,
        stop: Event | None = None,
    ) -> Awaitable[int]: ...


@dataclass(frozen=True)
class CellResult:
    """What a finished cell produced."""

    cell: Cell
    n_items: int
    evaluated: int
    errored: int
    metrics: dict[str, Any]


@dataclass
class PreparedCell:
    """A cell with its model, benchmark, scorer and items loaded, ready to evaluate."""

    cell: Cell
    config_hash: str
    model: Model
    benchmark: Benchmark
    scorer: Scorer | None
    judge: Model | None
    items: list[Item]
    prompts: dict[str, str]
    decoding: dict[str, Any]
    price: tuple[float, float] | None
    repeats: int = 1
    """Samples per item (:mod:`evalledger.execution.repeats`); ``items`` holds them all."""
    cache: ResponseCache | None = None
    """The response cache, for a model that declares a cache identity (and cache on)."""
    plugins: PluginConfigs | None = None
    """What the plugins were built from: a Ray worker builds its own from it."""

    async def aclose(self) -> None:
        """Release the model's (and judge's) connections."""
        if self.cache is not None:
            self.cache.close()
        await self.model.aclose()
        if self.judge is not None:
            await self.judge.aclose()


def cell_context(
    spec: MatrixSpec, cell: Cell, root: Path | None = None
) -> tuple[dict[str, Any], str]:
    """The cell's effective configuration and its hash.

    With prompt files (and the project ``root``), their md5s are part of it, so an
    edited prompt is a new configuration.
    """
    cfg = cell.effective_config(spec)
    if spec.prompt_files and root is not None:
        cfg["prompt_files"] = _prompt_md5s(root, cell)
    return cfg, config_hash(cfg)


def _prompt_md5s(root: Path, cell: Cell) -> dict[str, str | None]:
    import hashlib

    from evalledger.prompts import prompt_paths

    out: dict[str, str | None] = {}
    for rel in prompt_paths(dict(cell.axes)):
        try:
            out[rel] = hashlib.md5((root / rel).read_bytes()).hexdigest()
        except OSError:
            out[rel] = None  # the cell then fails to prepare, naming the file
    return out


def cell_benchmark(project: Project, spec: MatrixSpec, name: str) -> Benchmark:
    """The benchmark ``name`` as params.yaml defines it (no data is read yet)."""
    return load_benchmark(name, spec.value_config("benchmark", name), project.root)


def benchmark_data_hash(project: Project, spec: MatrixSpec, name: str) -> str | None:
    """The hash of benchmark ``name``'s data files; None if generated or unreadable.

    Unreadable data (a missing file) gives None rather than an error: the cell then
    fails with the loader's own message when it runs.
    """
    try:
        bench = cell_benchmark(project, spec, name)
        return bench.data_hash(project.state_dir / DATA_HASH_CACHE)
    except (EvalLedgerError, OSError):
        return None


def prepare_cell(project: Project, spec: MatrixSpec, cell: Cell) -> PreparedCell:
    """Load what a cell needs; configuration errors surface here, before any call."""
    cfg, chash = cell_context(spec, cell, project.root)
    configs = plugin_configs(spec, cell, cfg)
    plugins = configs.load(project.root)
    model, bench, bench_name = plugins.model, plugins.benchmark, cell.axis("benchmark") or ""
    template = cfg["prompt_set"].get("template") if "prompt_set" in cfg else None
    decoding = {k: v for k, v in cfg.get("decoding", {}).items() if k != "name"}
    if spec.prompt_files:
        from evalledger.prompts import read_prompt_files

        files = read_prompt_files(project.root, dict(cell.axes))
        template = files.template
        if files.system is not None:
            decoding["system"] = files.system  # adapters send it as the system message
    items = bench.load()
    if not items:
        raise CellError(f"benchmark {bench_name!r} has no items")
    if len({it.id for it in items}) != len(items):
        raise CellError(f"benchmark {bench_name!r} has duplicate item ids")
    k = repeats_for(spec, cell)
    items = expand_samples(items, k)
    price = model.settings.price
    cache = None
    if spec.run.cache and model.cache_identity() is not None:
        cache = ResponseCache(cache_path(project), spec.run.cache_expiry_s).open()
    return PreparedCell(
        cell=cell, config_hash=chash, model=model, benchmark=bench, scorer=plugins.scorer,
        judge=plugins.judge,
        items=items, prompts={it.id: bench.prompt(it, template) for it in items},
        decoding=decoding, price=(price.input, price.output) if price else None, repeats=k,
        cache=cache, plugins=configs,
    )  # fmt: skip


def _scores_csv(
    records: list[dict[str, Any]], items: list[Item], samples: bool = False
) -> Iterator[str]:
    """Per-item scores, in item order; a ``cluster`` column only when some item has one.

    With ``samples`` (repeats), a row per answer: the question's id and a ``sample``
    column. Nothing of the clock is written here (see :data:`SCORE_COLUMNS`). Row by
    row, for :func:`~evalledger.atomic.atomic_write_lines`.
    """
    clusters = {it.id: str(it.meta["cluster"]) for it in items if "cluster" in it.meta}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")

    def flushed() -> str:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    header = [*SCORE_COLUMNS, *([SAMPLE_COLUMN] if samples else [])]
    writer.writerow([*header, CLUSTER_COLUMN] if clusters else header)
    yield flushed()
    for r in records:
        question, sample = question_of(r["id"]) if samples else (r["id"], None)
        row = [
            question, r.get("category", ""), int(r["correct"]), r["score"], int(r["partial"]),
            int(r["formatted"]), r.get("prompt_tokens") or 0, r.get("completion_tokens") or 0,
            r.get("error") or "", *([sample] if samples else []),
        ]  # fmt: skip
        if clusters:
            row.append(clusters.get(r["id"], ""))
        writer.writerow(row)
        yield flushed()


def _predictions_jsonl(records: list[dict[str, Any]], prepared: PreparedCell) -> Iterator[str]:
    """One line per item: prompt, output, target, and the item's ``latency_ms``."""
    targets = {it.id: it.target for it in prepared.items}
    for r in records:
        row = {
            "id": r["id"], "prompt": prepared.prompts[r["id"]], "output": r.get("output"),
            "extracted": r.get("extracted"), "target": targets[r["id"]],
        }  # fmt: skip
        if r.get("detail"):
            row["judge"] = r["detail"]
        if r.get("error"):
            row["error"] = r["error"]
        row["latency_ms"] = r["latency_ms"]
        if r.get("agents"):
            row["agents"] = r["agents"]
        yield json.dumps(row, ensure_ascii=False) + "\n"


def _record(item: Item, latency_ms: float, completion: Any, score: ItemScore) -> dict[str, Any]:
    rec = {
        "id": item.id, "category": item.category, "correct": score.correct,
        "score": score.score, "partial": score.partial, "formatted": score.formatted,
        "extracted": score.extracted, "detail": score.detail, "latency_ms": latency_ms,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "output": completion.text, "error": None,
    }  # fmt: skip
    # Checked whatever the adapter: a bad record (an agent named twice) errors the item.
    agents = agent_records(getattr(completion, "agents", ()))
    if agents:  # only then: checkpoint lines of single-agent models stay as they were
        rec["agents"] = [a.to_json() for a in agents]
    return rec


def _error_record(item: Item, latency_ms: float, exc: BaseException) -> dict[str, Any]:
    cls = type(exc).__name__
    return {
        "id": item.id, "category": item.category, "correct": False, "score": 0.0,
        "partial": False, "formatted": False, "extracted": None, "latency_ms": latency_ms,
        "prompt_tokens": None, "completion_tokens": None, "output": None,
        # Scrubbed before the cut, so a key that straddles character 500 is not half-kept.
        "error": scrub_text(f"{cls}: {exc}")[:500], "error_class": cls,
    }  # fmt: skip


_YIELD_EVERY = 256


async def evaluate_items(
    prepared: PreparedCell,
    ck: Checkpoint,
    items: list[Item],
    *,
    progress: ProgressFn | None = None,
    stop: Event | None = None,
) -> int:
    """Evaluate the ``items`` not yet scored in ``ck``, appending each; returns how many ran.

    ``progress`` counts over ``items``; an interruption (``stop``) before every item is
    done raises InterruptedRun.
    """
    scored = ck.scored
    todo = [it for it in items if it.id not in scored]
    counts = {"done": len(items) - len(todo), "errors": 0, "evaluated": 0}
    if progress:
        progress(counts["done"], len(items), 0)
    queue = iter(todo)

    async def worker() -> None:
        for item in queue:
            if stop is not None and stop.is_set():
                return
            t0 = time.perf_counter()
            try:
                completion, latency_ms, cached = await _answer(prepared, item, t0)
                if prepared.scorer is not None:
                    score = await prepared.scorer.ascore(item, completion.text)
                else:
                    score = prepared.benchmark.check(item, completion.text)
                rec = _record(item, latency_ms, completion, score)
                if cached:  # only then: checkpoint lines of uncached answers stay as they were
                    rec["cached"] = True
            except Exception as exc:
                latency_ms = round((time.perf_counter() - t0) * 1000, 3)
                rec = _error_record(item, latency_ms, exc)
                counts["errors"] += 1
            ck.append(rec)
            counts["done"] += 1
            counts["evaluated"] += 1
            if progress:
                progress(counts["done"], len(items), counts["errors"])
            if counts["evaluated"] % _YIELD_EVERY == 0:
                # An instant model never awaits: let the loop write the manifest (and see
                # a stop) while a large cell runs, so a kill leaves a plan with counts.
                await asyncio.sleep(0)

    width = max(1, min(prepared.model.max_concurrency, len(todo)))
    await asyncio.gather(*(worker() for _ in range(width)))
    if stop is not None and stop.is_set() and counts["done"] < len(items):
        raise InterruptedRun(f"{prepared.cell.key} interrupted after {counts['done']} items")
    return counts["evaluated"]


async def _answer(prepared: PreparedCell, item: Item, t0: float) -> tuple[Any, float, bool]:
    """The model's answer to ``item``, its latency, and whether the cache had it.

    A cached answer keeps the latency of the call that made it, so latency figures
    describe the model, not the cache.
    """
    prompt, decoding = prepared.prompts[item.id], sample_decoding(prepared.decoding, item)
    cache, identity = prepared.cache, prepared.model.cache_identity()
    if cache is None or identity is None:
        completion = await prepared.model.agenerate(prompt, item, decoding)
        return completion, round((time.perf_counter() - t0) * 1000, 3), False
    key = cache.key(identity, prepared.model.cache_request(prompt, decoding))
    hit = cache.get(key)
    if hit is not None:
        return hit.completion, hit.latency_ms, True
    completion = await prepared.model.agenerate(prompt, item, decoding)
    latency_ms = round((time.perf_counter() - t0) * 1000, 3)
    cache.put(key, f"{identity.get('adapter')}:{identity.get('model')}", completion, latency_ms)
    return completion, latency_ms, False


def write_outputs(
    project: Project, prepared: PreparedCell, records: list[dict[str, Any]], wall_time_s: float
) -> tuple[dict[str, Any], int]:
    """Write the cell's predictions, scores and metrics from ``records`` (in item order).

    Returns the metrics and how many items errored; CellError when every item errored.
    """
    cell, items = prepared.cell, prepared.items
    errored = sum(1 for r in records if r.get("error"))
    if errored == len(records):
        first = records[0]["error"]
        raise CellError(f"all {len(records)} items errored; first: {first}")
    metrics = cell_metrics(records, prepared.price, wall_time_s)
    if prepared.repeats > 1:
        metrics = with_repeats(metrics, records, prepared.repeats)
    atomic_write_lines(project.path(cell.predictions_path), _predictions_jsonl(records, prepared))
    atomic_write_lines(project.path(cell.scores_path),
                       _scores_csv(records, items, prepared.repeats > 1))  # fmt: skip
    atomic_write(project.path(cell.metrics_path), json.dumps(metrics, indent=2) + "\n")
    return metrics, errored


async def evaluate_cell(
    project: Project,
    prepared: PreparedCell,
    *,
    keep_checkpoint: bool = False,
    progress: ProgressFn | None = None,
    stop: Event | None = None,
    evaluate: ItemsEvaluator | None = None,
) -> CellResult:
    """Evaluate every item of the cell not yet scored in its checkpoint; write its outputs.

    Scored items are read back from the checkpoint and never evaluated twice; errored
    ones are tried again. With ``keep_checkpoint`` the log stays until the caller has
    recorded the cell as done. ``evaluate`` replaces the in-process :func:`evaluate_items`.
    """
    cell, items = prepared.cell, prepared.items
    started = time.perf_counter()
    evaluate = evaluate or evaluate_items
    with Checkpoint(project.checkpoint_path(cell, prepared.config_hash)) as ck:
        evaluated = await evaluate(prepared, ck, items, progress=progress, stop=stop)
        records = [ck.records[it.id] for it in items]
        metrics, errored = write_outputs(project, prepared, records, time.perf_counter() - started)
        if not keep_checkpoint and not errored:
            ck.remove()
    return CellResult(cell=cell, n_items=len(items), evaluated=evaluated,
                      errored=errored, metrics=metrics)  # fmt: skip


def execute_cell(
    project: Project,
    spec: MatrixSpec,
    cell: Cell,
    *,
    keep_checkpoint: bool = False,
    progress: ProgressFn | None = None,
    stop: Event | None = None,
) -> CellResult:
    """Prepare and evaluate one cell on its own event loop (``evalledger cell``).

    The cell's plugins and dvc.yaml are checked first
    (:func:`~evalledger.execution.validate.check_cell`): bad input writes nothing.
    """
    from evalledger.execution.validate import check_cell

    check_cell(project, spec, cell)
    prepared = prepare_cell(project, spec, cell)

    async def main() -> CellResult:
        try:
            return await evaluate_cell(
                project, prepared, keep_checkpoint=keep_checkpoint, progress=progress, stop=stop
            )
        finally:
            await prepared.aclose()

    return asyncio.run(main())
