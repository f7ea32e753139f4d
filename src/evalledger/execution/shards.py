"""``evalledger run --shard I/N``: N processes share one evaluation, each a 1/N of the items.

Each shard evaluates its items (:mod:`evalledger.execution.sharding`) of every selected
cell into its own item checkpoint (``<cell checkpoint>.shard-I-of-N.jsonl``), which no
other process writes. The project's run lock is held only briefly: to plan (and create
or join the execution), and to merge a cell; never while items are evaluated.

**One execution for the N shards.** The shards of one plan share one execution: the
first shard to plan creates it and writes a group file,
``.evalledger/shards/<key>.json``, naming it; the key hashes N and the selected cells
with their configuration hashes, so every shard of the same command finds the same
execution. While that execution is not completed, a shard joins it; a later run (once
it is completed) starts a new one. The manifest is written only under the run lock, by
the shard that creates the execution and by the shard that merges a cell.

**Merge exactly once.** When a shard has finished its part of a cell, it takes the run
lock and reads every shard's checkpoint of that cell. If all hold all their items, it
writes the cell's outputs from their union in benchmark order (the same files an
unsharded run writes), records the cell in dvc.lock, marks it completed in the manifest
and drops the shard checkpoints. Otherwise it leaves the cell to the last shard to
finish. A shard that finds the cell completed does nothing for it.

A killed shard is resumed by running the same command again: it joins the execution and
evaluates only the items its checkpoint lacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalledger.atomic import atomic_write
from evalledger.errors import ConfigError, EvalLedgerError, InterruptedRun
from evalledger.execution.cell import cell_context, evaluate_items, prepare_cell, write_outputs
from evalledger.execution.checkpoint import Checkpoint, parse_records
from evalledger.execution.commit import commit_into
from evalledger.execution.executions import manifest_path
from evalledger.execution.plan import (
    RunOptions,
    RunPlan,
    axis_filters,
    cell_done,
    plan_run,
    remove_leftovers,
    run_lock,
)
from evalledger.execution.runner import RunReporter, RunResult, _new_manifest
from evalledger.execution.sharding import Shard, shard_checkpoint
from evalledger.execution.signals import on_stop_signals
from evalledger.manifest import (
    CellStatus,
    ExecutionManifest,
    ExecutionStatus,
    read_manifest,
    utcnow,
    write_manifest,
)
from evalledger.matrix import Cell, cell_from_axes, expand

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from evalledger.execution.cell import PreparedCell
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = ["LOCK_WAIT", "run_shard", "shard_group_path"]

#: Seconds a shard waits for the run lock (others plan or merge only briefly).
LOCK_WAIT = 300.0


@dataclass
class _Outcome:
    key: str
    evaluated: int = 0
    items: int = 0
    """This shard's items of the cell."""
    merged: bool = False
    finished: bool = False
    """This merge completed the execution."""


def shard_group_path(project: Project, spec: MatrixSpec, options: RunOptions) -> Path:
    """The group file naming the execution that the shards of this command share."""
    assert options.shard is not None
    cells = expand(spec, axis_filters(options.filters))
    hashes = {c.key: cell_context(spec, c, project.root)[1] for c in cells}
    text = json.dumps({"shards": options.shard.count, "cells": hashes}, sort_keys=True)
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    return project.state_dir / "shards" / f"{key}.json"


def _joinable(project: Project, group: Path) -> ExecutionManifest | None:
    """The group's execution while it is not completed; None if there is none to join."""
    try:
        exec_id = json.loads(group.read_text())["execution_id"]
        manifest = read_manifest(manifest_path(project, str(exec_id)))
    except (OSError, ValueError, KeyError, TypeError, EvalLedgerError):
        return None
    return None if manifest.status == ExecutionStatus.COMPLETED else manifest


def _check_options(options: RunOptions) -> Shard:
    assert options.shard is not None
    for flag, given in (("--resume", options.resume or options.execution_id is not None),
                        ("--force", options.force)):  # fmt: skip
        if given:
            raise ConfigError(
                f"{flag} cannot be combined with --shard",
                "run the same `evalledger run --shard I/N` again to continue a shard",
            )
    if options.executor == "ray":
        raise ConfigError(
            "--shard cannot be combined with --executor ray: the cluster splits the items",
            "run `evalledger run --executor ray` once, without --shard",
        )
    return options.shard


def _shard_ids(project: Project, spec: MatrixSpec, cell: Cell, shard: Shard) -> list[str]:
    from evalledger.execution.cell import cell_benchmark

    items = cell_benchmark(project, spec, cell.axis("benchmark") or "").load()
    return shard.select(it.id for it in items)


def _dry_run(project: Project, options: RunOptions, shard: Shard) -> RunResult:
    """How many items this shard would evaluate per cell; nothing is written."""
    plan, spec, _ = plan_run(project, options)
    joined = _joinable(project, shard_group_path(project, spec, options))
    if joined is not None:
        plan.execution_id = joined.execution_id
        plan.cells = [k for k, r in joined.cells.items() if not cell_done(r)]
    plan.shard = shard
    cells = {c.key: c for c in expand(spec, axis_filters(options.filters))}
    if joined is not None:
        cells = {k: cell_from_axes(r.axes) for k, r in joined.cells.items()}
    for key in plan.cells:
        cell = cells[key]
        mine = _shard_ids(project, spec, cell, shard)
        base = project.checkpoint_path(cell, cell_context(spec, cell, project.root)[1])
        done = _records(shard_checkpoint(base, shard))
        plan.items_total[key] = len(mine)
        plan.items_done[key] = sum(1 for i in mine if i in done and not done[i].get("error"))
    return RunResult(plan=plan, message="dry run: nothing was evaluated")


def _records(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return parse_records(path.read_bytes())
    except FileNotFoundError:
        return {}


def _start(
    project: Project, options: RunOptions, shard: Shard
) -> tuple[RunPlan, MatrixSpec, ExecutionManifest | None]:
    """Under the run lock: join the shards' execution, or create it; None if nothing is stale."""
    from evalledger.execution.pipeline import repair_dvc_lock, sync_dvc_yaml
    from evalledger.params import apply_overrides

    remove_leftovers(project)
    repair_dvc_lock(project, project.spec())
    plan, spec, stale = plan_run(project, options)
    plan.shard = shard
    group = shard_group_path(project, spec, options)
    manifest = _joinable(project, group)
    if manifest is not None:
        plan.cells = [k for k, r in manifest.cells.items() if not cell_done(r)]
        plan.execution_id = manifest.execution_id
        return plan, spec, manifest
    assert isinstance(stale, list)
    if not stale:
        return plan, spec, None
    apply_overrides(project.params_path, options.overrides)
    spec = project.spec(reload=True)
    sync_dvc_yaml(project, spec)
    manifest = _new_manifest(project, spec, stale, options, plan.jobs)
    manifest.status = ExecutionStatus.IN_PROGRESS
    for rec in manifest.cells.values():
        rec.status, rec.started_at, rec.attempts = CellStatus.IN_PROGRESS, utcnow(), 1
    write_manifest(manifest_path(project, manifest.execution_id), manifest)
    atomic_write(group, json.dumps({"execution_id": manifest.execution_id}) + "\n")
    plan.execution_id = manifest.execution_id
    return plan, spec, manifest


def _merge(
    project: Project, exec_id: str, prepared: PreparedCell, shard: Shard, wall_s: float
) -> _Outcome:
    """Under the run lock: write the cell's outputs if every shard holds all its items."""
    from evalledger.execution.pipeline import record_cells

    key = prepared.cell.key
    outcome = _Outcome(key)
    with run_lock(project, f"{exec_id} merging {key}", wait=LOCK_WAIT):
        path = manifest_path(project, exec_id)
        manifest = read_manifest(path)
        rec = manifest.cells[key]
        if cell_done(rec):
            return outcome  # merged already
        base = project.checkpoint_path(prepared.cell, prepared.config_hash)
        records: dict[str, dict[str, Any]] = {}
        for other in shard.split():
            found = _records(shard_checkpoint(base, other))
            records |= {k: r for k, r in found.items() if other.owns(k)}
        if any(it.id not in records for it in prepared.items):
            return outcome  # the last shard to finish merges
        ordered = [records[it.id] for it in prepared.items]
        n = len(ordered)
        try:
            _, errored = write_outputs(project, prepared, ordered, wall_s)
        except EvalLedgerError as exc:
            rec.status, rec.error, rec.finished_at = CellStatus.FAILED, exc.message, utcnow()
        else:
            record_cells(project, [prepared.cell])
            summary = ", ".join(f"{c} x{k}" for c, k in _patterns(ordered).items())
            rec.status, rec.finished_at, rec.examples_total = CellStatus.COMPLETED, utcnow(), n
            rec.examples_completed, rec.examples_errored = n - errored, errored
            rec.error = f"{errored} items errored: {summary}" if errored else None
        outcome.merged = True
        if all(r.status in (CellStatus.COMPLETED, CellStatus.FAILED) for r in
               manifest.cells.values()):  # fmt: skip
            done = all(cell_done(r) for r in manifest.cells.values())
            manifest.status = ExecutionStatus.COMPLETED if done else ExecutionStatus.PARTIAL
            outcome.finished = True
        manifest.updated_at = utcnow()
        write_manifest(path, manifest)
        if cell_done(rec):
            for other in shard.split():
                shard_checkpoint(base, other).unlink(missing_ok=True)
    return outcome


def _fail(project: Project, exec_id: str, key: str, message: str) -> None:
    """Under the run lock: record that the cell could not be prepared (every shard fails)."""
    with run_lock(project, f"{exec_id} failing {key}", wait=LOCK_WAIT):
        path = manifest_path(project, exec_id)
        manifest = read_manifest(path)
        rec = manifest.cells[key]
        if rec.status == CellStatus.COMPLETED:
            return
        rec.status, rec.error, rec.finished_at = CellStatus.FAILED, message, utcnow()
        if all(r.status in (CellStatus.COMPLETED, CellStatus.FAILED) for r in
               manifest.cells.values()):  # fmt: skip
            manifest.status = ExecutionStatus.PARTIAL
        write_manifest(path, manifest)


def _patterns(records: list[dict[str, Any]]) -> dict[str, int]:
    from collections import Counter

    return dict(sorted(Counter(r["error_class"] for r in records if r.get("error")).items()))


async def _shard_cell(
    project: Project, spec: MatrixSpec, exec_id: str, cell: Cell, shard: Shard,
    reporter: RunReporter, stop: threading.Event,
) -> _Outcome:  # fmt: skip
    key = cell.key
    started = time.perf_counter()
    seen = [False]

    def progress(done: int, total: int, errors: int) -> None:
        if not seen[0]:
            seen[0] = True
            reporter.cell_started(key, done, total)
        else:
            reporter.cell_progress(key, done, total, errors)

    try:
        prepared = await asyncio.to_thread(prepare_cell, project, spec, cell)
    except EvalLedgerError as exc:
        await asyncio.to_thread(_fail, project, exec_id, key, exc.message)
        return _Outcome(key, merged=True)
    try:
        mine = [it for it in prepared.items if shard.owns(it.id)]
        base = project.checkpoint_path(cell, prepared.config_hash)
        with Checkpoint(shard_checkpoint(base, shard)) as ck:
            evaluated = await evaluate_items(prepared, ck, mine, progress=progress, stop=stop)
        wall = time.perf_counter() - started
        outcome = await asyncio.to_thread(_merge, project, exec_id, prepared, shard, wall)
    finally:
        await prepared.aclose()
    outcome.evaluated, outcome.items = evaluated, len(mine)
    return outcome


async def _evaluate(
    project: Project, spec: MatrixSpec, manifest: ExecutionManifest, plan: RunPlan,
    reporter: RunReporter,
) -> tuple[list[_Outcome], bool]:  # fmt: skip
    """Evaluate this shard's part of every planned cell, ``plan.jobs`` cells at once."""
    assert plan.shard is not None
    exec_id, shard = manifest.execution_id, plan.shard
    stop = threading.Event()
    slots = asyncio.Semaphore(max(1, plan.jobs))

    async def one(key: str) -> _Outcome:
        async with slots:
            if stop.is_set():
                raise InterruptedRun(f"{key} not started")
            cell = cell_from_axes(manifest.cells[key].axes)
            return await _shard_cell(project, spec, exec_id, cell, shard, reporter, stop)

    tasks = [asyncio.create_task(one(k)) for k in plan.cells]

    def on_signal() -> None:
        # Items in flight are abandoned: the same command again evaluates them.
        stop.set()
        for task in tasks:
            task.cancel()

    with on_stop_signals(on_signal):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    outcomes, interrupted = [], stop.is_set()
    for res in results:
        if isinstance(res, InterruptedRun | asyncio.CancelledError):
            interrupted = True
        elif isinstance(res, BaseException):
            raise res
        else:
            outcomes.append(res)
    return outcomes, interrupted


def run_shard(
    project: Project, options: RunOptions, reporter: RunReporter | None = None
) -> RunResult:
    """Evaluate this shard's items of the selected cells; see the module docstring."""
    from evalledger.execution.runner import _NullReporter
    from evalledger.params import override_params

    shard = _check_options(options)
    reporter = reporter or _NullReporter()
    started = time.perf_counter()
    if options.commit and not options.dry_run:
        from evalledger.gitinfo import check_commit_target

        check_commit_target(project.root)
    override_params(project.params_path, options.overrides)  # bad params: nothing written
    if options.dry_run:
        return _dry_run(project, options, shard)
    with run_lock(project, f"shard {shard} planning", wait=LOCK_WAIT):
        plan, spec, manifest = _start(project, options, shard)
    if manifest is None:
        return RunResult(
            plan=plan,
            message=f"all {len(plan.up_to_date)} selected cells are up to date "
            "(dvc.lock matches params and outputs); use --force to evaluate them again",
        )
    reporter.plan(plan)
    try:
        outcomes, interrupted = asyncio.run(_evaluate(project, spec, manifest, plan, reporter))
    except KeyboardInterrupt:
        outcomes, interrupted = [], True
    manifest = read_manifest(manifest_path(project, manifest.execution_id))
    for out in outcomes:
        rec = manifest.cells[out.key].model_copy()
        if rec.status == CellStatus.IN_PROGRESS:  # waiting: say what this shard did
            rec.examples_completed = rec.examples_total = out.items
        reporter.cell_finished(out.key, rec)
    if interrupted:
        raise InterruptedRun(
            f"shard {shard} of {manifest.execution_id} interrupted",
            f"continue it with the same `evalledger run --shard {shard}`",
        )
    merged = [
        o for o in outcomes if o.merged and manifest.cells[o.key].status == CellStatus.COMPLETED
    ]
    waiting = [o.key for o in outcomes if not o.merged and not cell_done(manifest.cells[o.key])]
    evaluated = sum(o.evaluated for o in outcomes)
    message = (f"shard {shard}: {evaluated} items evaluated in {len(outcomes)} cells; "
               f"{len(merged)} merged")  # fmt: skip
    if waiting:
        message += f", {len(waiting)} waiting for the other shards to finish"
    result = RunResult(plan=plan, manifest=manifest, message=message, recorded=len(merged),
                       seconds=time.perf_counter() - started, waiting=waiting)  # fmt: skip
    if options.commit and any(o.finished for o in outcomes):
        with run_lock(project, f"{manifest.execution_id} committing", wait=LOCK_WAIT):
            commit_into(result, project, manifest, None)
    return result
