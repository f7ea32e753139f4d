"""Deciding what ``evalledger run`` will do before anything is evaluated.

The user's options, the plan (which cells, how many items each has left), the checks a
resume must pass, and the project's run lock that keeps two runs from planning against
the same checkpoints. Nothing here evaluates a cell or writes the manifest.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalledger.atomic import locked_file, remove_leftover_temps
from evalledger.errors import ConfigError, NothingToResumeError, RunLockedError, notice
from evalledger.execution.cell import cell_context
from evalledger.execution.checkpoint import count_scored
from evalledger.execution.executions import latest_execution_id, manifest_path, resolve_execution_id
from evalledger.execution.lockfile import CACHE_STAGING
from evalledger.execution.validate import check_ready, checked_spec, dvc_yaml_problem
from evalledger.manifest import CellRecord, CellStatus, ExecutionManifest, read_manifest
from evalledger.matrix import Cell, cell_from_axes, expand
from evalledger.plugins import check_plugins
from evalledger.project import STATE_DIR

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from evalledger.execution.reuse import Reusable
    from evalledger.execution.sharding import Shard
    from evalledger.params import MatrixSpec
    from evalledger.project import Project

__all__ = [
    "RunOptions",
    "RunPlan",
    "axis_filters",
    "cell_done",
    "checkpoint_of",
    "plan_run",
    "remove_leftovers",
    "run_lock",
    "set_lock_label",
]


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
    shard: Shard | None = None
    """Evaluate only this shard's items (``--shard I/N``; see execution/shards.py)."""
    no_cache: bool = False
    """Make every model call: neither read nor write the response cache."""
    executor: str | None = None
    """``local`` or ``ray`` (``--executor``); None: ``run.executor`` in params.yaml."""
    address: str | None = None
    """The Ray cluster's address (``--address``); None: ``run.ray_address``."""


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
    shard: Shard | None = None
    """The shard planned for; then the item counts are this shard's items only."""
    restored: dict[str, int] = field(default_factory=dict)
    """Cells whose outputs came back instead of being evaluated -> their items."""
    reused: dict[str, str] = field(default_factory=dict)
    """Those of them evaluated before at the same configuration, data and code, whose
    outputs came back from history -> that execution (the others: dvc.lock's, pulled)."""
    not_reused: dict[str, str] = field(default_factory=dict)
    """Cells evaluated before identically, evaluated again because no DVC cache or remote
    holds their predictions -> that execution."""

    @property
    def items_remaining(self) -> dict[str, int | None]:
        """Items left per cell; None when the cell never started (total unknown yet)."""
        out: dict[str, int | None] = {}
        for key in self.cells:
            total = self.items_total.get(key)
            out[key] = None if total is None else max(0, total - self.items_done.get(key, 0))
        return out


def checkpoint_of(project: Project, rec: CellRecord) -> Path:
    """The item checkpoint of a manifest's cell."""
    return project.checkpoint_path(cell_from_axes(rec.axes), rec.config_hash)


def axis_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    """The filters that select something (axes with no values are dropped)."""
    return {k: list(v) for k, v in filters.items() if v}


def cell_done(rec: CellRecord) -> bool:
    """Completed with every item scored: nothing left for a resume to do."""
    return rec.status == CellStatus.COMPLETED and rec.examples_errored == 0


@contextmanager
def run_lock(project: Project, label: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the project's run lock, labelled ``label``; RunLockedError if another run has it.

    With ``wait``, keep trying for that many seconds first (shards hold it only briefly).
    """
    deadline = time.monotonic() + wait
    while True:
        with locked_file(project.run_lock_path) as fh:
            if fh is not None:
                set_lock_label(project, label)
                yield
                return
            if time.monotonic() >= deadline:
                try:
                    holder = json.loads(project.run_lock_path.read_text() or "{}")
                except (OSError, ValueError):
                    holder = {}
                who = f"pid {holder.get('pid', '?')}, {holder.get('execution', 'starting')}"
                raise RunLockedError(
                    f"another evalledger run is in progress in this project ({who})",
                    "wait for it to finish; a killed run releases the lock by itself",
                )
        time.sleep(0.05)


#: Where a write killed between its temp file and the rename leaves ``.NAME.XXXX.tmp``:
#: folders searched whole, and the files whose temp files sit beside them.
LEFTOVER_TREES = ["runs", "metrics", "predictions", f"{STATE_DIR}/checkpoints", CACHE_STAGING]
LEFTOVER_FILES = ["dvc.lock", "dvc.yaml", "params.yaml"]


def remove_leftovers(project: Project) -> list[Path]:
    """Delete the temp files that killed writes left (call it holding the run lock)."""
    return remove_leftover_temps(project.root, LEFTOVER_TREES, LEFTOVER_FILES)


def set_lock_label(project: Project, label: str) -> None:
    """Say in the lock file which process and execution hold it."""
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


def _check_resume_config(
    project: Project, spec: MatrixSpec, manifest: ExecutionManifest
) -> list[Cell]:
    cells, changed = [], []
    for key, rec in manifest.cells.items():
        try:
            cell = cell_from_axes(rec.axes)
            _, chash = cell_context(spec, cell, project.root)
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


def _check_dvc_yaml(
    project: Project, spec: MatrixSpec, will_run: bool, options: RunOptions
) -> None:
    """Refuse a damaged dvc.yaml; regenerate a missing or stale eval stage if no cell runs.

    A run with cells to evaluate rewrites the stage anyway, after the overrides are
    written; with none, the stage is rewritten here from params.yaml as it is on disk
    (overrides with nothing to run are not written), and a notice says so.
    """
    from evalledger.execution.pipeline import sync_dvc_yaml

    problem = dvc_yaml_problem(project, spec)
    if problem is None or will_run or options.dry_run:
        return
    sync_dvc_yaml(project, project.spec())
    notice(f"{problem}; regenerated it from params.yaml")


def plan_run(project: Project, options: RunOptions) -> tuple[RunPlan, MatrixSpec, object]:
    """Decide what a run would do, without evaluating anything.

    Everything is validated first (:mod:`evalledger.execution.validate`): bad params,
    overrides or plugins, a missing API key or data file, a damaged dvc.yaml are refused
    before anything is written. The one write is a missing or stale eval stage in
    dvc.yaml when no cell will run (never on a dry run); see :func:`_check_dvc_yaml`.

    Returns the plan, the spec it was made with, and either the execution manifest to
    resume or the list of cells for a new execution.
    """
    from evalledger.execution.outputs import check_pullable, restore_outputs
    from evalledger.execution.pipeline import stale_cells

    if options.resume:
        spec = project.spec()
        manifest = _load_for_resume(project, options)
        cells = _check_resume_config(project, spec, manifest)
        check_plugins(spec, cells)
        todo = [k for k, r in manifest.cells.items() if not cell_done(r)]
        check_ready(project, spec, [c for c in cells if c.key in todo])
        dvc_yaml_problem(project, spec)  # damaged: refused now; stale: the resume rewrites it
        done: dict[str, int] = {}
        total: dict[str, int | None] = {}
        for key in todo:
            rec = manifest.cells[key]
            done[key] = count_scored(checkpoint_of(project, rec))
            total[key] = rec.examples_total
        plan = RunPlan(
            execution_id=manifest.execution_id, resume=True, cells=todo, up_to_date=[],
            items_done=done, items_total=total, jobs=options.jobs or manifest.jobs,
        )  # fmt: skip
        return plan, spec, manifest
    _, spec = checked_spec(project, options.overrides, axis_filters(options.filters))
    cells = expand(spec, axis_filters(options.filters))
    stale = cells if options.force else stale_cells(project, spec, cells)
    restored: dict[str, int] = {}
    reused: dict[str, str] = {}
    not_reused: dict[str, str] = {}
    if not options.force and not options.resume:
        if not options.dry_run:  # a fresh clone restores its results, it does not pay again
            restored = restore_outputs(project, spec, stale)
            if restored:
                back = [c for c in stale if c.key in restored]
                still = {c.key for c in stale_cells(project, spec, back)}
                restored = {k: n for k, n in restored.items() if k not in still}
                stale = [c for c in stale if c.key not in restored]
        if stale and options.shard is None:  # evaluated before, at an older commit?
            stale, hits, not_reused = _reuse(project, spec, stale, options)
            reused = {k: hit.execution_id for k, hit in hits.items()}
            restored.update({k: hit.items for k, hit in hits.items()})
        check_pullable(project, spec, stale)
    check_ready(project, spec, stale, options.overrides)
    _check_dvc_yaml(project, spec, bool(stale), options)
    stale_keys = {c.key for c in stale}
    done, total = {}, {}
    for cell in stale:
        _, chash = cell_context(spec, cell, project.root)
        done[cell.key] = count_scored(project.checkpoint_path(cell, chash))
        total[cell.key] = None
    plan = RunPlan(
        execution_id=None, resume=False, cells=[c.key for c in stale],
        up_to_date=[c.key for c in cells if c.key not in stale_keys],
        items_done=done, items_total=total, jobs=options.jobs or spec.run.jobs,
        restored=restored, reused=reused, not_reused=not_reused,
    )  # fmt: skip
    return plan, spec, stale


def _reuse(
    project: Project, spec: MatrixSpec, stale: list[Cell], options: RunOptions
) -> tuple[list[Cell], dict[str, Reusable], dict[str, str]]:
    """Restore (or, on a dry run, find) the outputs of stale cells evaluated before."""
    from evalledger.execution.outputs import missing_outputs
    from evalledger.execution.reuse import find_reusable, reuse_outputs

    # dvc.lock's own outputs, only missing, are pulled (restore_outputs), not looked for
    pull = {c.key for c in missing_outputs(project, spec, stale).cells}
    search = find_reusable(project, spec, [c for c in stale if c.key not in pull])
    found = search.found
    if not options.dry_run:
        found = reuse_outputs(project, spec, search, options.overrides)
    return [c for c in stale if c.key not in found], found, search.unavailable
