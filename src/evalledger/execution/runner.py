"""``evalledger run``: create or resume an execution and evaluate its cells in parallel.

The orchestrator is the only writer of the execution manifest; each cell writes only its
own files. Finished cells are recorded in dvc.lock in one batch at the end, exactly as
``dvc commit -f`` would record them, so ``dvc status`` is clean afterwards.
What a run will evaluate, and the run lock, are decided in ``execution/plan.py``.

A run first clears what a killed one left (its temp files, a dvc.lock left empty or
invalid, rebuilt without evaluating anything); ``--commit`` then commits whatever of the
execution git does not hold yet, so a commit that was interrupted is finished later.
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from evalledger.errors import EvalLedgerError, InterruptedRun
from evalledger.execution.cell import benchmark_data_hash, cell_context, evaluate_cell, prepare_cell
from evalledger.execution.checkpoint import remove_checkpoint
from evalledger.execution.commit import commit_into, commit_reused
from evalledger.execution.executions import manifest_path
from evalledger.execution.manifest_writer import ManifestWriter
from evalledger.execution.plan import (
    RunOptions,
    RunPlan,
    axis_filters,
    cell_done,
    checkpoint_of,
    plan_run,
    remove_leftovers,
    run_lock,
    set_lock_label,
)
from evalledger.execution.signals import on_stop_signals
from evalledger.manifest import (
    CellRecord,
    CellStatus,
    ExecutionManifest,
    ExecutionStatus,
    new_execution_id,
    new_experiment_name,
    utcnow,
    write_manifest,
)
from evalledger.matrix import Cell, cell_from_axes
from evalledger.params import override_params

if TYPE_CHECKING:
    from evalledger.execution.cell import ItemsEvaluator
    from evalledger.execution.ray_executor import RayExecutor
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = ["RunReporter", "RunResult", "run"]


class RunReporter(Protocol):
    """Receives progress events; the CLI renders them, tests may record them."""

    def plan(self, plan: RunPlan) -> None:
        """The plan is known and the run is about to start."""

    def cell_started(self, key: str, done: int, total: int) -> None:
        """A cell started (``done`` items already in its checkpoint)."""

    def cell_progress(self, key: str, done: int, total: int, errors: int) -> None:
        """A cell finished another item (``errors`` of them errored so far)."""

    def cell_finished(self, key: str, record: CellRecord) -> None:
        """A cell completed or failed."""


class _NullReporter:
    def plan(self, plan: RunPlan) -> None:
        pass

    def cell_started(self, key: str, done: int, total: int) -> None:
        pass

    def cell_progress(self, key: str, done: int, total: int, errors: int) -> None:
        pass

    def cell_finished(self, key: str, record: CellRecord) -> None:
        pass


@dataclass
class RunResult:
    """The outcome of a run."""

    plan: RunPlan
    manifest: ExecutionManifest | None = None
    message: str | None = None
    committed: str | None = None
    recorded: int = 0
    seconds: float = 0.0
    waiting: list[str] = field(default_factory=list)
    """Cells whose shard part is done while other shards are not (``--shard``)."""
    cache_hits: int = 0
    """Model calls answered from the response cache instead of made."""

    @property
    def ok(self) -> bool:
        """True when every cell of the execution completed (or nothing needed running).

        For a shard, a cell waiting for the other shards counts as completed.
        """
        if self.manifest is None or self.manifest.status == ExecutionStatus.COMPLETED:
            return True
        if self.plan.shard is None:
            return False
        return all(cell_done(r) or k in self.waiting for k, r in self.manifest.cells.items())


def _new_manifest(
    project: Project, spec: MatrixSpec, cells: list[Cell], options: RunOptions, jobs: int
) -> ExecutionManifest:
    from evalledger.gitinfo import code_hash, git_state
    from evalledger.provenance import capture_provenance
    from evalledger.redact import redact, redact_command

    now = utcnow()
    records = {}
    data_hashes: dict[str, str | None] = {}  # per benchmark: its cells share the data
    for cell in cells:
        _, chash = cell_context(spec, cell, project.root)
        judge = spec.judge_name(cell.values[1])
        bench = cell.values[1]
        if bench not in data_hashes:
            data_hashes[bench] = benchmark_data_hash(project, spec, bench)
        records[cell.key] = CellRecord(
            axes=dict(cell.axes), stage=cell.stage,
            experiment=new_experiment_name(cell.values, judge), config_hash=chash,
            data_hash=data_hashes[bench],
        )  # fmt: skip
    git = git_state(project.root)  # with git.diff_hash when tracked files changed
    git.code_hash = code_hash(project.root)
    return ExecutionManifest(
        execution_id=new_execution_id(now), created_at=now, updated_at=now,
        command=redact_command(list(options.command)),
        overrides=redact_command(list(options.overrides)),
        filters=axis_filters(options.filters), config=redact(spec.raw),
        git=git, jobs=jobs, cells=records, provenance=capture_provenance(project.root),
    )  # fmt: skip


async def _run_cell(
    project: Project,
    spec: MatrixSpec,
    writer: ManifestWriter,
    key: str,
    reporter: RunReporter,
    stop: threading.Event,
    evaluate: ItemsEvaluator | None = None,
) -> None:
    rec = writer.manifest.cells[key]
    cell = cell_from_axes(rec.axes)
    writer.update(
        key, status=CellStatus.IN_PROGRESS, started_at=utcnow(), error=None,
        attempts=rec.attempts + 1,
    )  # fmt: skip
    started = [False]

    def progress(done: int, total: int, errors: int) -> None:
        if not started[0]:
            started[0] = True
            writer.update(key, examples_completed=done, examples_total=total)
            reporter.cell_started(key, done, total)
            return
        writer.update(key, examples_completed=done - errors, examples_errored=errors)
        reporter.cell_progress(key, done, total, errors)

    try:
        # Loading a benchmark may read large files: keep the loop free for other cells.
        prepared = await asyncio.to_thread(prepare_cell, project, spec, cell)
        try:
            result = await evaluate_cell(
                project, prepared, keep_checkpoint=True, progress=progress, stop=stop,
                evaluate=evaluate,
            )  # fmt: skip
        finally:
            await prepared.aclose()
    except (InterruptedRun, asyncio.CancelledError):
        raise
    except Exception as exc:
        err = exc.message if isinstance(exc, EvalLedgerError) else f"{type(exc).__name__}: {exc}"
        final = writer.finish(key, status=CellStatus.FAILED, error=err, finished_at=utcnow())
        reporter.cell_finished(key, final)
        return
    writer.cache_hits += int(result.metrics.get("cache_hits", 0))
    patterns = result.metrics["error_patterns"]
    summary = ", ".join(f"{name} x{count}" for name, count in patterns.items())
    final = writer.finish(
        key, status=CellStatus.COMPLETED, finished_at=utcnow(),
        examples_completed=result.n_items - result.errored, examples_errored=result.errored,
        examples_total=result.n_items,
        error=f"{result.errored} items errored: {summary}" if result.errored else None,
    )  # fmt: skip
    reporter.cell_finished(key, final)


async def _evaluate(
    project: Project,
    spec: MatrixSpec,
    writer: ManifestWriter,
    keys: list[str],
    jobs: int,
    reporter: RunReporter,
    evaluate: ItemsEvaluator | None = None,
) -> bool:
    """Evaluate cells ``jobs`` at a time on one loop; True if interrupted by a signal.

    ``evaluate`` evaluates a cell's items elsewhere (a Ray cluster); the files are
    written here either way.
    """
    stop = threading.Event()
    slots = asyncio.Semaphore(max(1, jobs))
    interrupted = False

    async def one(key: str) -> None:
        async with slots:
            if not stop.is_set():
                await _run_cell(project, spec, writer, key, reporter, stop, evaluate)

    tasks = [asyncio.create_task(one(k)) for k in keys]

    def on_signal() -> None:
        # Items in flight are abandoned (a resume re-runs them); finished ones are safe.
        nonlocal interrupted
        interrupted = True
        stop.set()
        for task in tasks:
            task.cancel()

    async def flush_periodically() -> None:
        while True:
            await asyncio.sleep(writer.interval)
            writer.maybe_flush()

    with on_stop_signals(on_signal):
        flusher = asyncio.create_task(flush_periodically())
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            flusher.cancel()
    for res in results:
        if isinstance(res, InterruptedRun | asyncio.CancelledError):
            interrupted = True
        elif isinstance(res, BaseException):
            raise res
    return interrupted


def _finish_status(manifest: ExecutionManifest) -> ExecutionStatus:
    if all(cell_done(r) for r in manifest.cells.values()):
        return ExecutionStatus.COMPLETED
    return ExecutionStatus.PARTIAL


def _record_completed(project: Project, spec: MatrixSpec, manifest: ExecutionManifest) -> int:
    from evalledger.execution.pipeline import record_cells, stale_cells

    completed = [cell_from_axes(r.axes) for r in manifest.cells.values()
                 if r.status == CellStatus.COMPLETED]  # fmt: skip
    return record_cells(project, stale_cells(project, spec, completed), spec)


def _drop_checkpoints(project: Project, manifest: ExecutionManifest) -> None:
    for rec in manifest.cells.values():
        if cell_done(rec):
            remove_checkpoint(checkpoint_of(project, rec))


def _previous_runs(project: Project, manifest: ExecutionManifest) -> dict[str, list[str]]:
    """Earlier identical evaluations of the new execution's cells (a warning, never fatal)."""
    from evalledger.ledger.duplicates import previous_runs
    from evalledger.ledger.history import Ledger

    try:
        with Ledger(project) as ledger:
            return previous_runs(ledger, manifest)
    except EvalLedgerError:
        return {}


def _connect_executor(
    options: RunOptions, params: dict[str, Any], stack: ExitStack
) -> RayExecutor | None:
    """The Ray cluster to evaluate on (``--executor ray`` or ``run.executor``); None: local.

    ``params`` is params.yaml with this run's overrides; the connection closes with
    ``stack``.
    """
    from evalledger.params import parse_spec

    settings = parse_spec(params).run
    if (options.executor or settings.executor) != "ray":
        return None
    from evalledger.execution.ray_executor import RayExecutor

    executor = RayExecutor(options.address or settings.ray_address).connect()
    stack.callback(executor.close)
    return executor


def run(project: Project, options: RunOptions, reporter: RunReporter | None = None) -> RunResult:
    """Create (or resume) an execution and evaluate its cells; see the module docstring."""
    from evalledger.execution.pipeline import repair_dvc_lock, sync_dvc_yaml
    from evalledger.params import apply_overrides

    reporter = reporter or _NullReporter()
    started = time.perf_counter()
    if options.commit and not options.dry_run:  # no repository, or a detached HEAD
        from evalledger.gitinfo import check_commit_target

        check_commit_target(project.root)
    # Bad params fail before anything, even the lock file, is touched.
    _, params = override_params(project.params_path, [] if options.resume else options.overrides)
    if options.dry_run:  # read-only: works while another run holds the lock
        plan, _, _ = plan_run(project, options)
        return RunResult(plan=plan, message="dry run: nothing was evaluated")
    with run_lock(project, options.execution_id or "new execution"), ExitStack() as stack:
        # What a killed writer left: temp files, a dvc.lock that is empty or invalid.
        remove_leftovers(project)
        repair_dvc_lock(project, project.spec())
        plan, spec, target = plan_run(project, options)
        if options.resume:
            assert isinstance(target, ExecutionManifest)
            manifest = target
            if not plan.cells:
                if manifest.status != _finish_status(manifest):  # killed before its last write
                    manifest.status = _finish_status(manifest)
                    write_manifest(manifest_path(project, manifest.execution_id), manifest)
                recorded = _record_completed(project, spec, manifest)
                _drop_checkpoints(project, manifest)
                result = RunResult(
                    plan=plan, manifest=manifest, recorded=recorded,
                    message=f"all {len(manifest.cells)} cells of {manifest.execution_id} are "
                    "already completed; start a new execution with `evalledger run`",
                )  # fmt: skip
                if options.commit:
                    commit_into(result, project, manifest, spec)
                return result
            executor = _connect_executor(options, params, stack)
        else:
            assert isinstance(target, list)
            if not target:
                result = RunResult(
                    plan=plan,
                    message=f"all {len(plan.up_to_date)} selected cells are up to date "
                    "(dvc.lock matches params and outputs); use --force to evaluate them again",
                )
                if options.commit and plan.reused:
                    result.committed = commit_reused(project, spec, plan)
                return result
            # Before any write: a cluster that cannot be reached leaves nothing behind.
            executor = _connect_executor(options, params, stack)
            apply_overrides(project.params_path, options.overrides)
            spec = project.spec(reload=True)
            sync_dvc_yaml(project, spec)
            manifest = _new_manifest(project, spec, target, options, plan.jobs)
            if options.force:
                # --force asks for a fresh evaluation: items left by earlier runs don't count.
                for rec in manifest.cells.values():
                    remove_checkpoint(checkpoint_of(project, rec))
            plan.execution_id = manifest.execution_id
            plan.duplicates = _previous_runs(project, manifest)
        if options.resume:
            sync_dvc_yaml(project, spec)
        set_lock_label(project, manifest.execution_id)
        manifest.status = ExecutionStatus.IN_PROGRESS
        path = manifest_path(project, manifest.execution_id)
        writer = ManifestWriter(path, manifest)
        writer.flush()
        reporter.plan(plan)
        if options.no_cache:
            spec = replace(spec, run=replace(spec.run, cache=False))
        jobs, evaluate = plan.jobs, None
        if executor is not None:  # without --jobs, enough cells to keep the cluster busy
            jobs = options.jobs or max(plan.jobs, 2 * executor.slots())
            evaluate = executor.evaluator(str(project.root))
        try:
            interrupted = asyncio.run(
                _evaluate(project, spec, writer, plan.cells, jobs, reporter, evaluate)
            )
        except KeyboardInterrupt:
            interrupted = True
        manifest.status = _finish_status(manifest)
        writer.flush()
        recorded = _record_completed(project, spec, manifest)
        _drop_checkpoints(project, manifest)
        result = RunResult(plan=plan, manifest=manifest, recorded=recorded,
                           seconds=time.perf_counter() - started,
                           cache_hits=writer.cache_hits)  # fmt: skip
        if interrupted:
            raise InterruptedRun(
                f"{manifest.execution_id} interrupted ({manifest.summary()})",
                f"continue with `evalledger run --resume {manifest.execution_id}`",
            )
        if options.commit:
            commit_into(result, project, manifest, spec)
        return result
