"""evalledger: a git-native, file-based ledger of model evaluations, laid out as DVC.

The public Python API. Names load lazily, so ``import evalledger`` stays cheap::

    from evalledger import Project, RunOptions, run, load_execution

    project = Project.find(".")
    result = run(project, RunOptions(filters={"model": ["solver"]}))
    print(load_execution(project, None).summary())

    df = evalledger.load(["HEAD~1", "HEAD"])      # tidy metrics across revisions
    with evalledger.Ledger(project) as ledger:     # history straight from git objects
        print(evalledger.diff_revisions(ledger, "HEAD~1", "HEAD").to_markdown())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalledger.errors import EvalLedgerError
from evalledger.project import Project

if TYPE_CHECKING:
    from evalledger.benchmarks.base import Benchmark, Item, ItemScore
    from evalledger.cell import CellResult, execute_cell
    from evalledger.compare import compare_sides
    from evalledger.dataframe import load
    from evalledger.diff import LedgerDiff, diff_revisions
    from evalledger.executions import execution_ids, latest_execution_id, load_execution
    from evalledger.history import Ledger, Snapshot
    from evalledger.leaderboard import Leaderboard, build_leaderboard
    from evalledger.manifest import CellRecord, ExecutionManifest
    from evalledger.models.base import Completion, Model
    from evalledger.pairing import run_significance
    from evalledger.runner import RunOptions, RunPlan, RunResult, plan_run, run
    from evalledger.scaffold import init_project
    from evalledger.significance import PairedResult, compare_paired
    from evalledger.tracker import ExperimentConfig, Tracker

__all__ = [
    "Benchmark",
    "CellRecord",
    "CellResult",
    "Completion",
    "EvalLedgerError",
    "ExecutionManifest",
    "ExperimentConfig",
    "Item",
    "ItemScore",
    "Leaderboard",
    "Ledger",
    "LedgerDiff",
    "Model",
    "PairedResult",
    "Project",
    "RunOptions",
    "RunPlan",
    "RunResult",
    "Snapshot",
    "Tracker",
    "__version__",
    "build_leaderboard",
    "compare_paired",
    "compare_sides",
    "diff_revisions",
    "execute_cell",
    "execution_ids",
    "init_project",
    "latest_execution_id",
    "load",
    "load_execution",
    "plan_run",
    "run",
    "run_significance",
]

__version__ = "0.1.0.dev0"

_LAZY = {
    "Benchmark": "evalledger.benchmarks.base",
    "Item": "evalledger.benchmarks.base",
    "ItemScore": "evalledger.benchmarks.base",
    "CellResult": "evalledger.cell",
    "execute_cell": "evalledger.cell",
    "execution_ids": "evalledger.executions",
    "latest_execution_id": "evalledger.executions",
    "load_execution": "evalledger.executions",
    "CellRecord": "evalledger.manifest",
    "ExecutionManifest": "evalledger.manifest",
    "Completion": "evalledger.models.base",
    "Model": "evalledger.models.base",
    "RunOptions": "evalledger.runner",
    "RunPlan": "evalledger.runner",
    "RunResult": "evalledger.runner",
    "plan_run": "evalledger.runner",
    "run": "evalledger.runner",
    "init_project": "evalledger.scaffold",
    "Ledger": "evalledger.history",
    "Snapshot": "evalledger.history",
    "LedgerDiff": "evalledger.diff",
    "diff_revisions": "evalledger.diff",
    "Leaderboard": "evalledger.leaderboard",
    "build_leaderboard": "evalledger.leaderboard",
    "compare_sides": "evalledger.compare",
    "load": "evalledger.dataframe",
    "run_significance": "evalledger.pairing",
    "PairedResult": "evalledger.significance",
    "compare_paired": "evalledger.significance",
    "ExperimentConfig": "evalledger.tracker",
    "Tracker": "evalledger.tracker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalledger' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
