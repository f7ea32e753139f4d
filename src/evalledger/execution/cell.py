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
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from evalledger.errors import EvalLedgerError, InterruptedRun
from evalledger.execution.cellfiles import (
    CLUSTER_COLUMN,
    SCORE_COLUMNS,
    TIMED_SCORE_COLUMNS,
    write_outputs,
)
from evalledger.execution.cellmetrics import cell_metrics
from evalledger.execution.cellplugins import PluginConfigs, plugin_configs
from evalledger.execution.checkpoint import Checkpoint
from evalledger.execution.partial_outputs import PartialOutputs
from evalledger.execution.repeats import (
    iter_samples,
    repeats_for,
    sample_decoding,
)
from evalledger.execution.response_cache import ResponseCache, cache_path
from evalledger.execution.streaming import StreamedItems, pending_items, scan_items, stored_records
from evalledger.matrix import Cell, config_hash
from evalledger.plugin_types import agent_records
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
        items: list[Item] | StreamedItems,
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
    items: list[Item] | StreamedItems
    """Held, or (a cell of more than STREAM_ABOVE items) read again on each pass."""
    prompts: dict[str, str] | None
    """Each item's prompt by id; None: made from ``template`` when needed."""
    decoding: dict[str, Any]
    price: tuple[float, float] | None
    repeats: int = 1
    """Samples per item (:mod:`evalledger.execution.repeats`); ``items`` holds them all."""
    cache: ResponseCache | None = None
    """The response cache, for a model that declares a cache identity (and cache on)."""
    plugins: PluginConfigs | None = None
    """What the plugins were built from: a Ray worker builds its own from it."""
    template: str | None = None
    """The prompt set's template (see ``prompts``)."""

    def prompt_of(self, item: Item) -> str:
        """The prompt sent for ``item``."""
        if self.prompts is not None:
            return self.prompts[item.id]
        return self.benchmark.prompt(item, self.template)

    def cache_key(self, item: Item, identity: dict[str, Any]) -> str:
        """The response-cache key of ``item``'s call (the model's ``identity`` given)."""
        request = self.model.cache_request(self.prompt_of(item),
                                           sample_decoding(self.decoding, item))  # fmt: skip
        return ResponseCache.key(identity, request)

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
    k = repeats_for(spec, cell)
    items = scan_items(lambda: iter_samples(bench.iter_items(), k), f"benchmark {bench_name!r}")
    price = model.settings.price
    cache = None
    if spec.run.cache and model.cache_identity() is not None:
        cache = ResponseCache(cache_path(project), spec.run.cache_expiry_s).open()
    return PreparedCell(
        cell=cell, config_hash=chash, model=model, benchmark=bench, scorer=plugins.scorer,
        judge=plugins.judge,
        items=items, decoding=decoding, price=(price.input, price.output) if price else None,
        prompts=None if isinstance(items, StreamedItems) else
        {it.id: bench.prompt(it, template) for it in items},
        repeats=k, cache=cache, plugins=configs, template=template,
    )  # fmt: skip


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
    items: list[Item] | StreamedItems,
    *,
    progress: ProgressFn | None = None,
    stop: Event | None = None,
    outputs: PartialOutputs | None = None,
) -> int:
    """Evaluate the ``items`` not yet scored in ``ck``, appending each; returns how many ran.

    ``progress`` counts over ``items``; an interruption (``stop``) before every item is
    done raises InterruptedRun. ``outputs`` (a streamed cell's) is handed each record.
    """
    queue, n_todo = outputs.pending() if outputs is not None else pending_items(ck, items)
    counts = {"done": len(items) - n_todo, "errors": 0, "evaluated": 0}
    if progress:
        progress(counts["done"], len(items), 0)

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
            if outputs is not None:
                outputs.accept(item, rec)
            counts["done"] += 1
            counts["evaluated"] += 1
            if progress:
                progress(counts["done"], len(items), counts["errors"])
            if counts["evaluated"] % _YIELD_EVERY == 0:
                # An instant model never awaits: let the loop write the manifest (and see
                # a stop) while a large cell runs, so a kill leaves a plan with counts.
                await asyncio.sleep(0)

    width = max(1, min(prepared.model.max_concurrency, n_todo))
    await asyncio.gather(*(worker() for _ in range(width)))
    if stop is not None and stop.is_set() and counts["done"] < len(items):
        raise InterruptedRun(f"{prepared.cell.key} interrupted after {counts['done']} items")
    return counts["evaluated"]


async def _answer(prepared: PreparedCell, item: Item, t0: float) -> tuple[Any, float, bool]:
    """The model's answer to ``item``, its latency, and whether the cache had it.

    A cached answer keeps the latency of the call that made it, so latency figures
    describe the model, not the cache.
    """
    prompt, decoding = prepared.prompt_of(item), sample_decoding(prepared.decoding, item)
    cache, identity = prepared.cache, prepared.model.cache_identity()
    if cache is None or identity is None:
        completion = await prepared.model.agenerate(prompt, item, decoding)
        return completion, round((time.perf_counter() - t0) * 1000, 3), False
    key = prepared.cache_key(item, identity)
    hit = cache.get(key)
    if hit is not None:
        return hit.completion, hit.latency_ms, True
    completion = await prepared.model.agenerate(prompt, item, decoding)
    latency_ms = round((time.perf_counter() - t0) * 1000, 3)
    cache.put(key, f"{identity.get('adapter')}:{identity.get('model')}", completion, latency_ms)
    return completion, latency_ms, False


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
    streamed = isinstance(items, StreamedItems)
    path = project.checkpoint_path(cell, prepared.config_hash)
    with Checkpoint(path, keep_records=not streamed) as ck:
        if streamed and prepared.repeats == 1:
            # written in item order as records come: a resume keeps what was written
            with PartialOutputs(project, prepared, ck) as parts:
                if evaluate is evaluate_items:
                    evaluate = functools.partial(evaluate_items, outputs=parts)
                evaluated = await evaluate(prepared, ck, items, progress=progress, stop=stop)
                metrics, errored = parts.finish(time.perf_counter() - started)
        else:
            evaluated = await evaluate(prepared, ck, items, progress=progress, stop=stop)
            records: Iterable[dict[str, Any]]
            if isinstance(items, StreamedItems):
                records = stored_records(ck, items)
            else:
                records = [ck.records[it.id] for it in items]
            elapsed = time.perf_counter() - started
            metrics, errored = write_outputs(project, prepared, records, elapsed)
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
