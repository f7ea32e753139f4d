"""``evalledger run``: create or resume an execution and evaluate its cells in parallel.

The orchestrator is the only writer of the execution manifest; each cell writes only its
own files. Finished cells are recorded in dvc.lock in one batch at the end, exactly as
``dvc commit -f`` would record them, so ``dvc status`` is clean afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from evalledger.atomic import locked_file
from evalledger.cell import benchmark_data_hash, cell_context, evaluate_cell, prepare_cell
from evalledger.checkpoint import count_scored
from evalledger.errors import (
    ConfigError,
    EvalLedgerError,
    InterruptedRun,
    NothingToResumeError,
    RunLockedError,
)
from evalledger.executions import latest_execution_id, manifest_path, resolve_execution_id
from evalledger.manifest import (
    CellRecord,
    CellStatus,
    ExecutionManifest,
    ExecutionStatus,
    new_execution_id,
    new_experiment_name,
    read_manifest,
    utcnow,
    write_manifest,
)
from evalledger.matrix import Cell, cell_from_axes, expand
from evalledger.params import override_params, parse_spec
from evalledger.plugins import check_plugins

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = ["RunOptions", "RunPlan", "RunReporter", "RunResult", "plan_run", "run"]


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
class RunOptions:
    """What the user asked ``evalledger run`` to do."""

    resume: bool = False
    execution_id: str | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    jobs: int | None = None
    force: bool = False
    commit: bool = False
    dry_run: bool = False
    command: list[str] = field(default_factory=list)


@dataclass
class RunPlan:
    """Which cells, and how many of their items, a run will evaluate."""

    execution_id: str | None
    resume: bool
    cells: list[str]
    up_to_date: list[str]
    items_done: dict[str, int]
    items_total: dict[str, int | None]
    jobs: int
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    """Cell -> earlier executions that completed it at the same config, data and code."""

    @property
    def items_remaining(self) -> dict[str, int | None]:
        """Items left per cell; None when the cell never started (total unknown yet)."""
        out: dict[str, int | None] = {}
        for key in self.cells:
            total = self.items_total.get(key)
            out[key] = None if total is None else max(0, total - self.items_done.get(key, 0))
        return out


@dataclass
class RunResult:
    """The outcome of a run."""

    plan: RunPlan
    manifest: ExecutionManifest | None = None
    message: str | None = None
    committed: str | None = None
    recorded: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every cell of the execution completed (or nothing needed running)."""
        return self.manifest is None or self.manifest.status == ExecutionStatus.COMPLETED


def _checkpoint_of(project: Project, rec: CellRecord) -> Path:
    return project.checkpoint_path(cell_from_axes(rec.axes), rec.config_hash)


def _axis_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in filters.items() if v}


@contextmanager
def _run_lock(project: Project, label: str) -> Iterator[None]:
    with locked_file(project.run_lock_path) as fh:
        if fh is None:
            try:
                holder = json.loads(project.run_lock_path.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            who = f"pid {holder.get('pid', '?')}, {holder.get('execution', 'starting')}"
            raise RunLockedError(
                f"another evalledger run is in progress in this project ({who})",
                "wait for it to finish; a killed run releases the lock by itself",
            )
        _set_lock_label(project, label)
        yield


def _set_lock_label(project: Project, label: str) -> None:
    data = json.dumps({"pid": os.getpid(), "execution": label})
    with open(project.run_lock_path, "w") as fh:
        fh.write(data)


def _load_for_resume(project: Project, options: RunOptions) -> ExecutionManifest:
    if options.overrides:
        raise ConfigError(
            "--resume continues an execution with its own params; -S is not allowed",
            "drop -S, or start a new execution with `evalledger run -S ...`",
        )
    if any(options.filters.values()):
        raise ConfigError(
            "--resume continues every unfinished cell of the execution; filters are not allowed",
            "drop the axis filters",
        )
    if options.execution_id is None and latest_execution_id(project) is None:
        raise NothingToResumeError(
            "no execution to resume", "start one with `evalledger run` first"
        )
    exec_id = resolve_execution_id(project, options.execution_id)
    return read_manifest(manifest_path(project, exec_id))


def _check_resume_config(spec: MatrixSpec, manifest: ExecutionManifest) -> list[Cell]:
    cells, changed = [], []
    for key, rec in manifest.cells.items():
        try:
            cell = cell_from_axes(rec.axes)
            _, chash = cell_context(spec, cell)
        except (KeyError, ConfigError):
            changed.append(key)
            continue
        if chash != rec.config_hash:
            changed.append(key)
        cells.append(cell)
    if changed:
        raise ConfigError(
            f"params.yaml changed since {manifest.execution_id} for {len(changed)} cell(s) "
            f"(e.g. {changed[0]}); resuming would mix two configurations",
            "restore params.yaml (`git checkout params.yaml`) or start a new `evalledger run`",
        )
    return cells


def plan_run(project: Project, options: RunOptions) -> tuple[RunPlan, MatrixSpec, object]:
    """Decide what a run would do, without evaluating or writing anything.

    Returns the plan, the spec it was made with, and either the execution manifest to
    resume or the list of cells for a new execution.
    """
    from evalledger.pipeline import stale_cells

    if options.resume:
        spec = project.spec()
        manifest = _load_for_resume(project, options)
        cells = _check_resume_config(spec, manifest)
        check_plugins(spec, cells)
        todo = [k for k, r in manifest.cells.items() if not _cell_done(r)]
        done: dict[str, int] = {}
        total: dict[str, int | None] = {}
        for key in todo:
            rec = manifest.cells[key]
            done[key] = count_scored(_checkpoint_of(project, rec))
            total[key] = rec.examples_total
        plan = RunPlan(
            execution_id=manifest.execution_id, resume=True, cells=todo, up_to_date=[],
            items_done=done, items_total=total, jobs=options.jobs or manifest.jobs,
        )  # fmt: skip
        return plan, spec, manifest
    _, data = override_params(project.params_path, options.overrides)
    spec = parse_spec(data)
    cells = expand(spec, _axis_filters(options.filters))
    check_plugins(spec, cells)
    stale = cells if options.force else stale_cells(project, spec, cells)
    stale_keys = {c.key for c in stale}
    done, total = {}, {}
    for cell in stale:
        _, chash = cell_context(spec, cell)
        done[cell.key] = count_scored(project.checkpoint_path(cell, chash))
        total[cell.key] = None
    plan = RunPlan(
        execution_id=None, resume=False, cells=[c.key for c in stale],
        up_to_date=[c.key for c in cells if c.key not in stale_keys],
        items_done=done, items_total=total, jobs=options.jobs or spec.run.jobs,
    )  # fmt: skip
    return plan, spec, stale


class _ManifestWriter:
    """The one writer of the manifest.

    Workers update it in memory; the orchestrator's loop writes it at most every
    ``interval`` seconds, and once more at the end.

    A lagging manifest loses nothing: a cell that finished after the last write still has
    its full checkpoint (checkpoints are dropped only after the final write), so a resume
    rebuilds its outputs without evaluating any item again.
    """

    def __init__(self, path: Path, manifest: ExecutionManifest, interval: float = 0.5) -> None:
        self.path = path
        self.manifest = manifest
        self.interval = interval
        self.lock = threading.RLock()
        self._last = 0.0
        self._dirty = False

    def update(self, key: str, **changes: object) -> None:
        with self.lock:
            rec = self.manifest.cells[key]
            for name, value in changes.items():
                setattr(rec, name, value)
            self._dirty = True

    def finish(self, key: str, **changes: object) -> CellRecord:
        """Apply a cell's final changes and return a copy for the reporter."""
        with self.lock:
            self.update(key, **changes)
            return self.manifest.cells[key].model_copy()

    def maybe_flush(self) -> None:
        with self.lock:
            if self._dirty and time.monotonic() - self._last >= self.interval:
                self._write()

    def flush(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        write_manifest(self.path, self.manifest)
        self._last, self._dirty = time.monotonic(), False


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
        _, chash = cell_context(spec, cell)
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
        filters=_axis_filters(options.filters), config=redact(spec.raw),
        git=git, jobs=jobs, cells=records, provenance=capture_provenance(project.root),
    )  # fmt: skip


async def _run_cell(
    project: Project,
    spec: MatrixSpec,
    writer: _ManifestWriter,
    key: str,
    reporter: RunReporter,
    stop: threading.Event,
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
                project, prepared, keep_checkpoint=True, progress=progress, stop=stop
            )
        finally:
            await prepared.aclose()
    except (InterruptedRun, asyncio.CancelledError):
        raise
    except Exception as exc:
        err = exc.message if isinstance(exc, EvalLedgerError) else f"{type(exc).__name__}: {exc}"
        final = writer.finish(key, status=CellStatus.FAILED, error=err, finished_at=utcnow())
        reporter.cell_finished(key, final)
        return
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
    writer: _ManifestWriter,
    keys: list[str],
    jobs: int,
    reporter: RunReporter,
) -> bool:
    """Evaluate cells ``jobs`` at a time on one loop; True if interrupted by a signal."""
    stop = threading.Event()
    slots = asyncio.Semaphore(max(1, jobs))
    interrupted = False

    async def one(key: str) -> None:
        async with slots:
            if not stop.is_set():
                await _run_cell(project, spec, writer, key, reporter, stop)

    tasks = [asyncio.create_task(one(k)) for k in keys]

    def on_signal() -> None:
        # Items in flight are abandoned (a resume re-runs them); finished ones are safe.
        nonlocal interrupted
        interrupted = True
        stop.set()
        for task in tasks:
            task.cancel()

    loop = asyncio.get_running_loop()
    handled = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
            handled.append(sig)

    async def flush_periodically() -> None:
        while True:
            await asyncio.sleep(writer.interval)
            writer.maybe_flush()

    flusher = asyncio.create_task(flush_periodically())
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        flusher.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)
    for res in results:
        if isinstance(res, InterruptedRun | asyncio.CancelledError):
            interrupted = True
        elif isinstance(res, BaseException):
            raise res
    return interrupted


def _cell_done(rec: CellRecord) -> bool:
    """Completed with every item scored: nothing left for a resume to do."""
    return rec.status == CellStatus.COMPLETED and rec.examples_errored == 0


def _finish_status(manifest: ExecutionManifest) -> ExecutionStatus:
    if all(_cell_done(r) for r in manifest.cells.values()):
        return ExecutionStatus.COMPLETED
    return ExecutionStatus.PARTIAL


def _record_completed(project: Project, spec: MatrixSpec, manifest: ExecutionManifest) -> int:
    from evalledger.pipeline import record_cells, stale_cells

    completed = [cell_from_axes(r.axes) for r in manifest.cells.values()
                 if r.status == CellStatus.COMPLETED]  # fmt: skip
    return record_cells(project, stale_cells(project, spec, completed))


def _drop_checkpoints(project: Project, manifest: ExecutionManifest) -> None:
    for rec in manifest.cells.values():
        if _cell_done(rec):
            _checkpoint_of(project, rec).unlink(missing_ok=True)


def _commit(project: Project, manifest: ExecutionManifest) -> str:
    from evalledger.gitinfo import git_commit

    lines = [f"evalledger: {manifest.execution_id} ({manifest.summary()})", ""]
    for key, rec in manifest.cells.items():
        lines.append(f"- {key}: {rec.status.value}" + (f" ({rec.error})" if rec.error else ""))
    paths = [f"runs/{manifest.execution_id}", "metrics", "predictions", "dvc.lock",
             "dvc.yaml", "params.yaml"]  # fmt: skip
    return git_commit(project.root, paths, "\n".join(lines))


def _previous_runs(project: Project, manifest: ExecutionManifest) -> dict[str, list[str]]:
    """Earlier identical evaluations of the new execution's cells (a warning, never fatal)."""
    from evalledger.duplicates import previous_runs
    from evalledger.history import Ledger

    try:
        with Ledger(project) as ledger:
            return previous_runs(ledger, manifest)
    except EvalLedgerError:
        return {}


def run(project: Project, options: RunOptions, reporter: RunReporter | None = None) -> RunResult:
    """Create (or resume) an execution and evaluate its cells; see the module docstring."""
    from evalledger.params import apply_overrides
    from evalledger.pipeline import sync_dvc_yaml

    reporter = reporter or _NullReporter()
    started = time.perf_counter()
    # Bad params fail before anything, even the lock file, is touched.
    override_params(project.params_path, [] if options.resume else options.overrides)
    if options.dry_run:  # read-only: works while another run holds the lock
        plan, _, _ = plan_run(project, options)
        return RunResult(plan=plan, message="dry run: nothing was evaluated")
    with _run_lock(project, options.execution_id or "new execution"):
        plan, spec, target = plan_run(project, options)
        if options.resume:
            assert isinstance(target, ExecutionManifest)
            manifest = target
            if not plan.cells:
                recorded = _record_completed(project, spec, manifest)
                _drop_checkpoints(project, manifest)
                return RunResult(
                    plan=plan, manifest=manifest, recorded=recorded,
                    message=f"all {len(manifest.cells)} cells of {manifest.execution_id} are "
                    "already completed; start a new execution with `evalledger run`",
                )  # fmt: skip
        else:
            assert isinstance(target, list)
            if not target:
                return RunResult(
                    plan=plan,
                    message=f"all {len(plan.up_to_date)} selected cells are up to date "
                    "(dvc.lock matches params and outputs); use --force to evaluate them again",
                )
            apply_overrides(project.params_path, options.overrides)
            spec = project.spec(reload=True)
            sync_dvc_yaml(project, spec)
            manifest = _new_manifest(project, spec, target, options, plan.jobs)
            if options.force:
                # --force asks for a fresh evaluation: items left by earlier runs don't count.
                for rec in manifest.cells.values():
                    _checkpoint_of(project, rec).unlink(missing_ok=True)
            plan.execution_id = manifest.execution_id
            plan.duplicates = _previous_runs(project, manifest)
        if options.resume:
            sync_dvc_yaml(project, spec)
        _set_lock_label(project, manifest.execution_id)
        manifest.status = ExecutionStatus.IN_PROGRESS
        path = manifest_path(project, manifest.execution_id)
        writer = _ManifestWriter(path, manifest)
        writer.flush()
        reporter.plan(plan)
        try:
            interrupted = asyncio.run(
                _evaluate(project, spec, writer, plan.cells, plan.jobs, reporter)
            )
        except KeyboardInterrupt:
            interrupted = True
        manifest.status = _finish_status(manifest)
        writer.flush()
        recorded = _record_completed(project, spec, manifest)
        _drop_checkpoints(project, manifest)
        result = RunResult(plan=plan, manifest=manifest, recorded=recorded,
                           seconds=time.perf_counter() - started)  # fmt: skip
        if interrupted:
            raise InterruptedRun(
                f"{manifest.execution_id} interrupted ({manifest.summary()})",
                f"continue with `evalledger run --resume {manifest.execution_id}`",
            )
        if options.commit:
            result.committed = _commit(project, manifest)
        return result
