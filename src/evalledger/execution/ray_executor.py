"""``run --executor ray``: a cell's items evaluated as Ray tasks, recorded by the driver.

The driver (the ``evalledger run`` process) keeps every file: it splits a cell's pending
items into chunks, submits each chunk as a Ray task with the model's declared
``resources``, and appends the item records the task streams back to the cell's
checkpoint, exactly as the local executor does. Workers write nothing. So resume,
atomic outputs, dvc.lock and the manifest behave as in a local run, and both executors
leave the same ledger files apart from timings.

A worker builds the cell's plugins from their params.yaml entries
(:class:`~evalledger.execution.cellplugins.PluginConfigs`) and runs the same item loop
(:func:`~evalledger.execution.cell.evaluate_items`). Response-cache hits are looked up
by the driver and shipped with the chunk; new answers come back to be stored by it.

When a worker or its node dies, the chunk's items not yet received are submitted again
(up to :data:`MAX_ATTEMPTS` times); an item received twice is recorded once.
"""

from __future__ import annotations

import asyncio
import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalledger.errors import CellError, ConfigError, InterruptedRun, notice
from evalledger.execution.streaming import pending_items

if TYPE_CHECKING:
    from collections.abc import Iterator
    from threading import Event

    from evalledger.execution.cell import PreparedCell, ProgressFn
    from evalledger.execution.cellplugins import PluginConfigs
    from evalledger.execution.checkpoint import Checkpoint
    from evalledger.execution.response_cache import CachedAnswer
    from evalledger.execution.streaming import StreamedItems
    from evalledger.matrix import Cell
    from evalledger.plugin_types import Completion, Item

__all__ = ["MAX_ATTEMPTS", "ChunkTask", "RayExecutor", "evaluate_chunk"]

#: Submissions of one chunk before its remaining items are recorded as lost.
MAX_ATTEMPTS = 4
#: Most items in one task: small enough to spread a large cell over the cluster.
MAX_CHUNK = 2_000
#: Chunks of one cell in flight per CPU of the cluster.
IN_FLIGHT = 8
#: A worker sends what it has at least this often (seconds), or every _BATCH records.
_BATCH_SECONDS = 0.2
_BATCH = 256
#: Seconds to wait for a cluster view that shows no CPU before trusting it.
_EMPTY_VIEW_WAIT = 10.0


@dataclass(frozen=True)
class ChunkTask:
    """What a worker needs to evaluate some items of one cell; all of it pickles."""

    root: str
    cell: Cell
    plugins: PluginConfigs
    items: list[Item]
    prompts: dict[str, str]
    decoding: dict[str, Any]
    hits: dict[str, CachedAnswer] | None
    """Cache key -> the driver's cached answer; None: the cell does not use the cache."""


class _Put:
    """A new answer for the driver's response cache."""

    __slots__ = ("completion", "key", "latency_ms", "model")

    def __init__(self, key: str, model: str, completion: Completion, latency_ms: float) -> None:
        self.key, self.model, self.completion, self.latency_ms = key, model, completion, latency_ms


class _ChunkCache:
    """The response cache on a worker: the driver's hits in, new answers out."""

    def __init__(self, hits: dict[str, CachedAnswer], out: queue.SimpleQueue[Any]) -> None:
        self.hits, self.out = hits, out

    def get(self, key: str) -> CachedAnswer | None:
        return self.hits.get(key)

    def put(self, key: str, model: str, completion: Completion, latency_ms: float) -> None:
        self.out.put(_Put(key, model, completion, latency_ms))

    def close(self) -> None:
        pass


class _Sink:
    """Stands in for the checkpoint on a worker: records go to the driver."""

    def __init__(self, out: queue.SimpleQueue[Any]) -> None:
        self.out = out
        self.scored: set[str] = set()

    def append(self, record: dict[str, Any]) -> None:
        self.out.put(record)


_DONE = object()


def evaluate_chunk(task: ChunkTask) -> Iterator[list[Any]]:
    """Evaluate ``task`` on a worker, yielding batches of item records and cache puts.

    The item loop runs on its own event loop in a thread, so batches go out while items
    are still being evaluated.
    """
    from evalledger.execution.cell import PreparedCell, evaluate_items

    root = Path(task.root) if task.root and Path(task.root).is_dir() else None
    if root is not None:
        os.chdir(root)  # plugins resolve relative paths (a python model's `path:`)
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    failure: list[BaseException] = []

    async def main() -> None:
        plugins = task.plugins.load(root)
        cache = None if task.hits is None else _ChunkCache(task.hits, out)
        prepared = PreparedCell(
            cell=task.cell, config_hash="", model=plugins.model, benchmark=plugins.benchmark,
            scorer=plugins.scorer, judge=plugins.judge, items=task.items, prompts=task.prompts,
            decoding=task.decoding, price=None, cache=cache,  # type: ignore[arg-type]
        )  # fmt: skip
        try:
            await evaluate_items(prepared, _Sink(out), task.items)  # type: ignore[arg-type]
        finally:
            await prepared.aclose()

    def work() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # sent to the driver, which fails the cell with it
            failure.append(exc)
        out.put(_DONE)

    threading.Thread(target=work, name="evalledger-chunk", daemon=True).start()
    batch: list[Any] = []
    deadline = time.monotonic() + _BATCH_SECONDS
    while True:
        try:
            got = out.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            got = None
        if got is _DONE:
            break
        if got is not None:
            batch.append(got)
        if batch and (len(batch) >= _BATCH or time.monotonic() >= deadline):
            yield batch
            batch = []
        if time.monotonic() >= deadline:
            deadline = time.monotonic() + _BATCH_SECONDS
    if batch:
        yield batch
    if failure:
        raise failure[0]


def _batched(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the ray executor needs Ray, which is not installed",
            "pip install 'evalledger[ray]', or run with --executor local",
        ) from None
    return ray


class RayExecutor:
    """Evaluates cells' items on a Ray cluster; see the module docstring."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._ray: Any = None
        self._remote: Any = None
        self._started = False

    def connect(self) -> RayExecutor:
        """Join the cluster at ``address`` (or start a local Ray); reuse an initialized one."""
        import logging

        ray = _ray()
        if not ray.is_initialized():
            self._reachable()
            self._started = True
            try:
                ray.init(address=self.address, logging_level=logging.ERROR,
                         log_to_driver=False, include_dashboard=False,
                         configure_logging=False)  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a local Ray"
                raise ConfigError(
                    f"cannot connect to the Ray cluster at {where}: {str(exc).splitlines()[0]}",
                    "start it with `ray start --head`, pass --address HOST:PORT, "
                    "or run with --executor local",
                ) from None
        self._ray = ray
        # max_retries=0: a lost task is submitted again by the driver with only the items
        # it has not received, which is what keeps every item recorded exactly once.
        self._remote = ray.remote(max_retries=0)(evaluate_chunk)
        return self

    def _reachable(self) -> None:
        """Fail at once, in one line, when nothing listens at ``HOST:PORT``.

        Ray itself retries an unreachable address for minutes, logging as it goes.
        """
        import re
        import socket

        found = re.fullmatch(r"\[?([\w.:-]+?)\]?:(\d+)", self.address or "")
        if found is None:  # "auto", ray://..., or none: Ray resolves it
            return
        try:
            socket.create_connection((found.group(1), int(found.group(2))), timeout=5).close()
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the Ray cluster at {self.address}: {exc.strerror or exc}",
                "start it with `ray start --head --port PORT`, or fix --address "
                "(run.ray_address in params.yaml)",
            ) from None

    def close(self) -> None:
        """Disconnect, if :meth:`connect` was what connected (a caller's Ray stays up)."""
        if self._started:
            self._ray.shutdown()
            self._started = False

    def slots(self) -> int:
        """Cells worth keeping in flight: the cluster's CPUs (at least 1)."""
        return max(1, int(self._resources().get("CPU", 1)))

    def _resources(self) -> dict[str, float]:
        """The cluster's total resources, waiting a little while the view is still empty.

        A busy GCS can answer with no node at all for a moment; a cell must not fail as
        infeasible for that.
        """
        deadline = time.monotonic() + _EMPTY_VIEW_WAIT
        while True:
            have: dict[str, float] = self._ray.cluster_resources()
            if have.get("CPU") or time.monotonic() > deadline:
                return have
            time.sleep(0.25)

    def _options(self, prepared: PreparedCell) -> dict[str, Any]:
        wanted = dict(prepared.model.settings.resources)
        options: dict[str, Any] = {"num_cpus": wanted.pop("num_cpus", 1)}
        if "num_gpus" in wanted:
            options["num_gpus"] = wanted.pop("num_gpus")
        if "memory" in wanted:
            options["memory"] = wanted.pop("memory")
        if wanted:
            options["resources"] = wanted
        have = self._resources()
        named = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
        need = {named.get(k, k): v for k, v in options.items() if k != "resources"}
        need.update(options.get("resources", {}))
        short = [f"{k}={v:g} (cluster: {have.get(k, 0):g})" for k, v in need.items()
                 if v > have.get(k, 0)]  # fmt: skip
        if short:
            raise CellError(
                f"model {prepared.model.name!r} asks for {', '.join(short)} per task",
                f"lower models.{prepared.model.name}.resources or add nodes that have them",
            )
        return options

    def _task(self, prepared: PreparedCell, items: list[Item], root: str) -> ChunkTask:
        assert prepared.plugins is not None, "a Ray cell is prepared by prepare_cell"
        hits = None
        if prepared.cache is not None and (identity := prepared.model.cache_identity()):
            hits = {}
            for it in items:
                key = prepared.cache_key(it, identity)
                if (hit := prepared.cache.get(key)) is not None:
                    hits[key] = hit
        return ChunkTask(
            root=root, cell=prepared.cell, plugins=prepared.plugins, items=items,
            prompts={it.id: prepared.prompt_of(it) for it in items},
            decoding=prepared.decoding, hits=hits,
        )  # fmt: skip

    def evaluator(self, root: str) -> Any:
        """An :class:`~evalledger.execution.cell.ItemsEvaluator` for cells of ``root``."""

        async def evaluate(
            prepared: PreparedCell,
            ck: Checkpoint,
            items: list[Item] | StreamedItems,
            *,
            progress: ProgressFn | None = None,
            stop: Event | None = None,
        ) -> int:
            return await self._evaluate(root, prepared, ck, items, progress, stop)

        return evaluate

    async def _evaluate(
        self,
        root: str,
        prepared: PreparedCell,
        ck: Checkpoint,
        items: list[Item] | StreamedItems,
        progress: ProgressFn | None,
        stop: Event | None,
    ) -> int:
        ray = self._ray
        queue, n_todo = pending_items(ck, items)
        counts = {"done": len(items) - n_todo, "errors": 0, "evaluated": 0}
        if progress:
            progress(counts["done"], len(items), 0)
        if not n_todo:
            return 0
        options = self._options(prepared)
        pending: set[str] = set()  # the ids of the items in flight, not yet recorded

        def receive(batch: list[Any]) -> None:
            for got in batch:
                if isinstance(got, _Put):
                    if prepared.cache is not None:
                        prepared.cache.put(got.key, got.model, got.completion, got.latency_ms)
                    continue
                if got["id"] not in pending:
                    continue  # a resubmitted chunk's item that had arrived already
                pending.discard(got["id"])
                ck.append(got)
                counts["done"] += 1
                counts["evaluated"] += 1
                counts["errors"] += bool(got.get("error"))
                if progress:
                    progress(counts["done"], len(items), counts["errors"])

        async def one_chunk(chunk: list[Item]) -> None:
            last: BaseException | None = None
            for attempt in range(1, MAX_ATTEMPTS + 1):
                left = [it for it in chunk if it.id in pending]
                if not left or (stop is not None and stop.is_set()):
                    return
                if last is not None:
                    notice(f"{prepared.cell.key}: a Ray task was lost ({type(last).__name__}); "
                           f"its {len(left)} items not yet recorded are submitted again "
                           f"(attempt {attempt} of {MAX_ATTEMPTS})")  # fmt: skip
                task = self._task(prepared, left, root)
                generator = self._remote.options(**options).remote(task)
                try:
                    async for ref in generator:
                        receive(await ref)
                        if stop is not None and stop.is_set():
                            ray.cancel(generator, force=True)
                            return
                    last = RuntimeError("the task ended before sending every record")
                except ray.exceptions.RayTaskError as exc:  # the task's own code raised
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    message = getattr(cause, "message", None) or f"{type(cause).__name__}: {cause}"
                    raise CellError(f"on a Ray worker: {message}") from None
                except ray.exceptions.RayError as exc:  # the worker or its node was lost
                    last = exc
                except asyncio.CancelledError:
                    ray.cancel(generator, force=True)
                    raise
            lost = sum(1 for it in chunk if it.id in pending)
            raise CellError(f"{lost} items lost: their Ray task failed {MAX_ATTEMPTS} times; "
                            f"last: {type(last).__name__}")  # fmt: skip

        # Chunks are cut from the pending items as earlier ones finish, so a cell of a
        # million items is never held: at most IN_FLIGHT chunks per slot are.
        cpus = self.slots()
        size = max(1, min(MAX_CHUNK, math.ceil(n_todo / (4 * cpus))))
        slots = asyncio.Semaphore(IN_FLIGHT * cpus)
        running: list[asyncio.Task[None]] = []
        for chunk in _batched(queue, size):
            await slots.acquire()
            if (stop is not None and stop.is_set()) or any(
                t.done() and not t.cancelled() and t.exception() for t in running
            ):
                slots.release()
                break
            pending.update(it.id for it in chunk)
            task = asyncio.create_task(one_chunk(chunk))
            task.add_done_callback(lambda _: slots.release())
            running.append(task)
        try:
            await asyncio.gather(*running)
        except BaseException:
            # One chunk failed the cell (or the run was cancelled): stop the others
            # before the checkpoint closes, so none appends to it afterwards.
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        if stop is not None and stop.is_set() and counts["done"] < len(items):
            raise InterruptedRun(f"{prepared.cell.key} interrupted after {counts['done']} items")
        return counts["evaluated"]
